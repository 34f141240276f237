import numpy as np
import pytest
import torch

from conftest import load_ztf
from trainables.data import Split, get_data
from trainables.pair import Pair
from trainables.recipe import NonFiniteLossError, evaluate, make_criterion, to_device, train

FAST = {"lr": 3e-3, "warmup_epochs": 1, "T_0": 5, "batch_size": 32, "epochs": 6, "patience": None,
        "dropout": 0.1}
GALSPECNET = Pair("galspecnet", "ztf_spectra")


def _train(folder, pair=GALSPECNET, data=None, metric="val_macro_f1", mode="max", **overrides):
    torch.set_num_threads(1)
    data = data or load_ztf(folder)
    # FAST holds like a space's fixed values: T_0 drops out where another schedule is chosen.
    resolved = pair.resolve({**FAST, **overrides}, soft=tuple(k for k in FAST if k not in overrides))
    return train(pair.model_fn(data.spec, resolved), data, resolved.recipe, metric=metric, mode=mode,
                 augment=pair.augment(resolved))


def test_a_few_epochs_beat_chance_clearly(tiny_data):
    result = _train(tiny_data)
    assert result.best["val_macro_f1"] > 0.5          # chance is about 1/9
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_same_seed_gives_identical_metrics_on_cpu(tiny_data):
    a = [h["val_macro_f1"] for h in _train(tiny_data, epochs=3).history]
    b = [h["val_macro_f1"] for h in _train(tiny_data, epochs=3).history]
    c = [h["train_loss"] for h in _train(tiny_data, epochs=3, seed=7).history]
    assert a == b
    assert c != [h["train_loss"] for h in _train(tiny_data, epochs=3).history]


def test_best_epoch_weights_are_kept_and_reported(tiny_data):
    seen = []
    data = load_ztf(tiny_data)
    resolved = GALSPECNET.resolve(FAST)
    result = train(GALSPECNET.model_fn(data.spec, resolved), data, resolved.recipe,
                   on_epoch=lambda r: seen.append((r.epoch, r.improved, r.last)))
    assert [e for e, _, _ in seen] == list(range(1, 7)) and seen[-1][2] and not seen[0][2]
    best = max(h["val_macro_f1"] for h in result.history)
    assert result.best["val_macro_f1"] == best
    assert result.history[result.best_epoch - 1]["val_macro_f1"] == best
    again = evaluate(result.model, *to_device(data.val, torch.device("cpu")), make_criterion(data, resolved.recipe), 9)
    assert again.macro_f1 == pytest.approx(best)


def test_selection_follows_the_metric_and_mode(tiny_data):
    result = _train(tiny_data, metric="val_loss", mode="min")
    losses = [h["val_loss"] for h in result.history]
    assert result.best["val_loss"] == min(losses) and result.history[-1]["best_val_loss"] == min(losses)
    assert "best_val_macro_f1" not in result.history[0]


def test_patience_stops_after_warmup_without_improvement(tiny_data):
    # lr so small that nothing improves: stops `patience` epochs after warm-up ends.
    result = _train(tiny_data, lr=1e-5, eta_min=0.0, warmup_epochs=2, patience=2, epochs=30)
    assert result.stopped_early
    assert result.epochs_run <= 2 + 2 + result.best_epoch


@pytest.mark.parametrize("recipe", [
    {"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "lr": 0.01},
    {"optimizer": "rmsprop", "momentum": 0.5, "lr": 1e-3},
    {"optimizer": "adamw", "lr": 1e-3},
    {"optimizer": "adam", "scheduler": "step", "step_size": 2, "decay": 0.5},
    {"scheduler": "plateau", "decay": 0.5, "plateau_patience": 0},
    {"loss": "ce", "scheduler": "cosine"},
    {"loss": "weighted_ce", "scheduler": "constant", "max_grad_norm": None},
])
def test_every_optimizer_schedule_and_loss_trains(recipe):
    result = _train(None, pair=Pair("mlp", "wine"), data=get_data("wine").load(None), batch_size=16, epochs=10,
                    warmup_epochs=0, **recipe)
    losses = [h["train_loss"] for h in result.history]
    assert result.epochs_run == 10 and losses[-1] < losses[0], losses
    assert result.best["val_macro_f1"] > 0.8, result.best     # chance is about 1/3


def test_plateau_lowers_the_rate_when_the_metric_stalls(tiny_data):
    # lr so small that the metric stalls: ReduceLROnPlateau halves the rate after every flat epoch.
    result = _train(tiny_data, lr=1e-6, scheduler="plateau", decay=0.5, plateau_patience=0,
                    warmup_epochs=0, epochs=5)
    rates = [h["learning_rate"] for h in result.history]
    assert rates[0] == 1e-6 and rates[-1] < rates[0]


class Diverged(torch.nn.Module):
    def __init__(self, points: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(points, 9)

    def forward(self, x):
        return self.linear(x.flatten(1)) * float("nan")


def test_non_finite_loss_raises_instead_of_training_on(tiny_data):
    data = load_ztf(tiny_data)
    with pytest.raises(NonFiniteLossError, match="training loss became nan at epoch 1"):
        train(lambda: Diverged(256), data, GALSPECNET.resolve(FAST).recipe)


def test_metrics_reported_every_epoch(tiny_data):
    h = _train(tiny_data, epochs=2).history[0]
    assert {"epoch", "learning_rate", "train_loss", "val_loss", "val_acc", "val_top3_acc", "val_macro_f1",
            "best_val_macro_f1"} <= set(h)
    assert 0 <= h["val_acc"] <= h["val_top3_acc"] <= 1 and np.isfinite(h["val_loss"])


def test_batches_reach_a_model_with_several_inputs_as_keywords():
    wine = get_data("wine").load(None)
    result = _train(None, pair=Pair("mlp", "wine"), data=wine, lr=1e-2, batch_size=16, epochs=8, dropout=0.0)
    assert result.best["val_macro_f1"] > 0.8


def test_augmentation_is_a_data_knob_and_keeps_the_batch_order(tiny_data):
    # hflip is fashion_mnist's knob; an image set made from the spectra exercises it without the files.
    from dataclasses import replace

    from trainables.data import InputSpec

    data = load_ztf(tiny_data)
    to_image = lambda s: Split({"x": s.inputs["x"].reshape(len(s), 1, 16, 16)}, s.labels)  # noqa: E731
    images = replace(data, train=to_image(data.train), val=to_image(data.val),
                     spec=InputSpec("image", {"x": (1, 16, 16)}, data.classes))
    pair = Pair("deeper_cnn", "fashion_mnist")
    plain = _train(None, pair=pair, data=images, epochs=2, hflip=False, hidden_1=8, hidden_2=8)
    flipped = _train(None, pair=pair, data=images, epochs=2, hflip=True, hidden_1=8, hidden_2=8)
    assert plain.history[0]["train_loss"] != flipped.history[0]["train_loss"]


def test_read_only_splits_stay_on_the_device_between_calls():
    def split(seed, writeable):
        x, labels = np.random.default_rng(seed).random((6, 1, 8), dtype=np.float32), np.arange(6)
        x.flags.writeable = labels.flags.writeable = writeable
        return Split({"x": x}, labels)

    cpu = torch.device("cpu")
    shared = split(0, writeable=False)      # what a trial gets from Ray's object store
    first = to_device(shared, cpu)
    assert to_device(shared, cpu)[0]["x"] is first[0]["x"] and to_device(shared, cpu)[1] is first[1]
    mutable = split(1, writeable=True)
    assert to_device(mutable, cpu)[0]["x"] is not to_device(mutable, cpu)[0]["x"]
    for seed in range(2, 8):                # six newer read-only splits (12 arrays) evict the oldest
        to_device(split(seed, writeable=False), cpu)
    again = to_device(shared, cpu)
    assert again[0]["x"] is not first[0]["x"] and torch.equal(again[0]["x"], first[0]["x"])


@pytest.mark.parametrize("overrides", [{}, {"scheduler": "plateau", "patience": 2, "dropout": 0.3}])
def test_a_run_resumed_from_a_saved_epoch_repeats_the_uninterrupted_run(tiny_data, tmp_path, overrides):
    """The state saved after epoch 3 (weights, optimizer, schedule, random streams, best epoch,
    patience), through torch.save and torch.load(weights_only=True), continues the same trajectory."""
    torch.set_num_threads(1)
    data = load_ztf(tiny_data)
    resolved = GALSPECNET.resolve({**FAST, **overrides}, soft=tuple(FAST))

    def keep(report):
        if report.epoch == 3:
            torch.save(report.state(), tmp_path / "state.pt")

    straight = train(GALSPECNET.model_fn(data.spec, resolved), data, resolved.recipe, on_epoch=keep)
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    resumed = train(GALSPECNET.model_fn(data.spec, resolved), data, resolved.recipe, resume=state)
    drop = lambda h: {k: v for k, v in h.items() if k != "epoch_time_s"}  # noqa: E731
    assert [drop(h) for h in resumed.history] == [drop(h) for h in straight.history]
    assert resumed.best_epoch == straight.best_epoch and resumed.stopped_early == straight.stopped_early
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key])


def test_a_run_resumed_after_it_stopped_early_trains_no_further(tiny_data, tmp_path):
    """A driver killed between a trial's last epoch and Tune hearing of it resumes the trial from
    that epoch's state: the patience it had used up still stops it, with nothing trained again."""
    torch.set_num_threads(1)
    data = load_ztf(tiny_data)
    resolved = GALSPECNET.resolve({**FAST, "epochs": 12, "patience": 1, "lr": 1e-4}, soft=tuple(FAST))

    def keep(report):
        if report.last:
            torch.save(report.state(), tmp_path / "state.pt")

    straight = train(GALSPECNET.model_fn(data.spec, resolved), data, resolved.recipe, on_epoch=keep)
    assert straight.stopped_early and straight.epochs_run < 12
    epochs = []
    resumed = train(GALSPECNET.model_fn(data.spec, resolved), data, resolved.recipe,
                    resume=torch.load(tmp_path / "state.pt", weights_only=True),
                    on_epoch=lambda r: epochs.append(r.epoch))
    assert epochs == [] and resumed.stopped_early and resumed.history == straight.history
    assert resumed.best_epoch == straight.best_epoch
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key])


def test_the_strides_of_a_size_one_axis_do_not_change_the_training():
    """Rows selected from ``x[:, None]`` give the channel axis of a (N, 1, 28, 28) image array the
    stride that also reads as channels-last, and a conv then takes another kernel; a Ray trial gets
    the same array back from pickling with the usual strides. Both must train alike, or ``spectune train`` does not
    repeat the trial (fashion_norm_cnn gave 0.8802 against its trial's 0.8812)."""
    from trainables.data import InputSpec, Splits

    def splits(copy: bool) -> Splits:
        rng_ = np.random.default_rng(0)
        parts = {}
        for name, n in (("train", 16), ("val", 8), ("test", 8)):
            y = np.repeat(np.arange(3), n)
            x = (rng_.normal(0, 1, (len(y), 28, 28)) + y[:, None, None] * 0.3).astype(np.float32)[:, None]
            # What numpy's row selection (scale_down's train_fraction) gives x[:, None]: stride 4 on the
            # channel axis, the channels-last stride.
            x = x[np.arange(len(y))]
            parts[name] = Split({"x": x.copy() if copy else x}, y)
        return Splits(**parts, spec=InputSpec("image", {"x": (1, 28, 28)}, ("a", "b", "c")), fingerprint="f")

    odd, usual = splits(copy=False), splits(copy=True)
    assert odd.train.inputs["x"].strides[1] != usual.train.inputs["x"].strides[1], "the case this test is about"
    pair = Pair("deeper_cnn", "fashion_mnist")
    config = {"epochs": 2, "batch_size": 16, "norm": "batch", "hidden_1": 32, "hidden_2": 64, "convs_per_block": 2}
    runs = [_train(None, pair=pair, data=d, **config) for d in (odd, usual)]
    assert [h["train_loss"] for h in runs[0].history] == [h["train_loss"] for h in runs[1].history]
    assert [h["val_loss"] for h in runs[0].history] == [h["val_loss"] for h in runs[1].history]
