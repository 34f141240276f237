"""The normalisation exercise's DeeperCNN: two blocks of ``convs_per_block`` 3x3 convolutions (widths
``hidden_1`` and ``hidden_2``), each followed by max-pooling, then an MLP head; the normalisation
layer after every convolution is a choice."""

from __future__ import annotations

import torch
from torch import nn

from trainables.data._base import InputSpec
from trainables.hparams import Choice, ConfigError, Float, Int
from trainables.models._base import register_model

NORMS = ("none", "batch", "layer", "group")


def norm_layer(norm: str, channels: int, groups: int) -> nn.Module:
    """``layer`` normalises over (C, H, W) per example, i.e. GroupNorm with one group."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "layer":
        return nn.GroupNorm(1, channels)
    if norm == "group":
        return nn.GroupNorm(groups, channels)
    return nn.Identity()


class DeeperCNN(nn.Module):
    def __init__(self, n_classes: int, shape: tuple[int, int, int], hidden_1: int, hidden_2: int,
                 convs_per_block: int, norm: str, groups: int, fc: int, dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = shape[0]
        for width in (hidden_1, hidden_2):
            for _ in range(convs_per_block):
                layers += [nn.Conv2d(cin, width, 3, padding=1, bias=norm == "none"), norm_layer(norm, width, groups),
                           nn.ReLU()]
                cin = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(hidden_2 * (shape[1] // 4) * (shape[2] // 4), fc),
                                        nn.ReLU(), nn.Dropout(dropout), nn.Linear(fc, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model("deeper_cnn", inputs="image", hparams={
    "hidden_1": Int(32, 1),
    "hidden_2": Int(64, 1),
    "convs_per_block": Int(2, 1, 4),
    "norm": Choice("batch", NORMS),
    "groups": Int(4, 1, when=("norm", ("group",))),
    "fc": Int(128, 1),
    "dropout": Float(0.3, 0.0, 1.0, closed="left"),
})
def deeper_cnn(spec: InputSpec, hidden_1: int, hidden_2: int, convs_per_block: int, norm: str, fc: int,
               dropout: float, groups: int = 1) -> DeeperCNN:
    shape = spec.shapes["x"]
    if min(shape[1:]) < 4:
        raise ConfigError(f"deeper_cnn pools by 2 twice and needs images of at least 4x4; the data has {shape}.")
    bad = [w for w in (hidden_1, hidden_2) if norm == "group" and w % groups]
    if bad:
        raise ConfigError(f"deeper_cnn: norm 'group' needs widths divisible by groups={groups}; got hidden_1="
                          f"{hidden_1}, hidden_2={hidden_2}. Search widths and groups that divide them.")
    return DeeperCNN(spec.n_classes, shape, hidden_1, hidden_2, convs_per_block, norm, groups, fc, dropout)
