"""A results folder may come from someone else: its files are data only. The store a best.json names is
never contacted (report, confirm), and a name never leads outside results/ (report, confirm). The pickles
--resume loads (Tune's state, the scheduler's) are loaded only when they are the user's own."""

from __future__ import annotations

import json
import os
import pickle
import re
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from results.errors import OptionError
from search.cli import main
from search.commands.confirm import ConfirmCommand
from search.options import ConfirmOptions
from search.strategy.own_state import check_own_file
from spaces import get_space


class Listener:
    """A TCP listener on 127.0.0.1 that counts the connections it gets and closes each at once."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.uri = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def listener(monkeypatch):
    # Were the client to reach it, it would give up at once rather than retry for minutes.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    served = Listener()
    yield served
    served.close()


def _received(root, tracking_uri: str, run_id: str = "0123456789abcdef0123456789abcdef"):
    """A finished wine_mlp search ``s`` as someone else's machine wrote it, naming their store."""
    space = get_space("wine_mlp")
    out = root / "results" / "wine_mlp" / "s"
    out.mkdir(parents=True)
    searched = dict(space.start[0])
    (out / "best.json").write_text(json.dumps({
        "space": "wine_mlp", "search_name": "s", "metric": "val_macro_f1", "mode": "max", "trial_id": "a",
        "config": {**space.first_config(), "epochs": 2, "seed": 0}, "searched": searched, "best_value": 0.9,
        "best_epoch": 2, "data_options": {}, "mlflow": {"tracking_uri": tracking_uri, "parent_run_id": run_id}}))
    pd.DataFrame([{"trial_id": t, "outcome": "completed", "best_val_macro_f1": v, "epochs": 2, **searched}
                  for t, v in (("a", 0.9), ("b", 0.8))]).to_csv(out / "trials.csv", index=False)
    return out


def test_report_never_contacts_the_store_a_received_best_json_names(tmp_path, monkeypatch, listener, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mine.db'}")
    _received(tmp_path, listener.uri)
    assert main(["report", "--space", "wine_mlp", "--name", "s"]) == 0
    out = capsys.readouterr().out
    assert listener.connections == 0
    assert (f"not logged to MLflow: your MLflow store sqlite:///{tmp_path / 'mine.db'} does not exist; best.json "
            f"names store {listener.uri}: pass --tracking-uri {listener.uri} to log there") in out
    assert not (tmp_path / "mine.db").exists()


def test_report_logs_to_the_users_store_when_it_holds_the_run(tmp_path, monkeypatch, listener, capsys):
    monkeypatch.chdir(tmp_path)
    mine = f"sqlite:///{tmp_path / 'mine.db'}"
    client = MlflowClient(mine)
    run = client.create_run(client.create_experiment("spectune-wine_mlp")).info.run_id
    _received(tmp_path, listener.uri, run)
    assert main(["report", "--space", "wine_mlp", "--name", "s", "--tracking-uri", mine]) == 0
    assert listener.connections == 0
    assert f"logged to MLflow run {run} in {mine}" in capsys.readouterr().out
    assert [a.path for a in client.list_artifacts(run)] == ["report.html"]


def test_a_run_missing_from_the_users_store_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    mine = f"sqlite:///{tmp_path / 'mine.db'}"
    MlflowClient(mine).search_experiments()      # the store exists, without the search's run
    _received(tmp_path, mine)
    assert main(["report", "--space", "wine_mlp", "--name", "s", "--tracking-uri", mine]) == 0
    assert (f"not logged to MLflow: MLflow run 0123456789abcdef0123456789abcdef of best.json is not in your store "
            f"{mine}\n") in capsys.readouterr().out


def test_confirm_tracks_in_the_users_store_not_the_one_best_json_names(tmp_path, listener):
    _received(tmp_path, listener.uri)
    mine = f"sqlite:///{tmp_path / 'mine.db'}"
    command = ConfirmCommand(ConfirmOptions(space="wine_mlp", name="s", top=2, seeds=2, storage=tmp_path / "ray",
                                            results_root=tmp_path / "results", tracking_uri=mine))
    run = command._prepare()      # data and dry run, before Ray starts
    run.tracker.connect()         # the MLflow parent run, as the driver opens it once it holds the run's name
    assert listener.connections == 0
    assert run.tracker.tracking_uri == mine
    parent = MlflowClient(mine).get_run(run.tracker.parent_run_id)
    assert "mlflow.parentRunId" not in parent.data.tags
    assert command.unnested.startswith(f"your MLflow store {mine} does not exist; best.json names store {listener.uri}")


@pytest.mark.parametrize("argv", [["report", "--space", "wine_mlp", "--name", "../../x"],
                                  ["report", "--space", "../..", "--name", "x"],
                                  ["confirm", "--space", "wine_mlp", "--name", "../../x"]])
def test_a_name_never_leads_outside_the_results_folder(argv, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    # A finished search outside results/, where "../.." leads (from results/wine_mlp/, or from results/).
    found = _received(tmp_path / "elsewhere", "sqlite:///nowhere.db")
    for outside in (work / "x", tmp_path / "x"):
        outside.symlink_to(found)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --") and "must be letters, digits" in err and len(err.splitlines()) == 1
    assert not (found / "report.html").exists()


class Planted:
    """Touches ``marker`` when unpickled: what any pickle may do when loaded."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="handing a file to another user needs root")


def test_a_scheduler_state_others_may_write_is_refused_before_it_is_unpickled(tmp_path):
    from search.strategy.schedulers import make_scheduler

    state, marker = tmp_path / "s.asha.pkl", tmp_path / "ran"
    state.write_bytes(pickle.dumps(Planted(marker)))
    state.chmod(0o666)
    scheduler = make_scheduler("asha", max_epochs=4, grace_period=1, reduction_factor=2, state=state)
    with pytest.raises(OptionError, match=r"s\.asha\.pkl may be written by other users \(mode -rw-rw-rw-\); pickles "
                                          r"run code when loaded.*chmod go-w"):
        scheduler.on_trial_add(None, SimpleNamespace(trial_id="t"))
    assert not marker.exists()


@ROOT_ONLY
def test_a_state_file_of_another_user_is_refused(tmp_path):
    state = tmp_path / "s.asha.pkl"
    state.write_bytes(pickle.dumps({}))
    os.chown(state, 65534, 65534)
    with pytest.raises(OptionError, match=r"belongs to (user \w+|uid 65534), not to you"):
        check_own_file(state)


@ROOT_ONLY
def test_group_write_is_refused_unless_the_group_is_the_users_own(tmp_path):
    state = tmp_path / "s.asha.pkl"
    state.write_bytes(pickle.dumps({}))
    state.chmod(0o664)
    check_own_file(state)                      # root's own group: a umask of 002 leaves it so
    os.chown(state, 0, 65534)
    with pytest.raises(OptionError, match=r"may be written by other users \(mode -rw-rw-r--\)"):
        check_own_file(state)


def test_resume_refuses_a_planted_experiment_state_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    experiment = tmp_path / "ray_results" / "x"
    experiment.mkdir(parents=True)
    (experiment / "tuner.pkl").write_bytes(pickle.dumps(Planted(tmp_path / "ran")))
    (experiment / "tuner.pkl").chmod(0o646)
    assert main(["search", "--space", "wine_mlp", "--name", "x", "--resume"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and re.match(r"error: .*ray_results/x/tuner\.pkl may be written by other users", err[0])
    assert not (tmp_path / "ran").exists() and not (tmp_path / "mlflow.db").exists()
