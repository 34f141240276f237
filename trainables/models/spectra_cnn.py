"""The spectra classifiers of the ZTF notebook, with its exact layer shapes."""

from __future__ import annotations

from torch import nn

from trainables.data._base import InputSpec
from trainables.hparams import ConfigError, Float
from trainables.models._base import register_model

DROPOUT = {"dropout": Float(0.3, 0.0, 1.0, closed="left")}


class GalSpecNet(nn.Module):
    """Four Conv1d(k=3) + ReLU blocks with max-pooling by 4, then a 3-layer MLP (notebook layout).

    At 4096 points: 64x4096 -> pool 1024 -> 128x1024 -> pool 256 -> 256x256 -> pool 64 -> 32x64,
    flatten 2048, Dropout, 2048 -> 64 -> 32 -> n_classes.
    """

    def __init__(self, n_classes: int, n_points: int = 4096, dropout: float = 0.3, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(in_channels, 64, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool1d(4),
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


class BaselineSpectraCNN(nn.Module):
    """Two Conv1d(k=3, p=1) + ReLU, max-pool by 2, flatten, Linear -> 256, ReLU, Dropout, Linear."""

    def __init__(self, n_classes: int, n_points: int = 4096, dropout: float = 0.3, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(in_channels, 32, kernel_size=3, padding=1), nn.ReLU(),
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


@register_model("galspecnet", inputs="sequence", hparams=DROPOUT)
def galspecnet(spec: InputSpec, dropout: float) -> GalSpecNet:
    channels, points = spec.shapes["x"]
    if points < 64:
        raise ConfigError(f"galspecnet pools by 4 three times and needs at least 64 points per sequence; the "
                          f"data has {points}. Use longer sequences (or a smaller --points reduction).")
    return GalSpecNet(spec.n_classes, points, dropout, channels)


@register_model("baseline_cnn", inputs="sequence", hparams=DROPOUT)
def baseline_cnn(spec: InputSpec, dropout: float) -> BaselineSpectraCNN:
    channels, points = spec.shapes["x"]
    if points < 2:
        raise ConfigError(f"baseline_cnn pools by 2 and needs at least 2 points per sequence; the data has {points}.")
    return BaselineSpectraCNN(spec.n_classes, points, dropout, channels)
