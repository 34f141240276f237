"""One process per run name: the driver claims ``ray_results/<name>`` before its first write and holds
it to the end, so that a Tune folder, its Optuna study and its MLflow parent run belong to one run.

The claim is an exclusive ``flock`` on ``ray_results/<name>.lock``, which holds the pid of its holder.
The system releases it when the holder ends, however it ends (``kill -9`` included): a claim is never
stale, and ``--resume`` of a killed run takes it at once.
"""

from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

from results.errors import OptionError
from results.files import locked

# ray_results/<name> + this suffix: the file a run's claim locks.
LOCK_FILE = ".lock"


def check_free(storage: Path, name: str, role: str, resume: bool) -> None:
    """Refuse, early and writing nothing, run ``name`` under ``storage`` when another process holds it or,
    for a new run (not ``resume``), when its Tune folder is there. :func:`claim_run` checks both again."""
    path = storage / f"{name}{LOCK_FILE}"
    if path.exists():
        try:
            with locked(path, wait=False):
                pass
        except BlockingIOError:
            raise _held(path, name, role, resume) from None
    if not resume:
        _check_new(storage, name, role)


@contextmanager
def claim_run(storage: Path, name: str, role: str, resume: bool) -> Iterator[None]:
    """Hold run ``name`` under ``storage`` for the block; refused as :func:`check_free` refuses (a run of
    that name may have started, or started and ended, since that check)."""
    storage.mkdir(parents=True, exist_ok=True)
    path = storage / f"{name}{LOCK_FILE}"
    with ExitStack() as held:
        try:
            fd = held.enter_context(locked(path, wait=False))
        except BlockingIOError:
            raise _held(path, name, role, resume) from None
        if not resume:
            _check_new(storage, name, role)
        os.ftruncate(fd, 0)     # a killed holder's pid may still be there
        os.write(fd, f"{os.getpid()}\n".encode())
        # Emptied on the way out, so that the next holder is never named by its predecessor's pid.
        held.callback(os.ftruncate, fd, 0)
        yield


def _check_new(storage: Path, name: str, role: str) -> None:
    experiment = storage / name
    if experiment.exists():
        raise OptionError(f"a {role} named {name!r} already exists at {experiment}; pass --resume to continue it, "
                          "or --name NEW (nothing was overwritten).")


def _held(path: Path, name: str, role: str, resume: bool) -> OptionError:
    holder = path.read_text().strip() or "unknown"
    return OptionError(f"{role} {name} is running now (pid {holder}, holding {path}); wait for it to end or stop "
                       f"it{' before --resume' if resume else ', or pass --name NEW'} (nothing was written).")
