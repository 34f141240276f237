"""One real search with Ray on CPU (tiny generated set, short spectra, 3 epochs), then its MLflow record,
its results and its exported config; plus an interrupted search that is resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from ray import cloudpickle

from search.options import SearchOptions
from search.commands.search import run_search
from search.running.local_ray import SESSION_FILE, session_processes
from results.export import export_best
from search.cli import _search_options, build_parser, main as cli_main
from trainables.data.ztf_synthetic import CLASS_ORDER, write_synthetic
from search.running.trial import run_trial

ROOT = Path(__file__).resolve().parent.parent
TRIALS = 6
EPOCHS = 3
FAILING_LR = 0.00456
REVERSED = tuple(reversed(CLASS_ORDER))

SPACE_FILE = f"""
from spaces import Space, choice, loguniform, uniform

SPACE = Space(
    model="galspecnet",
    data="ztf_spectra",
    params={{"lr": loguniform(1e-3, 1e-2), "dropout": uniform(0.0, 0.5), "batch_size": choice([16, 32])}},
    fixed={{"warmup_epochs": 0, "T_0": 3}},
    start=[{{"lr": {FAILING_LR}, "dropout": 0.1, "batch_size": 16}},
           {{"lr": 0.003, "dropout": 0.1, "batch_size": 16}}],
    max_epochs={EPOCHS}, grace_period=1, reduction_factor=3,
)
"""


def flaky_trial(config, data, settings):
    """The shared trainable, except that one starting point raises: a bad config, not a bad search."""
    if config["lr"] == FAILING_LR:
        raise RuntimeError("injected failure for this config")
    run_trial(config, data, settings)


# Ray workers cannot import this test module: ship flaky_trial by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def e2e_space(tmp_path_factory):
    """The space lives in a folder of the user's own, found through SPECTUNE_PATH."""
    folder = tmp_path_factory.mktemp("pairs")
    (folder / "spaces").mkdir()
    (folder / "spaces" / "e2e_tiny.py").write_text(SPACE_FILE)
    old = os.environ.get("SPECTUNE_PATH")
    os.environ["SPECTUNE_PATH"] = str(folder)
    yield "e2e_tiny", folder
    if old is None:
        os.environ.pop("SPECTUNE_PATH")
    else:
        os.environ["SPECTUNE_PATH"] = old


@pytest.fixture(scope="module")
def searched(ray_session, e2e_space, tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data = root / "data"
    write_synthetic(data, seed=1, n_train=16, n_val=6, n_test=6, n_points=256)
    options = SearchOptions(space=e2e_space[0], trials=TRIALS, seed=0, name="e2e", data=data, classes=REVERSED,
                            storage=root / "ray", results_root=root / "results",
                            tracking_uri=f"sqlite:///{root / 'mlflow.db'}", no_patience=True)
    outcome = run_search(options, trial_fn=flaky_trial)
    return outcome, options, root


def test_search_writes_best_json_and_trials_csv(searched):
    outcome, options, root = searched
    best = json.loads((outcome.results_dir / "best.json").read_text())
    trials = pd.read_csv(outcome.results_dir / "trials.csv")
    assert len(trials) == TRIALS
    assert best["best_val_macro_f1"] == pytest.approx(trials["best_val_macro_f1"].max())
    assert best["trial_id"] == trials.iloc[0]["trial_id"]
    assert set(best["searched"]) == {"lr", "dropout", "batch_size"}
    assert best["config"]["warmup_epochs"] == 0 and best["config"]["epochs"] == EPOCHS
    assert best["data_options"]["fingerprint"] and best["versions"]["ray"] and best["mlflow"]["run_id"]
    assert (outcome.results_dir / "checkpoint" / "model.pt").exists()
    saved = json.loads((outcome.results_dir / "checkpoint" / "config.json").read_text())
    assert saved["config"] == best["config"] and saved["model"] == "galspecnet"
    # --classes reaches the search: the confusion matrix is in the order asked for.
    assert json.loads((outcome.results_dir / "checkpoint" / "val_confusion.json").read_text())["classes"] == \
        list(REVERSED) == best["data_options"]["classes"]
    assert best["metric"] == "val_macro_f1" and best["best_value"] == best["best_val_macro_f1"]
    space = json.loads((outcome.results_dir / "space.json").read_text())
    assert space["params"]["lr"] == {"type": "float", "low": 1e-3, "high": 1e-2, "log": True, "step": None}
    assert (outcome.results_dir / "val_confusion.png").stat().st_size > 1000


def test_asha_stops_some_trials_and_a_failing_trial_does_not_stop_the_search(searched):
    trials = searched[0].trials
    outcomes = trials["outcome"].tolist()
    assert outcomes.count("failed") == 1
    assert outcomes.count("stopped early") >= 1
    assert outcomes.count("completed") >= 1
    stopped = trials[trials["outcome"] == "stopped early"]
    assert (stopped["epochs"] < EPOCHS).all()


def test_mlflow_holds_one_parent_and_one_child_per_trial(searched):
    outcome, options, root = searched
    client = MlflowClient(options.tracking_uri)
    exp = client.get_experiment_by_name("spectune-e2e_tiny")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == TRIALS
    parent = parents[0].data
    assert {"space", "sampler", "scheduler", "seed", "git_commit", "data_fingerprint"} <= set(parent.tags)
    assert parent.metrics["best_val_macro_f1"] == pytest.approx(outcome.best["best_val_macro_f1"])
    by_outcome = {}
    for child in children:
        by_outcome.setdefault(child.data.tags["spectune.outcome"], []).append(child)
        assert set(child.data.params) == {"lr", "dropout", "batch_size"}
    assert parent.tags["model"] == "galspecnet" and parent.tags["data"] == "ztf_spectra"
    assert {a.path for a in client.list_artifacts(parents[0].info.run_id)} >= {"space.json"}
    assert {r.info.status for r in by_outcome["failed"]} == {"FAILED"}
    assert "injected failure" in by_outcome["failed"][0].data.tags["spectune.error"]
    finished = by_outcome["completed"][0]
    history = client.get_metric_history(finished.info.run_id, "val_macro_f1")
    assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1))
    assert "epoch" not in finished.data.metrics and "training_iteration" not in finished.data.metrics
    best_run = outcome.best["mlflow"]["run_id"]
    assert client.get_run(best_run).info.artifact_uri.startswith((root / "mlartifacts").resolve().as_uri())
    artifacts = {a.path for a in client.list_artifacts(best_run, "best")}
    assert {"best/best.json", "best/val_confusion.png", "best/learning_curves.png", "best/checkpoint"} <= artifacts


def test_exported_config_retrains_and_reports_test_once(searched, tmp_path, capsys):
    outcome, options, root = searched
    out = tmp_path / "best.json"
    export_best("e2e_tiny", "e2e", out, root=options.results_root)
    summary_path = tmp_path / "final.json"
    # No --data: the search's own folder, recorded in best.json, is the default.
    assert cli_main(["train", "--config", str(out), "--test",
                     "--json-out", str(summary_path), "--device", "cpu"]) == 0
    assert f"using the search's data folder from {out}: {options.data}" in capsys.readouterr().out
    summary = json.loads(summary_path.read_text())
    assert summary["data_options"]["fingerprint"] == outcome.best["data_options"]["fingerprint"]
    assert summary["space"] == "e2e_tiny" and summary["epochs_run"] == EPOCHS
    assert summary["config"] == outcome.best["config"] and summary["classes"] == list(REVERSED)
    # Same seed, data and thread count on CPU: the retrained model is the search's best trial.
    assert summary["val_macro_f1"] == outcome.best["best_val_macro_f1"]
    assert summary["best_epoch"] == outcome.best["best_epoch"]
    assert 0 <= summary["test_macro_f1"] <= 1
    assert Path(summary["figures"]["test_confusion_png"]).exists()


def test_existing_search_name_is_refused_without_resume(searched):
    outcome, options, root = searched
    with pytest.raises(ValueError, match=r"a search named 'e2e' already exists.*--resume"):
        run_search(options)


def test_an_epoch_cap_ends_the_search_and_its_cut_trial_counts_as_a_stopped_one(ray_session, e2e_space, tmp_path,
                                                                                capsys):
    data = tmp_path / "data"
    write_synthetic(data, seed=3, n_train=8, n_val=4, n_test=4, n_points=128)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    outcome = run_search(SearchOptions(space="e2e_tiny", trials=8, concurrency=1, scheduler="fifo", name="capped",
                                       max_total_epochs=2 * EPOCHS + 1, data=data, tracking_uri=uri, no_patience=True,
                                       storage=tmp_path / "ray", results_root=tmp_path / "results"))
    out = capsys.readouterr().out
    assert f"at most {2 * EPOCHS + 1} epochs in all (--max-total-epochs)" in out
    assert "reached its cap of 7 epochs in all after 3 of 8 trials" in out
    trials = outcome.trials.set_index("trial_id")
    # Two trials ran their budget; the third was cut after its first epoch (a result in flight may add one).
    assert len(trials) == 3 and 2 * EPOCHS + 1 <= trials["epochs"].sum() <= 2 * EPOCHS + 2
    assert sorted(trials["epochs"])[:1] != [EPOCHS] and (outcome.results_dir / "best.json").is_file()
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("spectune-e2e_tiny").experiment_id])
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
    assert sorted(r.data.tags.get("spectune.outcome", "") for r in runs) == ["", "completed", "completed", "stopped"]
    # The study tells TPE the cut trial was pruned, not failed: its reported epochs stand.
    study = optuna.load_study(study_name="capped", storage=f"sqlite:///{tmp_path / 'ray' / 'capped.study.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "PRUNED"]


def slow_to_start(config, data, settings):
    """The shared trainable after a 2 s wait: 16 trials one at a time outlast a 15 s budget on any machine."""
    time.sleep(2.0)
    run_trial(config, data, settings)


def test_a_time_budget_ends_the_search_keeping_every_result(ray_session, e2e_space, tmp_path, capsys):
    """--time-budget (through the CLI's flag) ends the search before its trials have all run, keeps what ran
    (trials.csv has one row per trial Tune started, as MLflow and the Optuna study have), and says so first and
    last. The search runs --scheduler asha-time, whose clock is each epoch's reported train_seconds."""
    data = tmp_path / "data"
    write_synthetic(data, seed=3, n_train=8, n_val=4, n_test=4, n_points=128)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = build_parser().parse_args(["search", "--space", "e2e_tiny", "--trials", "16", "--concurrency", "1",
                                      "--scheduler", "asha-time", "--time-budget", "0.25", "--name", "timed",
                                      "--data", str(data), "--tracking-uri", uri, "--no-patience"])
    options = replace(_search_options(args), storage=tmp_path / "ray", results_root=tmp_path / "results")
    outcome = run_search(options, trial_fn=slow_to_start)
    out = capsys.readouterr().out
    assert "ending after 0.25 min of trials (--time-budget" in out and "scheduler asha-time (grace 1, reduction 3; " \
                                                                    "rungs in training seconds" in out
    ran = len(outcome.trials)
    assert 1 <= ran < 16 and f"the search reached its time budget of 0.25 min after {ran} of 16 trials" in out
    trials = pd.read_csv(outcome.results_dir / "trials.csv").set_index("trial_id")
    assert len(trials) == ran and (outcome.results_dir / "best.json").is_file()
    # No result lost: each trial's epochs in trials.csv are those it logged in MLflow, and every trial is in the
    # study, the ones cut or stopped early PRUNED.
    client = MlflowClient(uri)
    runs = [r for r in client.search_runs([client.get_experiment_by_name("spectune-e2e_tiny").experiment_id])
            if r.info.run_name in trials.index]
    assert len(runs) == ran and all(r.info.status == "FINISHED" for r in runs)
    for r in runs:
        assert len(client.get_metric_history(r.info.run_id, "val_macro_f1")) == trials.loc[r.info.run_name, "epochs"]
    study = optuna.load_study(study_name="timed", storage=f"sqlite:///{tmp_path / 'ray' / 'timed.study.db'}")
    assert sorted(t.state.name for t in study.trials) == sorted(
        "COMPLETE" if o == "completed" else "PRUNED" for o in trials["outcome"])
    # asha-time's clock: the training seconds so far, growing with each epoch.
    for results in (tmp_path / "ray" / "timed").glob("*/result.json"):
        seconds = [json.loads(line)["train_seconds"] for line in results.read_text().splitlines()]
        assert seconds == sorted(set(seconds)) and all(s > 0 for s in seconds)


def _search_until(tmp_path: Path, finished: int, env: dict[str, str] | None = None, epochs: int = EPOCHS
                  ) -> tuple[subprocess.Popen, list[str], Path, str]:
    """Start an 8-trial search in a process of its own (its own process group) and return once
    ``finished`` trials have ended, with the lines it printed so far, its data and tracking URI."""
    data = tmp_path / "data"
    write_synthetic(data, seed=2, n_train=8, n_val=4, n_test=4, n_points=128)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["search", "--space", "e2e_tiny", "--trials", "8", "--concurrency", "1", "--scheduler", "fifo",
            "--name", "cut", "--data", str(data), "--tracking-uri", uri, "--no-patience", "--max-epochs", str(epochs)]
    code = textwrap.dedent(f"""
        import sys
        from search.cli import main
        sys.exit(main({args!r}))
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1",
                                                                               **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines, deadline = [], time.monotonic() + 240
    for line in proc.stdout:
        lines.append(line)
        if sum(ln.startswith("[") and "/8]" in ln for ln in lines) >= finished or time.monotonic() > deadline:
            break
    return proc, lines, data, uri


def _resume(tmp_path: Path, data: Path, uri: str, epochs: int = EPOCHS):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        return run_search(SearchOptions(space="e2e_tiny", trials=8, concurrency=1, scheduler="fifo", name="cut",
                                        resume=True, data=data, tracking_uri=uri, no_patience=True, max_epochs=epochs))
    finally:
        os.chdir(cwd)


def _wait_for_registered_checkpoint(experiment: Path, trial: int) -> Path:
    """The folder of the ``trial``-th trial once Tune has registered its 2nd epoch's checkpoint
    (with num_to_keep=1 Tune deletes the 1st when it registers the 2nd). A checkpoint on disk that
    Tune has not registered yet (a few milliseconds after each epoch) is not one it resumes from."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for folder in experiment.glob(f"run_trial_*_{trial}_*"):
            if (folder / "checkpoint_000001").is_dir() and not (folder / "checkpoint_000000").exists():
                return folder
        time.sleep(0.005)
    raise AssertionError(f"trial {trial} had no registered checkpoint after 60 s")


def test_interrupted_search_resumes_without_rerunning_finished_trials(ray_session, e2e_space, tmp_path):
    epochs = 6
    proc, lines, data, uri = _search_until(tmp_path, 3, env={"TUNE_GLOBAL_CHECKPOINT_S": "0"}, epochs=epochs)
    cut = _wait_for_registered_checkpoint(tmp_path / "ray_results" / "cut", 4)
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, rest
    assert "Continue it with: spectune search" in rest and "nothing was written to results/" in rest
    finished_before = sum(ln.startswith("[") and "/8]" in ln for ln in lines)
    assert 3 <= finished_before < 8, "".join(lines)
    assert 2 <= len(pd.read_csv(cut / "progress.csv")) < epochs, "the interruption must land inside the 4th trial"

    outcome = _resume(tmp_path, data, uri, epochs)
    trials = outcome.trials
    assert len(trials) == 8 and trials["trial_id"].is_unique
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("spectune-e2e_tiny")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    children = [r for r in runs if r.data.tags.get("spectune.role") == "trial"]
    finished = [r for r in children if r.data.tags["spectune.outcome"] in ("completed", "failed")]
    assert len({r.data.tags["spectune.trial_id"] for r in finished}) == 8
    assert len([r for r in runs if r.data.tags.get("spectune.role") == "search"]) == 1
    # Lossless resume: the trial cut mid-way continued from its last epoch's checkpoint (no epoch is
    # trained twice: Tune rewrites progress.csv on restore, but the MLflow history keeps every report)
    # and continued its own MLflow run (one child per trial, none left RUNNING).
    for run in children:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_macro_f1")]
        assert steps == list(range(1, epochs + 1)), (run.data.tags["spectune.trial_id"], steps)
    assert len(children) == 8 and all(r.info.status == "FINISHED" for r in children)
    assert all(r.info.status == "FINISHED" for r in runs if r.data.tags.get("spectune.role") == "search")


def test_a_search_killed_with_its_process_group_resumes_losing_nothing(ray_session, e2e_space, tmp_path):
    """kill -9 of the driver's whole process group, then --resume: the trials that had ended are
    untouched, 8 distinct configs end, no Ray process of the killed search lives on, and nothing in
    MLflow or the Optuna study is left RUNNING."""
    # Tune then saves its state only when a trial checkpoints, as it must with num_to_keep=1 (not on
    # its timer): the 4th trial, killed before its first checkpoint, is one Tune never saved.
    proc, lines, data, uri = _search_until(tmp_path, 3, env={"TUNE_GLOBAL_CHECKPOINT_S": "3600"})
    experiment = tmp_path / "ray_results" / "cut"
    deadline = time.monotonic() + 60
    while len(list(experiment.glob("run_trial_*"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    record = tmp_path / "ray_results" / f"cut{SESSION_FILE}"
    assert record.exists(), "a search that starts its own Ray records it"
    session = json.loads(record.read_text())["session_dir"]
    ended = [ln.split()[2] for ln in lines if ln.startswith("[") and "/8]" in ln]
    assert len(ended) == 3, "".join(lines)

    def files_of(trial_id):
        (folder,) = experiment.glob(f"*_{trial_id}_*")
        return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*")
                if p.is_file() and p.name in ("progress.csv", "result.json", "model.pt", "state.pt")}

    before = {t: files_of(t) for t in ended}
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("spectune-e2e_tiny")

    def history(trial_id):
        (run,) = client.search_runs([exp.experiment_id], f"tags.`spectune.trial_id` = '{trial_id}'")
        metrics = client.get_metric_history(run.info.run_id, "val_macro_f1")
        return run.info.status, [(m.step, m.value) for m in metrics]

    logged = {t: history(t) for t in ended}

    outcome = _resume(tmp_path, data, uri)

    assert not record.exists() and session_processes(session) == []
    assert {t: files_of(t) for t in ended} == before
    assert {t: history(t) for t in ended} == logged
    trials = outcome.trials
    assert len(trials) == 8 and set(trials["outcome"]) <= {"completed", "failed"}
    configs = trials[["lr", "dropout", "batch_size"]].astype(str).agg("|".join, axis=1)
    assert configs.is_unique, configs.tolist()
    runs = client.search_runs([exp.experiment_id], max_results=100)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    children = [r for r in runs if r.data.tags.get("spectune.role") == "trial"]
    finished = {r.data.tags["spectune.trial_id"] for r in children if r.info.status == "FINISHED"}
    assert finished == set(trials["trial_id"])
    # A trial the killed driver had started but Tune never saved is marked lost, not left RUNNING.
    lost = [r for r in children if r.info.status == "KILLED"]
    assert len(lost) == 1 and lost[0].data.tags["spectune.outcome"] == "lost"
    assert len(children) == 9
    import optuna

    study = optuna.load_study(study_name="cut", storage=f"sqlite:///{tmp_path / outcome.results_dir / 'study.db'}")
    states = [t.state.name for t in study.trials]
    assert "RUNNING" not in states and states.count("FAIL") == 1 and len(states) == 9
