"""What a search does about the local Ray of a killed search: stops that session's processes and
only those, and refuses to resume a search whose driver still runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from search.running.local_ray import SearchStillRunning, clean_dead_session, session_processes

SLEEP = "import sys, time; time.sleep(120)"
HOLD = "import os, time; f = open(os.environ['LOG'], 'a'); time.sleep(120)"


def _spawn(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    # A new session, as Ray's workers are: nothing ties them to the test's process group.
    return subprocess.Popen([sys.executable, "-c", code, *args], env={**os.environ, **(env or {})},
                            start_new_session=True)


def _session_file(path: Path, pid: int, started: float, session: Path, host: str | None = None) -> Path:
    path.write_text(json.dumps({"driver_pid": pid, "driver_started": started, "session_dir": str(session),
                                "host": host or socket.gethostname()}))
    return path


def _wait_for(condition, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture()
def sessions(tmp_path):
    dead, other = tmp_path / "session_1", tmp_path / "session_10"  # one's name starts the other's
    for s in (dead, other):
        (s / "logs").mkdir(parents=True)
    procs = {
        "by_args": _spawn(SLEEP, f"--session-dir={dead}"),
        "by_log": _spawn(HOLD, env={"LOG": str(dead / "logs" / "worker.out")}),
        "other_args": _spawn(SLEEP, f"--session-dir={other}"),
        "other_log": _spawn(HOLD, env={"LOG": str(other / "logs" / "worker.out")}),
    }
    _wait_for(lambda: len(session_processes(str(dead))) == 2 and len(session_processes(str(other))) == 2)
    yield dead, other, procs
    for p in procs.values():
        p.kill()
        p.wait()


def test_a_dead_searchs_processes_are_stopped_and_no_other(sessions, tmp_path):
    dead, other, procs = sessions
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(gone.pid).create_time()
    gone.wait()
    session_file = _session_file(tmp_path / "cut.ray.json", gone.pid, started, dead)

    stopped = clean_dead_session(session_file, "cut")

    assert sorted(int(s.split()[0]) for s in stopped) == sorted([procs["by_args"].pid, procs["by_log"].pid])
    _wait_for(lambda: procs["by_args"].poll() is not None and procs["by_log"].poll() is not None)
    assert procs["by_args"].poll() is not None and procs["by_log"].poll() is not None
    assert procs["other_args"].poll() is None and procs["other_log"].poll() is None
    assert not session_file.exists() and session_processes(str(dead)) == []


def test_resuming_a_search_whose_driver_still_runs_is_refused(sessions, tmp_path):
    dead, other, procs = sessions
    me = psutil.Process()
    session_file = _session_file(tmp_path / "live.ray.json", me.pid, me.create_time(), dead)

    with pytest.raises(SearchStillRunning, match=rf"search live is still running \(driver pid {me.pid}\)"):
        clean_dead_session(session_file, "live")
    assert session_file.exists() and all(p.poll() is None for p in procs.values())


def test_a_reused_pid_is_not_mistaken_for_the_driver(sessions, tmp_path):
    """The session file names the driver by pid and start time: a new process with the old pid is not it."""
    dead, other, procs = sessions
    me = psutil.Process()
    session_file = _session_file(tmp_path / "cut.ray.json", me.pid, me.create_time() - 3600, dead)
    assert len(clean_dead_session(session_file, "cut")) == 2
    assert procs["other_args"].poll() is None and procs["other_log"].poll() is None


def test_a_session_file_from_another_machine_is_left_alone(sessions, tmp_path):
    """ray_results on shared storage: a pid on another host says nothing about this one."""
    dead, other, procs = sessions
    session_file = _session_file(tmp_path / "far.ray.json", 1, 0.0, dead, host="another-node")
    assert clean_dead_session(session_file, "far") == [] and session_file.exists()
    assert all(p.poll() is None for p in procs.values())
