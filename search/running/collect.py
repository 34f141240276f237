"""Read a finished (or interrupted) search's trials from Tune's experiment folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from ray.tune import ExperimentAnalysis

from results.export import trial_outcome
from results.pareto import SIZE_OBJECTIVES
from search.running.failures import failure_of, retries_of

# The best epoch's scores kept beside the selection metric, those of them that the trial's task reports.
AT_BEST = ("val_macro_f1", "val_loss", "val_rmse", "val_mae", "val_r2")


def collect_trials(experiment_path: str | Path, params: list[str], metric: str = "val_macro_f1", mode: str = "max"
                   ) -> tuple[pd.DataFrame, dict[str, Any], dict[str, pd.DataFrame]]:
    """One row per trial, sorted best first by ``best_<metric>`` (the best epoch's value; of tied trials,
    the one that started first, as a replay picks), with the class of its last failure (``failure``,
    empty if none) and its ``retries``; per trial id, its Trial object and its epoch history."""
    analysis = ExperimentAnalysis(str(experiment_path))
    frames = analysis.trial_dataframes
    best_col = f"best_{metric}"
    rows, trials = [], {}
    for trial in analysis.trials:
        trials[trial.trial_id] = trial
        history = frames.get(trial.trial_id)
        errored = trial.status == "ERROR"
        row: dict[str, Any] = {"trial_id": trial.trial_id, "status": trial.status,
                               "outcome": trial_outcome(trial.last_result, errored),
                               "failure": failure_of(trial), "retries": retries_of(trial)}
        if history is not None and metric in history and len(history):
            values = history[metric]
            best_at = int(values.idxmax() if mode == "max" else values.idxmin())
            row.update({"epochs": int(history["epoch"].max()), best_col: float(values.iloc[best_at]),
                        "best_epoch": int(history["epoch"].iloc[best_at]),
                        **{f"{m}_at_best": float(history[m].iloc[best_at]) for m in AT_BEST if m in history},
                        "train_time_s": float(history["epoch_time_s"].sum()),
                        # When the trial's first epoch began: the order trials started in.
                        "started_at": float(history["reported_at"].iloc[0] - history["epoch_time_s"].iloc[0])
                        if "reported_at" in history else float("nan")})
        else:
            row.update({"epochs": 0, best_col: float("nan"), "best_epoch": 0})
        row.update({p: trial.config.get(p) for p in params})
        last = trial.last_result or {}
        row.update({k: last[k] for k in SIZE_OBJECTIVES if k in last})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame):
        # Macro-F1 on a small validation split ties often: a stable sort after the start order makes
        # the pick the earliest of the tied trials instead of whichever Ray listed first.
        if "started_at" in frame:
            frame = frame.sort_values("started_at", kind="stable", na_position="last")
        frame = frame.sort_values(best_col, ascending=mode == "min", na_position="last", kind="stable")
        frame = frame.reset_index(drop=True)
    return frame, trials, frames
