"""Failed trials told apart: an infrastructure failure is retried from the trial's last checkpoint, a
configuration failure never is, and a search whose first trials all fail on their configuration stops.

Ray Tune 2.60 decides a retry in one place, ``Trial.should_recover()``, from a failure count to which
every error adds one (a dead node, an OOM kill and a NaN loss alike; only a preempted node is spared,
ray PR #41285). :class:`FailureGuard` makes each trial of a run a :class:`ClassifiedTrial`, which
classifies the exception Tune hands to ``handle_error`` by its type and lets ``should_recover``
answer yes only for infrastructure, within ``FailureConfig(max_failures)``. A retried trial keeps
its id, its config and its place in the search: the searcher hears of it only when it ends, so
retries do not spend the search's trials.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import torch
from ray.exceptions import RayActorError, RayError, RayTaskError, UnserializableException, UserCodeException
from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.stopper import Stopper

from results.files import write_json
from results.errors import OptionError

INFRASTRUCTURE = "infrastructure"
CONFIGURATION = "configuration"

# Raised in the trainable, yet the machine's doing, not the config's: a retry (elsewhere, or once memory
# or disk is free) can pass. Every other exception the trainable raises is its config's.
_INFRASTRUCTURE_ERRORS = (MemoryError, torch.OutOfMemoryError)
# A full disk or a failing one, seen when a checkpoint is written.
_INFRASTRUCTURE_ERRNOS = frozenset({errno.ENOSPC, errno.EIO})
# Ray errors that carry an exception of the user's code, not one of Ray's machinery.
_USER_CODE_ERRORS = (UserCodeException, UnserializableException)
# Written into the experiment folder when the guard stops a search, so that the driver (and a later
# --resume, whose guard Tune restores from its own pickle) can tell that stop from an interruption.
STOPPED_FILE = "spectune_stopped.json"


def failure_class(error: BaseException | None) -> str:
    """``infrastructure`` or ``configuration``, from the type of the exception Tune recorded: a
    ``RayTaskError`` is judged by the trainable's own exception (its ``cause``); any other Ray error
    (a dead worker or node, a full object store or disk, a task that cannot be scheduled, a failed
    RPC) is infrastructure."""
    while isinstance(error, RayTaskError):
        error = error.cause
    if isinstance(error, RayActorError):
        # An actor whose constructor raised would raise again; one that died was killed.
        return CONFIGURATION if error.actor_init_failed else INFRASTRUCTURE
    if isinstance(error, RayError):
        return CONFIGURATION if isinstance(error, _USER_CODE_ERRORS) else INFRASTRUCTURE
    if isinstance(error, OSError) and error.errno in _INFRASTRUCTURE_ERRNOS:
        return INFRASTRUCTURE
    return INFRASTRUCTURE if isinstance(error, _INFRASTRUCTURE_ERRORS) else CONFIGURATION


def describe_error(error: BaseException | None) -> str:
    """``Type: first line of the message``, for a progress line, a tag or a one-line error."""
    while isinstance(error, RayTaskError):
        error = error.cause
    if error is None:
        return "unknown error"
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__


def failure_of(trial: Any) -> str:
    """The class of the trial's last failure, ``""`` if it never failed (read from the trial's saved
    state too, so it works on the trials of a finished experiment)."""
    return getattr(trial, "spectune_failure", "")


def error_of(trial: Any) -> str:
    """:func:`describe_error` of the trial's last failure, ``""`` if it never failed."""
    return getattr(trial, "spectune_error", "")


def retries_of(trial: Any) -> int:
    """How many times the trial was retried after an infrastructure failure."""
    return int(getattr(trial, "spectune_retries", 0))


def _record(trial: Trial, **fields: Any) -> None:
    # Attributes of a Trial are saved with Tune's experiment state: they survive --resume and are
    # there for ExperimentAnalysis once the search is over.
    for key, value in fields.items():
        setattr(trial, f"spectune_{key}", value)
    trial.invalidate_json_state()


class ClassifiedTrial(Trial):
    """A Tune trial that records the class of each failure and is retried only after an
    infrastructure failure, at most ``max_failures`` times (Tune's own count and checkpoint restore)."""

    def handle_error(self, exc: BaseException | None = None) -> None:
        super().handle_error(exc)
        _record(self, failure=failure_class(exc), error=describe_error(exc))

    def should_recover(self) -> bool:
        return failure_of(self) == INFRASTRUCTURE and super().should_recover()


class FailureGuard(Callback, Stopper):
    """The failure policy of one Tune run, passed as a callback (first, so that the others see the
    retry counted) and as the run's stopper.

    Every trial becomes a :class:`ClassifiedTrial` before it can fail; retries are counted on the trial.
    When the first ``stop_after`` trials to end all failed on their configuration (0: never), the
    run stops before starting another trial, and the last error and the trials the stop cuts short are
    written to ``STOPPED_FILE`` in ``experiment``. Its count is saved with Tune's experiment state
    (``get_state``), so a resumed run counts on instead of from zero."""

    def __init__(self, stop_after: int = 0, experiment: Path | None = None) -> None:
        self.stop_after = stop_after
        self.experiment = experiment
        self.failed_at_start = 0
        self.armed = stop_after > 0
        self.stopped = False

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        # Also after --resume, where Tune rebuilds its trials as plain Trials.
        for trial in trials:
            _classify(trial)

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        # A trial created in this step that reuses a cached actor starts before the next step begins.
        _classify(trial)

    def on_trial_recover(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        _record(trial, retries=retries_of(trial) + 1)

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self.armed = False

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        if not self.armed:
            return
        if failure_of(trial) != CONFIGURATION:
            self.armed = False
            return
        self.failed_at_start += 1
        if self.failed_at_start >= self.stop_after:
            self.armed, self.stopped = False, True
            if self.experiment is not None:
                # Trials still live are stopped with partial results: not to be taken for completed ones.
                cut = [t.trial_id for t in trials if t is not trial and t.status not in (Trial.TERMINATED, Trial.ERROR)]
                # Whole or not at all: the driver reads it the moment the run returns.
                write_json(self.experiment / STOPPED_FILE,
                           {"failed": self.failed_at_start, "last_error": error_of(trial), "cut": cut})

    def get_state(self) -> dict[str, Any]:
        """What Tune saves with its experiment state: the guard itself is pickled only once, at the start
        (in ``tuner.pkl``), so without this a resumed run would count its first trials again."""
        return {"armed": self.armed, "failed_at_start": self.failed_at_start, "stopped": self.stopped}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state`'s counts (Tune calls it when a run is restored)."""
        self.armed, self.failed_at_start, self.stopped = state["armed"], state["failed_at_start"], state["stopped"]

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.stopped


def _classify(trial: Trial) -> None:
    if type(trial) is Trial:
        trial.__class__ = ClassifiedTrial


def stopped_search(experiment: Path) -> dict[str, Any] | None:
    """What :class:`FailureGuard` wrote when it stopped the search in ``experiment``, else ``None``."""
    path = Path(experiment) / STOPPED_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        # The guard writes it whole, so something else cut it: which trials the stop cut short is lost.
        raise OptionError(f"{path}: not valid JSON ({exc}); it records why the failure guard stopped this search. "
                          "Delete it to read the search as not stopped (trials the stop cut short then count as "
                          "they stand).") from None
