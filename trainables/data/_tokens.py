"""Tokenised text stored as a folder of ``train.pt``, ``val.pt``, ``test.pt``.

Each file is a dict saved with ``torch.save``: ``input_ids`` (int tensor ``(N, L)``), ``attention_mask``
(``(N, L)`` of 0/1, 1 for real tokens) and ``labels`` (N class names or indices). Tokenising once,
when the folder is written, keeps the tokenizer out of every epoch and every trial.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np

from trainables.data._base import (DataError, DataModule, InputSpec, Split, Splits, check_every_class_trains,
                                   fingerprint, parse_labels, read_split_files)

KEYS = ("input_ids", "attention_mask")


class TokenFolder(DataModule):
    """A :class:`DataModule` for token ids and attention masks in a folder; subclasses set
    ``generate_hint`` (the command that writes the folder)."""

    kind: ClassVar[str] = "tokens"
    generate_hint: ClassVar[str] = ""

    def load(self, folder: Path | None, classes: Sequence[str] | None = None) -> Splits:
        folder, order, splits, parts = read_split_files(self, folder, classes, self._parse, self.generate_hint)
        lengths = {n: s.inputs["input_ids"].shape[1] for n, s in splits.items()}
        if len(set(lengths.values())) > 1:
            raise DataError(f"{folder}: sequence lengths differ between splits {lengths}; tokenise every split "
                            "to the same length.")
        check_every_class_trains(folder / "train.pt", splits["train"].labels, order)
        length = lengths["train"]
        spec = InputSpec(kind=self.kind, shapes={k: (length,) for k in KEYS}, classes=order,
                         token_ids=1 + max(int(s.inputs["input_ids"].max(initial=0)) for s in splits.values()))
        return Splits(train=splits["train"], val=splits["val"], test=splits["test"], spec=spec,
                      fingerprint=fingerprint(*parts))

    def _parse(self, path: Path, obj: object, order: tuple[str, ...]) -> Split:
        import torch

        if not isinstance(obj, dict) or any(k not in obj for k in (*KEYS, "labels")):
            found = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
            raise DataError(f"{path}: expected a dict with keys {[*KEYS, 'labels']}; found {found}.")
        arrays = {}
        for key in KEYS:
            x = obj[key]
            if not isinstance(x, torch.Tensor) or x.is_floating_point() or x.dtype == torch.bool or x.ndim != 2:
                raise DataError(f"{path}: {key!r} must be an integer tensor of shape (N, L); got "
                                f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}.")
            arrays[key] = x.to(torch.int64).numpy()
        ids, mask = arrays["input_ids"], arrays["attention_mask"]
        if ids.shape != mask.shape:
            raise DataError(f"{path}: input_ids {ids.shape} and attention_mask {mask.shape} must have the same shape.")
        if ids.size and ids.min() < 0:
            raise DataError(f"{path}: input_ids holds negative ids (min {ids.min()}); token ids start at 0.")
        if not np.isin(mask, (0, 1)).all() or (mask.sum(axis=1) == 0).any():
            raise DataError(f"{path}: attention_mask must hold only 0 and 1, with at least one 1 per row.")
        labels = parse_labels(path, obj["labels"], order)
        if labels.shape[0] != ids.shape[0]:
            raise DataError(f"{path}: {ids.shape[0]} sequences but {labels.shape[0]} labels; there must be one "
                            "label per sequence.")
        return Split(inputs=arrays, labels=labels)
