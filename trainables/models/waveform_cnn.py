"""The course's "tricks of the trade" 1D CNN: two Conv1d blocks (16 and 32 channels, k=5) and an MLP,
with batch norm and residual connections as switches."""

from __future__ import annotations

import torch
from torch import nn

from trainables.data._base import InputSpec
from trainables.hparams import Bool, ConfigError, Float, Int
from trainables.models._base import register_model


class ConvBlock(nn.Module):
    """Conv1d(k=5) [+ BatchNorm] + ReLU + Dropout [+ 1x1-projected shortcut], then max-pool by 2."""

    def __init__(self, cin: int, cout: int, batch_norm: bool, residual: bool, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel_size=5, padding=2, bias=not batch_norm)
        self.norm = nn.BatchNorm1d(cout) if batch_norm else nn.Identity()
        self.drop = nn.Dropout(dropout)
        self.shortcut = (nn.Conv1d(cin, cout, kernel_size=1) if cin != cout else nn.Identity()) if residual else None
        self.pool = nn.MaxPool1d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.drop(torch.relu(self.norm(self.conv(x))))
        if self.shortcut is not None:
            y = y + self.shortcut(x)
        return self.pool(y)


class WaveformCNN(nn.Module):
    def __init__(self, n_classes: int, channels: int, points: int, batch_norm: bool, residual: bool,
                 dropout_conv: float, dropout_fc: float, hidden: int) -> None:
        super().__init__()
        self.features = nn.Sequential(ConvBlock(channels, 16, batch_norm, residual, dropout_conv),
                                      ConvBlock(16, 32, batch_norm, residual, dropout_conv))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * (points // 4), hidden), nn.ReLU(),
                                        nn.Dropout(dropout_fc), nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model("waveform_cnn", inputs="sequence", hparams={
    "batch_norm": Bool(False),
    "residual": Bool(False),
    "dropout_conv": Float(0.0, 0.0, 1.0, closed="left"),
    "dropout_fc": Float(0.3, 0.0, 1.0, closed="left"),
    "hidden": Int(64, 1),
})
def waveform_cnn(spec: InputSpec, batch_norm: bool, residual: bool, dropout_conv: float, dropout_fc: float,
                 hidden: int) -> WaveformCNN:
    channels, points = spec.shapes["x"]
    if points < 4:
        raise ConfigError(f"waveform_cnn pools by 2 twice and needs at least 4 points; the data has {points}.")
    return WaveformCNN(spec.n_classes, channels, points, batch_norm, residual, dropout_conv, dropout_fc,
                       hidden)
