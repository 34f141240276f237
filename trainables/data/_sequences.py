"""Sequence data stored as a folder of ``train.pt``, ``val.pt``, ``test.pt``.

Each file is a dict saved with ``torch.save``: a float tensor ``(N, C, L)`` (or ``(N, L)`` for one
channel) under the module's ``key``, and ``labels``, N class names or indices. Files are read with
``torch.load(weights_only=True)``, so a file that needs arbitrary pickle is refused, never run.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Sequence

from trainables.data._base import (DataError, DataModule, InputSpec, Split, Splits, check_every_class_trains,
                                   check_finite, fingerprint, parse_labels, read_split_files)


class SequenceFolder(DataModule):
    """A :class:`DataModule` for ``(N, C, L)`` sequences in a folder; subclasses set ``key``
    (the tensor's name in the files), ``min_points`` and ``generate_hint`` (the command that makes
    the folder)."""

    kind: ClassVar[str] = "sequence"
    key: ClassVar[str]
    min_points: ClassVar[int] = 1
    generate_hint: ClassVar[str] = ""

    def load(self, folder: Path | None, classes: Sequence[str] | None = None) -> Splits:
        folder, order, splits, parts = read_split_files(self, folder, classes, self._parse, self.generate_hint,
                                                        self.key)
        shapes = {n: s.inputs["x"].shape[1:] for n, s in splits.items()}
        if len(set(shapes.values())) > 1:
            raise DataError(f"{folder}: sequence shapes (channels, length) differ between splits {shapes}; "
                            "all splits must be on the same grid.")
        check_every_class_trains(folder / "train.pt", splits["train"].labels, order)
        spec = InputSpec(kind=self.kind, shapes={"x": tuple(shapes["train"])}, classes=order)
        return Splits(train=splits["train"], val=splits["val"], test=splits["test"], spec=spec,
                      fingerprint=fingerprint(*parts))

    def _parse(self, path: Path, obj: object, order: tuple[str, ...]) -> Split:
        import torch

        if not isinstance(obj, dict):
            raise DataError(f"{path}: expected a dict with keys {self.key!r} and 'labels', got {type(obj).__name__}.")
        missing = [k for k in (self.key, "labels") if k not in obj]
        if missing:
            raise DataError(f"{path}: missing key(s) {missing}; found {sorted(map(str, obj))}. Each split is a "
                            f"dict {{{self.key!r}: tensor (N, C, L), 'labels': list of N labels}}.")
        x = obj[self.key]
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise DataError(f"{path}: {self.key!r} must be a float tensor, got {type(x).__name__}"
                            f"{'' if not isinstance(x, torch.Tensor) else ' of ' + str(x.dtype)}.")
        if x.ndim == 2:
            x = x.unsqueeze(1)
        if x.ndim != 3:
            raise DataError(f"{path}: {self.key!r} must have shape (N, C, L) or (N, L); got {tuple(x.shape)}.")
        if x.shape[-1] < self.min_points:
            raise DataError(f"{path}: sequences have {x.shape[-1]} points; this data needs at least "
                            f"{self.min_points}.")
        values = x.to(torch.float32).numpy()
        check_finite(str(path), self.key, values)
        labels = parse_labels(path, obj["labels"], order)
        if labels.shape[0] != values.shape[0]:
            raise DataError(f"{path}: {values.shape[0]} sequences in {self.key!r} but {labels.shape[0]} entries "
                            "in 'labels'; there must be one label per sequence.")
        return Split(inputs={"x": values}, labels=labels)

