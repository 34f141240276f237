"""What a trial logs to MLflow and in which order: MLflow's compare view plots the first metric a
run logged, so the selection metric goes first; the learning rate is not named like the lr param. Two
searches that open one new SQLite store at once both get their parent run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote

from mlflow.tracking import MlflowClient

from search.running.tracking import MLflowTracker

ROOT = Path(__file__).resolve().parents[1]


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


def test_two_searches_opening_one_new_sqlite_store_at_once_both_connect(tmp_path):
    """Each process imports first, then waits for the same go file, so that both create the store's tables
    (about a second's work) at the same moment: unlocked, one of them ended in a traceback."""
    uri, go = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "go"
    code = textwrap.dedent(f"""
        import pathlib, sys, time
        from search.running.tracking import MLflowTracker
        pathlib.Path(sys.argv[1] + ".ready").touch()
        while not pathlib.Path({str(go)!r}).exists():
            time.sleep(0.001)
        tracker = MLflowTracker({uri!r}, experiment="spectune-x", search_id=sys.argv[1], tags={{}}, params={{"a": 1}})
        tracker.connect()
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / name)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for name in ("a", "b")]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"{n}.ready").exists() for n in "ab") and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    client = MlflowClient(uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "spectune-x"]
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["spectune.search"] for r in runs) == [str(tmp_path / n) for n in "ab"]


def test_a_trials_params_go_with_its_first_result_or_its_end_and_a_resumed_tracker_finds_its_runs(tmp_path):
    """Params ride in the batch of the trial's first result (or of its end, when it fails before one). A
    tracker that opened the parent run looks no child run up; one unpickled from Tune's state (a resumed
    search) finds the runs of trials started after that state was saved."""
    import pickle

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MLflowTracker(uri, "spectune-x", "s", {}, {})
    tracker.connect()
    saved = pickle.loads(pickle.dumps(tracker))

    def trial(trial_id, last_result=None):
        return SimpleNamespace(trial_id=trial_id, config={"lr": 0.01, "depth": 2}, last_result=last_result,
                               error_file=None, run_metadata=None)

    ok, failed = trial("ok", {"epoch": 1, "finished": True}), trial("failed")
    for t in (ok, failed):
        tracker.on_trial_start(0, [], t)
    tracker.on_trial_result(0, [], ok, {"epoch": 1, "val_macro_f1": 0.5, "best_val_macro_f1": 0.5, "timestamp": 0})
    tracker.on_trial_complete(0, [], ok)
    tracker.on_trial_error(0, [], failed)
    client = MlflowClient(uri)
    for t, status in ((ok, "FINISHED"), (failed, "FAILED")):
        run = client.get_run(tracker.run_id(t.trial_id))
        assert run.data.params == {"lr": "0.01", "depth": "2"} and run.info.status == status
    assert client.get_run(tracker.run_id("ok")).data.metrics["val_macro_f1"] == 0.5
    assert saved.run_id("ok") == tracker.run_id("ok") and saved.run_id("never") is None


def test_an_epoch_a_resumed_trial_trains_again_is_logged_once(tmp_path):
    """A stop that lands after an epoch was logged and before Tune saved that epoch's checkpoint makes the
    resumed trial train the epoch again: its step keeps one value in MLflow, and the epochs after it are logged."""
    import pickle

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MLflowTracker(uri, "spectune-x", "s", {}, {})
    tracker.connect()
    cut = SimpleNamespace(trial_id="cut", config={"lr": 0.01}, last_result=None, error_file=None, run_metadata=None)

    def result(epoch, value):
        return {"epoch": epoch, "val_macro_f1": value, "epoch_time_s": 0.1, "timestamp": 0}

    tracker.on_trial_start(0, [], cut)
    for epoch in (1, 2):
        tracker.on_trial_result(0, [], cut, result(epoch, epoch / 10))
    resumed = pickle.loads(pickle.dumps(tracker))
    resumed.on_trial_start(0, [], cut)
    for epoch in (2, 3):
        resumed.on_trial_result(0, [], cut, result(epoch, 0.9))
    history = MlflowClient(uri).get_metric_history(tracker.run_id("cut"), "val_macro_f1")
    assert sorted((m.step, m.value) for m in history) == [(1, 0.1), (2, 0.2), (3, 0.9)]
