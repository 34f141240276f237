"""The data modules beside ZTF spectra: each loads, validates and describes its splits, on small
files the tests write (and on the real files where this machine has them)."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest

from trainables.data import DataError, get_data, list_data
from trainables.data import fashion_mnist as fm
from trainables.data.tables import MLBENCH, synthetic_covertype, write_table


@pytest.mark.parametrize("name", list_data())
def test_every_data_module_declares_its_kind_and_knobs(name):
    module = get_data(name)
    assert module.kind in ("sequence", "image", "tabular", "tokens")
    assert isinstance(module.hparams, dict)


def test_waveforms_are_generated_balanced_and_reproducible(tmp_path):
    module = get_data("waveforms")
    module.prepare(tmp_path / "a", seed=1, force=False, per_class=(20, 10, 10))
    module.prepare(tmp_path / "b", seed=1, force=False, per_class=(20, 10, 10))
    digest = lambda d: hashlib.sha256((d / "train.pt").read_bytes()).hexdigest()  # noqa: E731
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    data = module.load(tmp_path / "a")
    assert data.classes == ("sine", "triangle", "square") and data.spec.shapes == {"x": (1, 128)}
    assert np.bincount(data.train.labels).tolist() == [20, 20, 20] and len(data.test) == 30
    with pytest.raises(DataError, match=r"already holds .*pass --force"):
        module.prepare(tmp_path / "a", seed=1, force=False, per_class=(2, 1, 1))


def test_wine_is_standardised_on_training_statistics_only():
    data = get_data("wine").load(None)
    assert (len(data.train), len(data.val), len(data.test)) == (107, 35, 36)
    train = data.train.inputs["numeric"]
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=0), 1.0, atol=1e-4)
    assert np.abs(data.val.inputs["numeric"].mean(axis=0)).max() > 1e-3    # val was not used for the scaling
    assert np.bincount(data.test.labels).tolist() == [12, 14, 10]          # stratified 20 %
    assert get_data("wine").load(None).fingerprint == data.fingerprint


def _idx(path, array, magic):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture()
def tiny_fashion(tmp_path, monkeypatch):
    """IDX files with 40 training and 10 test images per class; the module keeps (k+1)*3 and (k+1)*1."""
    monkeypatch.setattr(fm, "PER_CLASS", {"train": 3, "test": 1})
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 10)):
        labels = np.repeat(np.arange(10), n)
        images = rng.integers(0, 255, (len(labels), 28, 28))
        images_name, labels_name = fm.FILES[split]
        _idx(tmp_path / images_name, images, 2051)
        _idx(tmp_path / labels_name, labels, 2049)
    return tmp_path


def test_fashion_mnist_is_made_imbalanced_as_the_exercise_does(tiny_fashion):
    data = get_data("fashion_mnist").load(tiny_fashion)
    kept = np.bincount(np.concatenate([data.train.labels, data.val.labels]), minlength=10)
    assert kept.tolist() == [3 * (k + 1) for k in range(10)]
    assert np.bincount(data.test.labels, minlength=10).tolist() == [k + 1 for k in range(10)]
    assert data.spec.shapes == {"x": (1, 28, 28)} and data.train.inputs["x"].dtype == np.float32
    assert abs(float(data.train.inputs["x"].mean())) < 1e-4


def test_fashion_mnist_problems_are_named(tiny_fashion, tmp_path):
    images = tiny_fashion / fm.FILES["train"][0]
    images.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 20))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: holds .* bytes of data, but its header says"):
        get_data("fashion_mnist").load(tiny_fashion)
    images.write_bytes(b"not gzip")
    with pytest.raises(DataError, match=r"not a readable gzip file"):
        get_data("fashion_mnist").load(tiny_fashion)
    with pytest.raises(DataError, match=r"are not in .*empty.*dataset-fashion-mnist.*Zalando"):
        get_data("fashion_mnist").load(tmp_path / "empty")


@pytest.mark.skipif(not (fm.DEBIAN_DIR / fm.FILES["train"][0]).is_file(), reason="Debian's dataset-fashion-mnist absent")
def test_the_real_fashion_mnist_from_debian():
    data = get_data("fashion_mnist").load(None)
    counts = np.bincount(np.concatenate([data.train.labels, data.val.labels]))
    assert counts.tolist() == [600 * (k + 1) for k in range(10)]
    assert len(data.test) == 5500 and len(data.val) == 4950


def test_tables_split_standardise_and_shift_categoricals(tmp_path):
    module = get_data("tables")
    module.prepare(tmp_path, seed=0, force=False, source="synthetic", rows=2000)
    data = module.load(tmp_path)
    assert abs(len(data.train) - 1400) <= 7 and len(data.train) + len(data.val) + len(data.test) == 2000
    assert data.spec.categorical == {"wilderness_area": 5, "soil_type": 41}
    assert data.train.inputs["categorical"].min() >= 1      # 0 is kept for codes unseen in training
    np.testing.assert_allclose(data.train.inputs["numeric"].mean(axis=0), 0.0, atol=1e-4)
    with pytest.raises(DataError, match=r"table\.npz exists; pass --force"):
        module.prepare(tmp_path, seed=0, force=False, source="synthetic")


def test_tables_read_the_uci_covertype_file_when_placed(tmp_path):
    rng = np.random.default_rng(0)
    n = 70
    rows = np.zeros((n, 55))
    rows[:, :10] = rng.normal(100, 10, (n, 10))
    rows[np.arange(n), 10 + rng.integers(0, 4, n)] = 1
    rows[np.arange(n), 14 + rng.integers(0, 40, n)] = 1
    rows[:, 54] = np.tile(np.arange(1, 8), n // 7)
    with gzip.open(tmp_path / "covtype.data.gz", "wt") as handle:
        np.savetxt(handle, rows, delimiter=",", fmt="%g")
    message = get_data("tables").prepare(tmp_path, seed=0, force=False)
    assert "70 rows, 10 numeric and 2 categorical columns, 7 classes (covertype)" in message
    assert get_data("tables").load(tmp_path).classes[0] == "Spruce/Fir"


def test_tables_problems_are_named(tmp_path):
    arrays = synthetic_covertype(100, 0)
    arrays["categorical"] = arrays["categorical"] + 50
    write_table(tmp_path, **arrays)
    with pytest.raises(DataError, match=r"categorical codes must lie in \[0, vocabulary\) per column \[4, 40\]"):
        get_data("tables").load(tmp_path)
    (tmp_path / "table.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(DataError, match=r"table\.npz: not a readable \.npz table"):
        get_data("tables").load(tmp_path)


@pytest.mark.skipif(not (MLBENCH / "Shuttle.rda").is_file(), reason="Debian's r-cran-mlbench absent")
def test_shuttle_from_mlbench_gets_decile_categoricals(tmp_path):
    pytest.importorskip("rdata")
    get_data("tables").prepare(tmp_path, seed=0, force=False, source="shuttle")
    data = get_data("tables").load(tmp_path)
    assert data.n_classes == 7 and data.spec.shapes["numeric"] == (9,)
    assert set(data.spec.categorical.values()) == {11}
