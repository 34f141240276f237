"""One way from a command's options and its space to the settings its trials run with.

``spectune search``, ``record`` and ``replay`` (and the bench, through them) read the same options
(:class:`search.options.SearchOptions`); :func:`resolve` checks them against the option table once,
applies the space's budget to what was left unset, and builds the trial settings every trial of the
run shares, metric and mode included, so that no command rebuilds them with a field left out::

    run = resolve(options)            # checked, budget applied, nothing read yet
    run.settings.resolve(config)      # a trial's full recipe
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from results.best_file import DataOptions
from results.errors import OptionError
from results.pareto import Objective, parse_objective
from search.options import SEARCH_OPTIONS, SearchOptions, check
from spaces import Space, get_space
from trainables.discovery import ENV
from trainables.settings import TrialSettings


def user_path() -> str:
    """The driver's ``SPECTUNE_PATH``, so that trials find the same user pairs."""
    return os.environ.get(ENV, "")


@dataclass(frozen=True)
class RunSettings:
    """What options and a space resolve to: the options with the budget applied (``options``), the space,
    the epoch budget, the data to read and the settings every trial shares (device and threads are the
    driver's, set once Ray is up)."""

    options: SearchOptions
    space: Space
    max_epochs: int
    data: DataOptions
    settings: TrialSettings

    @property
    def patience(self) -> int | None:
        """The in-trial patience the space's first starting config runs with (what the plan prints)."""
        start = self.space.start[0] if self.space.start else {}
        return self.settings.resolve(start).recipe.patience

    def with_trials(self, **changes: Any) -> "RunSettings":
        """The same run with other trial settings (a recording's seeds, a confirmation's patience)."""
        return replace(self, settings=replace(self.settings, **changes))


def resolve(o: SearchOptions, baseline: bool = False) -> RunSettings:
    """Check ``o`` against the option table and the space, and resolve it: unset options take the space's
    budget (with ``baseline``, random search's trials rather than the default search's); raises
    :class:`OptionError` in the CLI's words for a bad value or a contradiction."""
    space = get_space(o.space)
    check(SEARCH_OPTIONS, o)
    if o.no_patience and o.patience is not None:
        raise OptionError(f"--no-patience and --patience {o.patience} contradict each other; pass one of them.")
    o = o.with_budget(space, baseline=baseline)
    max_epochs = o.max_epochs or space.max_epochs
    settings = TrialSettings(model=space.pair.model, data=space.pair.data, max_epochs=max_epochs, seed=o.seed,
                             fixed=dict(space.fixed), overrides=o.recipe_overrides(), metric=space.metric,
                             mode=space.mode, user_path=user_path(), searched=tuple(space.params))
    return RunSettings(o, space, max_epochs, o.data_options(space.pair.data_module.default_dir), settings)

def search_objectives(space: Space, o: SearchOptions) -> list[Objective]:
    """The space's metric (the primary objective), its further objectives, then ``--objective``'s."""
    out = [Objective(space.metric, space.mode), *(Objective(n, m) for n, m in space.objectives)]
    for text in o.objectives:
        objective = parse_objective(text, space.metric)
        if objective.name in [x.name for x in out]:
            raise OptionError(f"--objective {text}: {objective.name!r} is already an objective of space "
                              f"{space.name!r} ({', '.join(map(str, out))}).")
        out.append(objective)
    return out
