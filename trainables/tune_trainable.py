"""The Ray Tune function trainable: one trial = the shared recipe on one config, reporting every epoch.

The search driver binds the data (through the object store, once) and the run settings with
``tune.with_parameters``; ``config`` holds only the searched hyperparameters, so that MLflow
params are exactly what was searched.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from ray import tune

from trainables.config import Recipe
from trainables.data import SpectraData
from trainables.models import build_model
from trainables.recipe import EpochReport, pick_device, train
from trainables.registry import get_trainable

CHECKPOINT_FILE = "model.pt"
CONFUSION_FILE = "val_confusion.json"


@dataclass(frozen=True)
class TrialSettings:
    """Run settings shared by every trial of a search (never logged as hyperparameters)."""

    trainable: str
    max_epochs: int
    seed: int
    fixed: dict[str, Any] = field(default_factory=dict)
    patience: int | None = 5
    device: str = "auto"
    threads: int = 1

    def recipe(self, config: dict[str, Any]) -> Recipe:
        values = {**self.fixed, **config, "epochs": self.max_epochs, "patience": self.patience,
                  "seed": self.seed}
        return Recipe.from_dict(values, source="trial config")


def run_trial(config: dict[str, Any], data: SpectraData, settings: TrialSettings) -> None:
    """Train one config and ``tune.report`` each epoch, with a checkpoint whenever val macro-F1 improves."""
    torch.set_num_threads(settings.threads)
    pair = get_trainable(settings.trainable)
    recipe = settings.recipe(config)

    def report(r: EpochReport) -> None:
        # reported_at orders epochs across concurrent trials (Ray's own timestamp has 1 s resolution).
        metrics = {**r.metrics, "finished": r.last, "reported_at": time.time()}
        if not r.improved:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(r.model.state_dict(), Path(tmp) / CHECKPOINT_FILE)
            (Path(tmp) / CONFUSION_FILE).write_text(json.dumps(
                {"epoch": r.epoch, "classes": list(data.classes), "matrix": r.val.confusion.tolist()}))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    model_fn = partial(build_model, pair.model, data.n_classes, data.n_points, recipe.dropout)
    train(model_fn, data, recipe, pick_device(settings.device), on_epoch=report)
