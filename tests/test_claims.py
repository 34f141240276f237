"""A run's name, its results folder, its Optuna study and its MLflow parent run belong to one search,
whatever else runs: two searches of one name started at once (real processes), a --resume of a running
search, a results folder left by an earlier search, and a results path that cannot be written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

import search.running.driver
import search.commands.search
from results.errors import OptionError
from results.export import results_folder
from search.options import SearchOptions
from search.commands.search import run_search
from search.running.tracking import open_experiment

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
       "RAY_AUTH_MODE": "disabled"}


@pytest.fixture()
def no_ray(monkeypatch):
    """These refusals come before Ray starts: a test that reaches it fails."""
    def started(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(search.running.driver, "ray_session", started)


def _options(root: Path, **kw) -> SearchOptions:
    return SearchOptions(**{"space": "wine_mlp", "trials": 1, "max_epochs": 1, "sampler": "random",
                            "scheduler": "fifo", "name": "s", "storage": root / "ray",
                            "results_root": root / "results", "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
                            **kw})


def test_two_searches_of_one_name_started_at_once_leave_one_search(tmp_path):
    """Both used to exit 0 sharing one Tune folder, study and parent run; now one runs and the other is
    refused in one line (exit 2) before it writes anything. The store and its experiment are made first:
    two searches creating them at once is test_tracking's case."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    open_experiment(uri, "spectune-wine_mlp")
    args = ["search", "--space", "wine_mlp", "--trials", "2", "--max-epochs", "1", "--concurrency", "1",
            "--sampler", "random", "--scheduler", "fifo", "--name", "twin", "--tracking-uri", uri]
    code = f"import sys\nfrom search.cli import main\nsys.exit(main({args!r}))"
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], outs
    err = outs[codes.index(2)][1]
    assert err.count("\n") == 1 and err.startswith("error: ") and "twin" in err, err
    assert "is running now" in err or "already exists" in err, err
    trials = pd.read_csv(tmp_path / "results" / "wine_mlp" / "twin" / "trials.csv")
    assert len(trials) == 2 and trials["trial_id"].is_unique
    study = optuna.load_study(study_name="twin", storage=f"sqlite:///{tmp_path / 'ray_results' / 'twin.study.db'}")
    assert len(study.trials) == 2
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("spectune-wine_mlp").experiment_id])
    parents = [r for r in runs if r.data.tags.get("spectune.role") == "search"]
    assert len(parents) == 1 and len(runs) == 3
    assert set(trials["mlflow_run_id"]) == {r.info.run_id for r in runs} - {parents[0].info.run_id}


def test_a_running_search_cannot_be_resumed_until_its_process_ends(tmp_path, no_ray, monkeypatch):
    """A process holding search s's claim (as a running search does) refuses --resume before anything is
    written; killed with -9, it holds nothing: the claim is no stale lock file."""
    holder = textwrap.dedent(f"""
        from pathlib import Path
        from search.running.claim import claim_run
        with claim_run(Path({str(tmp_path / 'ray')!r}), "s", "search", resume=False):
            print("held", flush=True)
            input()
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline() == "held\n"
        monkeypatch.setattr(search.commands.search, "_check_restorable", lambda experiment: None)
        with pytest.raises(OptionError, match=rf"search s is running now \(pid {proc.pid}, .*before --resume"):
            run_search(_options(tmp_path, resume=True))
        assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "results").exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    with pytest.raises(AssertionError, match="Ray was started"):
        run_search(_options(tmp_path, resume=True))


def test_a_new_search_never_replaces_the_results_of_an_earlier_one(tmp_path, no_ray):
    """ray_results/<name> cleaned, results/<space>/<name>/ kept: the search used to run and replace
    trials.csv without a word."""
    out = tmp_path / "results" / "wine_mlp" / "s"
    out.mkdir(parents=True)
    (out / "trials.csv").write_text("earlier\n")
    with pytest.raises(OptionError, match=rf"{out} already holds earlier results; pass --name NEW"):
        run_search(_options(tmp_path))
    assert (out / "trials.csv").read_text() == "earlier\n"
    assert not (tmp_path / "ray").exists() and not (tmp_path / "mlflow.db").exists()


def test_a_new_recording_never_replaces_kept_curves(tmp_path, no_ray):
    """The same for ``spectune record``, which shares the driver: curves of that name are kept."""
    from search.commands.record import RecordCommand, RecordOptions

    out = tmp_path / "results" / "wine_mlp" / "curves" / "s"
    out.mkdir(parents=True)
    (out / "curves.csv.gz").write_bytes(b"earlier")
    with pytest.raises(OptionError, match=rf"{out} already holds earlier results"):
        RecordCommand(RecordOptions(search=_options(tmp_path), configs=2, seeds=1)).run()
    assert (out / "curves.csv.gz").read_bytes() == b"earlier" and not (tmp_path / "ray").exists()


@pytest.mark.parametrize("case", ["dangling link", "file in the way", "dangling link, resumed"])
def test_a_results_path_that_cannot_be_written_is_refused_before_the_first_trial(tmp_path, no_ray, monkeypatch,
                                                                                 case):
    """A dangling link at results/<space>/<name> used to end the search in a traceback after all its
    trials, with nothing written."""
    out = tmp_path / "results" / "wine_mlp" / "s"
    out.parent.mkdir(parents=True)
    if case == "file in the way":
        out.parent.rmdir()
        out.parent.write_text("")
        expected = rf"results go to {out}, but {out.parent} is a file, not a folder"
    else:
        out.symlink_to(tmp_path / "gone")
        expected = rf"results go to {out}, but {out} is a link to {tmp_path / 'gone'}, which does not exist"
    resume = case.endswith("resumed")
    monkeypatch.setattr(search.commands.search, "_check_restorable", lambda experiment: None)
    with pytest.raises(OptionError, match=expected):
        run_search(_options(tmp_path, resume=resume))
    assert not (tmp_path / "ray").exists() and not (tmp_path / "mlflow.db").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder")
def test_a_results_folder_not_writable_is_refused(tmp_path, no_ray):
    (tmp_path / "results").mkdir(mode=0o500)
    with pytest.raises(OptionError, match=r"but .*results is not writable"):
        run_search(_options(tmp_path))


def test_a_run_writes_only_into_a_results_folder_it_made_or_resumes(tmp_path):
    out = tmp_path / "results" / "wine_mlp" / "s"
    with results_folder(out, resume=False):
        with pytest.raises(OptionError, match="appeared while this run was being prepared"):
            with results_folder(out, resume=False):
                pass
        with results_folder(out, resume=True):
            (out / "best.json").write_text("{}")
    # A folder this run made and left empty goes; one it wrote into stays.
    with pytest.raises(KeyboardInterrupt), results_folder(tmp_path / "empty", resume=False):
        raise KeyboardInterrupt
    assert not (tmp_path / "empty").exists() and (out / "best.json").exists()
