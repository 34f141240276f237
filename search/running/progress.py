"""Readable progress of a run of trials (a search, a recording, a confirmation): one line per finished
trial; while trials run, a status line at a steady pace (running trials at epoch n/N with their value,
trials finished, the best so far, the time spent and an estimate of the time left); at the end, a table
of the best trials."""

from __future__ import annotations

import math
import shutil
import time
from typing import Any, Callable

import pandas as pd
from ray import tune
from rich.console import Console
from rich.table import Table

from results.export import trial_outcome
from search.running.failures import CONFIGURATION, error_of, failure_of, retries_of

# Wide enough for a trial line and the final table when output goes to a file or CI log. No markup: what
# is printed holds text the toolkit does not choose (trial ids, errors, names, paths, a table's values), and
# with markup on, "[/x]" raises inside Tune's callback and "[errno 28]" vanishes from the line.
console = Console(highlight=False, markup=False, width=160)

# Seconds between status lines: a terminal redraws one line; a file or pipe (nohup, CI) gets plain lines,
# fewer of them, so that a log still shows the run is alive without drowning the trial lines.
TERMINAL_EVERY_S = 30.0
LOG_EVERY_S = 60.0
CLEAR_LINE = "\r\x1b[2K"


class ProgressPrinter(tune.Callback):
    """Prints ``[done/total] trial  outcome  epochs  <metric>  best so far`` as trials end, with the
    failure class and retries of a trial that failed or was retried, and a line per retry; ``metric``
    is the space's (``val_macro_f1``), compared by its best epoch (``best_val_macro_f1``).

    While trials run, a status line from the results Tune hands :meth:`on_trial_result` (one per epoch):
    at most one per ``every`` seconds, and only after a new epoch was reported since the last one, so
    never more than one per epoch. On a terminal (``tty``; default: whether the console is one) it
    redraws one line every 30 s; into a file or pipe it prints plain lines every 60 s. ``max_epochs`` is
    a trial's epoch budget (the N of epoch n/N); ``clock`` (seconds) is injected by tests."""

    def __init__(self, total: int, metric: str, mode: str = "max", max_epochs: int | None = None, *,
                 every: float | None = None, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.metric = metric
        self.sign = 1.0 if mode == "max" else -1.0
        self.max_epochs = max_epochs
        self.every = every
        self.tty = tty
        self.clock = clock
        self.done = 0
        self.best: float | None = None
        self.started = clock()
        self._counted = False
        self._reset_status()

    def _reset_status(self) -> None:
        """The status line's state, counted in this process: a resumed run's pace starts again."""
        self.running: dict[str, tuple[int, float | None]] = {}
        self.best_seen: tuple[float, str] | None = None
        self.epochs_seen = 0
        self.first_epoch_at: float | None = None
        self.finished_epochs: list[int] = []
        self.last_status = self.started
        self._fresh = False
        self._drawn = False

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Tune unpickles the printer a search started with; one pickled before the status line lacks its fields.
        self.__dict__.update({"max_epochs": None, "every": None, "tty": None, "clock": time.monotonic, **state})
        if "running" not in state:
            self._reset_status()

    def _is_tty(self) -> bool:
        return console.is_terminal if self.tty is None else self.tty

    def _every(self) -> float:
        if self.every is not None:
            return self.every
        return TERMINAL_EVERY_S if self._is_tty() else LOG_EVERY_S

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        # A resumed search counts on from the trials that ended before the interruption.
        if not self._counted:
            self._counted = True
            # Unpickled from Tune's saved state, the clock of another process: start the pace here.
            self.started = self.clock()
            self._reset_status()
            ended = [t for t in trials if t.status in ("TERMINATED", "ERROR")]
            self.done = len(ended)
            for t in ended:
                self._track_best((t.last_result or {}).get(f"best_{self.metric}"))
            if ended:
                best = f", best so far {self.best:.4f}" if self.best is not None else ""
                console.print(f"resumed: {len(ended)} of {self.total} trials had ended when Tune last saved the "
                              f"search{best}")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        epoch = int(result.get("epoch", 0))
        self.running[trial.trial_id] = (epoch, result.get(self.metric))
        best = result.get(f"best_{self.metric}")
        if self._better(best, self.best_seen[0] if self.best_seen else None):
            self.best_seen = (float(best), trial.trial_id)
        self.epochs_seen += 1
        self._fresh = True
        now = self.clock()
        if self.first_epoch_at is None:
            self.first_epoch_at = now
        if now - self.last_status >= self._every():
            self._status(now)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, errored=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, errored=True)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        epoch = int((trial.last_result or {}).get("epoch", 0))
        self._print(f"      {trial.trial_id:<12} {failure_of(trial)} failure ({error_of(trial)}); retry "
                    f"{retries_of(trial)} of {trial.max_failures} "
                    + (f"from its epoch {epoch} checkpoint" if epoch else "from the start"))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._clear()

    def status_line(self, now: float) -> str:
        """``running 2 (a epoch 3/20 val_macro_f1 0.6123, ...); finished 5/20; best so far 0.7012 (trial b);
        12m30s spent, about 25m left``."""
        n = f"/{self.max_epochs}" if self.max_epochs else ""
        shown = [f"{tid} epoch {epoch}{n} {self.metric} " + (f"{value:.4f}" if value is not None else "-")
                 for tid, (epoch, value) in sorted(self.running.items())]
        running = f"running {len(shown)} ({', '.join(shown[:4])}{', ...' if len(shown) > 4 else ''})" if shown \
            else "running 0"
        # The best epoch any trial reported here, or the best of the trials that ended before a resume.
        found = [b for b in (self.best_seen, (self.best, None) if self.best is not None else None) if b is not None]
        top = max(found, key=lambda b: self.sign * b[0]) if found else None
        best = ("no score yet" if top is None else f"best so far {top[0]:.4f}"
                + (f" (trial {top[1]})" if top[1] else ""))
        left = self.time_left(now)
        return (f"{running}; finished {self.done}/{self.total}; {best}; {_duration(now - self.started)} spent"
                + (f", about {_duration(left)} left" if left is not None else ""))

    def time_left(self, now: float) -> float | None:
        """Seconds left at this process's pace of epochs: the epochs the unfinished trials may still run
        (a trial's budget, or the mean epochs of the trials that ended, which early stopping cuts), over
        the epochs reported per second since the first one (Ray's start and the first trials' set-up are
        not the pace). ``None`` before the second epoch or without a budget."""
        if self.epochs_seen < 2 or self.first_epoch_at is None or now <= self.first_epoch_at \
                or not (self.max_epochs or self.finished_epochs):
            return None
        expected = (sum(self.finished_epochs) / len(self.finished_epochs) if self.finished_epochs
                    else float(self.max_epochs))
        unstarted = max(0, self.total - self.done - len(self.running))
        remaining = unstarted * expected + sum(max(expected - epoch, 0.0) for epoch, _ in self.running.values())
        return remaining / ((self.epochs_seen - 1) / (now - self.first_epoch_at))

    def _status(self, now: float) -> None:
        if not self._fresh:
            return
        self._fresh = False
        self.last_status = now
        line = self.status_line(now)
        if self._is_tty():
            width = max(20, shutil.get_terminal_size().columns - 1)
            console.file.write(CLEAR_LINE + line[:width])
            console.file.flush()
            self._drawn = True
        else:
            console.print(f"      {line}", soft_wrap=True)

    def _clear(self) -> None:
        """Take the terminal's status line away before a line of its own is printed."""
        if self._drawn:
            console.file.write(CLEAR_LINE)
            console.file.flush()
            self._drawn = False

    def _print(self, line: str) -> None:
        self._clear()
        console.print(line, soft_wrap=True)

    def _better(self, value: float | None, best: float | None) -> bool:
        """Whether ``value`` beats ``best`` (``None``: nothing yet). A NaN score is no score: were it the
        best so far, no later value would compare above it."""
        if value is None or math.isnan(value):
            return False
        return best is None or self.sign * value > self.sign * best

    def _track_best(self, value: float | None) -> None:
        if self._better(value, self.best):
            self.best = value

    def _line(self, trial: Any, errored: bool) -> None:
        self.done += 1
        last = trial.last_result or {}
        value = last.get(f"best_{self.metric}")
        self._track_best(value)
        if self.running.pop(trial.trial_id, None) is not None:
            self.finished_epochs.append(int(last.get("epoch", 0)))
        score = f"{value:.4f}" if value is not None else "  -   "
        best = f"{self.best:.4f}" if self.best is not None else "  -   "
        elapsed = self.clock() - self.started
        self._print(f"[{self.done:>3}/{self.total}] {trial.trial_id:<12} "
                    f"{trial_outcome(last, errored):<13} epochs {int(last.get('epoch', 0)):>3}  "
                    f"{self.metric} {score}  best so far {best}  ({elapsed:.0f}s)" + _failure_note(trial, errored))


def _duration(seconds: float) -> str:
    """``45s``, ``12m05s``, ``1h02m``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _failure_note(trial: Any, errored: bool) -> str:
    """What a trial's progress line adds about its failures: nothing for a trial never retried that
    did not fail."""
    failure, retries = failure_of(trial), retries_of(trial)
    spent = f"{retries} {'retry' if retries == 1 else 'retries'}"
    if errored and failure == CONFIGURATION:
        # Retried, then found to fail the same way each time: the config's failure (search.running.failures).
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
