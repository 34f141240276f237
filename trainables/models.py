"""The spectra classifiers of the ZTF notebook, with its exact layer shapes, and a model registry.

Add an architecture by decorating its class (or a builder function) with ``@register_model("name")``; everything
else (the recipe, the CLI, the tests parametrized over ``list_models()``) picks it up.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

ModelBuilder = Callable[..., nn.Module]
_MODELS: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Register ``fn(n_classes, n_points, dropout) -> nn.Module`` under ``name``."""
    def deco(fn: ModelBuilder) -> ModelBuilder:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = fn
        return fn
    return deco


def list_models() -> list[str]:
    return sorted(_MODELS)


def build_model(name: str, n_classes: int, n_points: int, dropout: float) -> nn.Module:
    """Build a registered model for inputs of shape ``(B, 1, n_points)``."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return _MODELS[name](n_classes=n_classes, n_points=n_points, dropout=dropout)


@register_model("galspecnet")
class GalSpecNet(nn.Module):
    """Four Conv1d(k=3) + ReLU blocks with max-pooling by 4, then a 3-layer MLP (notebook layout).

    At 4096 points: 64x4096 -> pool 1024 -> 128x1024 -> pool 256 -> 256x256 -> pool 64 -> 32x64,
    flatten 2048, Dropout, 2048 -> 64 -> 32 -> n_classes.
    """

    def __init__(self, n_classes: int, n_points: int = 4096, dropout: float = 0.3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, 64, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool1d(4),
            nn.Conv1d(64, 128, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool1d(4),
            nn.Conv1d(128, 256, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool1d(4),
            nn.Conv1d(256, 32, kernel_size=3, padding=1), nn.ReLU(),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(32 * (n_points // 64), 64), nn.ReLU(),
            nn.Linear(64, 32), nn.ReLU(),
            nn.Linear(32, n_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


@register_model("baseline_cnn")
class BaselineSpectraCNN(nn.Module):
    """Two Conv1d(k=3, p=1) + ReLU, max-pool by 2, flatten, Linear -> 256, ReLU, Dropout, Linear."""

    def __init__(self, n_classes: int, n_points: int = 4096, dropout: float = 0.3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, 32, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv1d(32, 64, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool1d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * (n_points // 2), 256), nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(256, n_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))

