"""Readable search progress: one line per finished trial, then a table of the best trials."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
from ray import tune
from rich.console import Console
from rich.table import Table

from results.export import trial_outcome
from search.failures import CONFIGURATION, error_of, failure_of, retries_of

# Wide enough for a trial line and the final table when output goes to a file or CI log.
console = Console(highlight=False, width=160)


class ProgressPrinter(tune.Callback):
    """Prints ``[done/total] trial  outcome  epochs  <metric>  best so far`` as trials end, with the
    failure class and retries of a trial that failed or was retried, and a line per retry; ``metric``
    is the space's (``val_macro_f1``), compared by its best epoch (``best_val_macro_f1``)."""

    def __init__(self, total: int, metric: str, mode: str = "max") -> None:
        self.total = total
        self.metric = metric
        self.sign = 1.0 if mode == "max" else -1.0
        self.done = 0
        self.best: float | None = None
        self.started = time.monotonic()
        self._counted = False

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        # A resumed search counts on from the trials that ended before the interruption.
        if not self._counted:
            self._counted = True
            ended = [t for t in trials if t.status in ("TERMINATED", "ERROR")]
            self.done = len(ended)
            for t in ended:
                self._track_best((t.last_result or {}).get(f"best_{self.metric}"))
            if ended:
                best = f", best so far {self.best:.4f}" if self.best is not None else ""
                console.print(f"resumed: {len(ended)} of {self.total} trials had ended when Tune last saved the "
                              f"search{best}")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, errored=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, errored=True)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        epoch = int((trial.last_result or {}).get("epoch", 0))
        console.print(f"      {trial.trial_id:<12} {failure_of(trial)} failure ({error_of(trial)}); retry "
                      f"{retries_of(trial)} of {trial.max_failures} "
                      + (f"from its epoch {epoch} checkpoint" if epoch else "from the start"), soft_wrap=True)

    def _track_best(self, value: float | None) -> None:
        if value is not None and (self.best is None or self.sign * value > self.sign * self.best):
            self.best = value

    def _line(self, trial: Any, errored: bool) -> None:
        self.done += 1
        last = trial.last_result or {}
        value = last.get(f"best_{self.metric}")
        self._track_best(value)
        score = f"{value:.4f}" if value is not None else "  -   "
        best = f"{self.best:.4f}" if self.best is not None else "  -   "
        elapsed = time.monotonic() - self.started
        console.print(f"[{self.done:>3}/{self.total}] {trial.trial_id:<12} "
                      f"{trial_outcome(last, errored):<13} epochs {int(last.get('epoch', 0)):>3}  "
                      f"{self.metric} {score}  best so far {best}  ({elapsed:.0f}s)" + _failure_note(trial, errored))


def _failure_note(trial: Any, errored: bool) -> str:
    """What a trial's progress line adds about its failures: nothing for a trial never retried that
    did not fail."""
    failure, retries = failure_of(trial), retries_of(trial)
    spent = f"{retries} {'retry' if retries == 1 else 'retries'}"
    if errored and failure == CONFIGURATION:
        # Retried, then found to fail the same way each time: the config's failure (search.failures).
        return "  configuration failure, " + (f"the same after {spent}" if retries else "not retried")
    if errored and failure:
        return f"  {failure} failure, after {spent}"
    return f"  after {spent} (infrastructure)" if retries else ""


def print_top(trials: pd.DataFrame, params: list[str], metric: str = "val_macro_f1", top: int = 10) -> None:
    """The top trials by the best epoch's ``metric``, with their searched hyperparameters."""
    table = Table(title=f"Top {min(top, len(trials))} of {len(trials)} trials ({metric})")
    for column in ("trial", "outcome", "epochs", f"best {metric}", "at epoch", *params):
        table.add_column(column, justify="right")
    for _, row in trials.head(top).iterrows():
        table.add_row(row["trial_id"], row["outcome"], str(row["epochs"]), _fmt(row[f"best_{metric}"]),
                      str(row["best_epoch"]), *(_fmt(row[p]) for p in params))
    console.print(table)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
