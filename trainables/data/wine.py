"""The wine recognition data shipped with scikit-learn (178 wines, 13 measurements, 3 cultivars).

Split 60/20/20 stratified with a fixed seed, then standardised with the training split's mean
and standard deviation only, so nothing about validation or test leaks into the inputs.
Runs offline everywhere: the quick pair of the tests and the README.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from trainables.data._base import DataError, DataModule, InputSpec, Split, Splits, fingerprint, register_data, \
    standardise, stratified_split

SPLIT_SEED = 0


@register_data
class Wine(DataModule):
    name = "wine"
    kind = "tabular"
    classes = ("class_0", "class_1", "class_2")

    def load(self, folder: Path | None, classes: Sequence[str] | None = None) -> Splits:
        from sklearn.datasets import load_wine

        if folder is not None:
            raise DataError(f"data 'wine' ships with scikit-learn and reads no folder; drop --data {folder}.")
        if classes is not None:
            raise DataError("data 'wine' has fixed classes (class_0, class_1, class_2); drop --classes.")
        bunch = load_wine()
        x, y = bunch.data.astype(np.float64), bunch.target.astype(np.int64)
        parts = stratified_split(y, (0.6, 0.2, 0.2), SPLIT_SEED)
        train, val, test = standardise(*(x[p] for p in parts))
        splits = [Split({"numeric": a}, y[p]) for a, p in zip((train, val, test), parts)]
        spec = InputSpec(kind="tabular", shapes={"numeric": (x.shape[1],)}, classes=self.classes,
                         numeric=tuple(bunch.feature_names))
        return Splits(*splits, spec=spec, fingerprint=fingerprint("wine", x.tobytes(), y.tobytes(), str(SPLIT_SEED)))

    def prepare(self, out: Path | None, seed: int, force: bool) -> str:
        return "data 'wine' ships with scikit-learn: nothing to prepare."
