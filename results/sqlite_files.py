"""The SQLite files a search writes (its MLflow store, its Optuna study): commits that cost no disk flush,
and whole copies.

SQLite's defaults (a rollback journal, ``synchronous=FULL``) flush the disk several times per commit:
about 17 ms here, and a one-epoch trial commits some 30 times between its MLflow run and its Optuna
trial, which was most of what such a trial cost above its training. In write-ahead-log mode with
``synchronous=NORMAL`` a commit costs about 0.1 ms. A process that is killed (``kill -9``) loses no
committed transaction; only a power loss or an OS crash can roll back the last ones, and never corrupts
the file (https://www.sqlite.org/wal.html). The log mode stays with the file, so every later reader
(``spectune ui``, optuna-dashboard) keeps it; a file on a network file system should not be used so.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


# The files given to fast_commits(), resolved.
_FAST: set[str] = set()


def _write_ahead(dbapi_connection: Any, _record: Any) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    try:
        main = cursor.execute("PRAGMA database_list").fetchone()
        if not main or not main[2] or os.path.realpath(main[2]) not in _FAST:
            return
        mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode and str(mode[0]).lower() == "wal":
            cursor.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.OperationalError:
        # A read-only file, or one another process holds in its old mode: it keeps its defaults.
        pass
    finally:
        cursor.close()


def fast_commits(path: Path) -> None:
    """From now on, connections this process opens through SQLAlchemy (MLflow's and Optuna's stores) to
    the SQLite file ``path`` run in write-ahead-log mode with ``synchronous=NORMAL`` (see the module);
    other files keep SQLite's defaults."""
    _FAST.add(os.path.realpath(path))
    if not event.contains(Engine, "connect", _write_ahead):
        event.listen(Engine, "connect", _write_ahead)


def copy_database(source: Path, target: Path) -> None:
    """``target`` becomes a whole copy of the SQLite file ``source``, what its write-ahead log holds
    included (a file copy would miss it), in the default rollback-journal mode, so that the copy is one
    self-contained file that opens read-only too."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")


def remove_database(path: Path) -> None:
    """Delete the SQLite file ``path`` with its write-ahead log and index: a log left behind would be
    replayed into a new file of that name."""
    for part in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        part.unlink(missing_ok=True)
