"""A two-node Ray cluster on this machine with token authentication (a head and a worker, one CPU each,
on loopback ports picked free), joined by ``spectune search --address`` as docs/cluster.md says: with
the head's token a tiny search runs on both nodes; without it, or at an address where nothing listens,
the search is refused in one line (exit 2) before it reads its data.

The searches run in processes of their own: the test session's Ray (``ray_session``, without
authentication) may already be connected in this process, and a driver joins one cluster only."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from search.cli import main as cli_main
from search.running.local_ray import session_processes, stop_processes
from trainables.data.ztf_synthetic import write_synthetic

ROOT = Path(__file__).resolve().parents[1]
# Every variable that decides how a process talks to Ray, cleared so that each process gets only its own.
RAY_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_start(env: dict[str, str], *args: str) -> None:
    """``ray start`` with one CPU and a free agent port (two nodes share this machine's ports)."""
    done = subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "start", "--num-cpus=1", "--disable-usage-stats",
                           f"--dashboard-agent-listen-port={_free_port()}", *args],
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def cluster():
    """A head and a worker started with one token; yields the address, the environment every process of
    the cluster shares (without Ray's variables), and the token. Their processes are stopped, by pid,
    whatever happens: a bare ``ray stop`` would stop every Ray of this user on the machine."""
    # A short folder of its own: Ray's socket paths must stay under 108 characters, and its processes are
    # found (and only they are stopped) by this folder in their arguments or open files.
    root = Path(tempfile.mkdtemp(prefix="spt-", dir="/tmp"))
    token = secrets.token_hex(32)
    base = {k: v for k, v in os.environ.items() if k not in RAY_VARS}
    base.update(HOME=str(root / "home"), RAY_TMPDIR=str(root / "ray"),
                PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    authed = {**base, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    port = _free_port()
    try:
        _ray_start(authed, "--head", f"--port={port}", "--include-dashboard=false")
        _ray_start(authed, f"--address=127.0.0.1:{port}")
        yield f"127.0.0.1:{port}", base, token
    finally:
        stop_processes(session_processes(str(root)))
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("cluster") / "data"
    write_synthetic(data, seed=1, n_train=8, n_val=4, n_test=4, n_points=256)
    return data


def _search(cwd: Path, env: dict[str, str], data: Path, *args: str) -> subprocess.CompletedProcess:
    """``spectune search`` of galspecnet, two trials of one epoch, in a process of its own."""
    return subprocess.run([sys.executable, "-m", "search.cli", "search", "--space", "galspecnet", "--trials", "2",
                           "--max-epochs", "1", "--data", str(data), "--tracking-uri",
                           f"sqlite:///{cwd / 'mlflow.db'}", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=420)


def test_a_search_with_the_heads_token_runs_on_both_nodes(cluster, tiny, tmp_path):
    address, base, token = cluster
    env = {**base, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    done = _search(tmp_path, env, tiny, "--address", address, "--name", "joined")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"joining the Ray cluster at {address}" in done.stdout
    # One CPU per node: two CPUs means the worker node is part of the cluster the search ran on.
    assert "cluster 2 CPUs" in done.stdout, done.stdout
    out = tmp_path / "results" / "galspecnet" / "joined"
    trials = pd.read_csv(out / "trials.csv")
    best = json.loads((out / "best.json").read_text())
    assert len(trials) == 2 and set(trials["outcome"]) == {"completed"}
    assert best["trial_id"] in set(trials["trial_id"]) and best["config"]["epochs"] == 1


@pytest.mark.parametrize("given", [{}, {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}],
                         ids=["no token", "a wrong token"])
def test_a_search_without_the_heads_token_is_refused_in_one_line(cluster, tiny, tmp_path, given):
    address, base, _ = cluster
    done = _search(tmp_path, {**base, **given, "RAY_ADDRESS": address}, tiny, "--name", "refused")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith(f"error: the Ray cluster at {address} ")
    assert "RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=<the head's token>" in done.stderr
    # Refused before anything started: no Ray session, no MLflow store, no results.
    assert "joining" not in done.stdout and not (tmp_path / "mlflow.db").exists()
    assert not (tmp_path / "results").exists() and not (tmp_path / "ray_results").exists()


def test_a_search_at_an_address_where_nothing_listens_is_refused_in_one_line(tiny, tmp_path, capsys, monkeypatch):
    # Nothing here talks to Ray (the port is closed), so this one runs in the test's own process.
    address = f"127.0.0.1:{_free_port()}"
    monkeypatch.chdir(tmp_path)
    assert cli_main(["search", "--space", "galspecnet", "--data", str(tiny), "--address", address]) == 2
    assert capsys.readouterr().err == (
        f"error: no Ray cluster answers at {address} (connection refused): start its head there with "
        f"`ray start --head --port={address.split(':')[1]}`, or give the head's HOST:PORT with --address or "
        "RAY_ADDRESS.\n")
    assert not list(tmp_path.iterdir())
