"""The fundamentals notebook's MLP on numeric columns: ``depth`` hidden layers of ``width`` units."""

from __future__ import annotations

import torch
from torch import nn

from trainables.data._base import InputSpec
from trainables.hparams import Bool, Choice, ConfigError, Float, Int
from trainables.models._base import register_model

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU, "silu": nn.SiLU}


def mlp_layers(n_in: int, depth: int, width: int, dropout: float, batch_norm: bool, activation: str) -> list[nn.Module]:
    """``depth`` blocks of Linear [+ BatchNorm] + activation + Dropout; the last has ``width`` outputs."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(n_in, width), nn.BatchNorm1d(width) if batch_norm else nn.Identity(),
                   ACTIVATIONS[activation](), nn.Dropout(dropout)]
        n_in = width
    return layers


class MLP(nn.Module):
    def __init__(self, n_in: int, n_classes: int, depth: int, width: int, dropout: float, batch_norm: bool,
                 activation: str) -> None:
        super().__init__()
        self.body = nn.Sequential(*mlp_layers(n_in, depth, width, dropout, batch_norm, activation))
        self.head = nn.Linear(width if depth else n_in, n_classes)

    def forward(self, numeric: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(numeric))


@register_model("mlp", inputs="tabular", hparams={
    "depth": Int(2, 0, 8),
    "width": Int(64, 1),
    "dropout": Float(0.1, 0.0, 1.0, closed="left"),
    "batch_norm": Bool(False),
    "activation": Choice("relu", tuple(ACTIVATIONS)),
})
def mlp(spec: InputSpec, depth: int, width: int, dropout: float, batch_norm: bool, activation: str) -> MLP:
    if spec.categorical:
        raise ConfigError(f"model 'mlp' uses numeric columns only, but the data has categorical columns "
                          f"{list(spec.categorical)}; use tabular_widedeep or tabular_dcn for them.")
    return MLP(spec.shapes["numeric"][0], spec.n_classes, depth, width, dropout, batch_norm, activation)
