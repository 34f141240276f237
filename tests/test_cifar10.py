"""The CIFAR-10 pair on small files these tests write in both release formats (the real release cannot be
fetched here): the binary version's records (label byte first, then the red, green and blue planes) and the
python version's pickled batches (as Python 2 wrote them, and as protocol 2), extracted or as tarballs; the
unpickler that refuses a batch whose pickle would run code; the download's failure message and md5 check;
seeded per-batch augmentation; one epoch of `spectune train` and a 2-trial `spectune search`."""

from __future__ import annotations

import _codecs
import io
import json
import os
import pickle
import re
import struct
import tarfile
import tracemalloc
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from search.cli import main
from spaces import get_space, list_spaces
from trainables.data import DataError, cifar10, get_data
from trainables.data.cifar10 import BINARY, PYTHON, TRAIN_BATCHES, read_binary_batch, read_python_batch

PER_CLASS = {"train": 10, "test": 2}


class Py2Pickler(pickle._Pickler):
    """Writes bytes and str as Python 2's str (BINSTRING), as the release's batches were pickled."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def python_batch(images: np.ndarray, labels: np.ndarray, py2: bool = True) -> bytes:
    """A pickled batch of the python version: Python 2's pickle (numpy.core's name) or protocol 2."""
    batch = {b"batch_label": b"a test batch", b"labels": [int(v) for v in labels],
             b"data": images.reshape(len(labels), -1), b"filenames": [b"img_%d.png" % i for i in range(len(labels))]}
    if not py2:
        return pickle.dumps(batch, protocol=2)
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(batch)
    raw = buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    # The release's numpy pickled a dtype's align and copy flags as the ints 0 and 1 (numpy 2: False, True).
    return re.sub(rb"(U\x02u1(?:q.)?)\x89\x88", lambda m: m[1] + b"K\x00K\x01", raw, flags=re.DOTALL)


def binary_batch(images: np.ndarray, labels: np.ndarray) -> bytes:
    """The binary version's records, written by hand: label byte, then the CHW image's bytes."""
    return b"".join(bytes([int(label)]) + image.astype(np.uint8).tobytes() for image, label in zip(images, labels))


def images_and_labels(n_per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.permutation(np.repeat(np.arange(10), n_per_class))
    return rng.integers(0, 256, (len(labels), 3, 32, 32), dtype=np.uint8), labels


def write_release(root: Path, release, batches: dict[str, bytes], tarball: bool = False) -> Path:
    """The batches as the release's extracted folder under ``root``, or as its tarball."""
    root.mkdir(parents=True, exist_ok=True)
    if tarball:
        with tarfile.open(root / release.tarball, "w:gz") as archive:
            for name, payload in batches.items():
                info = tarfile.TarInfo(f"{release.folder}/{name}{release.suffix}")
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))
        return root / release.tarball
    folder = root / release.folder
    folder.mkdir()
    for name, payload in batches.items():
        (folder / f"{name}{release.suffix}").write_bytes(payload)
    return folder


@pytest.fixture(scope="module")
def pixels() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Random images, 10 per class in the five training batches together and 2 per class in test."""
    rng = np.random.default_rng(0)
    x, y = images_and_labels(PER_CLASS["train"], rng)
    parts = np.array_split(np.arange(len(y)), 5)
    batches = {name: (x[p], y[p]) for name, p in zip(TRAIN_BATCHES, parts)}
    return {**batches, "test_batch": images_and_labels(PER_CLASS["test"], rng)}


def _batches(pixels, write) -> dict[str, bytes]:
    return {name: write(*arrays) for name, arrays in pixels.items()}


# --- the two readers ---------------------------------------------------------------------------------

def test_a_binary_record_is_the_label_byte_then_the_red_green_and_blue_planes():
    record = bytearray(3073)
    record[0] = 7
    record[1 + 0 * 1024 + 0 * 32 + 1] = 200     # red, row 0, column 1
    record[1 + 1 * 1024 + 2 * 32 + 0] = 100     # green, row 2, column 0
    record[1 + 2 * 1024 + 31 * 32 + 31] = 50    # blue, last pixel
    second = bytes([3]) + bytes(3072)
    images, labels = read_binary_batch(bytes(record) + second, "two records")
    assert labels.tolist() == [7, 3] and images.shape == (2, 3, 32, 32) and images.dtype == np.uint8
    assert images[0, 0, 0, 1] == 200 and images[0, 1, 2, 0] == 100 and images[0, 2, 31, 31] == 50
    assert int(images.sum()) == 350
    with pytest.raises(DataError, match=r"^short: 3072 bytes is not a whole number of 3,073-byte records"):
        read_binary_batch(bytes(record)[:-1], "short")


@pytest.mark.parametrize("py2", [True, False], ids=["python2-pickle", "protocol-2"])
def test_a_python_batch_reads_the_same_pixels_in_the_same_layout(pixels, py2):
    images, labels = pixels["data_batch_1"]
    raw = python_batch(images, labels, py2=py2)
    if py2:      # what the release holds: numpy.core's reconstructor, keys and pixels as Python 2 str
        assert b"cnumpy.core.multiarray\n_reconstruct\n" in raw and b"U\x04data" in raw and b"K\x00K\x01" in raw
    read_images, read_labels = read_python_batch(raw, "batch")
    assert np.array_equal(read_images, images) and np.array_equal(read_labels, labels)
    # The same images through the binary version's records.
    bin_images, bin_labels = read_binary_batch(binary_batch(images, labels), "records")
    assert np.array_equal(bin_images, read_images) and np.array_equal(bin_labels, read_labels)


@pytest.mark.parametrize("release, tarball", [(BINARY, False), (BINARY, True), (PYTHON, False), (PYTHON, True)],
                         ids=["binary-folder", "binary-tarball", "python-folder", "python-tarball"])
def test_every_form_of_the_release_loads_the_same_splits(pixels, tmp_path, release, tarball):
    binary = write_release(tmp_path / "reference", BINARY, _batches(pixels, binary_batch))
    reference = get_data("cifar10").load(binary.parent)
    write = binary_batch if release is BINARY else python_batch
    where = write_release(tmp_path / "form", release, _batches(pixels, write), tarball=tarball)
    data = get_data("cifar10").load(where.parent)
    assert data.fingerprint == reference.fingerprint
    for name in ("train", "val", "test"):
        a, b = getattr(data, name), getattr(reference, name)
        assert np.array_equal(a.labels, b.labels) and np.array_equal(a.inputs["x"], b.inputs["x"]), name
    # The extracted folder itself may be given too.
    if not tarball:
        assert get_data("cifar10").load(where).fingerprint == reference.fingerprint


def test_splits_are_stratified_and_normalised_per_channel_on_train(pixels, tmp_path):
    folder = write_release(tmp_path, BINARY, _batches(pixels, binary_batch)).parent
    data = get_data("cifar10").load(folder)
    assert (len(data.train), len(data.val), len(data.test)) == (90, 10, 20)
    assert np.bincount(data.val.labels).tolist() == [1] * 10
    x = data.train.inputs["x"]
    np.testing.assert_allclose(x.mean(axis=(0, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(x.std(axis=(0, 2, 3)), 1.0, atol=1e-3)
    # Test pixels are scaled with the training statistics: the first test image back to its bytes.
    images = np.concatenate([pixels[n][0] for n in TRAIN_BATCHES])
    train_idx = cifar10.stratified_split(np.concatenate([pixels[n][1] for n in TRAIN_BATCHES]), (0.9, 0.1), 0)[0]
    train = images[train_idx].astype(np.float32) / 255
    mean, std = train.mean(axis=(0, 2, 3)), train.std(axis=(0, 2, 3))
    restored = (data.test.inputs["x"][0] * std[:, None, None] + mean[:, None, None]) * 255
    np.testing.assert_allclose(restored, pixels["test_batch"][0][0], atol=1e-3)


def test_bad_files_are_one_line_naming_them(pixels, tmp_path):
    batches = _batches(pixels, binary_batch)
    records = bytearray(batches["data_batch_2"])
    records[3073 * 4] = 12
    folder = write_release(tmp_path / "label", BINARY, {**batches, "data_batch_2": bytes(records)})
    with pytest.raises(DataError, match=r"data_batch_2\.bin: labels must lie in \[0, 9\]; found 12\.$"):
        get_data("cifar10").load(folder.parent)
    tar = write_release(tmp_path / "tar", BINARY, {k: v for k, v in batches.items() if k != "test_batch"},
                        tarball=True)
    with pytest.raises(DataError, match=r"binary\.tar\.gz: holds no file cifar-10-batches-bin/test_batch\.bin"):
        get_data("cifar10").load(tar.parent)
    tar.write_bytes(b"not a tarball")
    with pytest.raises(DataError, match=r"cifar-10-binary\.tar\.gz: not a readable \.tar\.gz"):
        get_data("cifar10").load(tar.parent)
    python = write_release(tmp_path / "py", PYTHON, {**_batches(pixels, python_batch),
                                                     "test_batch": pickle.dumps({b"data": [1, 2]}, protocol=2)})
    with pytest.raises(DataError, match=r"test_batch: 'data' must be a uint8 array of N >= 1 x 3072 pixels; got list"):
        get_data("cifar10").load(python.parent)
    with pytest.raises(DataError, match=r"no CIFAR-10 release in .*empty.*binary\.tar\.gz .*--source synthetic"):
        get_data("cifar10").load(tmp_path / "empty")


# --- a crafted pickle is refused, and nothing in it runs ---------------------------------------------------

class _Call:
    """Pickles as a call of ``function(*args)``: what a crafted batch file would hold."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


@pytest.mark.parametrize("tarball", [False, True], ids=["folder", "tarball"])
@pytest.mark.parametrize("attack", ["os.system", "builtins.eval"])
def test_a_batch_whose_pickle_would_run_code_is_refused_and_nothing_runs(pixels, tmp_path, attack, tarball):
    marker = tmp_path / "pwned"
    command = f"touch {marker}"
    payload = _Call(os.system, command) if attack == "os.system" else \
        _Call(eval, f"__import__('os').system({command!r})")
    images, labels = pixels["data_batch_3"]
    # Protocol 2 (GLOBAL) as the release, and protocol 4 (STACK_GLOBAL): both reach find_class.
    protocol, asked = (2, "posix.system") if attack == "os.system" else (4, "builtins.eval")
    crafted = pickle.dumps({b"data": images.reshape(len(labels), -1), b"labels": [int(v) for v in labels],
                            b"batch_label": payload}, protocol=protocol)
    batches = {**_batches(pixels, python_batch), "data_batch_3": crafted}
    where = write_release(tmp_path / "release", PYTHON, batches, tarball=tarball)
    with pytest.raises(DataError, match=rf"data_batch_3: refused to unpickle: it asks for {re.escape(asked)}, .*"
                                        r"numpy arrays, lists, dicts and bytes") as err:
        get_data("cifar10").load(where.parent)
    assert "\n" not in str(err.value)
    assert not marker.exists()
    pickle.loads(crafted)          # the control: the same bytes through plain pickle do run the command
    assert marker.exists()


def _repeated_encode(text_len: int, calls: int) -> bytes:
    """A pickle that decodes one memoised str through _codecs.encode ``calls`` times: a file of
    ~8 bytes a call that makes ``text_len`` bytes a call."""
    head = (b"\x80\x02(c_codecs\nencode\nq\x00X" + struct.pack("<I", text_len) + b"x" * text_len
            + b"q\x01X\x06\x00\x00\x00latin1q\x02")
    return head + b"h\x00h\x01h\x02\x86R" * calls + b"l."


# Each admitted global called as no batch's pickle does: what the file is, and the refusal's text.
MISUSED_CALLS = {
    # 28 bytes that make 64 MiB through bytes(n); a larger n exhausts memory.
    "bytes(n)": (b"c__builtin__\nbytes\n(J\x00\x00\x00\x04tR.",
                 r"it calls bytes\(67108864\), and a CIFAR-10 batch calls it only as bytes\(\)"),
    "rot13": (pickle.dumps(_Call(_codecs.encode, "abc", "rot13"), protocol=2),
              r"it calls _codecs\.encode\('abc', 'rot13'\), and a CIFAR-10 batch calls it only as "
              r"_codecs\.encode\(str, 'latin1'\)"),
    "zlib": (pickle.dumps(_Call(_codecs.encode, b"abc", "zlib"), protocol=2),
             r"it calls _codecs\.encode\(b'abc', 'zlib'\)"),
    "object dtype": (pickle.dumps(_Call(np.dtype, "O8", False, True), protocol=2),
                     r"it calls numpy\.dtype\('O8', False, True\), .*numpy\.dtype\(numeric type code, 0, 1\)"),
    "ndarray(shape)": (pickle.dumps(_Call(np.ndarray, (1 << 40,)), protocol=2),
                       r"it calls numpy\.ndarray\(\(1099511627776,\)\), and a CIFAR-10 batch only passes it to "
                       r"_reconstruct"),
    "_reconstruct(shape)": (pickle.dumps(_Call(np.empty(0).__reduce__()[0], np.ndarray, (1 << 40,), b"b"),
                                         protocol=2),
                            r"it calls _reconstruct\(numpy\.ndarray, \(1099511627776,\), b'b'\)"),
    "repeated encode": (_repeated_encode(1000, 2000), r"it decodes more bytes through _codecs\.encode than the "
                                                      r"file holds"),
}


@pytest.mark.parametrize("name", MISUSED_CALLS)
def test_an_admitted_global_called_otherwise_than_by_a_batch_is_refused_in_one_line(name):
    raw, message = MISUSED_CALLS[name]
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=rf"^data_batch_1: refused to unpickle: {message}.*; this file is not "
                                            r"the release's .*download the release again") as err:
            read_python_batch(raw, "data_batch_1")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(err.value)
    assert peak < 8 << 20        # refused before anything large was made


def test_the_misused_calls_do_their_harm_through_plain_pickle():
    """The control: the same files through pickle allocate or run the codec."""
    assert len(pickle.loads(MISUSED_CALLS["bytes(n)"][0])) == 1 << 26
    assert pickle.loads(MISUSED_CALLS["rot13"][0]) == "nop"
    assert sum(len(v) for v in pickle.loads(_repeated_encode(1000, 2000)) if isinstance(v, bytes)) == 2_000_000


# --- fetching, and the generated stand-in -------------------------------------------------------------------

def test_without_the_network_the_fetch_names_the_file_and_the_folder(tmp_path, monkeypatch, capsys):
    def unreachable(url, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(cifar10.urllib.request, "urlopen", unreachable)
    assert main(["data", "--space", "cifar10_convnet", "--out", str(tmp_path / "c10")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: could not download https://www.cs.toronto.edu/~kriz/"
                                              "cifar-10-binary.tar.gz (Name or service not known)")
    assert "Place cifar-10-binary.tar.gz (md5 c32a1d4ab5d03f1284b67883e8d87530" in err and str(tmp_path / "c10") in err
    assert not any((tmp_path / "c10").iterdir())     # no partial download left behind


def test_a_download_is_kept_only_when_its_md5_is_the_releases(pixels, tmp_path, monkeypatch):
    tar = write_release(tmp_path / "served", BINARY, _batches(pixels, binary_batch), tarball=True)
    served = tar.read_bytes()
    monkeypatch.setattr(cifar10.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(served))
    module, out = get_data("cifar10"), tmp_path / "c10"
    with pytest.raises(DataError, match=r"the download's md5 is [0-9a-f]{32}, not the release's c32a1d4ab5d0"):
        module.prepare(out, seed=0, force=False)
    assert not any(out.iterdir())
    import hashlib

    monkeypatch.setattr(cifar10, "BINARY", cifar10.Release(BINARY.tarball, BINARY.folder, BINARY.suffix, BINARY.url,
                                                           hashlib.md5(served).hexdigest()))
    message = module.prepare(out, seed=0, force=False)
    assert message.startswith(f"downloaded {BINARY.url} to {out / BINARY.tarball} (md5 ") and "checked" in message
    assert "train 90, val 10, test 20" in message
    assert "as the release's; " in module.prepare(out, seed=0, force=False)   # found: checked, not fetched again


def test_the_synthetic_set_is_written_in_the_binary_layout_and_says_so(tmp_path, capsys):
    out = tmp_path / "c10"
    assert main(["data", "--space", "cifar10_convnet", "--source", "synthetic", "--rows", "200",
                 "--out", str(out)]) == 0
    assert "200 training and 40 test images, generated (seed 0)" in capsys.readouterr().out
    folder = out / BINARY.folder
    assert sorted(p.name for p in folder.glob("*.bin")) == sorted([*(f"{n}.bin" for n in TRAIN_BATCHES),
                                                                     "test_batch.bin"])
    assert (folder / "data_batch_1.bin").stat().st_size == 40 * 3073
    data = get_data("cifar10").load(out)
    assert "generated stand-in" in data.note and (len(data.train), len(data.val), len(data.test)) == (180, 20, 40)
    assert main(["data", "--space", "cifar10_convnet", "--source", "synthetic", "--rows", "50",
                 "--out", str(tmp_path / "few")]) == 2
    assert re.search(r"--rows must be a multiple of 5 .*, at least 100 .*; got 50\.$", capsys.readouterr().err)


# --- augmentation ------------------------------------------------------------------------------------------

def _augment(x: torch.Tensor, seed: int, **switches) -> torch.Tensor:
    return get_data("cifar10").augment({"x": x}, switches, torch.Generator().manual_seed(seed))["x"]


def test_augmentation_repeats_for_a_seed_and_only_flips_and_shifts():
    x = torch.randn(64, 3, 32, 32)
    kept = x.clone()
    both = _augment(x, 5, hflip=True, crop=True)
    assert torch.equal(both, _augment(x, 5, hflip=True, crop=True)) and not torch.equal(both, _augment(x, 6, hflip=True,
                                                                                                         crop=True))
    assert torch.equal(x, kept)                       # the batch given is left as it was
    assert torch.equal(_augment(x, 5, hflip=False, crop=False), x)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    shifts = set()
    for i in range(len(x)):       # each image: a 32x32 window of its zero-padded self, mirrored or not
        found = [(dy, dx, flip) for dy in range(9) for dx in range(9) for flip in (False, True)
                 if torch.equal(both[i], (padded[i].flip(-1) if flip else padded[i])[:, dy:dy + 32, dx:dx + 32])]
        assert found, i
        shifts.add(found[0][:2])
    assert len(shifts) > 10                           # every image drew its own window
    flipped = _augment(x, 5, hflip=True)
    mirrored = (flipped == x.flip(-1)).flatten(1).all(1)
    assert ((flipped == x).flatten(1).all(1) | mirrored).all() and 0 < int(mirrored.sum()) < 64


# --- the pair through the CLI: spaces, train, search -------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cifar10") / "data"
    get_data("cifar10").prepare(out, seed=0, force=False, source="synthetic", rows=100)
    return out


def test_the_space_is_listed_and_starts_from_the_notebooks_network(capsys):
    assert "cifar10_convnet" in list_spaces()
    space = get_space("cifar10_convnet")
    assert (space.model, space.data, space.metric) == ("cifar_convnet", "cifar10", "val_acc")
    assert main(["spaces"]) == 0
    assert re.search(r"^cifar10_convnet: .*model cifar_convnet, data cifar10", capsys.readouterr().out,
                     re.MULTILINE)
    from trainables.data import InputSpec
    from trainables.models import build_model

    model = build_model("cifar_convnet", InputSpec("image", {"x": (3, 32, 32)}, cifar10.CLASSES),
                        {k: v for k, v in space.first_config().items() if k in ("width_1", "width_2", "fc")})
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(128 * 9 * 9, 512), (512, 10)]


def test_one_epoch_of_spectune_train(tiny, tmp_path, capsys):
    summary = tmp_path / "train.json"
    assert main(["train", "--space", "cifar10_convnet", "--data", str(tiny), "--epochs", "1", "--device", "cpu",
                 "--json-out", str(summary)]) == 0
    out = capsys.readouterr().out
    assert "train 90, val 10 examples" in out and "hflip=True, crop=True" in out
    result = json.loads(summary.read_text())
    assert result["metric"] == "val_acc" and len(result["history"]) == 1


def test_a_two_trial_spectune_search(ray_session, tiny, tmp_path, monkeypatch, capsys):
    import pandas as pd

    monkeypatch.chdir(tmp_path)
    assert main(["search", "--space", "cifar10_convnet", "--data", str(tiny), "--trials", "2", "--max-epochs", "1",
                 "--seed", "0", "--name", "tiny", "--concurrency", "1",
                 "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]) == 0
    results = tmp_path / "results" / "cifar10_convnet" / "tiny"
    best = json.loads((results / "best.json").read_text())
    assert best["metric"] == "val_acc" and best["mode"] == "max"
    assert {"hflip", "crop", "width_1", "dropout_conv"} <= set(best["config"])
    assert len(pd.read_csv(results / "trials.csv")) == 2


# --- numpy's own state setters are not trusted, and arrays make no more bytes than the file holds ----------

class _Built(_Call):
    """Pickles as ``function(*args)`` then BUILD with ``state``: how numpy pickles a dtype or an array."""

    def __init__(self, function, args, state):
        super().__init__(function, *args)
        self.state = state

    def __reduce__(self):
        return self.function, self.args, self.state


def _dtype(code: str, state: tuple) -> _Built:
    return _Built(np.dtype, (code, False, True), state)


def _array(dtype: _Built, shape: tuple, raw: bytes) -> _Built:
    return _Built(np.empty(0).__reduce__()[0], (np.ndarray, (0,), b"b"), (1, shape, dtype, False, raw))


# numpy.dtype('u1') whose state claims a subarray of 2**24 bytes: numpy takes it, and an array of it reads
# 2**24 bytes per one-byte item.
SUBARRAY = (3, "|", (np.dtype("u1"), (1 << 24,)), None, None, -1, -1, 0)


def test_a_dtype_state_other_than_a_plain_numeric_dtypes_is_refused_in_one_line():
    raw = pickle.dumps({b"data": _array(_dtype("u1", SUBARRAY), (1,), b"\x00"), b"labels": [0]}, protocol=2)
    with pytest.raises(DataError, match=r"^data_batch_1: refused to unpickle: it sets numpy\.dtype\('u1'\)'s state "
                                        r"to \(3, '\|', \(.*a CIFAR-10 batch sets only a plain numeric dtype's") as err:
        read_python_batch(raw, "data_batch_1")
    assert "\n" not in str(err.value)


def test_a_crafted_dtype_in_a_refused_call_cannot_crash_the_reader(tmp_path):
    """Before: the refusal's text showed the array, whose subarray dtype read past its memory (SIGSEGV)."""
    crafted = _Call(_codecs.encode, _array(_dtype("u1", SUBARRAY), (1,), b"\x00"), "latin1")
    (tmp_path / "batch").write_bytes(pickle.dumps({b"data": crafted}, protocol=2))
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from trainables.data.cifar10 import read_python_batch\n"
            "try: read_python_batch(Path(sys.argv[1]).read_bytes(), 'data_batch_1')\n"
            "except Exception as exc: print(type(exc).__name__, exc)")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "batch")], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-500:]
    assert run.stdout.startswith("DataError data_batch_1: refused to unpickle: it sets numpy.dtype('u1')'s state")


def test_arrays_hold_no_more_bytes_in_all_than_the_file_and_are_refused_before_they_are_made():
    blob = bytes(1 << 20)       # one stored bytes object, read by every array (a memo reference each time)
    swapped = _dtype("u2", (3, ">", None, None, None, -1, -1, 0))
    raw = pickle.dumps({b"filenames": [_array(swapped, (1 << 19,), blob) for _ in range(40)]}, protocol=2)
    assert len(raw) < 1.1 * len(blob)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"^data_batch_1: refused to unpickle: its arrays hold more bytes than the "
                                            r"file \([0-9,]+ bytes\), which no CIFAR-10 batch's do"):
            read_python_batch(raw, "data_batch_1")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20           # before: every array was made (40 MiB here, 243 MiB for 200 arrays)


@pytest.mark.parametrize("label, shown", [(1 << 70, "an integer of 71 bits"), (-1, "-1"), (10, "10")],
                         ids=["2**70", "-1", "10"])
def test_a_python_batchs_label_out_of_range_is_one_line(pixels, label, shown):
    images, labels = pixels["data_batch_1"]
    raw = python_batch(images, np.array([label, *labels[1:]], dtype=object))
    with pytest.raises(DataError, match=rf"^data_batch_1: labels must lie in \[0, 9\]; found {shown}\.$"):
        read_python_batch(raw, "data_batch_1")


# --- a tarball: members checked from their headers before they are read, and the archive's checksums ---------

@pytest.mark.parametrize("missing", [None, "data_batch_2"], ids=["all-there", "one-missing"])
def test_a_tarball_member_larger_than_the_releases_batches_is_refused_before_it_is_read(pixels, tmp_path, missing):
    batches = {k: v for k, v in _batches(pixels, binary_batch).items() if k != missing}
    tar = write_release(tmp_path, BINARY, {**batches, "data_batch_1": bytes(10_001 * 3073)}, tarball=True)
    assert tar.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"binary\.tar\.gz: (cifar-10-batches-bin/data_batch_1\.bin is 30,733,073 "
                                            r"bytes, more than a batch of the release holds \(30,730,000\); it is not "
                                            r"from cifar-10-binary\.tar\.gz|holds no file .*data_batch_2\.bin)"):
            get_data("cifar10").load(tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20          # before: the 30 MB member was read whole (a 256 MiB one as easily)


def test_a_flipped_bit_anywhere_in_a_tarball_is_one_line_or_changes_no_pixel(pixels, tmp_path):
    good = write_release(tmp_path / "good", BINARY, _batches(pixels, binary_batch), tarball=True)
    reference = get_data("cifar10").load(good.parent)
    raw = good.read_bytes()
    outcomes = []
    for place in np.linspace(0, len(raw) - 1, 20).astype(int):
        flipped = bytearray(raw)
        flipped[place] ^= 0x10
        folder = tmp_path / f"flip{place}"
        folder.mkdir()
        (folder / BINARY.tarball).write_bytes(bytes(flipped))
        try:
            data = get_data("cifar10").load(folder)
        except DataError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(str(folder / BINARY.tarball)), str(exc)
            outcomes.append("refused")
            continue
        assert data.fingerprint == reference.fingerprint, f"bit flipped at byte {place} of {len(raw)} changed pixels"
        outcomes.append("same pixels")
    assert outcomes.count("refused") >= 15, outcomes     # only the gzip header's name and time carry no checksum


def test_a_tarball_says_whether_its_md5_is_the_releases(pixels, tmp_path, monkeypatch):
    import hashlib

    tar = write_release(tmp_path, BINARY, _batches(pixels, binary_batch), tarball=True)
    md5 = hashlib.md5(tar.read_bytes()).hexdigest()
    note = get_data("cifar10").load(tmp_path).note
    assert f"md5 {md5} is not the release's {BINARY.md5}" in note and "pixels not checked" in note
    monkeypatch.setattr(cifar10, "BINARY", cifar10.Release(BINARY.tarball, BINARY.folder, BINARY.suffix, BINARY.url,
                                                           md5))
    assert f"md5 {md5} checked: the release's" in get_data("cifar10").load(tmp_path).note
