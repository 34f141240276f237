"""The study report: Optuna's importances and plots from a kept study, the history, per-class F1, and
one HTML file that a browser renders (checked in headless Chromium where it is installed)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from results.report import per_class_f1, write_report


def _study(tmp_path) -> tuple[optuna.Study, pd.DataFrame]:
    """A study where the metric depends on lr only (dropout is noise-free irrelevant), 3 trials pruned."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0),
                                storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="s")
    rows = []
    for i in range(24):
        trial = study.ask()
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        trial.suggest_float("dropout", 0.0, 0.5)
        value = 1.0 - abs(np.log10(lr) + 2.0) / 3.0
        pruned = i % 8 == 7
        study.tell(trial, None if pruned else value, state=optuna.trial.TrialState.PRUNED if pruned else None)
        rows.append({"trial_id": f"t{i}", "outcome": "stopped early" if pruned else "completed",
                     "best_val_macro_f1": value, "epochs": 3 if pruned else 10, "started_at": float(i)})
    return study, pd.DataFrame(rows).sort_values("best_val_macro_f1", ascending=False)


def test_importances_come_from_optuna_and_find_the_key_that_matters(tmp_path):
    study, trials = _study(tmp_path)
    confusion = np.array([[8, 2, 0], [1, 9, 0], [0, 3, 7]])
    best = {"best_value": trials["best_val_macro_f1"].max(), "trial_id": "t0", "best_epoch": 4,
            "searched": {"lr": 0.01, "dropout": 0.2}}
    report = write_report(tmp_path, space="demo", name="s", metric="val_macro_f1", mode="max", trials=trials,
                          study=study, best=best, classes=["a", "b", "c"], confusion=confusion)
    assert set(report.importances) == {"lr", "dropout"} and report.importances["lr"] > report.importances["dropout"]
    assert "21 completed trials; 3 trials stopped by ASHA are left out" in report.note
    assert {"history", "importances", "parallel", "slice:lr", "slice:dropout"} <= set(report.figures)
    html = report.html.read_text()
    assert html.count("<img") == len(report.figures) and "data:image/png;base64," in html
    assert "Hyperparameter importances" in html and "per-class F1" in html


def test_per_class_f1_matches_scikit_learn():
    confusion = np.array([[8, 2, 0], [1, 9, 0], [0, 3, 0]])
    truth = np.repeat(np.arange(3), confusion.sum(axis=1))
    predicted = np.concatenate([np.repeat(np.arange(3), row) for row in confusion])
    table = per_class_f1(confusion, ["a", "b", "c"])
    expected = f1_score(truth, predicted, average=None, zero_division=0)
    assert np.allclose(table["f1"], expected) and table["support"].tolist() == [10, 10, 3]
    assert table["f1"].mean() == pytest.approx(f1_score(truth, predicted, average="macro", zero_division=0))


def test_a_report_without_a_study_still_shows_the_history(tmp_path):
    _, trials = _study(tmp_path)
    report = write_report(tmp_path, space="demo", name="s", metric="val_macro_f1", mode="max",
                          trials=trials.drop(columns="started_at"), study=None, best={}, classes=[], confusion=None)
    assert report.importances == {} and set(report.figures) == {"history"}
    assert "no Optuna study was kept" in report.html.read_text()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium for a headless render")
def test_the_report_renders_in_headless_chromium(tmp_path):
    study, trials = _study(tmp_path)
    report = write_report(tmp_path, space="demo", name="s", metric="val_macro_f1", mode="max", trials=trials,
                          study=study, best={"best_value": 1.0, "searched": {}}, classes=["a", "b"],
                          confusion=np.eye(2, dtype=int))
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1200,3000", f"--screenshot={shot}", report.html.resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    # Rendered, not blank: the embedded figures put many distinct colours on the page.
    assert pixels.shape[:2] == (3000, 1200) and len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 200
