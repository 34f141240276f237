"""What a trial logs to MLflow and in which order: MLflow's compare view plots the first metric a
run logged, so the selection metric goes first; the learning rate is not named like the lr param."""

from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import unquote

from search.tracking import MLflowTracker


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list] = []

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        self.batches.append(list(metrics))


def test_the_selection_metric_is_logged_first_and_sizes_once():
    tracker = MLflowTracker("sqlite:///unused.db", "e", "s", {}, {})
    tracker._client, tracker._runs, tracker.experiment_id = Recorder(), {"t1": "run"}, "7"
    result = {"epoch": 1, "learning_rate": 1e-3, "train_loss": 1.0, "val_macro_f1": 0.5, "val_loss": 1.1,
              "best_val_macro_f1": 0.5, "trainable_params": 10.0, "timestamp": 0, "finished": False}
    trial = SimpleNamespace(trial_id="t1")
    tracker.on_trial_result(0, [], trial, result)
    tracker.on_trial_result(0, [], trial, {**result, "epoch": 2})
    first, second = tracker.client.batches
    assert [m.key for m in first[:2]] == ["best_val_macro_f1", "val_macro_f1"]
    assert "learning_rate" in {m.key for m in first} and "lr" not in {m.key for m in first}
    assert "trainable_params" in {m.key for m in first} and "trainable_params" not in {m.key for m in second}
    link = unquote(tracker.compare_link(["a", "b"]))
    assert link == 'http://127.0.0.1:5000/#/compare-runs?runs=["a","b"]&experiments=["7"]'


def test_the_compare_link_opens_on_the_tracking_server_when_there_is_one():
    tracker = MLflowTracker("http://mlflow.example.org:8080/", "e", "s", {}, {})
    tracker.experiment_id = "3"
    assert unquote(tracker.compare_link(["a"])) == \
        'http://mlflow.example.org:8080/#/compare-runs?runs=["a"]&experiments=["3"]'
