"""The search's SQLite files: the MLflow store and the Optuna study commit in write-ahead-log mode (no disk
flush per commit), other files keep SQLite's defaults, and a study kept beside the results is one whole,
self-contained file even while the search's own copy still holds rows in its log."""

from __future__ import annotations

import sqlite3
from contextlib import closing

from sqlalchemy import create_engine, text

from results.sqlite_files import copy_database, fast_commits


def _mode(path) -> str:
    with closing(sqlite3.connect(path)) as c:
        return c.execute("PRAGMA journal_mode").fetchone()[0]


def test_only_the_files_named_commit_in_write_ahead_log_mode(tmp_path):
    fast, plain = tmp_path / "fast.db", tmp_path / "plain.db"
    fast_commits(fast)
    for path in (fast, plain):
        engine = create_engine(f"sqlite:///{path}")
        with engine.connect() as c:
            c.execute(text("CREATE TABLE t (a INTEGER)"))
            assert c.execute(text("PRAGMA synchronous")).scalar() == (1 if path == fast else 2)  # NORMAL / FULL
            c.commit()
        engine.dispose()
    assert _mode(fast) == "wal" and _mode(plain) == "delete"


def test_a_copy_holds_what_the_log_holds_and_stands_alone(tmp_path):
    source, copy = tmp_path / "study.db", tmp_path / "results" / "study.db"
    copy.parent.mkdir()
    fast_commits(source)
    engine = create_engine(f"sqlite:///{source}")
    with engine.connect() as c:
        c.execute(text("CREATE TABLE t (a INTEGER)"))
        c.execute(text("INSERT INTO t VALUES (1), (2), (3)"))
        c.commit()
        # The search still holds the file open: its rows are in the log, not yet in the file (a plain file
        # copy of it has no table t).
        assert (tmp_path / "study.db-wal").stat().st_size > 0
        copy_database(source, copy)
    engine.dispose()
    with closing(sqlite3.connect(f"file:{copy}?mode=ro", uri=True)) as c:
        assert c.execute("SELECT count(*) FROM t").fetchone()[0] == 3
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert not (tmp_path / "results" / "study.db-wal").exists()


def test_a_removed_study_takes_its_log_along(tmp_path):
    """A new search removes the study file a killed one left: its log goes too, or SQLite would replay
    the old search's rows into the new file."""
    from results.sqlite_files import remove_database

    study = tmp_path / "s.study.db"
    fast_commits(study)
    engine = create_engine(f"sqlite:///{study}")
    with engine.connect() as c:
        c.execute(text("CREATE TABLE old (a INTEGER)"))
        c.commit()
        remove_database(study)
        assert not any(tmp_path.iterdir())
    engine.dispose()
