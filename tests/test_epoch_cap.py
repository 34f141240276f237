"""The search's epoch cap (search/strategy/epoch_cap.py) without Ray: what it counts and when it stops the run; the
cap through a real Tune run is in tests/test_search_e2e.py, the replay's in tests/test_replay.py."""

from __future__ import annotations

from types import SimpleNamespace

from search.strategy.epoch_cap import EpochCap


def test_the_epoch_cap_counts_the_epochs_tune_reports_and_those_of_a_restored_run():
    cap = EpochCap(5)
    assert not cap("a", {"training_iteration": 3}) and not cap.stop_all()
    cap("a", {"training_iteration": 1})   # a retry from an earlier checkpoint reports epoch 1 again: counted once
    cap("b", {"training_iteration": 1})
    assert cap.spent == 4 and not cap.stop_all()
    cap("b", {"training_iteration": 2})
    assert cap.spent == 5 and cap.stop_all()
    # A resumed run starts a fresh cap (the pickled one at the start): the restored trials' epochs count.
    resumed = EpochCap(5)
    resumed.on_step_begin(0, [SimpleNamespace(trial_id="a", last_result={"training_iteration": 3}),
                              SimpleNamespace(trial_id="c", last_result={})])
    assert resumed.spent == 3 and not resumed.stop_all()
