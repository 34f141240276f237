"""Run options: a space's fixed values win unless the user passes the option; budgets fill the rest."""

from __future__ import annotations

import pytest

from search.options import SearchOptions
from spaces import get_space
from trainables.settings import TrialSettings


def _patience(space_name: str, options: SearchOptions) -> int | None:
    space = get_space(space_name)
    o = options.with_budget(space)
    settings = TrialSettings(model=space.model, data=space.data, max_epochs=o.max_epochs or space.max_epochs,
                             seed=o.seed, fixed=dict(space.fixed), overrides=o.recipe_overrides(),
                             searched=tuple(space.params))
    return settings.resolve(space.start[0]).recipe.patience


def test_a_spaces_fixed_patience_wins_unless_the_user_passes_one():
    assert get_space("wine_mlp").fixed["patience"] == 10
    # Before, a search ran wine_mlp with the CLI's default patience 5 while `train --space` used 10.
    assert _patience("wine_mlp", SearchOptions(space="wine_mlp")) == 10
    assert _patience("wine_mlp", SearchOptions(space="wine_mlp", patience=3)) == 3
    assert _patience("wine_mlp", SearchOptions(space="wine_mlp", no_patience=True)) is None
    # A space that fixes none takes the recipe's default.
    assert "patience" not in get_space("galspecnet").fixed
    assert _patience("galspecnet", SearchOptions(space="galspecnet")) == 5


def test_the_seed_and_the_budget_fill_only_what_the_user_left_unset():
    space = get_space("galspecnet")
    o = SearchOptions(space="galspecnet", budget="cpu", trials=3).with_budget(space)
    assert (o.trials, o.max_epochs, o.points, o.train_per_class, o.seed) == (3, 20, 1024, 280, 0)
    assert SearchOptions(space="galspecnet", seed=7).with_budget(space).seed == 7
    text = get_space("minilm_lora_text").cpu
    assert text.tokens == 64 and text.points is None


def test_a_space_whose_fixed_epochs_disagree_with_its_budget_is_refused():
    from dataclasses import replace

    from spaces import SpaceError
    from spaces._space import validate_space

    with pytest.raises(SpaceError, match=r"fixed\['epochs'\]: the epoch budget is max_epochs \(60\); got 30"):
        validate_space(replace(get_space("wine_mlp"), fixed={**get_space("wine_mlp").fixed, "epochs": 30}), "wine_mlp")
