"""Spending by time, without Ray: when ``--time-budget`` is said to have ended a search and what ``--resume``
does with it, and ASHA judged by training seconds (search/strategy/time_asha.py, ``--scheduler asha-time``) on hand-made
results. A search with both through Tune is in tests/test_search_e2e.py."""

from __future__ import annotations

import json
import pickle
import time
from types import SimpleNamespace

import pandas as pd
import pytest
from ray.tune.schedulers import TrialScheduler

from results.errors import OptionError
from search.options import SearchOptions
from search.commands.search import SearchCommand, _resumed_objectives
from search.strategy.schedulers import make_scheduler
from search.strategy.time_asha import TimeASHA
from search.strategy.time_asha import SECONDS


def test_the_budget_ended_a_search_only_when_it_cut_a_trial_or_left_some_unstarted():
    command = SearchCommand(SearchOptions(space="wine_mlp", trials=3, time_budget=0.01))   # 0.6 s
    command.began = time.monotonic() - 1.0
    ran = pd.DataFrame({"status": ["TERMINATED"] * 3, "epochs": [2, 2, 2]})
    nothing_cut = SimpleNamespace(close_lost=lambda *args, **kwargs: [])
    one_cut = SimpleNamespace(close_lost=lambda *args, **kwargs: ["c"])
    said = "its time budget of 0.01 min"
    # Every trial ran to its end just as the time ran out: the budget ended nothing.
    assert command._limit_reached(ran, nothing_cut) is None
    assert command._limit_reached(ran, one_cut) == said
    assert command._limit_reached(ran.iloc[:2], nothing_cut) == said
    # A trial left unended is an interruption (Ctrl+C), whatever the clock says; within the budget, no limit.
    assert command._limit_reached(ran.assign(status=["TERMINATED", "TERMINATED", "RUNNING"]), one_cut) is None
    command.began = time.monotonic()
    assert command._limit_reached(ran.iloc[:2], one_cut) is None


def test_a_resumed_search_keeps_its_time_budget_and_refuses_another(tmp_path):
    saved = tmp_path / "s.objectives.json"
    saved.write_text(json.dumps({"objectives": [], "choose": [], "time_budget": 30.0}))
    resume = SearchOptions(space="wine_mlp", name="s", resume=True)
    assert _resumed_objectives(resume, saved).time_budget == 30.0
    assert _resumed_objectives(SearchOptions(space="wine_mlp", name="s", resume=True, time_budget=30.0),
                               saved).time_budget == 30.0
    with pytest.raises(OptionError, match=r"began with --time-budget 30; a resumed search keeps it"):
        _resumed_objectives(SearchOptions(space="wine_mlp", name="s", resume=True, time_budget=60.0), saved)
    # A search begun without a budget (or before budgets were recorded) resumes without one.
    saved.write_text(json.dumps({"objectives": [], "choose": []}))
    assert _resumed_objectives(resume, saved).time_budget is None
    with pytest.raises(OptionError, match=r"began with no --time-budget"):
        _resumed_objectives(SearchOptions(space="wine_mlp", name="s", resume=True, time_budget=5.0), saved)


def _scheduler(name: str, path=None):
    scheduler = make_scheduler(name, max_epochs=8, grace_period=1, reduction_factor=2, state=path)
    scheduler.set_search_properties("m", "max")
    return scheduler


def _report(scheduler, name: str, epoch: int, seconds_per_epoch: float, value: float) -> str:
    trial = SimpleNamespace(trial_id=name)
    if epoch == 1:
        scheduler.on_trial_add(None, trial)
    return scheduler.on_trial_result(None, trial, {"training_iteration": epoch, SECONDS: epoch * seconds_per_epoch,
                                                   "m": value})


def _fast_then_slow(scheduler) -> str:
    """A fast trial (1 s an epoch, 0.55 rising to 0.70 by epoch 4), then a slow one's first epoch (4 s, 0.62):
    the decision on the slow one."""
    for epoch in range(1, 5):
        assert _report(scheduler, "fast", epoch, 1.0, 0.5 + 0.05 * epoch) == TrialScheduler.CONTINUE
    return _report(scheduler, "slow", 1, 4.0, 0.62)


def test_a_slow_config_is_judged_against_what_others_reached_in_the_same_seconds():
    # By epochs, the slow trial's first epoch (0.62) beats the fast one's (0.55): it continues.
    assert _fast_then_slow(_scheduler("asha")) == TrialScheduler.CONTINUE
    # By seconds, its 4 s are 4 of the first result's epochs: it meets the fast trial's 0.70 at rung 4, and stops.
    timed = _scheduler("asha-time")
    assert isinstance(timed, TimeASHA)
    assert _fast_then_slow(timed) == TrialScheduler.STOP and timed.seconds_per_epoch == 1.0
    # A trial whose first epoch outlasts the reference's whole budget (8 epochs of 1 s) is stopped there.
    assert _report(timed, "slowest", 1, 9.0, 0.99) == TrialScheduler.STOP
    # A result without training seconds is judged by its epochs, as plain ASHA would.
    trial = SimpleNamespace(trial_id="untimed")
    timed.on_trial_add(None, trial)
    assert timed.on_trial_result(None, trial, {"training_iteration": 1, "m": 0.9}) == TrialScheduler.CONTINUE


def test_the_reference_speed_and_the_rungs_survive_a_resume(tmp_path):
    """Tune restores the scheduler as it was created (tuner.pkl); the state file brings back the rungs and the
    seconds an epoch counts, so the slow trial is judged after a resume as it was without one."""
    path = tmp_path / "asha.pkl"
    first = _scheduler("asha-time", path)
    as_created = pickle.dumps(first)
    for epoch in range(1, 5):
        _report(first, "fast", epoch, 1.0, 0.5 + 0.05 * epoch)
    restored = pickle.loads(as_created)
    assert restored.seconds_per_epoch is None
    assert _report(restored, "slow", 1, 4.0, 0.62) == TrialScheduler.STOP and restored.seconds_per_epoch == 1.0
