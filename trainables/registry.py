"""Architecture/dataset pairs that a search space can drive.

A pair names a registered model, the loader of its data and the hyperparameters its
trainable accepts. Adding a pair is one ``register_trainable(...)`` call next to its model
and data loader; the Ray trainable and the training recipe are shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from trainables.config import Recipe
from trainables.data import SpectraData, load_spectra


@dataclass(frozen=True)
class TrainablePair:
    """One architecture/dataset pair: its model name, data loader, default data folder and the
    hyperparameters a space may search for it."""

    name: str
    model: str
    load_data: Callable[..., SpectraData]
    default_data: Path
    hyperparameters: tuple[str, ...]


_PAIRS: dict[str, TrainablePair] = {}


def register_trainable(pair: TrainablePair) -> TrainablePair:
    if pair.name in _PAIRS:
        raise ValueError(f"trainable {pair.name!r} is registered twice")
    _PAIRS[pair.name] = pair
    return pair


def list_trainables() -> list[str]:
    return sorted(_PAIRS)


def get_trainable(name: str) -> TrainablePair:
    if name not in _PAIRS:
        raise KeyError(f"unknown trainable {name!r}; registered trainables: {', '.join(list_trainables())}")
    return _PAIRS[name]


def load_pair_data(pair: TrainablePair, data_dir: str | Path | None = None,
                   classes: Sequence[str] | None = None, with_test: bool = False) -> SpectraData:
    """Load (and validate) a pair's data from ``data_dir`` or its default folder."""
    return pair.load_data(Path(data_dir) if data_dir else pair.default_data, classes=classes,
                          with_test=with_test)


SYNTHETIC_ZTF = Path("data/ztf-synthetic")

register_trainable(TrainablePair("galspecnet_ztf", "galspecnet", load_spectra, SYNTHETIC_ZTF, tuple(Recipe.keys())))
register_trainable(TrainablePair("baseline_cnn_ztf", "baseline_cnn", load_spectra, SYNTHETIC_ZTF, tuple(Recipe.keys())))
