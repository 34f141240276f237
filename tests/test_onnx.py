"""ONNX export of a saved model: same logits as PyTorch on validation, a dynamic batch axis, and the
opset, inputs and class order recorded beside it. Skipped where onnx/onnxruntime are not installed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from search.cli import main
from tests.conftest import separable_set

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def test_a_trained_model_exports_to_onnx_with_the_same_predictions(tmp_path, capsys):
    separable_set(tmp_path / "data", points=128)
    assert main(["train", "--space", "galspecnet", "--data", str(tmp_path / "data"), "--epochs", "2",
                 "--json-out", str(tmp_path / "t.json"), "--save", str(tmp_path / "model")]) == 0
    capsys.readouterr()
    assert main(["export", "--onnx", str(tmp_path / "model"), "--out", str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    assert "max |logit difference|" in out and "same prediction for 54/54" in out
    meta = json.loads((tmp_path / "m.onnx.json").read_text())
    assert meta["opset"] >= 17 and meta["inputs"]["x"]["shape"] == ["batch", 1, 128]
    assert meta["classes"][0] == "SN Ia" and meta["check"]["max_abs_logit_diff"] < 1e-4
    # One self-contained file (no side file of weights), which still runs after a move; the batch
    # axis is dynamic: one example and 7 examples both run.
    import onnx

    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("m.", ".m."))) == ["m.onnx", "m.onnx.json"]
    assert all(i.data_location == onnx.TensorProto.DEFAULT for i in onnx.load(tmp_path / "m.onnx").graph.initializer)
    (tmp_path / "moved").mkdir()
    (tmp_path / "m.onnx").rename(tmp_path / "moved" / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "moved" / "m.onnx"), providers=["CPUExecutionProvider"])
    for n in (1, 7):
        logits = session.run(["logits"], {"x": np.random.default_rng(0).normal(size=(n, 1, 128)).astype(np.float32)})
        assert logits[0].shape == (n, 9)


def test_a_lora_model_exports_with_its_adapters_merged(tmp_path, capsys):
    import torch

    from trainables.checkpoint import save_checkpoint
    from trainables.data.ztf_synthetic import CLASS_ORDER
    from trainables.models.spectra_cnn import GalSpecNet

    separable_set(tmp_path / "data", points=128)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "source", GalSpecNet(len(CLASS_ORDER), 128),
                    {"model": "galspecnet", "spec": {"kind": "sequence", "shapes": {"x": [1, 128]},
                                                     "classes": list(CLASS_ORDER)}})
    assert main(["train", "--space", "galspecnet_lora", "--data", str(tmp_path / "data"), "--base",
                 str(tmp_path / "source"), "--epochs", "2", "--json-out", str(tmp_path / "t.json"),
                 "--save", str(tmp_path / "adapter")]) == 0
    capsys.readouterr()
    assert main(["export", "--onnx", str(tmp_path / "adapter")]) == 0
    assert "same prediction for 54/54" in capsys.readouterr().out
    meta = json.loads((tmp_path / "adapter" / "model.onnx.json").read_text())
    assert meta["base"]["path"] == str((tmp_path / "source").resolve())


def test_export_refuses_a_folder_without_a_model(tmp_path, capsys):
    assert main(["export", "--onnx", str(tmp_path)]) == 2
    assert "model.pt is missing" in capsys.readouterr().err
