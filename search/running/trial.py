"""The Ray Tune function trainables: one trial = the shared recipe on one config, reporting every epoch.

The search driver binds the data (through the object store, once) and the run settings with
``tune.with_parameters``; ``config`` holds only the searched hyperparameters, so that MLflow
params are exactly what was searched.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from ray import tune

from results.export import write_predictions
from search.strategy.time_asha import SECONDS
from trainables.checkpoint import CONFIG_FILE, WEIGHTS_FILE
from trainables.data import Splits
from trainables.discovery import ENV
from trainables.models._finetune import parameter_counts
from trainables.pair import Resolved
from trainables.pretrained import Base
from trainables.recipe import EpochReport, pick_device, train
from trainables.settings import TrialSettings

CONFUSION_FILE = "val_confusion.json"
STATE_FILE = "state.pt"


def run_trial(config: dict[str, Any], data: Splits, settings: TrialSettings, base: Base | None = None) -> None:
    """Train one config and ``tune.report`` each epoch with a checkpoint; a trial that Tune restores
    (``--resume``) continues from its last checkpoint's epoch.
    ``base`` holds the pretrained weights of a model that starts from them (shipped by the driver)."""
    torch.set_num_threads(settings.threads)
    os.environ[ENV] = settings.user_path
    pair = settings.pair
    resolved = settings.resolve(config)
    model_fn = pair.model_fn(data.spec, resolved, base)
    sizes: dict[str, float] = {}

    def build() -> torch.nn.Module:
        model = model_fn()
        sizes.update(parameter_counts(model))
        return model

    train(build, data, resolved.recipe, pick_device(settings.device),
          on_epoch=lambda r: report_epoch(r, r.state(), sizes, data, settings, resolved, base),
          metric=settings.metric, mode=settings.mode, augment=pair.augment(resolved), resume=restored_state())


def restored_state() -> dict[str, Any] | None:
    """The training state of the checkpoint Tune restored this trial from (``--resume``, a retry), if any."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return load_state(folder)


def load_state(folder: str | Path) -> dict[str, Any] | None:
    """The training state saved in a checkpoint ``folder``, if it has one."""
    path = Path(folder) / STATE_FILE
    return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None


def epoch_metrics(r: EpochReport, state: dict[str, Any], sizes: dict[str, float]) -> dict[str, Any]:
    """What a trial reports for epoch ``r``: its metrics, the model's ``sizes``, whether it was the last,
    ``train_seconds``, the trial's epochs so far (also those before a resume; asha-time's clock), and
    ``reported_at``, which orders epochs across concurrent trials (Ray's own timestamp has 1 s resolution)."""
    return {**r.metrics, **sizes, "finished": r.last, "reported_at": time.time(),
            SECONDS: sum(epoch["epoch_time_s"] for epoch in state["history"])}


def write_checkpoint(folder: Path, state: dict[str, Any], data: Splits, settings: TrialSettings,
                     resolved: Resolved, base: Base | None = None) -> None:
    """A trial's checkpoint in ``folder``, written from its training ``state`` (``r.state()``): the one way
    every trial, fused or not, checkpoints."""
    # Every epoch: the best epoch's weights (model.pt; only what trains for a fine-tuned model, whose
    # base is named by its sha256) and the whole training state (state.pt), so that a resumed trial
    # continues from this epoch instead of starting again.
    torch.save(state["best_state"], folder / WEIGHTS_FILE)
    torch.save(state, folder / STATE_FILE)
    # The resolved config travels with the weights, so a checkpoint alone can be rebuilt.
    (folder / CONFIG_FILE).write_text(json.dumps(
        {"model": settings.model, "data": settings.data, "config": resolved.to_dict(),
         "epoch": state["best_epoch"], "base": base.record() if base is not None else None}))
    best_val = state["best_val"]
    if "confusion" in best_val:
        (folder / CONFUSION_FILE).write_text(json.dumps(
            {"epoch": state["best_epoch"], "classes": list(data.classes), "matrix": best_val["confusion"].tolist()}))
    else:
        write_predictions(folder, state["best_epoch"], best_val["target"].numpy(), best_val["prediction"].numpy(),
                          data.spec.target)


def report_epoch(r: EpochReport, state: dict[str, Any], sizes: dict[str, float], data: Splits,
                 settings: TrialSettings, resolved: Resolved, base: Base | None = None) -> None:
    """``tune.report`` one epoch ``r`` of an unfused trial with its checkpoint (a fused member's group
    writes the same folder, :mod:`search.running.fused_trials`)."""
    with tempfile.TemporaryDirectory() as tmp:
        write_checkpoint(Path(tmp), state, data, settings, resolved, base)
        tune.report(epoch_metrics(r, state, sizes), checkpoint=tune.Checkpoint.from_directory(tmp))


def confirm_trial(config: dict[str, Any], data: Splits, settings: TrialSettings,
                  candidates: dict[str, dict[str, Any]], base: Base | None = None) -> None:
    """One (candidate, seed) run of ``spectune confirm``: the candidate's searched values, the recipe
    seeded with ``seed``."""
    run_trial(candidates[config["candidate"]], data, replace(settings, seed=int(config["seed"])), base)
