"""The trial schedulers a search can run (``--scheduler``): which trials stop early."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from search.strategy.asha import ParetoASHA, PersistentASHA
from search.strategy.curve_asha import CurveASHA
from search.options import TRIAL_SCHEDULERS
from search.strategy.time_asha import TimeASHA


def make_scheduler(name: str, max_epochs: int, grace_period: int, reduction_factor: int,
                   state: Path | None = None, objectives: Sequence[tuple[str, str]] = ()) -> TrialScheduler:
    """ASHA on the primary metric (its rungs kept in ``state`` when given, for ``--resume``), the same
    ranking extrapolated curves (:mod:`search.strategy.curve_asha`) or on training seconds instead of epochs
    (:mod:`search.strategy.time_asha`), MO-ASHA over the primary and ``objectives`` (the further objectives), or FIFO."""
    settings = dict(time_attr="training_iteration", max_t=max_epochs, grace_period=grace_period,
                    reduction_factor=reduction_factor)
    if name == "moasha":
        if not objectives:
            raise AssertionError("moasha needs further objectives; search.commands.search checks it first")
        return ParetoASHA(state, objectives, **settings)
    if name == "asha-curve":
        return CurveASHA(state, **settings)
    if name == "asha-time":
        return TimeASHA(state, **settings)
    if name == "asha":
        return PersistentASHA(state, **settings) if state is not None else ASHAScheduler(**settings)
    if name == "fifo":
        return FIFOScheduler()
    raise AssertionError(f"scheduler {name!r} is not one of {TRIAL_SCHEDULERS}; search.options checks it first")
