"""CIFAR-10 (Krizhevsky 2009): 60,000 colour images of 32x32 pixels in ten classes, 6,000 each (50,000
train, 10,000 test), read from the release as Alex Krizhevsky publishes it, in the data folder (default
``data/cifar10``) as the tarball or its extracted folder:

- the binary version, preferred (``cifar-10-binary.tar.gz`` or ``cifar-10-batches-bin/``):
  ``data_batch_1.bin`` ... ``data_batch_5.bin`` and ``test_batch.bin``, each a run of 3,073-byte records:
  the label byte, then 1,024 red, 1,024 green and 1,024 blue bytes, each plane row by row. Read directly.
- the python version (``cifar-10-python.tar.gz`` or ``cifar-10-batches-py/``): ``data_batch_1`` ...
  ``data_batch_5`` and ``test_batch``, pickled dicts of ``data`` (N x 3,072 uint8, the same layout) and
  ``labels``. Unpickled by :class:`ArrayUnpickler`, which admits numpy arrays, lists, dicts and bytes and
  refuses every other global, so a crafted batch file cannot run code, and calls the admitted ones only with
  the arguments the release's pickles pass, and sets only a plain numeric dtype's state, so it cannot make
  more bytes than it holds either, nor an array that reads past its memory.

A tarball is read member by member (never extracted); each batch's size is read from its header before the
batch is, and the tarball's md5 is checked against the release's: where it differs (a copy made otherwise, or
a damaged one) the gzip stream's own CRC-32 is checked instead, and the data's note says the pixels were not.

A stratified 10 % of the training images (seeded) validates; pixels are scaled to [0, 1] and normalised
per channel with the training split's mean and standard deviation. The searched augmentation runs per
training batch on the tensors, drawn from the recipe's seeded generator so that a trial repeats:
``hflip`` mirrors half of the images, ``crop`` cuts a random 32x32 window out of the image padded by 4.
The padding is 0 after normalisation, the training mean colour (torchvision pads black before it).

``spectune data --space cifar10_convnet`` downloads the binary tarball (md5 checked) where the network
allows and otherwise says which file to place where; ``--source synthetic`` writes a generated set in
the binary version's layout (``--rows`` training images, a fifth as many test images) to try the pair
offline.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import math
import os
import pickle
import re
import reprlib
import shlex
import tarfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping, Sequence

import numpy as np

from trainables.data._base import DataError, DataModule, InputSpec, Split, Splits, fingerprint, register_data, \
    stratified_split
from trainables.hparams import Bool

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SIDE = 32
RECORD = 1 + 3 * SIDE * SIDE
PAD = 4
VAL_FRACTION = 0.1
SEED = 0
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
SOURCES = ("release", "synthetic")
GENERATED = "GENERATED"
# The largest batch file of each version (by its suffix), checked before a batch is read: the binary
# version's 10,000 records, and the python version's pickle of them with their labels and file names
# (31,035,704 bytes in the release), with room.
LARGEST_BATCH = {".bin": 10_000 * RECORD, "": 32 << 20}


@dataclass(frozen=True)
class Release:
    """One version of the release: its tarball, the folder inside it and its batch-file suffix."""

    tarball: str
    folder: str
    suffix: str
    url: str
    md5: str


BINARY = Release("cifar-10-binary.tar.gz", "cifar-10-batches-bin", ".bin",
                 "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530")
PYTHON = Release("cifar-10-python.tar.gz", "cifar-10-batches-py", "",
                 "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")


def where_to_place(folder: Path) -> str:
    return (f"Place {BINARY.tarball} (md5 {BINARY.md5}, from {BINARY.url}) or its extracted folder {BINARY.folder}/ "
            f"in {folder} (the python version, {PYTHON.tarball} or {PYTHON.folder}/, is read too)")


# --- the python version: pickles that may hold numpy arrays and nothing else ---------------------------

# The dtypes a numeric array pickles: bool, signed and unsigned int, float, complex (not object, str, void).
TYPE_CODE = re.compile(r"[<>|=]?[biufc]\d{1,2}")
# A plain numeric dtype's state as numpy pickles it, after its byte order: no subarray, names or fields,
# sizes taken from the type code (-1), no flags.
PLAIN_DTYPE_STATE = (None, None, None, -1, -1, 0)


class Refused(pickle.UnpicklingError):
    """A pickle asked for a global outside :class:`ArrayUnpickler`'s list, or called one of them in a
    way a CIFAR-10 batch's pickle never does; the text says which."""


class _Admitted:
    """One admitted global as pickle's call opcodes see it: ``check`` returns the call's result, or ``None``
    for a call a CIFAR-10 batch does not make (``check`` ``None``: never called); ``allowed`` says what a
    batch does with it. Not a class, so NEWOBJ cannot instantiate it, and BUILD cannot swap its check."""

    __slots__ = ("name", "allowed", "check")

    def __init__(self, name: str, allowed: str, check: Callable[..., Any] | None) -> None:
        self.name, self.allowed, self.check = name, allowed, check

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self.check(*args) if self.check and not kwargs else None
        if result is None:
            shown = reprlib.repr(args)[1:-1].rstrip(",") + (", **" + reprlib.repr(kwargs) if kwargs else "")
            raise Refused(f"it calls {self.name}({shown}), and a CIFAR-10 batch {self.allowed}")
        return result

    def __repr__(self) -> str:
        return self.name

    def __setstate__(self, state: Any) -> None:
        raise Refused(f"it sets the state of {self.name}, which a CIFAR-10 batch never does")


class _DtypeState:
    """A dtype the pickle is building: ``numpy.dtype(code, 0, 1)``, then BUILD with its state. Kept out of
    numpy until that state is checked, because numpy's own ``__setstate__`` takes any state, a subarray of
    any size on a one-byte type included, and an array of such a dtype reads far past its memory."""

    __slots__ = ("dtype", "built")

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype, self.built = dtype, False

    def __setstate__(self, state: Any) -> None:
        if self.built:
            raise Refused(f"it sets the state of {self!r} twice, which a CIFAR-10 batch never does")
        whole = type(state) is tuple and len(state) == 8
        order = state[1] if whole else None
        order = order.decode("latin1") if type(order) is bytes else order   # Python 2's str, read as bytes
        if not whole or type(state[0]) is not int or state[0] != 3 or order not in ("<", ">", "|", "=") \
                or any(type(v) is not type(w) or v != w for v, w in zip(state[2:], PLAIN_DTYPE_STATE)):
            raise Refused(f"it sets {self!r}'s state to {reprlib.repr(state)}, and a CIFAR-10 batch sets only a "
                          "plain numeric dtype's: (3, byte order, None, None, None, -1, -1, 0)")
        self.dtype = self.dtype if order == "|" else self.dtype.newbyteorder(order)
        self.built = True

    def __repr__(self) -> str:
        return f"numpy.dtype({_code(self.dtype)!r})"


class _ArrayState:
    """An array the pickle is building: ``_reconstruct(numpy.ndarray, (0,), b'b')``, then BUILD with its
    state. Made here, not by numpy's ``__setstate__``, from a state checked first: a plain dtype, a shape
    its bytes fill exactly, and its bytes counted against the file's (:meth:`ArrayUnpickler.charge`)
    before the array is made, since one stored bytes object can be referred to by any number of states."""

    __slots__ = ("owner", "array")

    def __init__(self, owner: "ArrayUnpickler") -> None:
        self.owner, self.array = owner, None

    def __setstate__(self, state: Any) -> None:
        if self.array is not None:
            raise Refused("it sets the state of one numpy.ndarray twice, which a CIFAR-10 batch never does")
        if type(state) is not tuple or len(state) != 5:
            raise Refused(f"it sets a numpy.ndarray's state to {reprlib.repr(state)}, and a CIFAR-10 batch sets "
                          "only (1, shape, dtype, fortran order, bytes)")
        version, shape, dtype, fortran, raw = state
        if type(version) is not int or version != 1 or type(shape) is not tuple or len(shape) > 32 \
                or not all(type(n) is int and 0 <= n < 1 << 40 for n in shape) or type(dtype) is not _DtypeState \
                or type(fortran) not in (int, bool) or fortran not in (0, 1) or type(raw) is not bytes:
            raise Refused(f"it sets a numpy.ndarray's state to {reprlib.repr(state)}, and a CIFAR-10 batch sets "
                          "only (1, shape, plain numeric dtype, fortran order, bytes)")
        if math.prod(shape) * dtype.dtype.itemsize != len(raw):
            raise Refused(f"it sets a numpy.ndarray of shape {shape} and {dtype!r} from {len(raw):,} bytes, which "
                          "do not fill it exactly as a CIFAR-10 batch's do")
        self.owner.charge(len(raw))
        self.array = np.frombuffer(raw, dtype.dtype).reshape(shape, order="F" if fortran else "C").copy()

    def __repr__(self) -> str:
        # Never the array's values: a message shows what was called, not the data.
        return "numpy.ndarray" if self.array is None else f"numpy.ndarray({self.array.shape}, {self.array.dtype})"


def _code(dtype: np.dtype) -> str:
    """The type code numpy pickles a dtype by (``'u1'``, ``'f8'``): without its byte order."""
    return dtype.str[1:]


class ArrayUnpickler(pickle.Unpickler):
    """An unpickler for numpy arrays in dicts and lists: any other global (``os.system``,
    ``builtins.eval``, a class) is refused before it is imported, so nothing in the file runs, and the
    admitted ones take only the arguments a batch's pickle passes them, so no call allocates more than
    the file holds (``bytes(n)`` would allocate ``n`` bytes, a codec other than latin-1 could run any
    registered encoder). Arrays and dtypes are built by :class:`_ArrayState` and :class:`_DtypeState`, which
    check the state numpy would take as given; :meth:`arrays` hands the arrays out."""

    def __init__(self, file: BinaryIO, limit: int, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        # Bytes the calls may decode in all: a pickle could repeat one memoised str in many calls.
        self.left = limit
        # Bytes the arrays may hold in all, for the same reason: one stored bytes object, many arrays.
        self.limit, self.array_left = limit, limit
        self.ndarray = _Admitted("numpy.ndarray", "only passes it to _reconstruct", None)
        reconstruct = _Admitted("_reconstruct", "calls it only as _reconstruct(numpy.ndarray, (0,), b'b')",
                                self._reconstruct)
        empty = _Admitted("bytes", "calls it only as bytes()", _empty_bytes)
        self.admitted = {
            ("numpy.core.multiarray", "_reconstruct"): reconstruct,   # as numpy 1 (and the release) pickled it
            ("numpy._core.multiarray", "_reconstruct"): reconstruct,  # as numpy 2 does
            ("numpy", "ndarray"): self.ndarray,
            ("numpy", "dtype"): _Admitted("numpy.dtype", "calls it only as numpy.dtype(numeric type code, 0, 1)",
                                          _dtype),
            # Protocol 2 writes bytes as _codecs.encode(str, "latin1"), and b"" as bytes().
            ("_codecs", "encode"): _Admitted("_codecs.encode", "calls it only as _codecs.encode(str, 'latin1')",
                                             self._encode),
            ("builtins", "bytes"): empty, ("__builtin__", "bytes"): empty}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.admitted[(module, name)]
        except KeyError:
            raise Refused(f"it asks for {module}.{name}, and a CIFAR-10 batch needs only numpy arrays, lists, "
                          "dicts and bytes") from None

    def _reconstruct(self, *args: Any) -> _ArrayState | None:
        # An array to be, which BUILD then fills from bytes the file holds.
        if len(args) == 3 and args[0] is self.ndarray and type(args[1]) is tuple and args[1] == (0,) \
                and type(args[2]) is bytes and args[2] == b"b":
            return _ArrayState(self)
        return None

    def charge(self, size: int) -> None:
        """Count ``size`` bytes of one more array against the file's, before the array is made."""
        self.array_left -= size
        if self.array_left < 0:
            raise Refused(f"its arrays hold more bytes than the file ({self.limit:,} bytes), which no CIFAR-10 "
                          "batch's do")

    @staticmethod
    def arrays(batch: Any) -> Any:
        """``batch`` with each of its values that an array state built replaced by that array (a dict's
        values: where a batch keeps its arrays)."""
        if not isinstance(batch, dict):
            return batch
        for key, value in batch.items():
            if type(value) is _ArrayState:
                if value.array is None:
                    raise Refused("it makes a numpy.ndarray and never sets its state, which a CIFAR-10 batch "
                                  "never does")
                batch[key] = value.array
        return batch

    def _encode(self, *args: Any) -> bytes | None:
        if len(args) != 2 or type(args[0]) is not str or type(args[1]) is not str \
                or args[1] not in ("latin1", "latin-1"):
            return None
        self.left -= len(args[0])
        if self.left < 0:
            raise Refused("it decodes more bytes through _codecs.encode than the file holds, which no CIFAR-10 "
                          "batch does")
        return args[0].encode("latin1")


def _dtype(*args: Any) -> _DtypeState | None:
    """A numeric dtype as numpy pickles it: ``(type code, align=0, copy=1)``, whose state BUILD then sets."""
    if len(args) != 3 or type(args[1]) not in (int, bool) or type(args[2]) not in (int, bool) \
            or (args[1], args[2]) != (0, 1):
        return None
    code = args[0].decode("latin1") if isinstance(args[0], bytes) else args[0]
    return _DtypeState(np.dtype(code)) if isinstance(code, str) and TYPE_CODE.fullmatch(code) else None


def _empty_bytes(*args: Any) -> bytes | None:
    return b"" if not args else None


def read_python_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` of one pickled batch of the python version."""
    try:
        # encoding="bytes": the release was pickled by Python 2, whose str keys arrive as bytes.
        batch = ArrayUnpickler.arrays(ArrayUnpickler(io.BytesIO(raw), limit=len(raw), encoding="bytes").load())
    except Refused as exc:
        raise DataError(f"{where}: refused to unpickle: {exc}; this file is not the release's (it could run code "
                        f"or exhaust memory); download the release again ({PYTHON.url}).") from None
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file fails in many ways inside pickle
        detail = str(exc)[:100] or "no detail"
        raise DataError(f"{where}: not a readable CIFAR-10 python batch ({type(exc).__name__}: {detail}); the file "
                        f"is truncated or not from {PYTHON.tarball}.") from None
    if not isinstance(batch, dict):
        raise DataError(f"{where}: a CIFAR-10 python batch is a dict of data and labels; got {type(batch).__name__}.")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != RECORD - 1 \
            or not len(data):
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{where}: 'data' must be a uint8 array of N >= 1 x {RECORD - 1} pixels; got {got}.")
    if not isinstance(labels, list) or len(labels) != len(data) or not all(type(v) is int for v in labels):
        raise DataError(f"{where}: 'labels' must be a list of {len(data)} ints, one per image.")
    # Before the int64 array: a Python int of any size would not fit one.
    bad = next((v for v in labels if not 0 <= v < len(CLASSES)), None)
    if bad is not None:
        shown = str(bad) if bad.bit_length() < 64 else f"an integer of {bad.bit_length()} bits"
        raise DataError(f"{where}: labels must lie in [0, {len(CLASSES) - 1}]; found {shown}.")
    return data.reshape(-1, 3, SIDE, SIDE), np.array(labels, dtype=np.int64)


# --- the binary version: fixed records -------------------------------------------------------------------

def read_binary_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` of one file of 3,073-byte records."""
    if not raw or len(raw) % RECORD:
        raise DataError(f"{where}: {len(raw)} bytes is not a whole number of {RECORD:,}-byte records (a label byte "
                        f"and 3,072 pixel bytes); the file is truncated or not from {BINARY.tarball}.")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD)
    return records[:, 1:].reshape(-1, 3, SIDE, SIDE), records[:, 0].astype(np.int64)


def binary_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """Images ``(N, 3, 32, 32)`` uint8 and labels as the binary version's records."""
    return np.concatenate([np.asarray(labels, dtype=np.uint8)[:, None],
                           np.asarray(images, dtype=np.uint8).reshape(len(labels), -1)], axis=1).tobytes()


# --- finding and reading the release ---------------------------------------------------------------------

def _sources(folder: Path) -> list[tuple[Release, Path]]:
    """The release versions present, preferred first: an extracted folder (or the folder itself being
    one), then a tarball, binary before python."""
    found = []
    for release in (BINARY, PYTHON):
        first = f"{TRAIN_BATCHES[0]}{release.suffix}"
        for path in (folder / release.folder, folder, folder / release.tarball):
            if path.is_dir() and (path.name == release.folder or (path / first).is_file()):
                found.append((release, path))
                break
            if path.is_file():
                found.append((release, path))
                break
    return found


def _too_large(where: str, size: int, release: Release) -> DataError | None:
    largest = LARGEST_BATCH[release.suffix]
    if size <= largest:
        return None
    return DataError(f"{where} is {size:,} bytes, more than a batch of the release holds ({largest:,}); it is not "
                     f"from {release.tarball} ({release.url}).")


def _batches(release: Release, path: Path) -> dict[str, tuple[str, bytes]]:
    """Each batch's bytes with the name an error gives it, from an extracted folder or a tarball
    (read member by member, never extracted, so no path in the archive is written). Every batch's name
    and size are checked before any is read: a small archive can hold a member of any size."""
    names = [*TRAIN_BATCHES, "test_batch"]
    if path.is_dir():
        files = {}
        for name in names:
            file = path / f"{name}{release.suffix}"
            if not file.is_file():
                raise DataError(f"{file} is missing; {release.folder}/ must hold {names[0]}{release.suffix} ... "
                                f"{names[-2]}{release.suffix} and test_batch{release.suffix}. "
                                f"{where_to_place(path.parent)}.")
            error = _too_large(str(file), file.stat().st_size, release)
            if error:
                raise error
            files[name] = file
        return {name: (str(file), file.read_bytes()) for name, file in files.items()}
    try:
        with tarfile.open(path, "r:gz") as archive:
            members = {}
            for name in names:
                member = f"{release.folder}/{name}{release.suffix}"
                try:
                    info = archive.getmember(member)
                except KeyError:
                    info = None
                if info is None or not info.isfile():
                    raise DataError(f"{path}: holds no file {member}; it must be the release's {release.tarball} "
                                    f"({release.url}).")
                error = _too_large(f"{path}: {member}", info.size, release)
                if error:
                    raise error
                members[name] = (member, info)
            out = {}
            for name, (member, info) in members.items():
                handle = archive.extractfile(info)
                assert handle is not None   # a regular file, checked above
                out[name] = (f"{path}:{member}", handle.read(info.size))
            return out
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise _damaged(path, release, exc) from None


def _damaged(path: Path, release: Release, exc: Exception) -> DataError:
    # zlib.error and EOFError are not OSErrors: a damaged deflate stream or a cut one.
    module = type(exc).__module__
    kind = type(exc).__name__ if module == "builtins" else f"{module}.{type(exc).__name__}"
    return DataError(f"{path}: not a readable .tar.gz, damaged or cut short ({kind}: "
                     f"{str(exc)[:100] or 'no detail'}); download {release.url} again (md5 {release.md5}).")


def _check_tarball(path: Path, release: Release) -> str:
    """What was checked of the tarball ``path``, for the data's note: its md5 when it is the release's;
    otherwise its gzip stream read to the end, where gzip checks the CRC-32 and length of what it
    decompressed (a flipped bit would else load as other pixels), refused in one line when damaged."""
    md5 = _file_md5(path)
    if md5 == release.md5:
        return f"md5 {md5} checked: the release's"
    try:
        with gzip.open(path) as stream:
            while stream.read(1 << 20):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        raise _damaged(path, release, exc) from None
    return (f"md5 {md5} is not the release's {release.md5}, so its pixels not checked against the release (only "
            "the gzip CRC-32)")


def _file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def synthetic_images(rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` generated 32x32 images, the classes in equal shares: each class a colour and stripes of
    its own frequency and direction (both survive a mirror and a crop), at a random phase, under noise."""
    labels = rng.permutation(np.arange(rows) % len(CLASSES))
    colours = np.random.default_rng(1234).uniform(-1.0, 1.0, (len(CLASSES), 3))
    wave = np.sin((1 + labels // 2)[:, None] * np.arange(SIDE)[None, :] * 2 * np.pi / SIDE
                  + rng.uniform(0, 2 * np.pi, (rows, 1)))
    stripes = np.where((labels % 2 == 0)[:, None, None], wave[:, :, None], wave[:, None, :])   # rows or columns
    pixels = 128 + 60 * colours[labels][:, :, None, None] * (0.6 + 0.4 * stripes[:, None]) \
        + rng.normal(0, 30, (rows, 3, SIDE, SIDE))
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8), labels.astype(np.int64)


def _write_file(path: Path, payload: bytes) -> None:
    """Via a temporary file and a rename, so a reader never sees half a batch."""
    temp = path.with_name(f".{path.name}.tmp")
    try:
        temp.write_bytes(payload)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def write_binary_release(out: Path, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                         note: str | None = None) -> Path:
    """``out/cifar-10-batches-bin/``: the training images in five batch files and the test images, as
    the binary version lays them out; ``note`` marks a generated set (load() says so)."""
    folder = out / BINARY.folder
    folder.mkdir(parents=True, exist_ok=True)
    for name, part in zip(TRAIN_BATCHES, np.array_split(np.arange(len(train[1])), len(TRAIN_BATCHES))):
        _write_file(folder / f"{name}.bin", binary_bytes(train[0][part], train[1][part]))
    _write_file(folder / "test_batch.bin", binary_bytes(*test))
    _write_file(folder / "batches.meta.txt", ("\n".join(CLASSES) + "\n").encode())
    marker = folder / GENERATED
    if note is None:
        marker.unlink(missing_ok=True)
    else:
        _write_file(marker, note.encode())
    return folder


@register_data
class CIFAR10(DataModule):
    name = "cifar10"
    kind = "image"
    classes = CLASSES
    default_dir = Path("data/cifar10")
    hparams = {"hflip": Bool(True, help="mirror half of each training batch left-right"),
               "crop": Bool(True, help=f"cut a random {SIDE}x{SIDE} window out of each training image padded by {PAD}")}

    def load(self, folder: Path | None, classes: Sequence[str] | None = None) -> Splits:
        folder = self.folder(folder)
        if classes is not None:
            raise DataError("data 'cifar10' has fixed classes (CIFAR-10's ten labels); drop --classes.")
        found = _sources(folder) if folder.is_dir() else []
        if not found:
            out = "" if folder == self.default_dir else f" --out {shlex.quote(str(folder))}"
            raise DataError(f"no CIFAR-10 release in {folder}. Run `spectune data --space cifar10_convnet{out}` "
                            "where the network allows, "
                            f"or: {where_to_place(folder)}; or write a generated stand-in with --source synthetic.")
        release, path = found[0]
        read: Callable[[bytes, str], tuple[np.ndarray, np.ndarray]] = \
            read_binary_batch if release is BINARY else read_python_batch
        # Before the batches are read: a damaged tarball is told as one, not as a batch's odd content.
        checked = _check_tarball(path, release) if path.is_file() else "extracted: no md5 to check"
        parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, (where, raw) in _batches(release, path).items():
            images, labels = read(raw, where)
            if labels.min() < 0 or labels.max() >= len(CLASSES):
                bad = int(labels.max() if labels.max() >= len(CLASSES) else labels.min())
                raise DataError(f"{where}: labels must lie in [0, 9]; found {bad}.")
            # Records have a fixed size, so a cut at a record's end still reads: batch sizes tell.
            if parts and len(labels) != len(next(iter(parts.values()))[1]):
                raise DataError(f"{where}: holds {len(labels)} images, the batch before it "
                                f"{len(next(iter(parts.values()))[1])}; every batch of the release holds as many "
                                "(10,000), so this one is cut short or not the release's.")
            parts[name] = (images, labels)
        x_all = np.concatenate([parts[n][0] for n in TRAIN_BATCHES])
        y_all = np.concatenate([parts[n][1] for n in TRAIN_BATCHES])
        x_test, y_test = parts["test_batch"]
        absent = [CLASSES[c] for c in np.flatnonzero(np.bincount(y_all, minlength=len(CLASSES)) == 0)]
        if absent:
            raise DataError(f"{path}: classes {absent} have no training images; the training batches are not "
                            "CIFAR-10's.")
        train_idx, val_idx = stratified_split(y_all, (1 - VAL_FRACTION, VAL_FRACTION), SEED)
        train = x_all[train_idx].astype(np.float32) / 255.0
        mean = train.mean(axis=(0, 2, 3), keepdims=True)
        std = train.std(axis=(0, 2, 3), keepdims=True)
        std = np.where(std > 0, std, 1.0).astype(np.float32)

        def split(x: np.ndarray, y: np.ndarray) -> Split:
            return Split({"x": ((x.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)}, y)

        marker = path / GENERATED if path.is_dir() else None
        note = marker.read_text() if marker is not None and marker.is_file() else \
            f"the release's {release.tarball if path.is_file() else release.folder}, {checked}"
        # The pixels and labels, not the files: both versions of the same images load alike.
        return Splits(train=split(x_all[train_idx], y_all[train_idx]), val=split(x_all[val_idx], y_all[val_idx]),
                      test=split(x_test, y_test),
                      spec=InputSpec(kind="image", shapes={"x": (3, SIDE, SIDE)}, classes=CLASSES),
                      fingerprint=fingerprint("cifar10", x_all.tobytes(), y_all.tobytes(), x_test.tobytes(),
                                              y_test.tobytes(), f"{VAL_FRACTION}|{SEED}"),
                      note=note)

    def prepare(self, out: Path | None, seed: int, force: bool, source: str = "release", rows: int = 2000) -> str:
        folder = self.folder(out)
        if source not in SOURCES:
            raise DataError(f"--source must be one of {list(SOURCES)} for cifar10; got {source!r}.")
        found = _sources(folder) if folder.is_dir() else []
        if source == "synthetic":
            if found and not force:
                raise DataError(f"{found[0][1]} exists; pass --force to overwrite, or choose another --out.")
            if rows < 10 * len(CLASSES) or rows % len(TRAIN_BATCHES):
                raise DataError(f"--rows must be a multiple of {len(TRAIN_BATCHES)} (five training batches the size "
                                f"of the test batch, as in the release), at least {10 * len(CLASSES)} (10 training "
                                f"images per class, one of them validating); got {rows}.")
            rng = np.random.default_rng(seed)
            where = write_binary_release(folder, synthetic_images(rows, rng), synthetic_images(rows // 5, rng),
                                         note=f"generated stand-in (spectune data --source synthetic, seed {seed})")
            return (f"wrote {where}: {rows} training and {rows // 5} test images, generated (seed {seed}) in the "
                    "binary version's layout; not CIFAR-10")
        if found and not force:
            release, path = found[0]
            data = self.load(folder)
            checked = ""
            if path.is_file():
                md5 = _file_md5(path)
                checked = (f", md5 {md5} as the release's" if md5 == release.md5 else
                           f", md5 {md5} differs from the release's {release.md5}: not the original file")
            return f"CIFAR-10 found in {path}{checked}; {data.describe()}: nothing to prepare."
        path = self._download(BINARY, folder)
        return f"downloaded {BINARY.url} to {path} (md5 {BINARY.md5} checked); {self.load(folder).describe()}."

    @staticmethod
    def _download(release: Release, folder: Path) -> Path:
        """The release's tarball in ``folder``, its md5 checked before it takes its name."""
        folder.mkdir(parents=True, exist_ok=True)
        path, temp = folder / release.tarball, folder / f".{release.tarball}.part"
        digest = hashlib.md5()
        try:
            with temp.open("wb") as handle:
                try:
                    with urllib.request.urlopen(release.url, timeout=60) as response:
                        for block in iter(lambda: response.read(1 << 20), b""):
                            digest.update(block)
                            handle.write(block)
                except (OSError, http.client.HTTPException) as exc:   # URLError and timeouts are OSErrors
                    reason = getattr(exc, "reason", exc)
                    raise DataError(f"could not download {release.url} ({reason}). {where_to_place(folder)}, "
                                    "then run the same command again.") from None
            if digest.hexdigest() != release.md5:
                raise DataError(f"{release.url}: the download's md5 is {digest.hexdigest()}, not the release's "
                                f"{release.md5}; it was cut off or altered. Run the same command again; or, with a "
                                f"copy fetched elsewhere: {where_to_place(folder)}.")
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
        return path

    def augment(self, batch: dict[str, Any], hparams: Mapping[str, Any], generator: Any) -> dict[str, Any]:
        import torch

        x = batch["x"]
        if hparams.get("hflip"):
            flip = torch.rand(x.shape[0], generator=generator).to(x.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if hparams.get("crop"):
            n, height, width = x.shape[0], x.shape[-2], x.shape[-1]
            shift = torch.randint(0, 2 * PAD + 1, (2, n), generator=generator).to(x.device)
            padded = torch.nn.functional.pad(x, (PAD, PAD, PAD, PAD))
            rows = (shift[0][:, None] + torch.arange(height, device=x.device))[:, None, :, None]
            cols = (shift[1][:, None] + torch.arange(width, device=x.device))[:, None, None, :]
            x = padded[torch.arange(n, device=x.device)[:, None, None, None],
                       torch.arange(x.shape[1], device=x.device)[None, :, None, None], rows, cols]
        return batch if x is batch["x"] else {**batch, "x": x}
