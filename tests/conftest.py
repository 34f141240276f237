"""Shared fixtures: tiny data sets written in the real file formats, and one Ray per session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from trainables.data.ztf_synthetic import CLASS_ORDER

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def write_split(folder: Path, name: str, flux, labels, key: str = "flux") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.pt"
    torch.save({key: flux, "labels": labels}, path)
    return path


def separable_set(folder: Path, per_class=(12, 6, 6), points: int = 256, seed: int = 0) -> Path:
    """Nine classes that differ by a class-specific bump: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    grid = np.arange(points)
    for name, n in zip(("train", "val", "test"), per_class):
        y = np.repeat(np.arange(9), n)
        x = rng.normal(0, 0.3, (len(y), points)) + 1.0
        x += np.exp(-0.5 * ((grid[None, :] - (y[:, None] + 1) * points / 10) / 4) ** 2) * 2
        write_split(folder, name, torch.tensor(x, dtype=torch.float32).unsqueeze(1),
                    [CLASS_ORDER[i] for i in y])
    return folder


@pytest.fixture()
def tiny_data(tmp_path: Path) -> Path:
    return separable_set(tmp_path / "data")


@pytest.fixture(scope="session")
def synthetic_small(tmp_path_factory) -> Path:
    """A small set from the project's physical generator (short spectra)."""
    from trainables.data.ztf_synthetic import write_synthetic

    out = tmp_path_factory.mktemp("synthetic")
    write_synthetic(out, seed=3, n_train=24, n_val=8, n_test=8, n_points=512)
    return out


# Where a user's own records live in the checkout that `make test` runs in: no test may write there.
RECORDS = ("runs", "results", "mlruns", "mlflow.db")


def _records(root: Path) -> dict[str, tuple[int, int]]:
    files = [p for name in RECORDS for p in ([root / name] if (root / name).is_file() else (root / name).rglob("*"))
             if p.is_file()]
    stats = {str(p.relative_to(root)): p.stat() for p in files}
    return {name: (s.st_size, s.st_mtime_ns) for name, s in stats.items()}


@pytest.fixture(scope="session", autouse=True)
def checkout_records_untouched():
    """Fails the session when a file under the checkout's records changed while the tests ran (a test that
    trained without --json-out once overwrote the user's runs/train.json)."""
    root = Path(__file__).resolve().parents[1]
    before = _records(root)
    yield
    after = _records(root)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, (f"{len(changed)} file(s) in the checkout changed while the tests ran: {changed[:5]}; a test "
                         "writes there (give it tmp_path), or something else wrote beside the tests")


@pytest.fixture(scope="session")
def ray_session():
    """Ray costs seconds to start on 2 cores: start it once for every test that needs it."""
    import logging

    import ray

    ray.init(num_cpus=2, num_gpus=0, log_to_driver=False, logging_level=logging.ERROR,
             include_dashboard=False)
    yield ray
    ray.shutdown()


def load_ztf(folder: Path, classes=None, test: bool = False):
    """The ZTF-format folder through its data module (the test split kept only when asked for)."""
    from dataclasses import replace

    from trainables.data import get_data

    data = get_data("ztf_spectra").load(folder, classes)
    return data if test else replace(data, test=None)
