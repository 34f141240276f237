"""A Ray session for one search or confirmation: quiet, joined or started, cleaned up after."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import optuna

from search.running.cluster import cluster_address
from search.running.local_ray import SESSION_FILE, SearchStillRunning, clean_dead_session, start_local_ray, stop_local_ray
from search.running.progress import console
from trainables.discovery import ENV


def quiet_ray() -> None:
    """One line per trial from our callback instead of Ray's stream of tables and warnings."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "1000")
    # Tune's automatic loggers off: run_config adds back the CSV and JSON ones that ExperimentAnalysis reads,
    # not TensorBoard's, which flushes a file on every result of every trial and is read by nobody (MLflow is
    # the UI).
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    logging.getLogger("ray").setLevel(logging.ERROR)
    logging.getLogger("ray.tune").setLevel(logging.ERROR)
    # Failed trials get their own line from ProgressPrinter; Tune's summary would repeat them.
    logging.getLogger("ray.tune.tune").setLevel(logging.CRITICAL)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def clean_dead_searches(storage: Path, name: str) -> None:
    """Stop the Ray processes of searches in ``storage`` whose driver was killed; refuse to go on
    when the driver of search ``name`` itself is still alive."""
    for session_file in sorted(storage.glob(f"*{SESSION_FILE}")):
        other = session_file.name[:-len(SESSION_FILE)]
        try:
            stopped = clean_dead_session(session_file, other)
        except SearchStillRunning:
            if other == name:
                raise
            continue
        if stopped:
            console.print(f"stopped {len(stopped)} Ray processes left by the killed driver of search {other}: "
                          + ", ".join(stopped), soft_wrap=True)


def _start_ray(address: str | None, session_file: Path) -> bool:
    """Join ``address`` (or ``RAY_ADDRESS``), reuse a running Ray, or start a local one (recorded in
    ``session_file`` until it stops, see :mod:`search.running.local_ray`). Returns whether this call started Ray."""
    import ray

    if ray.is_initialized():
        return False
    address = cluster_address(address)
    if address:
        console.print(f"joining the Ray cluster at {address}")
        # Workers on other nodes see the driver's environment only through the runtime env.
        env = {ENV: os.environ[ENV]} if os.environ.get(ENV) else {}
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR,
                 runtime_env={"env_vars": env} if env else None)
        return False
    start_local_ray(session_file)
    return True


@contextmanager
def ray_session(storage: Path, name: str, address: str | None) -> Iterator[dict[str, float]]:
    """Ray for run ``name`` under ``storage``: what dead drivers left is stopped first, then a cluster
    is joined (``address``), reused, or started here and stopped on the way out. Yields the
    cluster's resources."""
    import ray

    quiet_ray()
    clean_dead_searches(storage, name)
    session_file = storage / f"{name}{SESSION_FILE}"
    started = _start_ray(address, session_file)
    try:
        yield ray.cluster_resources()
    finally:
        if started:
            stop_local_ray(session_file)
