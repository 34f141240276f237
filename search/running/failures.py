"""Failed trials told apart: an infrastructure failure is retried from the trial's last checkpoint, a
configuration failure never is, and a search whose trials all fail stops (see :class:`FailureGuard`).

Ray Tune 2.60 decides a retry in one place, ``Trial.should_recover()``, from a failure count to which
every error adds one (a dead node, an OOM kill and a NaN loss alike; only a preempted node is spared,
ray PR #41285). :class:`FailureGuard` makes each trial of a run a :class:`ClassifiedTrial`, which
classifies the exception Tune hands to ``handle_error`` by its type and lets ``should_recover``
answer yes only for infrastructure, within ``FailureConfig(max_failures)``. A retried trial keeps
its id, its config and its place in the search: the searcher hears of it only when it ends, so
retries do not spend the search's trials.

A trial whose retries all fail the same way (the same exception type at the same epoch: an absurd
batch size runs out of memory wherever it runs) is the config's failure, not the machine's: once its
retries are spent it is classed as configuration. :class:`FailureGuard` stops a search when the first
``stop_after`` trials that did not fail on the machine all failed on their configuration, or when
``stop_after`` trials in a row failed on the machine after their retries, so that a search whose
trials all fail, in any mix of classes, stops with one message (:func:`stop_reason`).
"""

from __future__ import annotations

import errno
import json
import re
from pathlib import Path
from typing import Any

import torch
from ray.exceptions import RayActorError, RayError, RayTaskError, UnserializableException, UserCodeException
from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.stopper import Stopper

from results.errors import OptionError
from results.files import write_json

INFRASTRUCTURE = "infrastructure"
CONFIGURATION = "configuration"

# Raised in the trainable, yet the machine's doing, not the config's: a retry (elsewhere, or once memory
# or disk is free) can pass. Every other exception the trainable raises is its config's.
_INFRASTRUCTURE_ERRORS = (MemoryError, torch.OutOfMemoryError)
# A full disk or a failing one, seen when a checkpoint is written.
_INFRASTRUCTURE_ERRNOS = frozenset({errno.ENOSPC, errno.EIO, errno.EDQUOT})
# torch.save's zip writer turns a full disk into a RuntimeError whose message never names the errno
# ("PytorchStreamWriter failed writing file data/0: file write failed", then "unexpected pos N vs M" when
# it closes the file; "basic_ios::clear: iostream error" on /dev/full), and Ray drops __context__ when it
# pickles the trainable's exception: only these texts, in the message or Ray's traceback, tell.
_DISK_FAILED = re.compile(r"No space left on device|Disk quota exceeded|Input/output error|file write failed|"
                          r"iostream error|inline_container\.cc:\d+\] \. unexpected pos", re.IGNORECASE)
# Ray errors that carry an exception of the user's code, not one of Ray's machinery.
_USER_CODE_ERRORS = (UserCodeException, UnserializableException)
# Written into the experiment folder when the guard stops a search, so that the driver (and a later
# --resume, whose guard Tune restores from its own pickle) can tell that stop from an interruption.
STOPPED_FILE = "spectune_stopped.json"


def failure_class(error: BaseException | None) -> str:
    """``infrastructure`` or ``configuration``, from the exception Tune recorded: a ``RayTaskError`` is
    judged by the trainable's own exception (its ``cause``); any other Ray error (a dead worker or node,
    a full object store or disk, a task that cannot be scheduled, a failed RPC) is infrastructure; so is
    running out of memory, and an ``OSError`` or ``RuntimeError`` that a full or failing disk caused
    (an ``ENOSPC``/``EIO``/``EDQUOT`` ``OSError`` in its chain, or a disk's message in it or in Ray's
    traceback, as ``torch.save`` gives)."""
    tracebacks = []
    while isinstance(error, RayTaskError):
        # str() holds the traceback Ray formatted in the worker (a dual RayTaskError(X) has no traceback_str).
        tracebacks.append(str(error))
        error = error.cause
    if isinstance(error, RayActorError):
        # An actor whose constructor raised would raise again; one that died was killed.
        return CONFIGURATION if error.actor_init_failed else INFRASTRUCTURE
    if isinstance(error, RayError):
        return CONFIGURATION if isinstance(error, _USER_CODE_ERRORS) else INFRASTRUCTURE
    if isinstance(error, _INFRASTRUCTURE_ERRORS):
        return INFRASTRUCTURE
    chain = _chain(error)
    if any(isinstance(e, OSError) and e.errno in _INFRASTRUCTURE_ERRNOS for e in chain):
        return INFRASTRUCTURE
    if isinstance(error, (OSError, RuntimeError)) and any(
            _DISK_FAILED.search(text) for text in [*map(str, chain), *tracebacks]):
        return INFRASTRUCTURE
    return CONFIGURATION


def _chain(error: BaseException | None) -> list[BaseException]:
    """``error`` and the exceptions it was raised from or while handling (each once)."""
    chain: list[BaseException] = []
    while error is not None and all(error is not e for e in chain):
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


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


def _way(error: BaseException | None, epoch: int) -> str:
    """How a failure happened, to compare a trial's retries: the exception type, and the epoch reached."""
    while isinstance(error, RayTaskError):
        error = error.cause
    return f"{type(error).__name__}@{epoch}"


class ClassifiedTrial(Trial):
    """A Tune trial that records the class of each failure and is retried only after an
    infrastructure failure, at most ``max_failures`` times (Tune's own count and checkpoint restore).
    When the last retry fails as every earlier try did (:func:`_way`), the failure follows the config
    and is recorded as configuration."""

    def handle_error(self, exc: BaseException | None = None) -> None:
        super().handle_error(exc)
        failure, error = failure_class(exc), describe_error(exc)
        # run_metadata, not last_result: the property asks Ray for a default result when none came.
        epoch = int(self.run_metadata.last_result.get("epoch", 0) or 0)
        way, tries = _way(exc, epoch), self.run_metadata.num_failures
        first = tries <= 1 or getattr(self, "spectune_way", "") == ""
        same = failure == INFRASTRUCTURE and (first or (getattr(self, "spectune_same", False)
                                                        and way == getattr(self, "spectune_way", "")))
        if same and tries > 1 and not super().should_recover():
            failure = CONFIGURATION
            error = f"{error} (the same at epoch {epoch} on every retry, so it follows the config)"
        _record(self, failure=failure, error=error, way=way if first else getattr(self, "spectune_way"), same=same)

    def should_recover(self) -> bool:
        return failure_of(self) == INFRASTRUCTURE and super().should_recover()


class FailureGuard(Callback, Stopper):
    """The failure policy of one Tune run, passed as a callback (first, so that the others see the
    retry counted) and as the run's stopper.

    Every trial becomes a :class:`ClassifiedTrial` before it can fail; retries are counted on the trial.
    The run stops before starting another trial (``stop_after`` 0: never) when

    - the first ``stop_after`` trials that did not fail on the machine all failed on their configuration
      (a trial that completes first shows the pair can train, and ends this count; infrastructure
      failures are skipped, not a reason to stop counting), or
    - ``stop_after`` trials in a row failed on the machine after their retries (at any time: a machine
      can break in the middle of a search).

    What stopped it, the last error and the trials the stop cuts short are written to ``STOPPED_FILE``
    in ``experiment``. The counts are saved with Tune's experiment state (``get_state``), so a resumed
    run counts on instead of from zero."""

    def __init__(self, stop_after: int = 0, experiment: Path | None = None) -> None:
        self.stop_after = stop_after
        self.experiment = experiment
        self.failed_at_start = 0         # configuration failures before any trial completed
        self.armed = stop_after > 0      # no trial completed yet
        self.infra_at_start = 0          # infrastructure failures skipped while armed, for the message
        self.infra_in_row = 0            # trials in a row that failed on the machine after their retries
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
        self.infra_in_row = 0

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        if self.stopped or self.stop_after <= 0:
            return
        failure = failure_of(trial)
        if failure == INFRASTRUCTURE:
            self.infra_in_row += 1
            self.infra_at_start += self.armed
            if self.infra_in_row >= self.stop_after:
                self._stop(trials, trial, {"failure": INFRASTRUCTURE, "failed": self.infra_in_row,
                                           "retries": retries_of(trial)})
            return
        if failure != CONFIGURATION:
            return
        # The machine ran this trial to its own end: the failures in a row are broken.
        self.infra_in_row = 0
        if not self.armed:
            return
        self.failed_at_start += 1
        if self.failed_at_start >= self.stop_after:
            self.armed = False
            self._stop(trials, trial, {"failure": CONFIGURATION, "failed": self.failed_at_start,
                                       "infrastructure": self.infra_at_start})

    def _stop(self, trials: list[Trial], trial: Trial, record: dict[str, Any]) -> None:
        self.stopped = True
        if self.experiment is not None:
            # Trials still live are stopped with partial results: not to be taken for completed ones.
            cut = [t.trial_id for t in trials if t is not trial and t.status not in (Trial.TERMINATED, Trial.ERROR)]
            # Whole or not at all: the driver reads it the moment the run returns.
            write_json(self.experiment / STOPPED_FILE, {**record, "last_error": error_of(trial), "cut": cut})

    def get_state(self) -> dict[str, Any]:
        """What Tune saves with its experiment state: the guard itself is pickled only once, at the start
        (in ``tuner.pkl``), so without this a resumed run would count its first trials again."""
        return {"armed": self.armed, "failed_at_start": self.failed_at_start, "stopped": self.stopped,
                "infra_at_start": self.infra_at_start, "infra_in_row": self.infra_in_row}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state`'s counts (Tune calls it when a run is restored; a state saved before
        the infrastructure counts existed restores them as zero)."""
        self.armed, self.failed_at_start, self.stopped = state["armed"], state["failed_at_start"], state["stopped"]
        self.infra_at_start, self.infra_in_row = state.get("infra_at_start", 0), state.get("infra_in_row", 0)

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


def stop_reason(stopped: dict[str, Any]) -> str:
    """Why :class:`FailureGuard` stopped, as a clause for one line, from what it wrote (a file written
    before the guard told classes apart is a configuration stop)."""
    failed, last = stopped["failed"], stopped.get("last_error", "")
    if stopped.get("failure") == INFRASTRUCTURE:
        retries = stopped.get("retries", 0)
        return (f"{failed} trials in a row failed on the machine after {retries} "
                f"{'retry' if retries == 1 else 'retries'} each (the last: {last}), so the machine, not the configs, "
                "is failing")
    skipped = stopped.get("infrastructure", 0)
    if skipped:
        return (f"its first {failed} trials that the machine did not fail all failed on their configuration (and "
                f"{skipped} failed on the machine; the last: {last}), so the pair or its space is broken, not unlucky")
    return (f"its first {failed} trials all failed on their configuration (the last: {last}), so the pair or its "
            "space is broken, not unlucky")
