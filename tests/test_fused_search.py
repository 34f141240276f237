"""Fused trials through Ray Tune (search/running/fused_trials.py): each member of a fused group is its own trial everywhere.

Few Ray starts (one for the module), tiny searches: a recipe-only wine MLP (3 searched recipe knobs, the
architecture and batch size fixed, so that every config shares one group), 2 epochs."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import redirect_stdout
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from search.cli import main as cli_main
from search.options import SearchOptions
from search.commands.search import run_search
from spaces import get_space
from trainables.checkpoint import read_checkpoint
from trainables.pair import load_data

EPOCHS = 2
WINE = """
from spaces import Space, loguniform, uniform

SPACE = Space(
    model="mlp", data="wine",
    params={"lr": loguniform(1e-3, 3e-2), "weight_decay": loguniform(1e-6, 1e-2), "dropout": uniform(0.0, 0.5)},
    fixed={"loss": "ce", "scheduler": "cosine", "warmup_epochs": 0, "eta_min": 0.0, "patience": 10,
           "batch_size": 16, "depth": 2, "width": 32, "batch_norm": BATCH_NORM, "activation": "relu"},
    start=[], max_epochs=2, grace_period=1, reduction_factor=2,
)
"""
# A regression MLP trained by plain SGD without clipping: lr 1 diverges (a NaN loss at epoch 3), 0.01 does not.
CALIFORNIA = """
from spaces import Space, loguniform, uniform

SPACE = Space(
    model="mlp", data="california_housing", metric="val_rmse", mode="min",
    params={"lr": loguniform(1e-3, 1.0), "dropout": uniform(0.0, 0.5)},
    fixed={"scheduler": "constant", "warmup_epochs": 0, "patience": 10, "max_grad_norm": None, "optimizer": "sgd",
           "momentum": 0.9, "batch_size": 32, "depth": 2, "width": 16, "batch_norm": False, "activation": "tanh"},
    start=[], max_epochs=3, grace_period=1, reduction_factor=2,
)
"""
STARTS = ({"lr": 0.003, "weight_decay": 1e-4, "dropout": 0.1}, {"lr": 0.01, "weight_decay": 1e-3, "dropout": 0.3},
          {"lr": 0.02, "weight_decay": 1e-5, "dropout": 0.0})


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """The test spaces, found through SPECTUNE_PATH: wine_fuse, wine_fuse_bn (batch norm: does not fuse)
    and california_sgd (with its synthetic data)."""
    folder = tmp_path_factory.mktemp("pairs")
    (folder / "spaces").mkdir()
    (folder / "spaces" / "wine_fuse.py").write_text(WINE.replace("BATCH_NORM", "False"))
    (folder / "spaces" / "wine_fuse_bn.py").write_text(WINE.replace("BATCH_NORM", "True"))
    (folder / "spaces" / "california_sgd.py").write_text(CALIFORNIA)
    old = os.environ.get("SPECTUNE_PATH")
    os.environ["SPECTUNE_PATH"] = str(folder)
    assert cli_main(["data", "--space", "california_sgd", "--source", "synthetic", "--rows", "400",
                     "--out", str(folder / "california")]) == 0
    yield folder
    if old is None:
        os.environ.pop("SPECTUNE_PATH")
    else:
        os.environ["SPECTUNE_PATH"] = old


def _options(root: Path, name: str, **kw) -> SearchOptions:
    return SearchOptions(**{"space": "wine_fuse", "trials": len(STARTS), "max_epochs": EPOCHS, "sampler": "random",
                            "scheduler": "fifo", "seed": 0, "name": name, "storage": root / "ray",
                            "results_root": root / "results", "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
                            "start": STARTS, **kw})


def _children(tracking_uri: str, space: str, search: str) -> list:
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(f"spectune-{space}").experiment_id],
                              f"tags.`spectune.search` = '{search}'", max_results=100)
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


@pytest.mark.parametrize("value", ["0", "65", "2.5", "-1", "many"])
def test_bad_fuse_values_are_refused_in_one_line_before_ray_starts(pairs, value, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("search.running.driver.ray_session", None)   # reaching Ray would raise a TypeError
    assert cli_main(["search", "--space", "wine_fuse", "--fuse", value]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: --fuse must be 'auto' or an int in the range [1, 64]; got {value!r}."


def test_fuse_k_on_a_model_that_does_not_fuse_is_refused_before_ray_starts(pairs, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("search.running.driver.ray_session", None)
    assert cli_main(["search", "--space", "wine_fuse_bn", "--fuse", "3",
                     "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --fuse 3: model mlp of space wine_fuse_bn cannot be fused (")
    assert "BatchNorm1d" in err[0] and err[0].endswith("use --fuse 1 (or auto, which fuses only where it pays).")
    assert not (tmp_path / "results").exists() and not (tmp_path / "ray_results").exists()


@pytest.fixture(scope="module")
def unfused_and_fused(ray_session, pairs, tmp_path_factory):
    """The same three configs, same seed, FIFO: one trial at a time unfused, then as one fused group."""
    root = tmp_path_factory.mktemp("equal")
    unfused = run_search(_options(root, "unfused", concurrency=1, fuse="1"))
    fused = run_search(_options(root, "fused", fuse="3"))
    return root, unfused, fused


def test_fused_members_equal_the_same_configs_trained_unfused(unfused_and_fused, capsys):
    root, unfused, fused = unfused_and_fused
    a, b = (o.trials.set_index("lr").sort_index() for o in (unfused, fused))
    assert list(a.index) == list(b.index) == sorted(c["lr"] for c in STARTS)
    assert (b["outcome"] == "completed").all() and (b["epochs"] == EPOCHS).all()
    for column in ("best_val_macro_f1", "val_loss_at_best", "best_epoch", "trainable_params"):
        assert b[column].to_numpy() == pytest.approx(a[column].to_numpy(), abs=1e-5), column
    # Every epoch of every member, as each trial logged it to MLflow.
    curves = {}
    for name in ("unfused", "fused"):
        client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
        for run in _children(f"sqlite:///{root / 'mlflow.db'}", "wine_fuse", name):
            history = client.get_metric_history(run.info.run_id, "val_loss")
            curves[name, float(run.data.params["lr"])] = [m.value for m in sorted(history, key=lambda m: m.step)]
    for config in STARTS:
        assert len(curves["fused", config["lr"]]) == EPOCHS
        assert curves["fused", config["lr"]] == pytest.approx(curves["unfused", config["lr"]], abs=1e-5)


@pytest.fixture(scope="module")
def cli_fused(ray_session, pairs, tmp_path_factory):
    """A real `spectune search --fuse 3` with ASHA: 6 trials x 2 epochs, 2 groups of 3 on 2 CPUs."""
    root = tmp_path_factory.mktemp("cli")
    old, out = Path.cwd(), io.StringIO()
    os.chdir(root)
    try:
        with redirect_stdout(out):
                rc = cli_main(["search", "--space", "wine_fuse", "--trials", "6", "--max-epochs", str(EPOCHS), "--fuse",
                           "3", "--scheduler", "asha", "--sampler", "random", "--seed", "1", "--name", "cli",
                           "--tracking-uri", f"sqlite:///{root / 'mlflow.db'}"])
    finally:
        os.chdir(old)
    return root, rc, out.getvalue()


def test_a_fused_cli_search_has_one_row_one_run_and_one_checkpoint_per_trial(cli_fused, unfused_and_fused, capsys):
    root, rc, _ = cli_fused
    assert rc == 0
    frame = pd.read_csv(root / "results" / "wine_fuse" / "cli" / "trials.csv")
    unfused = pd.read_csv(unfused_and_fused[0] / "results" / "wine_fuse" / "unfused" / "trials.csv")
    assert len(frame) == 6 and frame["trial_id"].is_unique
    assert list(frame.columns) == list(unfused.columns)
    # ASHA judged each member on its own: the members it stopped left their groups and the others ran on.
    assert set(frame["outcome"]) <= {"completed", "stopped early"} and (frame["outcome"] == "completed").any()
    assert ((frame["outcome"] == "completed") == (frame["epochs"] == EPOCHS)).all()
    children = _children(f"sqlite:///{root / 'mlflow.db'}", "wine_fuse", "cli")
    assert sorted(r.data.tags["spectune.trial_id"] for r in children) == sorted(frame["trial_id"])
    assert {r.info.status for r in children} == {"FINISHED"}
    for run in children:
        assert set(run.data.params) == {"lr", "weight_decay", "dropout"}
        assert "val_macro_f1" in run.data.metrics
    spec = load_data(get_space("wine_fuse").pair, None, None, test=False).spec
    for trial in frame["trial_id"]:
        [folder] = (root / "ray_results" / "cli").glob(f"run_member_{trial}_*")
        # Tune's CSV and JSON results (what collection reads), no TensorBoard file written every epoch.
        assert (folder / "progress.csv").is_file() and (folder / "result.json").is_file()
        assert not list(folder.glob("events.out.tfevents*"))
        [checkpoint] = folder.glob("checkpoint_*")
        state, record = read_checkpoint(checkpoint)
        model = get_space("wine_fuse").pair.model_fn(spec, get_space("wine_fuse").pair.resolve(record["config"]))()
        model.load_state_dict(state)
        assert torch.load(checkpoint / "state.pt", weights_only=True)["epoch"] == frame.set_index("trial_id").loc[
            trial, "epochs"]


def test_a_fused_search_says_how_it_fuses_and_how_many_trials_run_at_once(cli_fused):
    out = cli_fused[2]
    assert ("placement: cluster 2 CPUs, 0 GPUs -> 1 CPU per fused group, no GPU, up to 6 trials at once (2 groups "
            "of 3 fused members)") in out
    assert "fusion: K=3 (--fuse 3): configs of one architecture and batch size train as one model" in out


def test_auto_fuses_only_where_a_stored_measurement_says_it_pays(monkeypatch, tmp_path):
    from search.strategy import fusion as fuse

    assert fuse.decide_fusion("auto", "galspecnet", "cpu", None) == fuse.Fusion(
        1, "fusion: off (no measurement for galspecnet on cpu; --fuse K fuses anyway)")
    # Without a stored rule, auto does not even build the model to ask whether it fuses.
    assert not fuse.may_fuse("auto", "mlp") and fuse.may_fuse("4", "mlp") and not fuse.may_fuse("1", "mlp")
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [{"model": "mlp", "device": "cpu", "members": 16, "speedup": 5.1,
                                            "measured": "make bench part 9"}]}))
    monkeypatch.setattr(fuse, "RULES_FILE", rules)
    assert fuse.decide_fusion("auto", "mlp", "cpu", None) == fuse.Fusion(
        16, "fusion: K=16 (mlp on cpu: 5.1x, make bench part 9)")
    assert fuse.decide_fusion("auto", "mlp", "cuda", None).members == 1 and fuse.may_fuse("auto", "mlp")
    assert fuse.decide_fusion("auto", "mlp", "cpu", "BatchNorm1d keeps batch statistics").line == \
        "fusion: off (model mlp does not fuse: BatchNorm1d keeps batch statistics)"
    assert fuse.decide_fusion("1", "mlp", "cpu", None) == fuse.Fusion(1, "fusion: off (--fuse 1)")
    # A member's part of its group's share, rounded down so that K members never ask for more than one trial's.
    from search.running.resources import plan_placement

    assert plan_placement(2, 0).fused(3).trial_resources == {"cpu": 0.3333, "gpu": 0.0}


def test_the_best_fused_trial_exports_and_retrains_to_its_score(cli_fused, tmp_path, monkeypatch):
    root, rc, _ = cli_fused
    monkeypatch.chdir(root)
    out = tmp_path / "best.json"
    assert cli_main(["export", "--space", "wine_fuse", "--name", "cli", "--out", str(out)]) == 0
    best = json.loads(out.read_text())
    summary = tmp_path / "train.json"
    assert cli_main(["train", "--config", str(out), "--device", "cpu", "--json-out", str(summary)]) == 0
    retrained = json.loads(summary.read_text())
    assert retrained["val_macro_f1"] == pytest.approx(best["best_val_macro_f1"], abs=1e-5)
    assert retrained["best_epoch"] == best["best_epoch"]


def test_a_diverging_member_fails_alone(ray_session, pairs, tmp_path):
    configs = ({"lr": 1.0, "dropout": 0.1}, {"lr": 0.01, "dropout": 0.1}, {"lr": 0.02, "dropout": 0.2})
    options = replace(_options(tmp_path, "nan", fuse="3", start=configs, max_epochs=3, stop_after_failures=0),
                      space="california_sgd", data=pairs / "california")
    outcome = run_search(options)
    frame = outcome.trials.set_index("lr")
    assert frame.loc[1.0, "outcome"] == "failed" and frame.loc[1.0, "failure"] == "configuration"
    assert (frame.drop(index=1.0)["outcome"] == "completed").all()
    assert (frame.drop(index=1.0)["epochs"] == 3).all()
    [failed] = [r for r in _children(options.tracking_uri, "california_sgd", "nan")
                if float(r.data.params["lr"]) == 1.0]
    assert failed.info.status == "FAILED"
    # inf or nan: where a diverging loss overflows first is float noise.
    assert "NonFiniteLossError: training loss became" in failed.data.tags["spectune.error"]


def test_a_fused_search_killed_with_its_process_group_resumes_each_member_from_its_checkpoint(ray_session, pairs,
                                                                                              tmp_path):
    """kill -9 of the driver's process group mid-search, then --resume: every member continues from its own
    last checkpoint (an epoch trained again gives the same values at the same step) and ends its budget."""
    epochs = 30
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "starts.json").write_text(json.dumps(list(STARTS)))
    args = ["search", "--space", "wine_fuse", "--trials", "3", "--max-epochs", str(epochs), "--fuse", "3",
            "--scheduler", "fifo", "--sampler", "random", "--start", "starts.json", "--name", "cut", "--no-patience",
            "--tracking-uri", uri]
    code = f"import sys; from search.cli import main; sys.exit(main({args!r}))"
    proc = subprocess.Popen([sys.executable, "-c", code],
                            cwd=tmp_path, env={**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "0"},
                            stdout=subprocess.DEVNULL, stderr=(tmp_path / "stderr.txt").open("w"), start_new_session=True)
    experiment, deadline = tmp_path / "ray_results" / "cut", time.monotonic() + 300
    # Killed once every member has reported its 4th epoch (so Tune has processed, and MLflow logged, its 3rd).
    while time.monotonic() < deadline and proc.poll() is None and not (
            len(folders := list(experiment.glob("run_member_*"))) == 3
            and all(any(int(c.name.split("_")[1]) >= 3 for c in f.glob("checkpoint_*")) for f in folders)):
        time.sleep(0.01)
    ended = proc.poll()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert ended is None and time.monotonic() < deadline, "the members never reached their 4th epoch: " + (
        tmp_path / "stderr.txt").read_text()[-3000:]
    client = MlflowClient(uri)
    logged = {r.data.tags["spectune.trial_id"]: len(client.get_metric_history(r.info.run_id, "val_loss"))
              for r in _children(uri, "wine_fuse", "cut")}
    assert len(logged) == 3 and min(logged.values()) >= 3, logged
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        outcome = run_search(SearchOptions(space="wine_fuse", trials=3, max_epochs=epochs, sampler="random",
                                           scheduler="fifo", name="cut", resume=True, no_patience=True,
                                           tracking_uri=uri, start=STARTS))
    finally:
        os.chdir(cwd)
    trials = outcome.trials
    assert len(trials) == 3 and (trials["outcome"] == "completed").all() and (trials["epochs"] == epochs).all()
    children = _children(uri, "wine_fuse", "cut")
    assert len(children) == 3 and {r.info.status for r in children} == {"FINISHED"}
    for run in children:
        history = client.get_metric_history(run.info.run_id, "val_loss")
        by_step: dict[int, set] = {}
        for m in history:
            by_step.setdefault(m.step, set()).add(round(m.value, 5))
        assert sorted(by_step) == list(range(1, epochs + 1))
        assert all(len(values) == 1 for values in by_step.values()), by_step
        # Continued, not started again: at most the epochs after Tune's last saved state are trained twice
        # (a member started afresh would log its 3+ epochs before the kill a second time).
        assert len(history) <= epochs + 2 < epochs + logged[run.data.tags["spectune.trial_id"]]


def test_a_group_never_waits_on_a_member_that_is_gone(pairs):
    """The gather without Ray (FusedGroup is a plain class that Ray runs as an actor): an epoch runs once every
    active member asked; a member taken out (the driver's word on a stopped trial) is not waited for, and one
    that never asks is dropped after the timeout and told so if it ever asks again."""
    from search.running.fused_member import FuseSpec
    from search.running.fused_trials import FusedGroup
    from search.running.trial import load_state
    from search.resolve import resolve

    settings = resolve(SearchOptions(space="wine_fuse", max_epochs=EPOCHS)).settings
    data = load_data(settings.pair, None, None, test=False)
    group = FusedGroup(data, settings, None, FuseSpec(3, "test", timeout_s=1.0), [])
    for member, config in zip("abc", STARTS):
        assert group.join(member, config, None) == "joined"
    assert group.join("d", STARTS[0], None) == "full"   # the broker tries the next group

    asked: dict[str, tuple] = {}
    waiting = [threading.Thread(target=lambda m=m: asked.update({m: group.next_epoch(m)})) for m in "ab"]
    for thread in waiting:
        thread.start()
    time.sleep(0.2)
    assert not asked   # c has not asked yet
    group.leave("c")   # c's trial was stopped: a and b train on without it
    for thread in waiting:
        thread.join(timeout=30)
    assert {m: part[0] for m, part in asked.items()} == {"a": "epoch", "b": "epoch"}
    epoch, metrics, folder, last = asked["a"][1]
    assert epoch == 1 and "val_macro_f1" in metrics and not last
    # The group wrote a's checkpoint as an unfused trial would: a resumed a continues from its state.
    assert read_checkpoint(Path(folder))[1]["config"]["lr"] == STARTS[0]["lr"]
    assert load_state(folder)["epoch"] == 1
    assert group.next_epoch("c") == ("gone", "it left its group")

    # b never asks for its 2nd epoch: a's gather drops it after the timeout, and b hears so if it asks.
    started = time.monotonic()
    kind, part = group.next_epoch("a")
    assert kind == "epoch" and part[0] == 2 and time.monotonic() - started >= 1.0
    kind, why = group.next_epoch("b")
    assert kind == "gone" and why.startswith("its group waited 1 s for it to ask for its next epoch")
    group.close()
    assert not group.scratch.exists()


def test_a_member_process_imports_nothing_that_trains():
    """A fused search starts one process per member: its module must not pull in torch or the trainables."""
    code = ("import sys, search.running.fused_member; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'trainables', 'mlflow', 'optuna')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
