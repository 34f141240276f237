"""Fashion-MNIST made imbalanced, as in the course's normalisation exercise.

Class k keeps (k + 1) * 600 training and (k + 1) * 100 test images (a seeded choice within
each class), so T-shirt/top has 600 and Ankle boot 6,000; validation is 15 % of the kept
training images, stratified. Pixels are scaled to [0, 1] and standardised with the training
split's mean and standard deviation. Read from the standard IDX files (``*-ubyte.gz``).
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from trainables.data._base import DataError, DataModule, InputSpec, Split, Splits, fingerprint, register_data, \
    stratified_split
from trainables.hparams import Bool

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot")
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
PER_CLASS = {"train": 600, "test": 100}
VAL_FRACTION = 0.15
SEED = 0
SOURCES = ("Install Debian's package (`apt-get install dataset-fashion-mnist`, files under "
           f"{DEBIAN_DIR}), or put the four *-ubyte.gz files of Zalando's release "
           "(github.com/zalandoresearch/fashion-mnist, data/fashion) in a folder and pass --data DIR.")


def read_idx(path: Path, magic: int) -> np.ndarray:
    """An IDX array (``magic`` 2051: images (N, rows, cols); 2049: labels (N,)) from a gzip file."""
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable gzip file ({exc}). {SOURCES}") from None
    dims = magic - 2048
    header = 4 + 4 * dims
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        raise DataError(f"{path}: not an IDX file with magic number {magic}. {SOURCES}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    if len(raw) != header + int(np.prod(shape)):
        raise DataError(f"{path}: holds {len(raw) - header} bytes of data, but its header says {shape}. "
                        "The file is truncated or corrupt.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def imbalance(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices keeping (k + 1) * per_class examples of class k (fewer if there are fewer)."""
    keep = [rng.permutation(np.flatnonzero(labels == k))[:(k + 1) * per_class] for k in range(len(CLASSES))]
    return np.sort(np.concatenate(keep))


@register_data
class FashionMNIST(DataModule):
    name = "fashion_mnist"
    kind = "image"
    classes = CLASSES
    default_dir = DEBIAN_DIR
    hparams = {"hflip": Bool(False, help="flip half of each training batch left-right")}

    def load(self, folder: Path | None, classes: Sequence[str] | None = None) -> Splits:
        folder = self.folder(folder)
        if classes is not None:
            raise DataError("data 'fashion_mnist' has fixed classes (the ten Fashion-MNIST labels); drop --classes.")
        missing = [n for pair in FILES.values() for n in pair if not (folder / n).is_file()]
        if missing:
            raise DataError(f"Fashion-MNIST files {missing} are not in {folder}. {SOURCES}")
        raw: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for split, (images, labels) in FILES.items():
            x, y = read_idx(folder / images, 2051), read_idx(folder / labels, 2049).astype(np.int64)
            if x.shape[0] != y.shape[0] or x.shape[1:] != (28, 28):
                raise DataError(f"{folder / images}: expected N x 28 x 28 images with one label each; got "
                                f"{x.shape} images and {y.shape[0]} labels.")
            if y.max() >= len(CLASSES):
                raise DataError(f"{folder / labels}: labels must lie in [0, 9]; found {int(y.max())}.")
            raw[split] = (x, y)
        rng = np.random.default_rng(SEED)
        kept = {s: imbalance(raw[s][1], PER_CLASS[s], rng) for s in FILES}
        x_all, y_all = raw["train"][0][kept["train"]], raw["train"][1][kept["train"]]
        train_idx, val_idx = stratified_split(y_all, (1 - VAL_FRACTION, VAL_FRACTION), SEED)
        x_test, y_test = raw["test"][0][kept["test"]], raw["test"][1][kept["test"]]
        train = x_all[train_idx].astype(np.float32) / 255.0
        mean, std = float(train.mean()), float(train.std())

        def split(x: np.ndarray, y: np.ndarray) -> Split:
            return Split({"x": ((x.astype(np.float32) / 255.0 - mean) / std)[:, None]}, y)

        spec = InputSpec(kind="image", shapes={"x": (1, 28, 28)}, classes=CLASSES)
        return Splits(train=split(x_all[train_idx], y_all[train_idx]), val=split(x_all[val_idx], y_all[val_idx]),
                      test=split(x_test, y_test), spec=spec,
                      fingerprint=fingerprint("fashion_mnist", *(a.tobytes() for pair in raw.values() for a in pair),
                                              f"{PER_CLASS}|{VAL_FRACTION}|{SEED}"),
                      note="imbalanced: class k keeps (k+1)*600 train, (k+1)*100 test")

    def prepare(self, out: Path | None, seed: int, force: bool) -> str:
        folder = self.folder(out)
        self.load(folder)
        return f"Fashion-MNIST found and readable in {folder}: nothing to prepare."

    def augment(self, batch: dict[str, Any], hparams: Mapping[str, Any], generator: Any) -> dict[str, Any]:
        if not hparams.get("hflip"):
            return batch
        import torch

        x = batch["x"]
        flip = torch.rand(x.shape[0], generator=generator).to(x.device) < 0.5
        return {**batch, "x": torch.where(flip[:, None, None, None], x.flip(-1), x)}
