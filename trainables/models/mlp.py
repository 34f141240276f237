"""The fundamentals notebook's MLP on numeric columns: ``depth`` hidden layers, the first of ``width``
units and each next one ``shrink`` times as wide (1.0: all alike; 0.5 halves them, as the notebook's
California-housing net 8 -> 24 -> 12 -> 6 -> 1 does). Its head has one output per class, or one
prediction for a regression task."""

from __future__ import annotations

import torch
from torch import nn

from trainables.data._base import InputSpec
from trainables.hparams import Bool, Choice, ConfigError, Float, Int
from trainables.models._base import register_model

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU, "silu": nn.SiLU}


def layer_widths(depth: int, width: int, shrink: float = 1.0) -> list[int]:
    """The hidden layers' widths: ``width``, then each ``shrink`` times the previous (at least 1)."""
    return [max(1, round(width * shrink ** i)) for i in range(depth)]


def mlp_layers(n_in: int, depth: int, width: int, dropout: float, batch_norm: bool, activation: str,
               shrink: float = 1.0) -> list[nn.Module]:
    """``depth`` blocks of Linear [+ BatchNorm] + activation + Dropout, as wide as :func:`layer_widths`."""
    layers: list[nn.Module] = []
    for out in layer_widths(depth, width, shrink):
        layers += [nn.Linear(n_in, out), nn.BatchNorm1d(out) if batch_norm else nn.Identity(),
                   ACTIVATIONS[activation](), nn.Dropout(dropout)]
        n_in = out
    return layers


class MLP(nn.Module):
    def __init__(self, n_in: int, n_outputs: int, depth: int, width: int, dropout: float, batch_norm: bool,
                 activation: str, shrink: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(*mlp_layers(n_in, depth, width, dropout, batch_norm, activation, shrink))
        self.head = nn.Linear(layer_widths(depth, width, shrink)[-1] if depth else n_in, n_outputs)

    def forward(self, numeric: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(numeric))


@register_model("mlp", inputs="tabular", hparams={
    "depth": Int(2, 0, 8),
    "width": Int(64, 1),
    "dropout": Float(0.1, 0.0, 1.0, closed="left"),
    "batch_norm": Bool(False),
    "activation": Choice("relu", tuple(ACTIVATIONS)),
    "shrink": Float(1.0, 0.0, 1.0, closed="right"),
})
def mlp(spec: InputSpec, depth: int, width: int, dropout: float, batch_norm: bool, activation: str,
        shrink: float) -> MLP:
    if spec.categorical:
        raise ConfigError(f"model 'mlp' uses numeric columns only, but the data has categorical columns "
                          f"{list(spec.categorical)}; use tabular_widedeep or tabular_dcn for them.")
    return MLP(spec.shapes["numeric"][0], spec.n_outputs, depth, width, dropout, batch_norm, activation, shrink)
