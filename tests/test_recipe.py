from functools import partial

import numpy as np
import pytest
import torch

from trainables.config import Recipe
from trainables.data import load_spectra
from trainables.models import build_model
from trainables.recipe import NonFiniteLossError, train

FAST = {"lr": 3e-3, "warmup_epochs": 1, "T_0": 5, "batch_size": 32, "epochs": 6, "patience": None,
        "dropout": 0.1}


def _train(folder, **overrides):
    torch.set_num_threads(1)
    data = load_spectra(folder)
    recipe = Recipe.from_dict({**FAST, **overrides})
    return train(partial(build_model, "galspecnet", data.n_classes, data.n_points, recipe.dropout), data, recipe)


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
    data = load_spectra(tiny_data)
    recipe = Recipe.from_dict(FAST)
    result = train(partial(build_model, "galspecnet", 9, data.n_points, 0.1), data, recipe,
                   on_epoch=lambda r: seen.append((r.epoch, r.improved, r.last)))
    assert [e for e, _, _ in seen] == list(range(1, 7)) and seen[-1][2] and not seen[0][2]
    best = max(h["val_macro_f1"] for h in result.history)
    assert result.best["val_macro_f1"] == best
    assert result.history[result.best_epoch - 1]["val_macro_f1"] == best
    from trainables.recipe import evaluate, make_criterion, to_device
    again = evaluate(result.model, *to_device(data.val, torch.device("cpu")), make_criterion(data, recipe), 9)
    assert again.macro_f1 == pytest.approx(best)


def test_patience_stops_after_warmup_without_improvement(tiny_data):
    # lr so small that nothing improves: stops `patience` epochs after warm-up ends.
    result = _train(tiny_data, lr=1e-5, eta_min=0.0, warmup_epochs=2, patience=2, epochs=30)
    assert result.stopped_early
    assert result.epochs_run <= 2 + 2 + result.best_epoch


class Diverged(torch.nn.Module):
    def __init__(self, points: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(points, 9)

    def forward(self, x):
        return self.linear(x.flatten(1)) * float("nan")


def test_non_finite_loss_raises_instead_of_training_on(tiny_data):
    data = load_spectra(tiny_data)
    with pytest.raises(NonFiniteLossError, match="training loss became nan at epoch 1"):
        train(lambda: Diverged(data.n_points), data, Recipe.from_dict(FAST))


def test_metrics_reported_every_epoch(tiny_data):
    h = _train(tiny_data, epochs=2).history[0]
    assert {"epoch", "lr", "train_loss", "val_loss", "val_acc", "val_top3_acc", "val_macro_f1",
            "best_val_macro_f1"} <= set(h)
    assert 0 <= h["val_acc"] <= h["val_top3_acc"] <= 1 and np.isfinite(h["val_loss"])


def test_read_only_splits_stay_on_the_device_between_calls():
    from trainables.data import Split
    from trainables.recipe import to_device

    def split(seed, writeable):
        flux, labels = np.random.default_rng(seed).random((6, 1, 8), dtype=np.float32), np.arange(6)
        flux.flags.writeable = labels.flags.writeable = writeable
        return Split(flux, labels)

    cpu = torch.device("cpu")
    shared = split(0, writeable=False)      # what a trial gets from Ray's object store
    first = to_device(shared, cpu)
    assert to_device(shared, cpu)[0] is first[0] and to_device(shared, cpu)[1] is first[1]
    mutable = split(1, writeable=True)
    assert to_device(mutable, cpu)[0] is not to_device(mutable, cpu)[0]
    for seed in (2, 3, 4):                  # three newer read-only splits evict the oldest
        to_device(split(seed, writeable=False), cpu)
    again = to_device(shared, cpu)
    assert again[0] is not first[0] and torch.equal(again[0], first[0])
