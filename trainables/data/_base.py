"""The data contract: what a data module declares, what it returns, and the checks they share.

A data module is one file in ``trainables/data/`` (or ``data/`` of a folder on ``SPECTUNE_PATH``)
holding a :class:`DataModule` subclass decorated with :func:`register_data`. It declares its task
(``classification``: int class labels; ``regression``: float targets), loads, validates and describes
its splits (:class:`Splits`: named input arrays plus labels or targets per split, an
:class:`InputSpec` for the model, one fingerprint) and, behind ``spectune data --space NAME``,
writes, fetches or checks its files. Every problem is one :class:`DataError` naming the file,
the rule and the fix, raised before any training starts.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import tempfile
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from results.errors import DataError
from trainables.hparams import Table, check_table
from trainables.tasks import CLASSIFICATION, REGRESSION, TASKS

SPLITS = ("train", "val", "test")
KINDS = ("sequence", "image", "tabular", "tokens")


@dataclass(frozen=True)
class Split:
    """One split: named input arrays (first axis N) and ``labels`` ``(N,)``: int64 class indices, or
    float32 targets for a regression task (standardised when the splits say so, see :class:`Splits`)."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, index: np.ndarray) -> "Split":
        return Split({k: v[index] for k, v in self.inputs.items()}, self.labels[index])


@dataclass(frozen=True)
class InputSpec:
    """What a model is told about its inputs, and nothing else about the data.

    ``shapes`` gives each input's shape without the batch axis; tabular data also names its
    ``numeric`` columns and its ``categorical`` columns with their vocabulary sizes (index 0 is
    kept for values unseen in training); token data gives ``token_ids``, one more than its largest
    token id, the vocabulary an embedding must have at least. A regression task has no classes and
    names its ``target``; a model returns ``n_outputs`` values per example either way.
    """

    kind: str
    shapes: dict[str, tuple[int, ...]]
    classes: tuple[str, ...]
    numeric: tuple[str, ...] = ()
    categorical: dict[str, int] = field(default_factory=dict)
    token_ids: int = 0
    task: str = CLASSIFICATION
    target: str = ""

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_outputs(self) -> int:
        """What a model returns per example: one logit per class, or one prediction of the target."""
        return 1 if self.task == REGRESSION else self.n_classes

    def describe(self) -> str:
        shapes = ", ".join(f"{k} {tuple(v)}" for k, v in self.shapes.items())
        return f"{self.kind} inputs {shapes}"


@dataclass(frozen=True)
class Splits:
    """Validated splits with their input description and a fingerprint of the data and its
    scaling: equal fingerprints mean the same data, for search, train and ``train --test``
    (the test split is always read, checked and hashed, but only kept when asked for).

    ``target_scale`` is the ``(mean, std)`` a regression target was standardised with (on the
    training split): a model learns ``(y - mean) / std``, and metrics are reported after undoing it,
    in the target's own unit. ``(0.0, 1.0)``: targets as stored."""

    train: Split
    val: Split
    test: Split | None
    spec: InputSpec
    fingerprint: str
    note: str = "as stored"
    target_scale: tuple[float, float] = (0.0, 1.0)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.spec.classes

    @property
    def n_classes(self) -> int:
        return self.spec.n_classes

    @property
    def task(self) -> str:
        return self.spec.task

    def describe(self) -> str:
        sizes = ", ".join(f"{n} {len(s)}" for n, s in (("train", self.train), ("val", self.val),
                                                         ("test", self.test)) if s is not None)
        if self.task == REGRESSION:
            mean, std = self.target_scale
            scaled = f", standardised on train (mean {mean:.4g}, std {std:.4g})" if (mean, std) != (0.0, 1.0) else ""
            return (f"regression of {self.spec.target or 'a target'}{scaled}; {sizes} examples; "
                    f"{self.spec.describe()} ({self.note})")
        return f"{self.n_classes} classes; {sizes} examples; {self.spec.describe()} ({self.note})"


class DataModule:
    """Base class of a data module: declare, then implement :meth:`load` (and :meth:`prepare`).

    Class attributes: ``name`` (what spaces refer to), ``kind`` (one of sequence, image,
    tabular, tokens), ``task`` (``classification``, the default, or ``regression``), ``hparams``
    (knobs a space may search, applied per batch by :meth:`augment`), ``default_dir`` (where
    :meth:`load` looks without ``--data``; ``None`` for data that ships in a package) and
    ``classes`` (the default class order; a regression module has none).
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    task: ClassVar[str] = CLASSIFICATION
    hparams: ClassVar[Table] = {}
    default_dir: ClassVar[Path | None] = None
    classes: ClassVar[tuple[str, ...]] = ()

    def load(self, folder: Path | None, classes: Sequence[str] | None = None) -> Splits:
        """Read and validate every split (test included, for the fingerprint and its checks)."""
        raise NotImplementedError

    def prepare(self, out: Path | None, seed: int, force: bool, **options: Any) -> str:
        """Write, fetch or check the files :meth:`load` needs; return what was done, in words."""
        raise DataError(f"data {self.name!r} has no preparation step; it loads as it is.")

    def augment(self, batch: dict[str, Any], hparams: Mapping[str, Any], generator: Any) -> dict[str, Any]:
        """Change a training batch according to this module's searched knobs (default: as it is)."""
        return batch

    def folder(self, folder: Path | None) -> Path | None:
        return Path(folder) if folder is not None else self.default_dir


_DATA: dict[str, DataModule] = {}


def register_data(cls: type[DataModule]) -> type[DataModule]:
    """Class decorator: register a :class:`DataModule` under its ``name``."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__}: a data module needs a class attribute name = '...'")
    if getattr(cls, "kind", None) not in KINDS:
        raise TypeError(f"{cls.__name__}: kind must be one of {KINDS}; got {getattr(cls, 'kind', None)!r}")
    if cls.task not in TASKS:
        raise TypeError(f"{cls.__name__}: task must be one of {TASKS}; got {cls.task!r}")
    if name in _DATA and type(_DATA[name]).__qualname__ != cls.__qualname__:
        raise ValueError(f"data module {name!r} is registered twice ({type(_DATA[name]).__module__} and "
                         f"{cls.__module__})")
    check_table(cls.hparams, f"data {name}")
    _DATA[name] = cls()
    return cls


def data_registry() -> dict[str, DataModule]:
    return _DATA


# --- shared checks and helpers ------------------------------------------------------------------

def fingerprint(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
    return digest.hexdigest()[:16]


def resolve_classes(folder: Path | None, classes: Sequence[str] | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """The class order: ``classes`` if given, else ``classes.json`` in the folder, else ``default``."""
    if classes is not None:
        order, source = tuple(classes), "--classes"
    elif folder is not None and (folder / "classes.json").is_file():
        path = folder / "classes.json"
        try:
            order = tuple(json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError) as exc:
            raise DataError(f"{path}: not a JSON list of class names ({exc}). "
                            'Write it as ["SN Ia", "SN Ib", ...].') from None
        source = str(path)
    else:
        return default
    if len(order) < 2 or not all(isinstance(c, str) and c for c in order):
        raise DataError(f"{source}: the class order must list at least 2 non-empty names; got {list(order)}.")
    if len(set(order)) != len(order):
        dupes = sorted({c for c in order if order.count(c) > 1})
        raise DataError(f"{source}: class names must be unique; repeated: {dupes}.")
    return order


def read_torch_file(path: Path) -> tuple[bytes, Any]:
    """The raw bytes and the object of a ``torch.save`` file, loaded with ``weights_only=True``:
    a file that needs arbitrary pickle is refused (naming the global it asked for), never run."""
    import torch

    if not path.is_file():
        raise DataError(f"{path} is missing.")
    raw = path.read_bytes()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # torch warns about pickle protocols before refusing them
            obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        is_pickle, unsafe = _scan_pickle(raw)
        if unsafe:
            raise DataError(f"{path}: refused to load: unpickling it would import {unsafe!r}, and loading a file "
                            "that needs arbitrary pickle could run code. Re-save it with torch.save as a dict of "
                            "tensors and a list of labels.") from None
        if is_pickle:
            raise DataError(f"{path}: a pickle that torch.load(weights_only=True) cannot read (a plain pickle?). "
                            "Re-save it with torch.save as a dict of tensors and a list of labels.") from None
        raise DataError(f"{path}: not a readable torch.save file (corrupt or another format: "
                        f"{str(exc).splitlines()[0][:120]}).") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a corrupt file
        raise DataError(f"{path}: not a readable torch.save file ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}).") from None
    return raw, obj


# Globals that torch.save writes for tensors and plain containers; any other one is code to import.
_SAFE_GLOBALS = ("torch.", "collections.OrderedDict", "builtins.set", "builtins.frozenset", "_codecs.encode")


def _scan_pickle(raw: bytes) -> tuple[bool, str | None]:
    """Whether ``raw`` (or the pickle inside a torch.save zip) is a whole pickle, and the first global
    it imports beyond tensors and plain containers; read with ``pickletools``, which runs nothing."""
    import pickletools
    import zipfile

    data = raw
    if raw[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
                data = archive.read(name) if name else b""
        except zipfile.BadZipFile:
            return False, None
    strings: list[str] = []
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name == "GLOBAL":
                found = str(arg).replace(" ", ".")
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found = f"{strings[-2]}.{strings[-1]}"
            else:
                if isinstance(arg, str):
                    strings.append(arg)
                continue
            if not found.startswith(_SAFE_GLOBALS):
                return True, found
    except Exception:  # noqa: BLE001 - a truncated or foreign byte stream is no pickle
        return False, None
    return True, None


def read_split_files(module: DataModule, folder: Path | None, classes: Sequence[str] | None,
                     parse: Callable[[Path, Any, tuple[str, ...]], Split], hint: str, *salt: str
                     ) -> tuple[Path, tuple[str, ...], dict[str, Split], list[bytes | str]]:
    """The folder, class order and parsed ``train.pt``, ``val.pt``, ``test.pt`` of a folder module,
    with what its fingerprint hashes (the order, ``salt`` and every file's bytes). ``hint`` is the
    command that writes the folder; ``parse(path, obj, order)`` checks one file's contents."""
    folder = module.folder(folder)
    if folder is None or not folder.is_dir():
        raise DataError(f"data folder {folder} does not exist. {hint} or pass --data DIR "
                        "pointing at a folder holding train.pt, val.pt and test.pt.")
    order = resolve_classes(folder, classes, module.classes)
    parts: list[bytes | str] = [repr(order), *salt]
    splits: dict[str, Split] = {}
    for name in SPLITS:
        path = folder / f"{name}.pt"
        if not path.is_file():
            raise DataError(f"{path} is missing. A data folder must hold train.pt, val.pt and test.pt; "
                            f"{hint[0].lower() + hint[1:]}.")
        raw, obj = read_torch_file(path)
        parts.append(raw)
        splits[name] = parse(path, obj, order)
    return folder, order, splits, parts


def parse_labels(path: Path | str, labels: object, order: tuple[str, ...]) -> np.ndarray:
    """Class names or indices to int64 indices into ``order``."""
    if hasattr(labels, "tolist"):
        labels = labels.tolist()
    if not isinstance(labels, (list, tuple)):
        raise DataError(f"{path}: 'labels' must be a list of class names or indices, got {type(labels).__name__}.")
    index = {name: i for i, name in enumerate(order)}
    if all(isinstance(v, str) for v in labels):
        unknown = sorted(set(labels) - index.keys())
        if unknown:
            raise DataError(f"{path}: labels {unknown} are not in the class order {list(order)}. "
                            "Give the full order in classes.json next to the splits or with --classes.")
        return np.fromiter((index[v] for v in labels), dtype=np.int64, count=len(labels))
    if all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        out = np.asarray(labels, dtype=np.int64)
        if out.size and (out.min() < 0 or out.max() >= len(order)):
            raise DataError(f"{path}: label indices must lie in [0, {len(order) - 1}] for the "
                            f"{len(order)}-class order; got values from {out.min()} to {out.max()}. "
                            "Give the full order in classes.json or with --classes.")
        return out
    kinds = sorted({type(v).__name__ for v in labels})
    raise DataError(f"{path}: 'labels' must be all class names (str) or all indices (int); found {kinds}.")


def check_finite(where: str, name: str, values: np.ndarray) -> None:
    bad = ~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataError(f"{where}: {rows.size} examples contain NaN or inf in {name!r} (first at index "
                        f"{int(rows[0])}). Remove or repair them before training.")


def check_every_class_trains(where: str | Path, labels: np.ndarray, order: tuple[str, ...]) -> None:
    counts = np.bincount(labels, minlength=len(order))
    absent = [order[i] for i in np.flatnonzero(counts == 0)]
    if absent:
        raise DataError(f"{where}: classes {absent} have no training examples. "
                        "Add examples of them, or drop them from the class order (classes.json or --classes).")


def stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Sorted index arrays, one per fraction, drawn per class so every part keeps the class mix."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        cuts = np.round(np.cumsum(fractions)[:-1] * len(idx)).astype(int)
        for i, chunk in enumerate(np.split(idx, cuts)):
            parts[i].append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


def standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Every array scaled with the training array's mean and standard deviation."""
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return [((a - mean) / std).astype(np.float32) for a in (train, *others)]


def random_split(n: int, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Sorted index arrays, one per fraction, of a seeded permutation of ``n`` rows: the split of a
    regression table, whose float targets have no classes to stratify on."""
    idx = np.random.default_rng(seed).permutation(n)
    cuts = np.round(np.cumsum(fractions)[:-1] * n).astype(int)
    return [np.sort(part) for part in np.split(idx, cuts)]


def standardise_target(train: np.ndarray, *others: np.ndarray) -> tuple[list[np.ndarray], tuple[float, float]]:
    """Float targets scaled with the training targets' mean and standard deviation, and that
    ``(mean, std)``, which :class:`Splits` keeps so that metrics are reported in the target's unit."""
    mean, std = float(train.mean()), float(train.std())
    std = std if std > 0 else 1.0
    return [((a - mean) / std).astype(np.float32) for a in (train, *others)], (mean, std)


def write_torch_splits(out: Path, splits: Mapping[str, dict[str, Any]]) -> dict[str, Path]:
    """``torch.save`` each split to ``out/<split>.pt`` so that the folder never holds a half-written
    set: all payloads are serialised first, then each lands via a temporary file and a rename."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    payloads: dict[str, bytes] = {}
    for split, obj in splits.items():
        buffer = io.BytesIO()   # saving to memory keeps the archive name, and so the bytes, fixed
        torch.save(obj, buffer)
        payloads[split] = buffer.getvalue()
    temps: dict[str, Path] = {}
    try:
        for split, payload in payloads.items():
            fd, name = tempfile.mkstemp(dir=out, prefix=f".{split}.", suffix=".pt.tmp")
            temps[split] = Path(name)
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
        paths = {split: out / f"{split}.pt" for split in payloads}
        for split, temp in list(temps.items()):
            os.replace(temp, paths[split])
            del temps[split]
    finally:
        for temp in temps.values():
            temp.unlink(missing_ok=True)
    return paths


def refuse_overwrite(out: Path, force: bool) -> None:
    existing = [n for n in ("train.pt", "val.pt", "test.pt") if (out / n).exists()]
    if existing and not force:
        raise DataError(f"{out} already holds {existing}; pass --force to overwrite, or choose another --out.")


# --- scaling for small budgets -----------------------------------------------------------------

def scale_down(data: Splits, points: int | None = None, train_per_class: int | None = None,
               seed: int = 0, train_fraction: float | None = None, tokens: int | None = None) -> Splits:
    """Shrink the data for small budgets: block-average sequences to ``points``, cut token sequences
    to their first ``tokens``, keep at most ``train_per_class`` training examples per class and/or a
    stratified ``train_fraction`` of them (which keeps an imbalanced class mix; a random fraction for
    a regression task, which has no classes), seeded. Val and test are only resampled, never
    subsampled, so validation stays comparable."""
    if points is None and tokens is None and train_per_class is None and train_fraction is None:
        return data
    notes = []
    if points is not None:
        if data.spec.kind != "sequence":
            fix = "use --tokens to cut token sequences" if data.spec.kind == "tokens" else "drop --points"
            raise DataError(f"--points block-averages sequence data; this data has {data.spec.kind} inputs: {fix}.")
        length = next(iter(data.spec.shapes.values()))[-1]
        if points != length:
            if length % points:
                raise DataError(f"--points must divide the sequence length {length}; got {points}. "
                                f"Try {length // 4} or {length // 8}.")
            pool: Callable[[Split | None], Split | None] = lambda s: None if s is None else Split(
                {k: v.reshape(*v.shape[:-1], points, length // points).mean(axis=-1, dtype=np.float32)
                 for k, v in s.inputs.items()}, s.labels)
            spec = replace(data.spec, shapes={k: (*v[:-1], points) for k, v in data.spec.shapes.items()})
            data = replace(data, train=pool(data.train), val=pool(data.val), test=pool(data.test), spec=spec)
            notes.append(f"block-averaged to {points} points")
    if tokens is not None:
        if data.spec.kind != "tokens":
            fix = "use --points to block-average sequences" if data.spec.kind == "sequence" else "drop --tokens"
            raise DataError(f"--tokens cuts token sequences; this data has {data.spec.kind} inputs: {fix}.")
        length = next(iter(data.spec.shapes.values()))[0]
        if not 2 <= tokens <= length:
            raise DataError(f"--tokens cuts token sequences of {length} tokens; it must be in [2, {length}]; "
                            f"got {tokens}.")
        cut: Callable[[Split | None], Split | None] = lambda s: None if s is None else Split(
            {k: np.ascontiguousarray(v[:, :tokens]) for k, v in s.inputs.items()}, s.labels)
        data = replace(data, train=cut(data.train), val=cut(data.val), test=cut(data.test),
                       spec=replace(data.spec, shapes={k: (tokens,) for k in data.spec.shapes}))
        notes.append(f"cut to the first {tokens} tokens")
    if train_per_class is not None:
        if data.task == REGRESSION:
            raise DataError("--train-per-class caps the training examples of each class, and this data is a "
                            "regression task with no classes; use --train-fraction instead.")
        if train_per_class < 1:
            raise DataError(f"--train-per-class must be >= 1; got {train_per_class}.")
        rng = np.random.default_rng(seed)
        keep = np.concatenate([rng.permutation(np.flatnonzero(data.train.labels == c))[:train_per_class]
                               for c in range(data.n_classes)])
        keep.sort()
        data = replace(data, train=data.train.take(keep))
        notes.append(f"at most {train_per_class} training examples per class")
    if train_fraction is not None:
        if not 0 < train_fraction <= 1:
            raise DataError(f"--train-fraction must be in (0, 1]; got {train_fraction}.")
        if data.task == REGRESSION:
            keep = random_split(len(data.train), (train_fraction, 1 - train_fraction), seed)[0]
        else:
            keep = stratified_split(data.train.labels, (train_fraction, 1 - train_fraction), seed)[0]
        data = replace(data, train=data.train.take(keep))
        notes.append(f"{train_fraction:g} of the training examples"
                     + (" (stratified)" if data.task == CLASSIFICATION else ""))
    if not notes:
        return data
    # The subset depends on the seed only when training examples are subsampled.
    subsampled = train_per_class is not None or train_fraction is not None
    scaling = f"{data.fingerprint}|points={points}|train_per_class={train_per_class}|seed={seed if subsampled else ''}"
    if train_fraction is not None:
        scaling += f"|train_fraction={train_fraction}"
    if tokens is not None:
        scaling += f"|tokens={tokens}"
    return replace(data, note="scaled down: " + ", ".join(notes), fingerprint=fingerprint(scaling))
