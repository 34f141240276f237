"""ZTF transient-spectra splits: load, validate at the boundary, and scale down for CPU budgets.

A data folder holds ``train.pt``, ``val.pt`` and ``test.pt``, each a dict saved with
``torch.save``: ``flux`` (float tensor ``(N, 1, L)`` or ``(N, L)``) and ``labels`` (N class
names or class indices). Files are read with ``torch.load(weights_only=True)``, so a file that
needs arbitrary pickle is refused, never executed. Every problem is raised as one
:class:`DataError` naming the file, the rule and the fix, before any training starts.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

DEFAULT_CLASSES: tuple[str, ...] = (
    "SN Ia", "SN Ib", "SN Ic", "SN IIP", "SN IIb", "SN IIn", "AGN", "Cataclysmic", "TDE",
)
SPLITS = ("train", "val", "test")
# GalSpecNet pools by 4 three times; shorter spectra leave nothing to flatten.
MIN_POINTS = 64


class DataError(ValueError):
    """A data folder or file that cannot be used as it is; the message says how to fix it."""


@dataclass(frozen=True)
class Split:
    """One split: ``flux`` float32 ``(N, 1, L)`` and ``labels`` int64 ``(N,)``."""

    flux: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class SpectraData:
    """Validated splits plus the class order and a fingerprint of the files they came from and,
    once scaled down, of the scaling: equal fingerprints mean the same training data."""

    train: Split
    val: Split
    test: Split | None
    classes: tuple[str, ...]
    fingerprint: str
    note: str = "as stored"

    @property
    def n_points(self) -> int:
        return int(self.train.flux.shape[-1])

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> str:
        sizes = ", ".join(f"{n} {len(s)}" for n, s in self._present())
        return f"{self.n_classes} classes; {sizes} spectra x {self.n_points} points ({self.note})"

    def _present(self) -> list[tuple[str, Split]]:
        return [(n, getattr(self, n)) for n in SPLITS if getattr(self, n) is not None]


def resolve_classes(data_dir: Path, classes: Sequence[str] | None = None) -> tuple[str, ...]:
    """The class order: ``classes`` if given, else ``classes.json`` in the folder, else the default."""
    if classes is not None:
        order = tuple(classes)
        source = "--classes"
    elif (data_dir / "classes.json").is_file():
        path = data_dir / "classes.json"
        try:
            order = tuple(json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError) as exc:
            raise DataError(f"{path}: not a JSON list of class names ({exc}). "
                            'Write it as ["SN Ia", "SN Ib", ...].') from None
        source = str(path)
    else:
        return DEFAULT_CLASSES
    if len(order) < 2 or not all(isinstance(c, str) and c for c in order):
        raise DataError(f"{source}: the class order must list at least 2 non-empty names; got {list(order)}.")
    if len(set(order)) != len(order):
        dupes = sorted({c for c in order if order.count(c) > 1})
        raise DataError(f"{source}: class names must be unique; repeated: {dupes}.")
    return order


def load_spectra(
    data_dir: str | Path, classes: Sequence[str] | None = None, with_test: bool = False
) -> SpectraData:
    """Load and validate ``train.pt`` and ``val.pt`` (and ``test.pt`` when ``with_test``)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} does not exist. Generate the synthetic set with "
                        f"`spectune data --out {data_dir}` (or `make data`), or pass --data DIR "
                        "pointing at a folder holding train.pt, val.pt and test.pt.")
    order = resolve_classes(data_dir, classes)
    names = SPLITS if with_test else SPLITS[:2]
    digest = hashlib.sha256(json.dumps(order).encode())
    splits: dict[str, Split] = {}
    for name in names:
        path = data_dir / f"{name}.pt"
        raw = _read(path)
        digest.update(raw)
        splits[name] = _parse(path, raw, order)
    lengths = {n: s.flux.shape[-1] for n, s in splits.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"{data_dir}: spectra lengths differ between splits {lengths}; "
                        "all splits must be interpolated onto the same wavelength grid.")
    counts = np.bincount(splits["train"].labels, minlength=len(order))
    absent = [order[i] for i in np.flatnonzero(counts == 0)]
    if absent:
        raise DataError(f"{data_dir / 'train.pt'}: classes {absent} have no training spectra. "
                        "Add examples of them, or drop them from the class order (classes.json or --classes).")
    return SpectraData(train=splits["train"], val=splits["val"], test=splits.get("test"),
                       classes=order, fingerprint=digest.hexdigest()[:16])


def _read(path: Path) -> bytes:
    if not path.is_file():
        raise DataError(f"{path} is missing. A data folder must hold train.pt, val.pt and test.pt; "
                        f"generate a synthetic set with `spectune data --out {path.parent}`.")
    return path.read_bytes()


def _parse(path: Path, raw: bytes, order: tuple[str, ...]) -> Split:
    try:
        obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        needs = [ln.split("Unsupported global:")[1].split(" was not")[0].strip()
                 for ln in str(exc).splitlines() if "Unsupported global:" in ln]
        if not needs:
            raise DataError(f"{path}: not a readable torch.save file (it is corrupt or another format).") from None
        raise DataError(f"{path}: refused to load: it needs arbitrary pickle, which could run code "
                        f"({needs[0]}). Re-save it as a dict of a flux tensor and a list of labels.") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a corrupt file
        raise DataError(f"{path}: not a readable torch.save file ({type(exc).__name__}: {exc}).") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict with keys 'flux' and 'labels', got {type(obj).__name__}.")
    missing = [k for k in ("flux", "labels") if k not in obj]
    if missing:
        raise DataError(f"{path}: missing key(s) {missing}; found {sorted(map(str, obj))}. "
                        "Each split is a dict {'flux': tensor (N, 1, L), 'labels': list of N labels}.")
    flux = _flux(path, obj["flux"])
    labels = _labels(path, obj["labels"], order)
    if labels.shape[0] != flux.shape[0]:
        raise DataError(f"{path}: {flux.shape[0]} spectra in 'flux' but {labels.shape[0]} entries in "
                        "'labels'; there must be one label per spectrum.")
    return Split(flux=flux, labels=labels)


def _flux(path: Path, flux: object) -> np.ndarray:
    if not isinstance(flux, torch.Tensor) or not flux.is_floating_point():
        raise DataError(f"{path}: 'flux' must be a float tensor, got {type(flux).__name__}"
                        f"{'' if not isinstance(flux, torch.Tensor) else ' of ' + str(flux.dtype)}.")
    if flux.ndim == 2:
        flux = flux.unsqueeze(1)
    if flux.ndim != 3 or flux.shape[1] != 1:
        raise DataError(f"{path}: 'flux' must have shape (N, 1, L) or (N, L); got {tuple(flux.shape)}.")
    if flux.shape[-1] < MIN_POINTS:
        raise DataError(f"{path}: spectra have {flux.shape[-1]} points; at least {MIN_POINTS} are needed "
                        "(the real data has 4096).")
    bad = ~torch.isfinite(flux).reshape(flux.shape[0], -1).all(dim=1)
    if bad.any():
        rows = torch.nonzero(bad).flatten()
        raise DataError(f"{path}: {rows.numel()} spectra contain NaN or inf flux (first at index "
                        f"{int(rows[0])}). Remove or repair them before training.")
    return flux.to(torch.float32).numpy()


def _labels(path: Path, labels: object, order: tuple[str, ...]) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
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


def scale_down(data: SpectraData, points: int | None = None, train_per_class: int | None = None,
               seed: int = 0) -> SpectraData:
    """Shrink the data for small budgets: block-average spectra to ``points`` and keep at most
    ``train_per_class`` training spectra per class (stratified, seeded). Val and test are only
    resampled, never subsampled, so validation stays comparable."""
    if points is None and train_per_class is None:
        return data
    notes = []
    if points is not None and points != data.n_points:
        if points < MIN_POINTS or data.n_points % points:
            raise DataError(f"--points must divide the spectrum length {data.n_points} and be at least "
                            f"{MIN_POINTS}; got {points}. Try {data.n_points // 4} or {data.n_points // 8}.")
        data = replace(data, train=_pool(data.train, points), val=_pool(data.val, points),
                       test=_pool(data.test, points))
        notes.append(f"block-averaged to {points} points")
    if train_per_class is not None:
        if train_per_class < 1:
            raise DataError(f"--train-per-class must be >= 1; got {train_per_class}.")
        rng = np.random.default_rng(seed)
        keep = np.concatenate([rng.permutation(np.flatnonzero(data.train.labels == c))[:train_per_class]
                               for c in range(data.n_classes)])
        keep.sort()
        data = replace(data, train=Split(data.train.flux[keep], data.train.labels[keep]))
        notes.append(f"at most {train_per_class} training spectra per class")
    if not notes:
        return data
    # The subset depends on the seed only when training spectra are subsampled.
    scaling = f"{data.fingerprint}|points={points}|train_per_class={train_per_class}|seed={seed if train_per_class else ''}"
    return replace(data, note="scaled down: " + ", ".join(notes),
                   fingerprint=hashlib.sha256(scaling.encode()).hexdigest()[:16])


def _pool(split: Split | None, points: int) -> Split | None:
    if split is None:
        return None
    factor = split.flux.shape[-1] // points
    flux = split.flux.reshape(len(split), 1, points, factor).mean(axis=-1, dtype=np.float32)
    return Split(flux, split.labels)
