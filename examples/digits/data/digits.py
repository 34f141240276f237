"""scikit-learn's bundled handwritten digits: 1,797 images of 8x8 pixels, 10 classes.
Nothing to download."""

import numpy as np

from trainables.data import DataError, DataModule, InputSpec, Split, Splits, register_data
from trainables.data._base import fingerprint, stratified_split

SPLIT_SEED = 0


@register_data
class Digits(DataModule):
    name = "digits"
    kind = "image"
    classes = tuple(str(d) for d in range(10))

    def load(self, folder, classes=None):
        from sklearn.datasets import load_digits

        if folder is not None:
            raise DataError(f"data 'digits' ships with scikit-learn and reads no "
                            f"folder; drop --data {folder}.")
        if classes is not None:
            raise DataError("data 'digits' has fixed classes (0 to 9); drop --classes.")
        bunch = load_digits()
        # (N, 1, 8, 8) images with pixels in [0, 1], and int64 class indices.
        x = (bunch.images / 16.0).astype(np.float32)[:, None]
        y = bunch.target.astype(np.int64)
        # Train / validation / test, stratified, always the same split.
        parts = stratified_split(y, (0.6, 0.2, 0.2), SPLIT_SEED)
        train, val, test = (Split({"x": x[p]}, y[p]) for p in parts)
        spec = InputSpec(kind="image", shapes={"x": (1, 8, 8)}, classes=self.classes)
        return Splits(train, val, test, spec=spec,
                      fingerprint=fingerprint("digits", x.tobytes(), str(SPLIT_SEED)))

    def prepare(self, out, seed, force):
        return "data 'digits' ships with scikit-learn: nothing to prepare."
