"""Atomic writes: a result file is either absent or complete, never half-written."""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd

from results.errors import OptionError


def replace_whole(path: str | Path, write: Callable[[Path], None]) -> Path:
    """``write`` a temporary file of this call's own beside ``path``, then rename it onto ``path`` (atomic
    within one folder). The name is unique per call, so that two writers of one file (a search and a
    confirmation, two threads) never write, or rename away, each other's temporary file. Not
    ``tempfile.mkstemp``: its file is private (0600), and a result file keeps the umask's mode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@contextmanager
def locked(path: str | Path, wait: bool = True) -> Iterator[int]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing, never removed) until the block ends;
    yields its descriptor. ``wait=False``: raise :class:`BlockingIOError` when another process holds it.
    The system drops the lock when its holder dies, so a killed process never leaves it held. The file
    stays: removing it would let a process that opened it before the removal lock a name nobody else sees."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        yield fd
    finally:
        os.close(fd)    # releases the lock


def write_json(path: str | Path, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"

    def write(tmp: Path) -> None:
        with tmp.open("x") as handle:      # "x": never another writer's file
            handle.write(text)

    return replace_whole(path, write)


def write_csv(path: str | Path, frame: pd.DataFrame) -> Path:
    # The temporary name hides the suffix from pandas: say the compression (mtime 0: the same bytes each time).
    compression = {"method": "gzip", "mtime": 0} if Path(path).suffix == ".gz" else None
    return replace_whole(path, lambda tmp: frame.to_csv(tmp, index=False, compression=compression))


def read_json(path: str | Path, what: str) -> Any:
    """Read a JSON file, or raise :class:`OptionError` naming the file and what it should be."""
    path = Path(path)
    if not path.is_file():
        raise OptionError(f"{what} {path} does not exist.")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise OptionError(f"{what} {path} is not valid JSON: {exc}.") from None
    except UnicodeDecodeError:
        raise OptionError(f"{what} {path} is not valid JSON: it is not UTF-8 text (a binary file?).") from None


def read_csv(path: str | Path, what: str, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a CSV file holding ``columns``, or raise :class:`OptionError` naming the file and what it should be."""
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise OptionError(f"{what} {path} does not exist.") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise OptionError(f"{what} {path} is not a readable CSV file ({exc}); restore it or delete it.") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise OptionError(f"{what} {path} lacks the columns {missing}; restore it or delete it.")
    return frame
