"""A pair defined entirely in a folder of the user's own (a model file, a data file, a space file),
found through SPECTUNE_PATH: listed, validated, trained and searched like the built-in pairs. Its
space optimises val_loss (mode min), so the metric's path through search, selection, best.json
and train is exercised too."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from search.cli import main
from search.options import SearchOptions
from search.commands.search import run_search

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "digits"   # the pair docs/pairs.md shows in full

MODEL = '''
import torch
from torch import nn

from trainables.hparams import Bool, Int
from trainables.models import register_model


class Net(nn.Module):
    def __init__(self, n_in, n_out, hidden, skip):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))
        self.skip = nn.Linear(n_in, n_out) if skip else None

    def forward(self, numeric):
        out = self.body(numeric)
        return out + self.skip(numeric) if self.skip is not None else out


@register_model("blob_net", inputs="tabular", hparams={"hidden": Int(8, 1, 64), "skip": Bool(False)})
def blob_net(spec, hidden, skip):
    return Net(spec.shapes["numeric"][0], spec.n_classes, hidden, skip)
'''

DATA = '''
import numpy as np

from trainables.data import DataModule, InputSpec, Split, Splits, register_data
from trainables.data._base import fingerprint


@register_data
class Blobs(DataModule):
    """Three Gaussian blobs in 4 dimensions, generated in memory."""

    name = "blobs"
    kind = "tabular"
    classes = ("a", "b", "c")

    def load(self, folder, classes=None):
        rng = np.random.default_rng(0)
        splits = []
        for n in (60, 30, 30):
            y = np.repeat(np.arange(3), n // 3)
            x = (rng.normal(0, 1.0, (n, 4)) + y[:, None]).astype(np.float32)
            splits.append(Split({"numeric": x}, y.astype(np.int64)))
        spec = InputSpec("tabular", {"numeric": (4,)}, self.classes, numeric=("w", "x", "y", "z"))
        return Splits(*splits, spec=spec, fingerprint=fingerprint("blobs", "0"))
'''

SPACE = '''
from spaces import Budget, Space, choice, integers, loguniform

SPACE = Space(
    model="blob_net",
    data="blobs",
    description="a user's own pair",
    params={"lr": loguniform(1e-3, 3e-2), "hidden": integers(2, 32), "skip": choice([False, True])},
    fixed={"loss": "ce", "scheduler": "constant", "warmup_epochs": 0, "batch_size": 16, "epochs": 4},
    start=[{"lr": 1e-2, "hidden": 8, "skip": True}],
    metric="val_loss", mode="min",
    max_epochs=4, grace_period=1, reduction_factor=2,
    cpu=Budget(trials=4),
)
'''


@pytest.fixture(scope="module")
def pairs_root(tmp_path_factory):
    # One folder for the module: registering blob_net from a second folder would be a clash.
    root = tmp_path_factory.mktemp("user") / "my_pairs"
    for kind, name, text in (("models", "blob_net", MODEL), ("data", "blobs", DATA), ("spaces", "blobs_net", SPACE)):
        (root / kind).mkdir(parents=True)
        (root / kind / f"{name}.py").write_text(textwrap.dedent(text))
    return root


@pytest.fixture()
def user_folder(pairs_root, tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTUNE_PATH", str(pairs_root))
    monkeypatch.chdir(tmp_path)
    return pairs_root


def test_a_pair_in_a_users_folder_is_listed_validated_and_trained(user_folder, tmp_path, capsys):
    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    assert "blobs_net: a user's own pair (model blob_net, data blobs; val_loss min" in out
    assert "skip             choice [False, True]" in out
    assert main(["train", "--space", "blobs_net", "--json-out", str(tmp_path / "t.json"), "--device", "cpu"]) == 0
    summary = json.loads((tmp_path / "t.json").read_text())
    # train starts from the space's first starting point, and selects on the space's metric.
    assert summary["config"]["lr"] == 1e-2 and summary["config"]["skip"] is True and summary["config"]["hidden"] == 8
    assert summary["metric"] == "val_loss" and summary["best_value"] == min(h["val_loss"] for h in summary["history"])
    # The user's table is validated like the toolkit's: a bool for an int, with the module's rule.
    (tmp_path / "bad.json").write_text(json.dumps({"hidden": True}))
    assert main(["train", "--space", "blobs_net", "--config", str(tmp_path / "bad.json")]) == 2
    assert "the 'hidden' hyperparameter must be an int in the range [1, 64]; got True" in capsys.readouterr().err


def test_a_pair_in_a_users_folder_is_searched_on_its_metric(ray_session, user_folder, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    outcome = run_search(SearchOptions(space="blobs_net", budget="cpu", seed=0, name="blobs",
                                       storage=tmp_path / "ray", results_root=tmp_path / "results",
                                       tracking_uri=uri, no_patience=True, concurrency=1))
    trials = pd.read_csv(outcome.results_dir / "trials.csv")
    assert len(trials) == 4 and "best_val_loss" in trials
    finished = trials[trials["outcome"] != "failed"]
    # Selection by the space's metric and mode: the lowest validation loss wins, not the highest F1.
    assert outcome.best["metric"] == "val_loss" and outcome.best["mode"] == "min"
    assert outcome.best["best_value"] == pytest.approx(finished["best_val_loss"].min())
    assert outcome.best["trial_id"] == finished.sort_values("best_val_loss").iloc[0]["trial_id"]
    client = MlflowClient(uri)
    parent = client.get_run(outcome.best["mlflow"]["parent_run_id"])
    assert parent.data.metrics["best_val_loss"] == pytest.approx(outcome.best["best_value"])
    assert parent.data.tags["model"] == "blob_net"
    # The study the searcher kept is beside the results; its importances are on the parent run with
    # the report, and the learning rate is logged as learning_rate (not as the lr param's name).
    assert (outcome.results_dir / "study.db").exists() and (outcome.results_dir / "report.html").exists()
    assert {"importance.lr", "importance.hidden", "importance.skip"} <= set(parent.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"report.html", "space.json"} <= artifacts
    child = client.get_run(outcome.best["mlflow"]["run_id"])
    assert "learning_rate" in child.data.metrics and "lr" not in child.data.metrics
    best = tmp_path / "results" / "blobs_net" / "blobs" / "best.json"
    assert main(["train", "--config", str(best), "--test", "--json-out", str(tmp_path / "final.json"),
                 "--device", "cpu"]) == 0
    final = json.loads((tmp_path / "final.json").read_text())
    assert final["metric"] == "val_loss" and final["config"] == outcome.best["config"]
    assert final["best_value"] == pytest.approx(outcome.best["best_value"])
    assert 0 <= final["test_macro_f1"] <= 1
    # Confirmation: the top 2 configs again over 2 new seeds, through Ray, nested under the search in MLflow.
    from search.commands.confirm import run_confirm
    from search.options import ConfirmOptions

    confirmed = run_confirm(ConfirmOptions(space="blobs_net", name="blobs", top=2, seeds=2, concurrency=1,
                                           storage=tmp_path / "ray", results_root=tmp_path / "results"))
    table = pd.read_csv(tmp_path / "results" / "blobs_net" / "blobs" / "confirm.csv")
    assert len(table) == 2 and table["seeds"].tolist() == [2, 2] and table["rank"].tolist() == [1, 2]
    assert table["mean"].iloc[0] <= table["mean"].iloc[1]          # mode min: the lowest mean loss ranks first
    record = json.loads(best.read_text())
    assert record["confirmation"]["seeds"] == [1000, 1001] and record["confirmation"]["winner"] == confirmed["winner"]
    assert record["trial_id"] == confirmed["winner"] and record["config"]["seed"] == outcome.best["config"]["seed"]
    assert record["search_pick"]["trial_id"] == confirmed["search_pick"] == outcome.best["trial_id"]
    # Confirming again starts from the search's own pick, not from the first confirmation's winner.
    again = run_confirm(ConfirmOptions(space="blobs_net", name="blobs", top=2, seeds=2, concurrency=1,
                                       storage=tmp_path / "ray", results_root=tmp_path / "results"))
    record = json.loads(best.read_text())
    assert again["search_pick"] == record["search_pick"]["trial_id"] == outcome.best["trial_id"]
    assert record["trial_id"] == again["winner"] == record["confirmation"]["winner"]
    assert record["searched"] == {k: record["config"][k] for k in record["searched"]}
    confirm_run = client.get_run(record["confirmation"]["mlflow_run_id"])
    assert confirm_run.data.tags["mlflow.parentRunId"] == outcome.best["mlflow"]["parent_run_id"]
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{confirm_run.info.run_id}'")
    assert len(children) == 4


def test_a_broken_file_in_a_users_folder_breaks_only_what_needs_it(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "mine"
    for kind in ("models", "data", "spaces"):
        (folder / kind).mkdir(parents=True)
    (folder / "models" / "other.py").write_text("import torch\n\nimport nonexistent_pkg\n")
    (folder / "data" / "typo.py").write_text("def load(:\n    pass\n")
    (folder / "spaces" / "needs_other.py").write_text(
        "from spaces import Space, uniform\n\nSPACE = Space(model='other', data='wine', params={'dropout': "
        "uniform(0.0, 0.5)}, start=[{'dropout': 0.1}])\n")
    monkeypatch.setenv("SPECTUNE_PATH", str(folder))
    # A built-in space that uses neither file trains as usual (before: a 20-line traceback).
    assert main(["train", "--space", "wine_mlp", "--epochs", "1", "--device", "cpu",
                 "--json-out", str(tmp_path / "t.json")]) == 0
    capsys.readouterr()
    # The space that needs the broken model fails in one line naming the file, the line and the error.
    assert main(["train", "--space", "needs_other", "--epochs", "1"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and re.search(r"unknown model 'other'.*other\.py:3: ModuleNotFoundError: No module named "
                                       r"'nonexistent_pkg'", err[0]), err
    # spectune spaces lists the broken files (and the space that cannot load) instead of failing.
    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    assert "wine_mlp: " in out and re.search(r"needs_other: BROKEN: .*other\.py:3", out)
    assert re.search(r"BROKEN models file: .*other\.py:3: ModuleNotFoundError", out)
    assert re.search(r"BROKEN data file: .*typo\.py:1: SyntaxError: invalid syntax", out), out


def test_the_example_pair_trains_and_searches_from_its_own_folder(tmp_path):
    """examples/digits, copied where a user would keep it, through SPECTUNE_PATH and the command line
    in processes of their own (as a user runs them): listed, trained, searched, macro-F1 reported."""
    pairs = tmp_path / "my_pairs"
    shutil.copytree(EXAMPLE, pairs, ignore=shutil.ignore_patterns("__pycache__"))
    work = tmp_path / "work"
    work.mkdir()
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "SPECTUNE_PATH": str(pairs), "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}

    def spectune(*args: str, timeout: int = 120) -> str:
        done = subprocess.run([sys.executable, "-m", "search.cli", *args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=timeout)
        assert done.returncode == 0, \
            f"spectune {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    listed = spectune("spaces")
    assert "digits_cnn: a small CNN on scikit-learn's 8x8 digits" in listed and "BROKEN" not in listed
    trained = spectune("train", "--space", "digits_cnn", "--epochs", "3", "--device", "cpu", "--json-out", "t.json")
    assert re.search(r"^best epoch \d+ of 3: val_macro_f1 0\.\d{4}", trained, re.MULTILINE), trained
    summary = json.loads((work / "t.json").read_text())
    assert summary["metric"] == "val_macro_f1" and summary["config"]["channels"] == 16
    assert summary["best_value"] > 0.5, summary["best_value"]   # 10 classes: chance is 0.1
    searched = spectune("search", "--space", "digits_cnn", "--budget", "cpu", "--trials", "2", "--max-epochs", "2",
                        "--concurrency", "1", "--name", "example", "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}",
                        timeout=400)
    assert re.search(r"^best: trial \w+ val_macro_f1 0\.\d{4} at epoch \d", searched, re.MULTILINE), searched
    best = json.loads((work / "results" / "digits_cnn" / "example" / "best.json").read_text())
    assert best["metric"] == "val_macro_f1" and 0 <= best["best_value"] <= 1
    assert len(pd.read_csv(work / "results" / "digits_cnn" / "example" / "trials.csv")) == 2
