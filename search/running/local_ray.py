"""The local Ray a search starts, written down in a session file so that a later ``--resume`` can stop what a killed
search left running, and only that.

A search that started its own Ray writes ``ray_results/<name>.ray.json`` (its host, its driver's pid and
start time, and Ray's session folder) and removes it when Ray shuts down. A session file still there
means the driver never reached its shutdown: it was killed (``kill -9``, an out-of-memory kill, a
closed terminal). Ray's processes carry their session folder in their arguments or open log
files; processes of other searches, or of a shared cluster, name another session folder.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import psutil

from results.errors import OptionError
from results.files import replace_whole

# ray_results/<name> + this suffix: the session file of a search's own local Ray.
SESSION_FILE = ".ray.json"


class SearchStillRunning(OptionError):
    """The search to resume still has a live driver."""


@dataclass(frozen=True)
class SessionFile:
    driver_pid: int
    driver_started: float
    session_dir: str
    host: str

    @classmethod
    def read(cls, path: Path) -> SessionFile:
        return cls(**json.loads(Path(path).read_text()))

    def driver_alive(self) -> bool:
        """Whether the recorded driver still runs (the same pid *and* start time: pids are reused)."""
        try:
            return abs(psutil.Process(self.driver_pid).create_time() - self.driver_started) < 1.0
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False


def start_local_ray(session_file: Path) -> None:
    """``ray.init`` a local Ray for this search and write its session folder to ``session_file``."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    context = ray.init(log_to_driver=False, logging_level=logging.ERROR, include_dashboard=False)
    me = psutil.Process()
    entry = SessionFile(driver_pid=me.pid, driver_started=me.create_time(),
                          session_dir=context.address_info["session_dir"], host=socket.gethostname())
    replace_whole(session_file, lambda tmp: tmp.write_text(json.dumps(entry.__dict__)))


def stop_local_ray(session_file: Path) -> None:
    """Shut the search's own Ray down; the session file goes with it."""
    import ray

    ray.shutdown()
    session_file.unlink(missing_ok=True)


def session_processes(session_dir: str) -> list[psutil.Process]:
    """This user's processes that belong to Ray session ``session_dir`` (by their arguments or
    their open files), this process excepted."""
    session_dir = session_dir.rstrip("/")
    prefix = session_dir + "/"

    def names(arg: str) -> bool:
        # The folder itself or a path inside it, never a sibling whose name merely starts the same.
        return arg == session_dir or arg.endswith("=" + session_dir) or prefix in arg

    found = []
    for proc in psutil.process_iter(["pid", "uids", "cmdline"]):
        try:
            if proc.pid == os.getpid() or proc.info["uids"] is None or proc.info["uids"].real != os.getuid():
                continue
            if any(names(a) for a in proc.info["cmdline"] or []) or any(
                    f.path.startswith(prefix) for f in proc.open_files()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def clean_dead_session(session_file: Path, name: str, grace_s: float = 5.0) -> list[str]:
    """Stop the Ray processes that a killed search ``name`` left behind and drop its session file.

    Returns what was stopped (``"pid name"`` per process). Raises :class:`SearchStillRunning` when
    the search's driver is alive: resuming it would run two drivers on one experiment. A session file
    written on another machine (``ray_results`` on shared storage) is left alone."""
    if not session_file.exists():
        return []
    try:
        entry = SessionFile.read(session_file)
    except (ValueError, TypeError, KeyError):
        # A session file cut short while being written names no session; nothing can be matched to it.
        session_file.unlink(missing_ok=True)
        return []
    if entry.host != socket.gethostname():
        # ray_results on shared storage: another machine's processes are not ours to judge or stop.
        return []
    if entry.driver_alive():
        raise SearchStillRunning(
            f"search {name} is still running (driver pid {entry.driver_pid}); stop it (Ctrl+C, or kill "
            f"{entry.driver_pid}) before --resume, or wait for it to finish.")
    stopped = stop_processes(session_processes(entry.session_dir), grace_s)
    session_file.unlink(missing_ok=True)
    return stopped


def stop_processes(procs: list[psutil.Process], grace_s: float = 5.0) -> list[str]:
    """Terminate ``procs`` and kill those still alive after ``grace_s``; returns ``"pid name"`` per process."""
    stopped = []
    for proc in procs:
        try:
            stopped.append(f"{proc.pid} {proc.name()}")
            proc.terminate()
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=grace_s)
    return stopped
