import hashlib

import numpy as np
import pytest
import torch

from conftest import load_ztf
from trainables.data import get_data
from trainables.data.ztf_synthetic import CLASS_ORDER, generate_split, wavelength_grid, write_synthetic


def _digest(folder):
    return {n: hashlib.sha256((folder / f"{n}.pt").read_bytes()).hexdigest() for n in ("train", "val", "test")}


def test_same_seed_writes_identical_files_and_another_seed_does_not(tmp_path):
    a = write_synthetic(tmp_path / "a", seed=5, n_train=4, n_val=2, n_test=2, n_points=256)
    write_synthetic(tmp_path / "b", seed=5, n_train=4, n_val=2, n_test=2, n_points=256)
    write_synthetic(tmp_path / "c", seed=6, n_train=4, n_val=2, n_test=2, n_points=256)
    assert set(a) == {"train", "val", "test"}
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a")["train"] != _digest(tmp_path / "c")["train"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["test.pt", "train.pt", "val.pt"]


def test_classes_are_balanced_and_in_the_real_format(synthetic_small):
    data = load_ztf(synthetic_small, test=True)
    assert data.classes == CLASS_ORDER == get_data("ztf_spectra").classes
    assert np.bincount(data.train.labels).tolist() == [24] * 9
    assert np.bincount(data.test.labels).tolist() == [8] * 9
    raw = torch.load(synthetic_small / "train.pt", weights_only=True)
    assert raw["flux"].dtype == torch.float32 and raw["flux"].shape == (216, 1, 512)
    assert all(isinstance(label, str) for label in raw["labels"])


def test_spectra_are_median_normalised_so_flux_level_gives_nothing_away():
    flux, labels = generate_split(6, np.random.default_rng(0), n_points=1024)
    assert np.isfinite(flux).all()
    np.testing.assert_allclose(np.median(flux, axis=1), 1.0, atol=1e-3)
    assert wavelength_grid(1024)[[0, -1]].tolist() == [3850.0, 8500.0]


def test_classes_carry_their_defining_lines():
    """High-S/N averages must show the textbook features at their observed positions."""
    grid = wavelength_grid(4096)
    flux, labels = generate_split(40, np.random.default_rng(1))
    labels = np.array(labels)
    mean = {c: flux[labels == c].mean(axis=0) for c in CLASS_ORDER}

    def depth(c, lo, hi, ref):   # mean flux in a window relative to a reference window
        window = (grid > lo) & (grid < hi)
        reference = (grid > ref[0]) & (grid < ref[1])
        return mean[c][window].mean() / mean[c][reference].mean()

    # SN Ia: the Si II 6355 trough at ~11k km/s (~6150 A) is deeper than in classes without Si II.
    si = {c: depth(c, 6080, 6300, (6450, 6650)) for c in CLASS_ORDER}
    assert si["SN Ia"] < min(si["SN Ib"], si["AGN"], si["TDE"], si["SN IIn"]) - 0.05
    # Cataclysmic variables sit at z = 0: the strongest H-alpha emission exactly at 6563 A.
    halpha = {c: depth(c, 6540, 6590, (6200, 6400)) for c in CLASS_ORDER}
    assert max(halpha, key=halpha.get) == "Cataclysmic"


def test_generator_rejects_empty_requests():
    with pytest.raises(ValueError):
        generate_split(0, np.random.default_rng(0))
