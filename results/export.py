"""Turn a search's experiment folder into ``trials.csv`` and ``best.json`` under ``results/``.

``best`` is the trial with the highest validation macro-F1 at any epoch (its best-epoch
checkpoint is what was kept), not the last epoch's value that Ray ranks by default.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from ray.tune import ExperimentAnalysis

from results.files import read_json, write_csv, write_json
from search.tracking import trial_outcome

RESULTS_DIR = Path("results")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"--name must be letters, digits, '.', '_' or '-' (at most 100, not starting "
                         f"with a symbol); got {name!r}.")
    return name


def results_dir(space: str, name: str, root: Path = RESULTS_DIR) -> Path:
    return root / space / name


def collect_trials(experiment_path: str | Path, params: list[str]
                   ) -> tuple[pd.DataFrame, dict[str, Any], dict[str, pd.DataFrame]]:
    """One row per trial (sorted best first); per trial id, its Trial object and its epoch history."""
    analysis = ExperimentAnalysis(str(experiment_path))
    frames = analysis.trial_dataframes
    rows, trials = [], {}
    for trial in analysis.trials:
        trials[trial.trial_id] = trial
        history = frames.get(trial.trial_id)
        errored = trial.status == "ERROR"
        row: dict[str, Any] = {"trial_id": trial.trial_id, "status": trial.status,
                               "outcome": trial_outcome(trial.last_result, errored)}
        if history is not None and "val_macro_f1" in history and len(history):
            best_at = int(history["val_macro_f1"].idxmax())
            row.update(epochs=int(history["epoch"].max()), best_val_macro_f1=float(history["val_macro_f1"].max()),
                       best_epoch=int(history["epoch"].iloc[best_at]),
                       val_loss_at_best=float(history["val_loss"].iloc[best_at]),
                       train_time_s=float(history["epoch_time_s"].sum()))
        else:
            row.update(epochs=0, best_val_macro_f1=float("nan"), best_epoch=0)
        row.update({p: trial.config.get(p) for p in params})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame):
        frame = frame.sort_values("best_val_macro_f1", ascending=False, na_position="last").reset_index(drop=True)
    return frame, trials, frames


def write_results(out_dir: Path, frame: pd.DataFrame, best: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``trials.csv`` and ``best.json`` (each atomically)."""
    return write_csv(out_dir / "trials.csv", frame), write_json(out_dir / "best.json", best)


def best_record(frame: pd.DataFrame, trial: Any, *, space: str, name: str, recipe: dict[str, Any],
                searched: list[str], mlflow: dict[str, Any], data: dict[str, Any],
                versions: dict[str, str], git_commit: str) -> dict[str, Any]:
    """What ``best.json`` holds: enough to retrain the winner and to trace where it came from."""
    top = frame.iloc[0]
    return {
        "space": space, "search_name": name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": recipe, "searched": {p: trial.config[p] for p in searched},
        "best_val_macro_f1": float(top["best_val_macro_f1"]), "best_epoch": int(top["best_epoch"]),
        "trial_id": trial.trial_id, "trials": int(len(frame)),
        "mlflow": mlflow, "data": data, "versions": versions, "git_commit": git_commit,
        "checkpoint": trial.checkpoint.path if trial.checkpoint else None,
    }


def latest_search(space: str, root: Path = RESULTS_DIR) -> str:
    """The most recently written search of ``space``."""
    found = sorted((p.stat().st_mtime, p.parent.name) for p in (root / space).glob("*/best.json"))
    if not found:
        raise ValueError(f"no finished search of space {space!r} under {root / space}; run "
                         f"`spectune search --space {space}` first (or `--resume` an interrupted one).")
    return found[-1][1]


def export_best(space: str, name: str | None, out: Path, root: Path = RESULTS_DIR) -> dict[str, Any]:
    """Copy a finished search's ``best.json`` to ``out``; ``spectune train --config out`` retrains it."""
    name = check_name(name) if name else latest_search(space, root)
    src = results_dir(space, name, root) / "best.json"
    best = read_json(src, "best config") if src.exists() else None
    if best is None:
        raise ValueError(f"search {name!r} of space {space!r} has no {src}; was it interrupted? "
                         f"Continue it with `spectune search --space {space} --name {name} --resume`.")
    if Path(out).resolve() != src.resolve():
        write_json(out, best)
    return best


def copy_checkpoint(checkpoint_dir: str | None, out_dir: Path) -> Path | None:
    """Keep the best checkpoint next to ``best.json``, so results survive cleaning Ray's folder."""
    if not checkpoint_dir or not Path(checkpoint_dir).is_dir():
        return None
    dest = out_dir / "checkpoint"
    tmp = out_dir / ".checkpoint.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(checkpoint_dir, tmp)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def read_confusion(checkpoint_dir: Path) -> dict[str, Any] | None:
    path = checkpoint_dir / "val_confusion.json"
    return json.loads(path.read_text()) if path.exists() else None
