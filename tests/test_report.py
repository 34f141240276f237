"""The study report: Optuna's importances and plots from a kept study, the history, per-class F1, and
one HTML file that a browser renders (checked in headless Chromium where it is installed)."""

from __future__ import annotations

import re
import shutil
import subprocess
import warnings

import numpy as np
import optuna
import pandas as pd
import pytest

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


def test_per_class_f1_on_a_confusion_matrix_worked_by_hand():
    # rows: true class, columns: predicted class
    #              cat  dog  eel   support
    confusion = [[4,   1,   0],    # 5
                 [2,   6,   0],    # 8
                 [0,   3,   0]]    # 3   (nothing is ever predicted eel)
    # cat: TP 4, predicted cat 4+2+0 = 6  -> precision 4/6 = 2/3,  recall 4/5,  F1 = 2*4/(2*4+2+1) = 8/11
    # dog: TP 6, predicted dog 1+6+3 = 10 -> precision 6/10 = 3/5, recall 6/8 = 3/4, F1 = 2*6/(2*6+4+2) = 2/3
    # eel: TP 0, predicted eel 0          -> precision 0/0, reported as 0; recall 0/3 = 0; F1 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # an undefined precision is 0, not a warning
        table = per_class_f1(np.array(confusion), ["cat", "dog", "eel"])
    assert table["class"].tolist() == ["cat", "dog", "eel"]
    np.testing.assert_allclose(table["precision"], [2 / 3, 3 / 5, 0.0])
    np.testing.assert_allclose(table["recall"], [4 / 5, 3 / 4, 0.0])
    np.testing.assert_allclose(table["f1"], [8 / 11, 2 / 3, 0.0])
    assert table["support"].tolist() == [5, 8, 3] and not table.isna().any().any()
    assert table["f1"].mean() == pytest.approx((8 / 11 + 2 / 3) / 3)      # macro F1 = 46/99


def test_per_class_f1_follows_the_order_of_the_class_names():
    confusion = np.array([[4, 1, 0], [2, 6, 0], [0, 3, 0]])
    by_name = per_class_f1(confusion, ["cat", "dog", "eel"]).set_index("class")
    # The same counts with the classes listed as eel, cat, dog: rows and columns permuted together.
    order = [2, 0, 1]
    table = per_class_f1(confusion[np.ix_(order, order)], ["eel", "cat", "dog"])
    assert table["class"].tolist() == ["eel", "cat", "dog"]
    pd.testing.assert_frame_equal(table.set_index("class"), by_name.loc[["eel", "cat", "dog"]])


def test_a_class_absent_from_truth_and_predictions_scores_zero_without_a_warning():
    confusion = np.array([[3, 1, 0], [1, 3, 0], [0, 0, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = per_class_f1(confusion, ["a", "b", "c"])
    # a and b: TP 3, predicted 4, true 4 -> precision = recall = F1 = 3/4; c: no example at all -> 0.
    np.testing.assert_allclose(table[["precision", "recall", "f1"]].to_numpy(), [[0.75] * 3, [0.75] * 3, [0.0] * 3])
    assert table["support"].tolist() == [4, 4, 0]


def test_the_report_shows_the_per_class_table_under_the_class_names(tmp_path):
    trials = pd.DataFrame({"trial_id": ["t0", "t1"], "outcome": ["completed", "stopped early"],
                           "best_val_macro_f1": [0.46, 0.30], "epochs": [10, 3]})
    report = write_report(tmp_path, space="demo", name="s", metric="val_macro_f1", mode="max", trials=trials,
                          study=None, best={"best_value": 0.46, "searched": {}}, classes=["cat", "dog", "eel & <ray>"],
                          confusion=np.array([[4, 1, 0], [2, 6, 0], [0, 3, 0]]))
    html = report.html.read_text()
    table = html[html.index("per-class F1"):]
    # One row per class, in the given order, with the values worked out by hand above (%.3f); the name is
    # escaped, so a class name cannot break the page.
    rows = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)]
    assert rows == [["cat", "0.667", "0.800", "0.727", "5"], ["dog", "0.600", "0.750", "0.667", "8"],
                    ["eel &amp; &lt;ray&gt;", "0.000", "0.000", "0.000", "3"]]
    assert "<ray>" not in html


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
