"""Readable search progress: one line per finished trial, then a table of the best trials."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
from ray import tune
from rich.console import Console
from rich.table import Table

from search.tracking import trial_outcome

# Wide enough for a trial line and the final table when output goes to a file or CI log.
console = Console(highlight=False, width=160)


class ProgressPrinter(tune.Callback):
    """Prints ``[done/total] trial  outcome  epochs  val macro-F1  best so far`` as trials end."""

    def __init__(self, total: int, metric: str) -> None:
        self.total = total
        self.metric = metric
        self.done = 0
        self.best = float("-inf")
        self.started = time.monotonic()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, errored=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, errored=True)

    def _line(self, trial: Any, errored: bool) -> None:
        self.done += 1
        last = trial.last_result or {}
        value = last.get(self.metric)
        if value is not None and value > self.best:
            self.best = value
        score = f"{value:.4f}" if value is not None else "  -   "
        best = f"{self.best:.4f}" if self.best > float("-inf") else "  -   "
        elapsed = time.monotonic() - self.started
        console.print(f"[{self.done:>3}/{self.total}] {trial.trial_id:<12} "
                      f"{trial_outcome(last, errored):<13} epochs {int(last.get('epoch', 0)):>3}  "
                      f"val macro-F1 {score}  best so far {best}  ({elapsed:.0f}s)")


def print_top(trials: pd.DataFrame, params: list[str], top: int = 10) -> None:
    """The top trials by best validation macro-F1, with their searched hyperparameters."""
    table = Table(title=f"Top {min(top, len(trials))} of {len(trials)} trials (validation macro-F1)")
    for column in ("trial", "outcome", "epochs", "best F1", "at epoch", *params):
        table.add_column(column, justify="right")
    for _, row in trials.head(top).iterrows():
        table.add_row(row["trial_id"], row["outcome"], str(row["epochs"]), _fmt(row["best_val_macro_f1"]),
                      str(row["best_epoch"]), *(_fmt(row[p]) for p in params))
    console.print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if pd.isna(value) else f"{value:.4g}"
    return str(value)
