"""The recipe's GPU path (device-resident data, bf16 autocast, fused AdamW, metrics on the GPU)
gives the CPU path's results up to numerical noise. Skipped where PyTorch sees no CUDA GPU,
which includes CI: run ``make test`` on a GPU machine to exercise it."""

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from conftest import load_ztf
from trainables.models import build_model
from trainables.pair import Pair
from trainables.recipe import amp_dtype, evaluate, make_criterion, to_device, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

RECIPE = {"lr": 3e-3, "warmup_epochs": 1, "T_0": 5, "batch_size": 32, "epochs": 6, "patience": None,
          "dropout": 0.1}


def test_gpu_training_matches_cpu_up_to_numerical_noise(tiny_data):
    data = load_ztf(tiny_data)
    pair = Pair("galspecnet", "ztf_spectra")
    resolved = pair.resolve(RECIPE)
    recipe, model_fn = resolved.recipe, pair.model_fn(data.spec, resolved)
    cpu = train(model_fn, data, recipe, "cpu")
    gpu = train(model_fn, data, recipe, "cuda")
    # Same seed, same initial weights, same batches: the first epoch differs only by bf16 rounding.
    first_cpu, first_gpu = cpu.history[0]["train_loss"], gpu.history[0]["train_loss"]
    assert abs(first_gpu - first_cpu) <= 0.03 * abs(first_cpu)
    assert abs(gpu.best["val_macro_f1"] - cpu.best["val_macro_f1"]) <= 0.1
    assert gpu.best["val_macro_f1"] > 0.5


def test_gpu_metrics_equal_sklearn_on_the_same_predictions(tiny_data):
    data = load_ztf(tiny_data)
    model = build_model("galspecnet", data.spec, {"dropout": 0.0}).cuda()
    inputs, y = to_device(data.val, torch.device("cuda"))
    x = inputs["x"]
    result = evaluate(model, inputs, y, make_criterion(data, Pair("galspecnet", "ztf_spectra").resolve({}).recipe,
                                                       "cuda"), data.n_classes)
    predicted = result.confusion.sum(axis=0)
    with torch.no_grad(), torch.autocast("cuda", dtype=amp_dtype(x.device)):
        preds = model.eval()(x).float().argmax(dim=1).cpu().numpy()
    assert np.array_equal(np.bincount(preds, minlength=data.n_classes), predicted)
    expected = f1_score(data.val.labels, preds, average="macro", labels=range(data.n_classes), zero_division=0)
    assert result.macro_f1 == pytest.approx(expected, abs=1e-9)
