"""The files a run leaves for others to read, their schema defined once: ``best.json`` (a search's
winner, its confirmation, its Pareto front), a saved model's ``config.json``, and the data options that
rebuild either's data.

``best.json`` (a search's winner) and a checkpoint's ``config.json`` (``spectune train --save``) both
carry their data under ``data_options``: the folder, the class order, the scaling and the
fingerprint of what was read. Every reader (``train --config``, ``confirm``, ``export --onnx``, a
transfer model's base) takes them through :class:`DataOptions`, so the schema lives here only.
"""

from __future__ import annotations

import reprlib
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from results.files import read_json
from results.errors import OptionError

# What best.json reports of the best epoch besides the selection metric, per task (the tasks are
# trainables.tasks's; it reads this table from here, the bottom floor).
HEADLINE: dict[str, tuple[str, ...]] = {"classification": ("val_macro_f1",),
                                        "regression": ("val_rmse", "val_mae", "val_r2")}
# The best epoch's headline scores a record keeps (those its task reports): best_val_macro_f1, best_val_rmse ...
HEADLINE_KEYS = tuple(f"best_{m}" for metrics in HEADLINE.values() for m in metrics)

DATA_KEY = "data_options"


@dataclass(frozen=True)
class DataOptions:
    """What rebuilds a run's data: the folder (``None``: the data module's own), the class order, the
    scaling (``points`` block-averages sequences, ``tokens`` cuts token sequences, ``train_per_class``
    and ``train_fraction`` subsample training examples), the CPU threads a trial used (they change
    float summation order) and the fingerprint and description of the data as read."""

    path: str | None = None
    classes: list[str] | None = None
    points: int | None = None
    tokens: int | None = None
    train_per_class: int | None = None
    train_fraction: float | None = None
    threads: int | None = None
    fingerprint: str | None = None
    description: str | None = None

    SCALING = ("points", "tokens", "train_per_class", "train_fraction")

    def scaling(self) -> dict[str, Any]:
        """The keyword arguments of :func:`trainables.data.scale_down`."""
        return {k: getattr(self, k) for k in self.SCALING}

    def folder(self) -> Path | None:
        return Path(self.path) if self.path else None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "DataOptions":
        """The data options of a ``best.json`` or checkpoint ``config.json`` (empty when it has none)."""
        # Records written before data options had one schema: best.json held them under "data", a
        # checkpoint's config.json its fingerprint at the top.
        legacy = record.get("data") if isinstance(record.get("data"), dict) else {}
        found = record.get(DATA_KEY) or {**legacy, **({"fingerprint": record["data_fingerprint"]}
                                                      if record.get("data_fingerprint") else {})}
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in found.items() if k in known})

    def mismatch(self, fingerprint: str) -> str | None:
        """A sentence when data with ``fingerprint`` is not the recorded data, else ``None``."""
        if self.fingerprint and self.fingerprint != fingerprint:
            return f"it ran on data with fingerprint {self.fingerprint}; this data has {fingerprint}"
        return None


def best_record(top: dict[str, Any], trial: Any, *, trials: int, space: str, name: str, config: dict[str, Any],
                searched: list[str], metric: str, mode: str, mlflow: dict[str, Any], data: DataOptions,
                versions: dict[str, str], git_commit: str) -> dict[str, Any]:
    """What ``best.json`` holds: enough to retrain the winner and to trace where it came from.
    ``top`` is the winner's row of ``trials.csv`` (its ``<metric>_at_best`` columns give the best epoch's
    headline scores: macro-F1 for a classifier; RMSE, MAE and R^2 for a regressor)."""
    headline = {}
    for key in HEADLINE_KEYS:
        value = top.get(f"{key.removeprefix('best_')}_at_best")
        if value is not None and value == value:    # absent or NaN: a score the other task reports
            headline[key] = float(value)
    return {
        "space": space, "search_name": name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config, "searched": {p: trial.config[p] for p in searched if p in trial.config},
        "metric": metric, "mode": mode, "best_value": float(top[f"best_{metric}"]), **headline,
        "best_epoch": int(top["best_epoch"]),
        "trial_id": trial.trial_id, "trials": trials,
        "mlflow": mlflow, DATA_KEY: data.to_json(), "versions": versions, "git_commit": git_commit,
        "checkpoint": trial.checkpoint.path if trial.checkpoint else None,
    }


# What a search's pick is, as confirm keeps it beside the confirmed winner.
PICK_KEYS = ("trial_id", "config", "searched", "best_value", *HEADLINE_KEYS, "best_epoch", "checkpoint")


def search_pick(best: dict[str, Any]) -> dict[str, Any]:
    """The search's own pick: kept under ``search_pick`` once a confirmation has run, else the record
    itself. Confirming twice starts from the same pick, never from an earlier confirmation's winner."""
    return dict(best.get("search_pick") or {k: best[k] for k in PICK_KEYS if k in best})


def confirmed_record(best: dict[str, Any], confirmation: dict[str, Any],
                     winner: dict[str, Any] | None) -> dict[str, Any]:
    """``best.json`` after a confirmation: ``search_pick`` keeps the search's own pick, and the top-level
    ``trial_id``/``config``/``searched``/``best_value`` are the confirmed winner's (``winner``; ``None``
    when the pick stayed first), so ``train --config best.json`` retrains what the confirmation chose."""
    pick = search_pick(best)
    out = {k: v for k, v in best.items() if k not in PICK_KEYS}
    out.update(pick if winner is None else winner, search_pick=pick, confirmation=confirmation)
    return out


def read_config_record(path: Path, point: str | None = None) -> dict[str, Any]:
    """A config JSON: either a flat object of hyperparameters or a record (``best.json``, a
    checkpoint's ``config.json``) whose ``config`` holds them; ``point``: the trial id of another point
    of a multi-objective ``best.json``'s front, whose config replaces the chosen one."""
    obj = read_json(path, "config file")
    if point is not None:
        front = obj.get("pareto") if isinstance(obj, dict) else None
        if front is None:
            raise OptionError(f"--point {point}: config file {path} holds no Pareto front (only a search with several "
                              "objectives writes one); drop --point.")
        _check_front(front, path, point)
        if not front:
            raise OptionError(f"--point {point}: the Pareto front in {path} is empty (no trial ran its budget); "
                              "drop --point.")
        found = [p for p in front if p.get("trial_id") == point]
        if not found:
            raise OptionError(f"--point {point}: not a point of the front in {path}; its points are "
                              f"{[p.get('trial_id') for p in front]}.")
        # The chosen point's own figures would not describe this one.
        stale = ("trial_id", "searched", "best_value", "best_epoch", "checkpoint", "mlflow")
        obj = {**{k: v for k, v in obj.items() if k not in stale}, "config": found[0]["config"], "point": point}
    if not isinstance(obj, dict):
        raise OptionError(f"config file {path} must hold a JSON object of hyperparameters; "
                          f"got {type(obj).__name__}.")
    if "config" not in obj:
        return {"config": obj}
    if not isinstance(obj["config"], dict):
        raise OptionError(f"config file {path}: 'config' must be an object of hyperparameters.")
    return obj


def _check_front(front: Any, path: Path, point: str) -> None:
    """``best.json``'s ``pareto`` as a search writes it: a list of objects, each with a ``trial_id`` and its
    ``config``. The file may have been edited by hand, so it is checked before a point is looked up."""
    fix = "restore it from the search's results (or drop --point and edit 'config' instead)."
    if not isinstance(front, list):
        raise OptionError(f"--point {point}: config file {path}: 'pareto' must be a list of points; got "
                          f"{type(front).__name__}; {fix}")
    for i, entry in enumerate(front):
        if isinstance(entry, dict) and isinstance(entry.get("trial_id"), str) and isinstance(entry.get("config"), dict):
            continue
        named = isinstance(entry, dict) and "trial_id" in entry
        which = f"entry {i} (trial {str(entry['trial_id'])[:40]})" if named else f"entry {i}"
        raise OptionError(f"--point {point}: config file {path}: 'pareto' {which} must be an object with 'trial_id' "
                          f"and 'config'; got {reprlib.repr(entry)}; {fix}")


def checkpoint_record(*, model: str, data: str, space: str | None, config: dict[str, Any], spec: Any,
                      classes: list[str], options: DataOptions, best_epoch: int, metric: str, value: float,
                      versions: dict[str, str], base: dict[str, Any] | None) -> dict[str, Any]:
    """A saved model's ``config.json``: what rebuilds the model (pair, resolved config, input spec,
    base) and its validation data (``data_options``)."""
    return {"model": model, "data": data, "space": space, "config": config,
            "spec": {"kind": spec.kind, "task": spec.task, "shapes": {k: list(v) for k, v in spec.shapes.items()},
                     "classes": classes},
            DATA_KEY: options.to_json(), "best_epoch": best_epoch, metric: value, "versions": versions,
            "base": base}
