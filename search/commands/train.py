"""``spectune train``: one config through the shared recipe, without Ray; the test split once, on request.

A command, so on the top floor with the others: it reads a space. It imports nothing of Ray (nor any
module here that does), so training a config never starts or loads Ray (tests/test_layout.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from results.files import write_json
from results.plots import plot_confusion, plot_learning_curves, plot_predictions
from results.provenance import git_commit, versions
from results.best_file import HEADLINE, DataOptions, checkpoint_record, read_config_record
from spaces import Space, get_space
from trainables.checkpoint import save_checkpoint
from results.errors import OptionError
from trainables.models._finetune import parameter_counts
from trainables.pair import Resolved, load_data
from trainables.pretrained import check_same_base
from trainables.recipe import EpochReport, Evaluation, evaluate_test, pick_device, train
from trainables.tasks import CLASSIFICATION, check_metric


@dataclass(frozen=True)
class TrainRequest:
    """What ``spectune train`` takes; ``data`` holds the data options given on the command line
    (unset ones fall back to those a ``best.json`` recorded)."""

    space: str | None
    config: Path | None
    epochs: int | None
    device: str
    test: bool
    json_out: Path
    data: DataOptions = DataOptions()
    save: Path | None = None
    base: str | None = None
    point: str | None = None


def resolve_config(req: TrainRequest) -> tuple[Space, Resolved, DataOptions, str, str, dict[str, Any] | None]:
    """The space, the resolved config, the data options recorded in the config file (if any) and the
    metric and mode to select on. Values: the pair's defaults < the space's fixed values and first
    starting point < the config file < ``--epochs``. Last, the base the config file records, if any."""
    if req.point and not req.config:
        raise OptionError("--point names a point of a search's Pareto front: pass its best.json with --config.")
    record = read_config_record(req.config, req.point) if req.config else {"config": {}}
    file_space, values = record.get("space"), record["config"]
    if req.space and file_space and req.space != file_space:
        raise OptionError(f"--space {req.space} does not match the space {file_space!r} recorded in "
                         f"{req.config}; drop --space or pass the matching one.")
    space = get_space(req.space or file_space or "galspecnet")
    source = str(req.config) if req.config else f"{space.where}: first config"
    base = space.first_config()
    overrides = {"epochs": req.epochs} if req.epochs is not None else {}
    # The space's values give way to the file's: a file that picks another scheduler drops T_0.
    resolved = space.pair.resolve({**base, **values, **overrides}, source=source,
                                  soft=tuple(k for k in base if k not in values))
    metric, mode = record.get("metric", space.metric), record.get("mode", space.mode)
    check_metric(space.pair.task, metric, mode, source, space.data)
    return space, resolved, DataOptions.from_record(record), metric, mode, record.get("base")


def _check_writable(path: Path) -> None:
    """Fail before training, not after it, when the summary could not be written."""
    existing = path.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise OptionError(f"--json-out {path}: cannot create it under {existing} (not a writable folder); "
                         "choose another path.")


def run_train(req: TrainRequest) -> dict[str, Any]:
    """Validate everything, train, evaluate test once if asked, and write the JSON summary and figures."""
    space, resolved, recorded, metric, mode, record_base = resolve_config(req)
    recipe, pair = resolved.recipe, space.pair
    device = pick_device(req.device)
    _check_writable(req.json_out)
    if req.save:
        _check_writable(req.save / "config.json")
    requested = req.data.scaling()
    scaling = {k: v if v is not None else getattr(recorded, k) for k, v in requested.items()}
    if scaling != requested:
        print(f"using the search's data scaling from {req.config}: "
              + ", ".join(f"{k}={v}" for k, v in scaling.items() if v is not None)
              + " (pass --points/--tokens/--train-per-class/--train-fraction to change it)")
    classes = req.data.classes if req.data.classes is not None else recorded.classes
    # A trial's CPU threads change float summation order: the same count reproduces its metrics.
    threads = req.data.threads or recorded.threads
    if threads != req.data.threads:
        print(f"using the search's {threads} CPU thread(s) per trial (--threads to change it)")
    folder = req.data.folder()
    if folder is None and recorded.folder() and recorded.folder() != Path(pair.data_module.default_dir or ""):
        folder = recorded.folder()
        print(f"using the search's data folder from {req.config}: {folder} (--data to change it)")
    data = load_data(pair, folder, classes, test=req.test, seed=recipe.seed, **scaling)
    if recorded.mismatch(data.fingerprint):
        print(f"note: {recorded.mismatch(data.fingerprint)}: the validation score will differ from the trial's.")
    # What rebuilds the same data (spectune export --onnx checks the model on its validation split).
    options = DataOptions(path=str(folder or pair.data_module.default_dir or ""), classes=classes, threads=threads,
                          fingerprint=data.fingerprint, description=data.describe(), **scaling)
    base = pair.load_base(req.base or (record_base or {}).get("path"))
    if base is not None:
        check_same_base(base, record_base, str(req.config))
    if threads:
        torch.set_num_threads(threads)

    print(f"space {space.name}: model {pair.model} on data {pair.data}, {device}; selecting on {metric} ({mode})")
    print(f"data: {data.describe()}; fingerprint {data.fingerprint}")
    print("config: " + ", ".join(f"{k}={v}" for k, v in resolved.to_dict().items()))

    task = pair.task
    shown = ("val_acc", "val_macro_f1") if task == CLASSIFICATION else HEADLINE[task]

    def show(r: EpochReport) -> None:
        m = r.metrics
        print(f"epoch {r.epoch:3d}/{recipe.epochs}  train_loss {m['train_loss']:.4f}  val_loss {m['val_loss']:.4f}  "
              + "  ".join(f"{k} {m[k]:.4f}" for k in shown)
              + f"  lr {m['learning_rate']:.2e}  {m['epoch_time_s']:.1f}s" + ("  *best" if r.improved else ""),
              flush=True)

    sizes: dict[str, float] = {}

    def build() -> torch.nn.Module:
        model = pair.model_fn(data.spec, resolved, base)()
        sizes.update(parameter_counts(model))
        print(f"parameters: {int(sizes['trainable_params']):,} trainable of {int(sizes['total_params']):,} "
              f"({100 * sizes['trainable_fraction']:.2f} %)")
        if sizes["base_bytes"]:
            print(f"base: {sizes['base_bytes'] / 2**20:.1f} MiB of frozen weights and buffers held "
                  f"({sizes['base_bytes_unquantised'] / 2**20:.1f} MiB unquantised)")
        return model

    result = train(build, data, recipe, device, on_epoch=show, metric=metric,
                   mode=mode, augment=pair.augment(resolved))
    summary: dict[str, Any] = {
        "space": space.name, "model": pair.model, "data_module": pair.data, "config": resolved.to_dict(),
        "metric": metric, "mode": mode, "task": task, "best_value": result.best[metric],
        **{k: result.best[k] for k in (("val_macro_f1", "val_acc") if task == CLASSIFICATION else HEADLINE[task])},
        "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early, "classes": list(data.classes), **sizes,
        "base": base.record() if base is not None else None,
        "data_options": options.to_json(),
        "device": str(device), "versions": versions(), "git_commit": git_commit(),
        "history": result.history,
    }
    stem = req.json_out.with_suffix("")
    figures = {f"val_{k}_png": v for k, v in _outcome_figure(result.best_val, data, f"{stem}_val",
                                                             f"{space.name}: validation, epoch {result.best_epoch}"
                                                             ).items()}
    figures["learning_curves_png"] = plot_learning_curves(result.history, f"{stem}_curves.png", space.name)
    if req.test:
        test = evaluate_test(result.model, data, recipe, device)
        summary.update(test.scores("test"))
        if isinstance(test, Evaluation):
            summary["test_confusion"] = test.confusion.tolist()
            print(f"test (evaluated once): macro-F1 {test.macro_f1:.4f}, accuracy {test.acc:.3f}, "
                  f"top-3 accuracy {test.top3_acc:.3f}")
        else:
            print(f"test (evaluated once): RMSE {test.rmse:.4f}, MAE {test.mae:.4f}, R^2 {test.r2:.4f} "
                  f"({data.spec.target or 'the target'}, {len(test.target)} examples)")
        figures.update({f"test_{k}_png": v for k, v in _outcome_figure(test, data, f"{stem}_test",
                                                                        f"{space.name}: test (evaluated once)").items()})
    summary["figures"] = {k: str(v) for k, v in figures.items()}
    if req.save:
        save_checkpoint(req.save, result.model, checkpoint_record(
            model=pair.model, data=pair.data, space=space.name, config=resolved.to_dict(), spec=data.spec,
            classes=list(data.classes), options=options, best_epoch=result.best_epoch, metric=metric,
            value=result.best[metric], versions=versions(), base=base.record() if base is not None else None))
        summary["checkpoint"] = str(req.save)
        print(f"model saved -> {req.save}/ (model.pt and config.json)")
    write_json(req.json_out, summary)
    others = ", ".join(f"{k} {result.best[k]:.4f}" for k in HEADLINE[task] if k != metric)
    print(f"best epoch {result.best_epoch} of {result.epochs_run}: {metric} {result.best[metric]:.4f}"
          + (f" ({others})" if others else "") + f"; summary -> {req.json_out}")
    return summary


def _outcome_figure(evaluation: Any, data: Any, stem: str, title: str) -> dict[str, Path]:
    """A classifier's confusion matrix, or a regressor's predicted-vs-true and residual plots."""
    if isinstance(evaluation, Evaluation):
        return {"confusion": plot_confusion(evaluation.confusion, data.classes, f"{stem}_confusion.png", title)}
    return {"predictions": plot_predictions(evaluation.target, evaluation.prediction, f"{stem}_predictions.png", title,
                                            data.spec.target)}
