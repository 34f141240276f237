"""QLoRA on the text pair: the tiny BERT's Linear layers held by bitsandbytes in 4 or 8 bits on CPU, LoRA
on top, the head in full precision, adapter-only checkpoints that resume, and the refusals."""

from __future__ import annotations

import json
import math

import bitsandbytes  # noqa: F401  (a declared test dependency, the qlora extra: without it this file fails)
import pytest
import torch

from search.cli import main
from tests.test_text_pair import PAIR, bbc, tiny_bert  # noqa: F401 - the fixtures, shared
from trainables.checkpoint import load_trainable_state, read_checkpoint, save_checkpoint, trainable_state
from trainables.data import get_data, scale_down
from trainables.hparams import ConfigError
from trainables.models._finetune import parameter_counts
from trainables.recipe import train

FAST = {"finetune": "lora", "lora_rank": 4, "epochs": 2, "batch_size": 8, "lr": 3e-3, "scheduler": "constant",
        "warmup_epochs": 0}


@pytest.fixture(scope="module")
def small(bbc):  # noqa: F811 - the shared fixture
    return scale_down(get_data("bbc_news").load(bbc), tokens=16, train_per_class=8)


def build(small, tiny_bert, **config) -> tuple[torch.nn.Module, object]:  # noqa: F811
    resolved = PAIR.resolve({**FAST, **config}, source="test")
    return PAIR.model_fn(small.spec, resolved, PAIR.load_base(str(tiny_bert[0]))), resolved


@pytest.mark.parametrize("mode, layer", [("nf4", "Linear4bit"), ("fp4", "Linear4bit"), ("int8", "Linear8bitLt")])
def test_qlora_quantises_the_base_keeps_the_head_and_trains_on_cpu(small, tiny_bert, mode, layer):  # noqa: F811
    torch.set_num_threads(1)
    model_fn, resolved = build(small, tiny_bert, quantize=mode)
    model = model_fn()
    encoder = model.get_submodule("base_model.model.encoder.encoder.layer.0")
    # Adapted layers wrap a quantised one; the others (key, feed-forward) are quantised themselves.
    assert type(encoder.attention.self.query.base_layer).__name__ == layer
    assert type(encoder.attention.self.key).__name__ == layer
    assert type(encoder.intermediate.dense).__name__ == layer
    head = model.get_submodule("base_model.model.head")
    assert type(head.modules_to_save["default"]) is torch.nn.Linear and type(head.original_module) is torch.nn.Linear
    sizes, plain = parameter_counts(model), parameter_counts(build(small, tiny_bert)[0]())
    # The same adapters and head train; the base holds fewer bytes, and would hold as many unquantised.
    assert sizes["trainable_params"] == plain["trainable_params"] and sizes["total_params"] == plain["total_params"]
    assert sizes["base_bytes"] < plain["base_bytes"] == sizes["base_bytes_unquantised"]
    result = train(lambda: model, small, resolved.recipe)
    assert result.epochs_run == 2 and all(math.isfinite(h["train_loss"]) for h in result.history)
    assert 0 <= result.best["val_macro_f1"] <= 1


def test_a_qlora_checkpoint_holds_no_base_and_resumes_to_the_same_metrics(small, tiny_bert, tmp_path):  # noqa: F811
    """The adapters and the head only (no 4-bit weights, no quantisation scales), read back with
    torch.load(weights_only=True); the base is quantised again from the same weights, to the same bytes."""
    torch.set_num_threads(1)
    model_fn, resolved = build(small, tiny_bert, quantize="nf4")

    def keep(report):
        if report.epoch == 1:
            torch.save(report.state(), tmp_path / "state.pt")

    straight = train(model_fn, small, resolved.recipe, on_epoch=keep)
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert state["model"] and all("lora_" in k or "modules_to_save" in k for k in state["model"])
    assert state["best_state"].keys() == state["model"].keys()
    resumed = train(model_fn, small, resolved.recipe, resume=state)
    drop = lambda h: {k: v for k, v in h.items() if k != "epoch_time_s"}  # noqa: E731
    assert [drop(h) for h in resumed.history] == [drop(h) for h in straight.history]

    save_checkpoint(tmp_path / "ckpt", straight.model, {"model": "minilm"})
    saved, _ = read_checkpoint(tmp_path / "ckpt")
    assert saved.keys() == trainable_state(straight.model).keys()
    trained = sum(v.numel() for k, v in saved.items() if "lora_" in k or "modules_to_save" in k)
    assert trained == parameter_counts(straight.model)["trainable_params"]
    rebuilt = load_trainable_state(model_fn(), saved, "test checkpoint").eval()
    x = {k: torch.from_numpy(v[:4]) for k, v in small.val.inputs.items()}
    with torch.no_grad():
        assert torch.equal(straight.model.eval()(**x), rebuilt(**x))


@pytest.mark.parametrize("config, message", [
    ({"finetune": "full", "quantize": "nf4"}, "'quantize' applies only when 'finetune' is 'lora'; got finetune='full'"),
    ({"quantize": "int4"}, r"the 'quantize' hyperparameter must be one of \['none', 'nf4', 'fp4', 'int8'\]; got 'int4'"),
])
def test_quantize_outside_qlora_is_refused_in_one_line(config, message):
    with pytest.raises(ConfigError, match=message):
        PAIR.resolve(config, source="best.json")


def test_a_pair_whose_base_cannot_be_quantised_does_not_take_the_knob():
    """GalSpecNet's base is mostly Conv1d, which bitsandbytes cannot hold in 4 bits: no knob there."""
    from trainables.pair import Pair

    with pytest.raises(ConfigError, match=r"unknown hyperparameter\(s\) \['quantize'\]"):
        Pair("galspecnet_transfer", "medres_spectra").resolve({"quantize": "nf4"}, source="best.json")


def test_a_quantised_model_is_saved_by_train_and_refused_by_onnx_export(small, bbc, tiny_bert, tmp_path,  # noqa: F811
                                                                         capsys):
    (tmp_path / "q.json").write_text(json.dumps({"space": "minilm_lora_text",
                                                 "config": {"quantize": "nf4", "epochs": 1, "lora_rank": 2}}))
    assert main(["train", "--config", str(tmp_path / "q.json"), "--data", str(bbc), "--base", str(tiny_bert[0]),
                 "--tokens", "16", "--train-per-class", "4", "--json-out", str(tmp_path / "t.json"),
                 "--save", str(tmp_path / "model")]) == 0
    summary = json.loads((tmp_path / "t.json").read_text())
    assert summary["config"]["quantize"] == "nf4" and summary["base_bytes"] < summary["base_bytes_unquantised"]
    assert "base: " in capsys.readouterr().out
    assert main(["export", "--onnx", str(tmp_path / "model"), "--data", str(bbc)]) == 2
    assert "quantize='nf4'" in capsys.readouterr().err


def test_quantize_without_bitsandbytes_names_the_install(small, tiny_bert, monkeypatch):  # noqa: F811
    monkeypatch.setitem(__import__("sys").modules, "bitsandbytes", None)    # as if not installed
    model_fn, _ = build(small, tiny_bert, quantize="nf4")
    with pytest.raises(ConfigError, match=r"quantize needs the bitsandbytes package: pip install 'bitsandbytes==0.50.2'"):
        model_fn()
