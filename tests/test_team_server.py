"""The team setup the docs describe: an MLflow server on a PostgreSQL store (`spectune[server]` brings
the psycopg2 driver), here on loopback with a throwaway cluster: the tracking client's parent and
nested child runs round-trip through it, and a tiny real search records its runs there.

Needs Debian's PostgreSQL server binaries (package postgresql: initdb, postgres); skipped where they
are absent. The driver is part of the test extra, so a missing psycopg2 fails here instead of skipping.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psycopg2  # spectune[server]; in the test extra, so its absence is a failure
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

HOST = "127.0.0.1"
DB_USER = "spectune"
DB_NAME = "mlflow"
SKIP_NO_POSTGRES = ("PostgreSQL server binaries not installed (Debian package postgresql: initdb and postgres, "
                    "on PATH or in /usr/lib/postgresql/<version>/bin)")


def _postgres_bin() -> Path | None:
    """The folder holding both initdb and postgres: PATH first, then Debian's versioned folders."""
    candidates = [Path(os.path.realpath(found)).parent for found in
                  filter(None, (shutil.which("postgres"), shutil.which("initdb")))]
    versioned = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted((Path(p) for p in versioned),
                         key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.name)], reverse=True)
    for folder in candidates:
        if os.access(folder / "initdb", os.X_OK) and os.access(folder / "postgres", os.X_OK):
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, sig: int, group: bool = False, timeout: float = 20) -> None:
    """Signal a process we started (its own process group when ``group``), then kill it if it lingers."""
    if proc.poll() is not None:
        return
    send = (lambda s: os.killpg(proc.pid, s)) if group else proc.send_signal
    try:
        send(sig)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait(10)
    except ProcessLookupError:
        pass


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """A throwaway cluster on 127.0.0.1 (trust authentication, loopback only); yields its port.

    PostgreSQL refuses to run as root: under root the cluster belongs to the ``postgres`` user (else
    ``nobody``) and lives in a folder of its own under the system's temporary folder, since pytest's
    temporary folders are private to root."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip(SKIP_NO_POSTGRES)
    logs = tmp_path_factory.mktemp("postgres-logs")
    as_user: dict = {}
    if os.geteuid() == 0:
        account = next((pwd.getpwnam(n) for n in ("postgres", "nobody") if _has_user(n)), None)
        if account is None:
            pytest.skip("running as root and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL as")
        base = Path(tempfile.mkdtemp(prefix="spectune-pg-"))
        os.chown(base, account.pw_uid, account.pw_gid)
        as_user = dict(user=account.pw_uid, group=account.pw_gid, extra_groups=[])
    else:
        base = tmp_path_factory.mktemp("postgres")
    env = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin", "LANG": "C", "LC_ALL": "C", "TZ": "UTC"}
    data = base / "data"
    proc = None
    try:
        init = subprocess.run([bin_dir / "initdb", "-D", data, "-U", DB_USER, "--auth=trust", "-E", "UTF8",
                               "--locale=C", "--no-sync", "--no-instructions"],
                              cwd=base, env=env, capture_output=True, text=True, timeout=120, **as_user)
        assert init.returncode == 0, f"initdb failed ({init.returncode}):\n{init.stdout[-2000:]}\n{init.stderr[-2000:]}"
        port = _free_port()
        log = logs / "postgres.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([bin_dir / "postgres", "-D", data, "-h", HOST, "-p", str(port), "-k", base,
                                     "-c", "fsync=off", "-c", "max_connections=50"],
                                    cwd=base, env=env, stdout=out, stderr=subprocess.STDOUT, **as_user)
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"postgres exited {proc.returncode}:\n{_log_tail(log)}"
            try:
                conn = psycopg2.connect(host=HOST, port=port, user=DB_USER, dbname="postgres", connect_timeout=5)
                break
            except psycopg2.OperationalError:
                assert time.monotonic() < deadline, f"postgres did not accept connections in 60 s:\n{_log_tail(log)}"
                time.sleep(0.2)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DB_NAME}")
        conn.close()
        yield port
    finally:
        if proc is not None:
            _stop(proc, signal.SIGINT)  # fast shutdown: clients disconnected, then a clean stop
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def mlflow_server(postgres, tmp_path_factory):
    """``mlflow server`` on the PostgreSQL store, artifacts proxied to a temporary folder; yields its URL."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    cli = shutil.which("mlflow", path=str(Path(sys.executable).parent))
    command = [cli] if cli else [sys.executable, "-m", "mlflow"]
    log = folder / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # No job runner: MLflow 3 would start seven huey consumers for its GenAI jobs (nothing here uses
    # them; on 2 cores they slow the start and the stop) and leave their store behind in /dev/shm.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [*command, "server", "--backend-store-uri", f"postgresql+psycopg2://{DB_USER}@{HOST}:{postgres}/{DB_NAME}",
             "--artifacts-destination", str(folder / "artifacts"), "--host", HOST, "--port", str(port),
             "--workers", "1"],
            cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 120  # the first start creates MLflow's tables in PostgreSQL
        while True:
            assert proc.poll() is None, f"mlflow server exited {proc.returncode}:\n{_log_tail(log)}"
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"mlflow server did not answer in 120 s:\n{_log_tail(log)}"
            time.sleep(0.5)
        yield url
    finally:
        _stop(proc, signal.SIGTERM, group=True)  # the server and its workers: their own process group


def _stored_runs(port: int, experiment_id: str) -> dict[str, str]:
    """Run id -> status as PostgreSQL itself holds them (the store is really the database)."""
    conn = psycopg2.connect(host=HOST, port=port, user=DB_USER, dbname=DB_NAME, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT run_uuid, status FROM runs WHERE experiment_id = %s", (int(experiment_id),))
            return dict(cur.fetchall())
    finally:
        conn.close()


def test_client_round_trip(mlflow_server, postgres, tmp_path: Path) -> None:
    client = MlflowClient(mlflow_server)
    experiment_id = client.create_experiment("spectune-team-roundtrip")
    parent = client.create_run(experiment_id, run_name="search", tags={"spectune.role": "search"})
    child = client.create_run(experiment_id, run_name="trial-1",
                              tags={MLFLOW_PARENT_RUN_ID: parent.info.run_id, "spectune.role": "trial"})
    client.log_batch(child.info.run_id, params=[Param("lr", "0.001")],
                     metrics=[Metric("val_macro_f1", v, 0, step) for step, v in enumerate((0.5, 0.7), 1)])
    note = tmp_path / "note.txt"
    note.write_text("artifact through the server")
    client.log_artifact(parent.info.run_id, str(note))
    client.set_terminated(child.info.run_id, status="FINISHED")
    client.set_terminated(parent.info.run_id, status="FINISHED")

    kid = client.get_run(child.info.run_id)
    assert kid.info.status == "FINISHED"
    assert kid.data.tags[MLFLOW_PARENT_RUN_ID] == parent.info.run_id
    assert kid.data.params == {"lr": "0.001"}
    assert [(m.step, m.value) for m in client.get_metric_history(kid.info.run_id, "val_macro_f1")] == \
        [(1, 0.5), (2, 0.7)]
    fetched = Path(client.download_artifacts(parent.info.run_id, "note.txt", str(tmp_path / "back")))
    assert fetched.read_text() == "artifact through the server"
    assert _stored_runs(postgres, experiment_id) == {parent.info.run_id: "FINISHED", child.info.run_id: "FINISHED"}


def test_search_against_the_team_server(mlflow_server, postgres, tmp_path: Path) -> None:
    """A real two-trial search (wine, two epochs) tracked by the server: one parent, two children."""
    spectune = Path(sys.executable).parent / "spectune"
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.setdefault("RAY_AUTH_MODE", "disabled")
    proc = subprocess.run([spectune, "search", "--space", "wine_mlp", "--trials", "2", "--max-epochs", "2",
                           "--seed", "0", "--tracking-uri", mlflow_server, "--name", "pg-test"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, \
        f"spectune search exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("spectune-wine_mlp")
    assert experiment is not None, [e.name for e in client.search_experiments()]
    runs = client.search_runs([experiment.experiment_id], "tags.`spectune.search` = 'pg-test'", max_results=100)
    parents = [r for r in runs if r.data.tags.get("spectune.role") == "search"]
    children = [r for r in runs if r.data.tags.get("spectune.role") == "trial"]
    assert len(parents) == 1 and len(children) == 2, [(r.info.run_name, r.data.tags.get("spectune.role")) for r in runs]
    assert parents[0].info.status == "FINISHED"
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags[MLFLOW_PARENT_RUN_ID] == parents[0].info.run_id
        assert "val_macro_f1" in child.data.metrics
    stored = _stored_runs(postgres, experiment.experiment_id)
    assert {r.info.run_id for r in runs} <= set(stored)
