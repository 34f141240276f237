"""The records a run leaves (results/best_file.py): one schema for the data options, and best.json
through repeated confirmations."""

from __future__ import annotations

from results.best_file import DataOptions, confirmed_record

SEARCH = {"space": "s", "search_name": "n", "trial_id": "A", "config": {"lr": 0.1, "seed": 0},
          "searched": {"lr": 0.1}, "best_value": 0.9, "best_epoch": 7, "checkpoint": "results/s/n/checkpoint",
          "metric": "val_macro_f1"}
B = {"trial_id": "B", "config": {"lr": 0.2, "seed": 0}, "searched": {"lr": 0.2}, "best_value": 0.88}


def test_confirming_twice_keeps_the_searchs_own_pick():
    first = confirmed_record(SEARCH, {"winner": "B"}, B)
    assert first["trial_id"] == "B" and first["config"] == B["config"]
    assert first["search_pick"]["trial_id"] == "A" and "best_epoch" not in first
    # The second confirmation finds the search's pick A best: config and winner must agree again.
    # (Before, search_pick was overwritten with B, and best.json kept B's config under winner A.)
    second = confirmed_record(first, {"winner": "A"}, None)
    assert second["search_pick"] == first["search_pick"] == {k: SEARCH[k] for k in (
        "trial_id", "config", "searched", "best_value", "best_epoch", "checkpoint")}
    assert second["trial_id"] == "A" and second["config"] == SEARCH["config"] and second["best_epoch"] == 7
    assert second["confirmation"] == {"winner": "A"}
    third = confirmed_record(second, {"winner": "B"}, B)
    assert third["search_pick"]["trial_id"] == "A" and third["config"] == B["config"]


def test_data_options_round_trip_and_tell_other_data_apart():
    options = DataOptions(path="data/x", classes=["a", "b"], points=64, tokens=None, train_per_class=5,
                          train_fraction=None, threads=1, fingerprint="f1", description="d")
    again = DataOptions.from_record({"data_options": options.to_json()})
    assert again == options and again.scaling() == {"points": 64, "tokens": None, "train_per_class": 5,
                                                    "train_fraction": None}
    assert again.mismatch("f1") is None and "fingerprint f1; this data has f2" in again.mismatch("f2")
    assert DataOptions.from_record({}) == DataOptions() and DataOptions().mismatch("any") is None


def test_best_json_names_the_headline_scores_of_every_task():
    from results.best_file import HEADLINE
    from trainables.tasks import TASK_METRICS, TASKS

    assert set(HEADLINE) == set(TASKS)
    assert all(set(HEADLINE[t]) <= set(TASK_METRICS[t]) for t in TASKS)
