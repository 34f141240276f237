"""The fused trainer: every member reports what the same config reports trained alone by recipe.train."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from conftest import load_ztf
from trainables.data import get_data
from trainables.fused import FusedTrainer, fusion_refusal, group_key
from trainables.pair import Pair
from trainables.recipe import EpochReport, NonFiniteLossError, train

WINE = Pair("mlp", "wine")
HOUSING = Pair("mlp", "california_housing")
WAVEFORM = Pair("waveform_cnn", "ztf_spectra")
WINE_BASE = {"batch_size": 16, "epochs": 4, "patience": None, "depth": 2, "width": 16}
# Members that differ in every knob a member may own.
WINE_MEMBERS = {
    "a": {"lr": 3e-3, "dropout": 0.2, "gamma": 2.0, "seed": 1, "warmup_epochs": 1, "T_0": 2},
    "b": {"lr": 1e-3, "weight_decay": 0.3, "warmup_epochs": 2, "T_0": 1, "dropout": 0.0, "gamma": 0.5, "seed": 2},
    "c": {"lr": 1e-2, "warmup_epochs": 0, "T_0": 3, "dropout": 0.4, "loss": "ce", "seed": 3, "max_grad_norm": None},
    "d": {"lr": 5e-3, "warmup_epochs": 0, "scheduler": "plateau", "decay": 0.5, "plateau_patience": 0,
          "loss": "weighted_ce", "dropout": 0.1, "seed": 4, "max_grad_norm": 0.5},
}


@pytest.fixture(scope="module")
def wine():
    torch.set_num_threads(1)
    return get_data("wine").load(None)


@pytest.fixture(scope="module")
def housing(tmp_path_factory):
    folder = tmp_path_factory.mktemp("housing")
    # 150 validation rows: more than one evaluation batch (128 on CPU).
    get_data("california_housing").prepare(folder, seed=0, force=True, source="synthetic", rows=1000)
    return get_data("california_housing").load(folder)


def _solo(pair, data, config, metric="val_macro_f1", mode="max", **kw):
    resolved = pair.resolve(config)
    states = {}   # copied: a torch optimizer's state_dict holds its live tensors
    result = train(pair.model_fn(data.spec, resolved), data, resolved.recipe, metric=metric, mode=mode,
                   on_epoch=lambda r: states.setdefault(r.epoch, copy.deepcopy(r.state())), **kw)
    return result.history, states


def _add(trainer, pair, data, name, config, resume=None):
    resolved = pair.resolve(config)
    trainer.add(name, pair.model_fn(data.spec, resolved), resolved.recipe, resume=resume)


def _run(trainer, until=None):
    """Epochs until every member has left (or ``until`` epochs): each member's reports in order."""
    reports: dict[str, list] = {}
    while trainer.members and (until is None or until > 0):
        for name, report in trainer.run_epoch().items():
            reports.setdefault(name, []).append(report)
        until = None if until is None else until - 1
    return reports


def _assert_same(solo, fused, name=""):
    assert len(solo) == len(fused), (name, len(solo), len(fused))
    for a, b in zip(solo, fused):
        b = b.metrics if isinstance(b, EpochReport) else b
        assert a.keys() == b.keys()
        for key in a:
            if key != "epoch_time_s":
                assert np.isclose(a[key], b[key], rtol=1e-4, atol=1e-6), (name, a["epoch"], key, a[key], b[key])


def _fuse(pair, data, members, metric="val_macro_f1", mode="max"):
    trainer = FusedTrainer(data, "cpu", metric=metric, mode=mode, capacity=len(members))
    for name, config in members.items():
        _add(trainer, pair, data, name, config)
    return _run(trainer)


def test_mlp_members_equal_their_solo_runs(wine):
    members = {n: {**WINE_BASE, **c} for n, c in WINE_MEMBERS.items()}
    fused = _fuse(WINE, wine, members)
    for name, config in members.items():
        _assert_same(_solo(WINE, wine, config)[0], fused[name], name)
        assert fused[name][-1].last and not fused[name][0].last


def test_cnn_members_equal_their_solo_runs(tiny_data):
    data = load_ztf(tiny_data)
    base = {"batch_size": 32, "epochs": 3, "patience": None, "hidden": 16}
    members = {"a": {**base, "lr": 3e-3, "dropout_conv": 0.1, "dropout_fc": 0.3, "gamma": 1.0, "seed": 5,
                     "warmup_epochs": 1, "T_0": 1},
               "b": {**base, "lr": 1e-3, "weight_decay": 1e-3, "dropout_conv": 0.0, "dropout_fc": 0.5,
                     "gamma": 3.0, "seed": 6, "warmup_epochs": 0, "T_0": 2},
               "c": {**base, "lr": 2e-3, "residual": True, "seed": 7}}
    fused = _fuse(WAVEFORM, data, {n: c for n, c in members.items() if n != "c"})
    for name in ("a", "b"):
        _assert_same(_solo(WAVEFORM, data, members[name])[0], fused[name], name)
    # A residual block (its own forward adds a 1x1-conv shortcut) fuses too.
    _assert_same(_solo(WAVEFORM, data, members["c"])[0], _fuse(WAVEFORM, data, {"c": members["c"]})["c"], "c")


@pytest.mark.parametrize("optimizer", [{"optimizer": "adam"}, {"optimizer": "sgd", "momentum": 0.9}])
def test_regression_members_with_their_own_losses_equal_their_solo_runs(housing, optimizer):
    base = {"batch_size": 64, "epochs": 2, "patience": None, "depth": 2, "width": 16, "scheduler": "cosine",
            "warmup_epochs": 0, **optimizer}
    members = {"mse": {**base, "loss": "mse", "lr": 3e-3, "seed": 1},
               "huber": {**base, "loss": "huber", "huber_delta": 0.5, "lr": 1e-3, "weight_decay": 1e-3, "seed": 2,
                         "dropout": 0.2},
               "l1": {**base, "loss": "l1", "lr": 5e-3, "seed": 3, "max_grad_norm": None}}
    if optimizer["optimizer"] == "sgd":
        members["l1"] |= {"momentum": 0.5, "nesterov": True}
        members["huber"] |= {"momentum": 0.0}
    fused = _fuse(HOUSING, housing, members, metric="val_rmse", mode="min")
    for name, config in members.items():
        _assert_same(_solo(HOUSING, housing, config, metric="val_rmse", mode="min")[0], fused[name], name)


def test_a_stopped_members_slot_is_refilled_and_everyone_still_equals_solo(wine):
    members = {"a": {**WINE_BASE, **WINE_MEMBERS["a"]},
               "removed": {**WINE_BASE, **WINE_MEMBERS["b"]},
               # Nothing improves at this rate: patience ends it at epoch 2, by itself.
               "patient": {**WINE_BASE, "lr": 1e-7, "warmup_epochs": 0, "eta_min": 0.0, "patience": 1, "seed": 9},
               "late": {**WINE_BASE, **WINE_MEMBERS["c"], "epochs": 3}}
    trainer = FusedTrainer(wine, "cpu", capacity=3)
    for name in ("a", "removed", "patient"):
        _add(trainer, WINE, wine, name, members[name])
    with pytest.raises(ValueError, match="full"):
        _add(trainer, WINE, wine, "late", members["late"])
    first = _run(trainer, until=2)
    assert first["patient"][-1].last and trainer.members == ["a", "removed"]
    trainer.remove("removed")
    _add(trainer, WINE, wine, "late", members["late"])
    rest = _run(trainer)
    assert [r.epoch for r in rest["late"]] == [1, 2, 3] and [r.epoch for r in rest["a"]] == [3, 4]
    solo = {name: _solo(WINE, wine, config)[0] for name, config in members.items()}
    _assert_same(solo["a"], first["a"] + rest["a"], "a")
    _assert_same(solo["removed"][:2], first["removed"], "removed")
    _assert_same(solo["patient"], first["patient"], "patient")
    _assert_same(solo["late"], rest["late"], "late")


@pytest.mark.parametrize("optimizer", [{"optimizer": "adamw"}, {"optimizer": "adam"},
                                       {"optimizer": "sgd", "momentum": 0.9, "nesterov": True}])
def test_a_members_state_is_a_solo_state_and_resumes_either_way(wine, optimizer):
    config = {**WINE_BASE, **WINE_MEMBERS["a"], **optimizer, "epochs": 4, "weight_decay": 0.1}
    other = {**WINE_BASE, **WINE_MEMBERS["c"], **optimizer}
    solo, solo_states = _solo(WINE, wine, config)
    trainer = FusedTrainer(wine, "cpu")
    _add(trainer, WINE, wine, "x", config)
    _add(trainer, WINE, wine, "y", other)
    report = _run(trainer, until=2)["x"][-1]
    state = report.state()
    # The optimizer's state is torch's own, for this member's parameters: the weights, moments and
    # momentum buffers the solo run's torch optimizer holds after the same epochs.
    expected = solo_states[2]
    assert state["optimizer"]["param_groups"] == expected["optimizer"]["param_groups"]   # the schedule is exact
    assert state["optimizer"]["state"].keys() == expected["optimizer"]["state"].keys()
    for index, tensors in expected["optimizer"]["state"].items():
        assert tensors.keys() == state["optimizer"]["state"][index].keys()
        for key, tensor in tensors.items():
            assert torch.allclose(state["optimizer"]["state"][index][key], tensor, rtol=1e-4, atol=1e-7), key
    for key, tensor in expected["model"].items():
        assert torch.allclose(state["model"][key], tensor, rtol=1e-4, atol=1e-6), key
    assert torch.equal(state["generator"], expected["generator"]) and torch.equal(state["torch_rng"], expected["torch_rng"])

    # Copies: a torch optimizer loads a state's tensors as they are and steps them in place.
    _assert_same(solo, _solo(WINE, wine, config, resume=copy.deepcopy(state))[0], "solo from fused")
    for resume in (state, solo_states[2]):
        again = FusedTrainer(wine, "cpu")
        _add(again, WINE, wine, "x", config, resume=copy.deepcopy(resume))
        _add(again, WINE, wine, "fresh", other)
        reports = _run(again)
        assert [r.epoch for r in reports["x"]] == [3, 4]
        _assert_same(solo[2:], reports["x"], "fused from state")
        _assert_same(_solo(WINE, wine, other)[0], reports["fresh"], "fresh")
    # A state is the member's as it was after its epoch: once the member has moved on, asking is an error.
    trainer.run_epoch()
    with pytest.raises(RuntimeError, match="epoch 2 asked for after epoch 3"):
        report.state()


def test_a_diverging_member_fails_alone(housing):
    base = {"optimizer": "sgd", "momentum": 0.9, "batch_size": 16, "epochs": 2, "patience": None, "width": 16,
            "warmup_epochs": 0, "scheduler": "cosine", "loss": "mse"}
    members = {"calm": {**base, "lr": 1e-2, "seed": 1},
               "boom": {**base, "lr": 1.0, "momentum": 0.99, "max_grad_norm": None, "seed": 2},
               "steady": {**base, "lr": 3e-3, "seed": 3, "dropout": 0.2}}
    with pytest.raises(NonFiniteLossError):
        _solo(HOUSING, housing, members["boom"], metric="val_rmse", mode="min")
    fused = _fuse(HOUSING, housing, members, metric="val_rmse", mode="min")
    assert len(fused["boom"]) == 1 and isinstance(fused["boom"][0], NonFiniteLossError)
    for name in ("calm", "steady"):
        _assert_same(_solo(HOUSING, housing, members[name], metric="val_rmse", mode="min")[0], fused[name], name)


def test_what_cannot_be_fused_is_refused_in_one_line(wine):
    def model(config):
        resolved = WINE.resolve(config)
        return WINE.model_fn(wine.spec, resolved)(), resolved.recipe

    plain, recipe = model({})
    assert fusion_refusal(plain, recipe, None) is None
    refusals = [fusion_refusal(*model({"batch_norm": True}), None),
                fusion_refusal(plain, recipe, lambda batch, generator: batch),
                fusion_refusal(*model({"optimizer": "rmsprop"}), None),
                fusion_refusal(nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)), recipe, None),
                fusion_refusal(nn.Sequential(nn.Embedding(4, 4)), recipe, None),
                fusion_refusal(nn.Sequential(shared := nn.Linear(4, 4), nn.ReLU(), shared), recipe, None)]
    assert "BatchNorm1d keeps batch statistics per model: runs unfused" in refusals[0]
    for text, word in zip(refusals[1:], ("augmentation", "rmsprop", "LayerNorm", "Embedding", "shared")):
        assert word in text and text.endswith("runs unfused") and "\n" not in text
    trainer = FusedTrainer(wine, "cpu")
    with pytest.raises(ValueError, match="BatchNorm1d"):
        _add(trainer, WINE, wine, "bn", {"batch_norm": True})
    _add(trainer, WINE, wine, "wide", {"width": 32})
    with pytest.raises(ValueError, match="does not match"):
        _add(trainer, WINE, wine, "narrow", {"width": 16})


def test_groups_are_keyed_by_architecture_batch_size_and_optimizer():
    def key(config):
        resolved = WINE.resolve(config)
        return group_key(resolved.recipe, resolved.model)

    assert key({}) == key({"lr": 0.01, "dropout": 0.4, "gamma": 0.0, "seed": 3, "warmup_epochs": 2})
    for change in ({"width": 32}, {"activation": "gelu"}, {"batch_size": 64}, {"optimizer": "sgd"}):
        assert key(change) != key({}), change
