"""One way from options and a space to the run settings (search.resolve), shared by search, record and
replay: checked once, the budget applied once, metric and mode set once."""

from __future__ import annotations

import pytest

from results.errors import OptionError
from search.options import SearchOptions
from search.resolve import resolve
from spaces import get_space


def test_a_regression_space_resolves_to_its_own_metric_budget_and_data():
    space = get_space("california_mlp")
    run = resolve(SearchOptions(space="california_mlp", budget="cpu"))
    assert (run.settings.metric, run.settings.mode) == (space.metric, space.mode) == ("val_rmse", "min")
    assert run.max_epochs == space.cpu.max_epochs == run.settings.max_epochs
    assert run.options.trials == space.search_trials(space.cpu)            # the default search's trials
    assert resolve(SearchOptions(space="california_mlp", budget="cpu"), baseline=True).options.trials == \
        space.cpu.trials                                                      # random search's, for a replay
    assert run.data.path == str(space.pair.data_module.default_dir)
    assert run.data.train_fraction == space.cpu.train_fraction
    assert run.settings.searched == tuple(space.params)


def test_options_the_user_set_beat_the_budget_and_reach_the_trials():
    run = resolve(SearchOptions(space="wine_mlp", budget="cpu", max_epochs=3, seed=7, no_patience=True))
    assert run.max_epochs == 3 and run.settings.seed == 7 and run.patience is None
    assert run.with_trials(seed=9).settings.seed == 9 and run.settings.seed == 7


@pytest.mark.parametrize("options, match", [
    (dict(trials=0), r"^--trials must be an int in the range \[1, inf\); got 0\.$"),
    (dict(patience=3, no_patience=True), r"--no-patience and --patience 3 contradict"),
    (dict(time_budget=-1.0), r"--time-budget must be a float in the range \(0\.0, inf\)"),
])
def test_a_bad_option_is_refused_in_the_clis_words(options, match):
    with pytest.raises(OptionError, match=match):
        resolve(SearchOptions(space="wine_mlp", **options))


def test_search_record_and_replay_resolve_through_it():
    """The three commands' settings come from resolve(): none builds TrialSettings itself."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "search"
    for command in ("commands/search.py", "commands/record.py", "replay/study.py"):
        text = (root / command).read_text()
        assert "resolve(" in text and "TrialSettings(" not in text, command


def test_resolving_options_loads_no_ray():
    """The replay resolves its options as a search does, without the Ray driver on its path."""
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys, search.resolve; print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"
