"""Wide&Deep (Cheng et al. 2016) and Deep&Cross (DCN-V2, Wang et al. 2021) for tables with numeric
and categorical columns; both take ``numeric`` (B, d) floats and ``categorical`` (B, k) codes
(absent for a numeric-only table)."""

from __future__ import annotations

from itertools import combinations

import torch
from torch import nn

from trainables.data._base import InputSpec
from trainables.hparams import Bool, Float, Int
from trainables.models._base import register_model
from trainables.models.mlp import mlp_layers

DEEP = {
    "embedding_dim": Int(8, 1, 256),
    "depth": Int(2, 0, 8),
    "width": Int(128, 1),
    "dropout": Float(0.1, 0.0, 1.0, closed="left"),
}


class Embeddings(nn.Module):
    """One embedding table per categorical column, concatenated with the numeric columns."""

    def __init__(self, spec: InputSpec, dim: int) -> None:
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(v, dim) for v in spec.categorical.values())
        self.out_features = spec.shapes["numeric"][0] + dim * len(self.tables)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor | None = None) -> torch.Tensor:
        return torch.cat([numeric, *(t(categorical[:, j]) for j, t in enumerate(self.tables))], dim=1)


class WideAndDeep(nn.Module):
    """Logits = wide (linear over numeric, one-hot and pairwise-crossed categoricals) + deep (MLP over
    embeddings and numeric columns)."""

    def __init__(self, spec: InputSpec, embedding_dim: int, depth: int, width: int, dropout: float,
                 crossed: bool) -> None:
        super().__init__()
        vocab = list(spec.categorical.values())
        n = spec.n_outputs
        self.numeric_linear = nn.Linear(spec.shapes["numeric"][0], n)
        self.one_hot = nn.ModuleList(nn.Embedding(v, n) for v in vocab)
        self.pairs = list(combinations(range(len(vocab)), 2)) if crossed else []
        self.crossed = nn.ModuleList(nn.Embedding(vocab[i] * vocab[j], n) for i, j in self.pairs)
        self.vocab = vocab
        for table in (*self.one_hot, *self.crossed):
            nn.init.zeros_(table.weight)
        self.embed = Embeddings(spec, embedding_dim)
        self.deep = nn.Sequential(*mlp_layers(self.embed.out_features, depth, width, dropout, False, "relu"),
                                  nn.Linear(width if depth else self.embed.out_features, n))

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor | None = None) -> torch.Tensor:
        wide = self.numeric_linear(numeric)
        for j, table in enumerate(self.one_hot):
            wide = wide + table(categorical[:, j])
        for (i, j), table in zip(self.pairs, self.crossed):
            wide = wide + table(categorical[:, i] * self.vocab[j] + categorical[:, j])
        return wide + self.deep(self.embed(numeric, categorical))


class CrossLayer(nn.Module):
    """DCN-V2's ``x0 * (W x + b) + x``: explicit feature crosses of growing degree."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x0 * self.linear(x) + x


class DeepAndCross(nn.Module):
    """Cross network and deep MLP in parallel over the same embeddings, concatenated into the head."""

    def __init__(self, spec: InputSpec, embedding_dim: int, depth: int, width: int, dropout: float,
                 cross_depth: int) -> None:
        super().__init__()
        self.embed = Embeddings(spec, embedding_dim)
        dim = self.embed.out_features
        self.cross = nn.ModuleList(CrossLayer(dim) for _ in range(cross_depth))
        self.deep = nn.Sequential(*mlp_layers(dim, depth, width, dropout, False, "relu"))
        self.head = nn.Linear(dim + (width if depth else dim), spec.n_outputs)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor | None = None) -> torch.Tensor:
        x0 = self.embed(numeric, categorical)
        x = x0
        for layer in self.cross:
            x = layer(x0, x)
        return self.head(torch.cat([x, self.deep(x0)], dim=1))


@register_model("wide_deep", inputs="tabular", hparams={**DEEP, "crossed": Bool(True)})
def wide_deep(spec: InputSpec, embedding_dim: int, depth: int, width: int, dropout: float,
              crossed: bool) -> WideAndDeep:
    return WideAndDeep(spec, embedding_dim, depth, width, dropout, crossed)


@register_model("deep_cross", inputs="tabular", hparams={**DEEP, "cross_depth": Int(2, 1, 8)})
def deep_cross(spec: InputSpec, embedding_dim: int, depth: int, width: int, dropout: float,
               cross_depth: int) -> DeepAndCross:
    return DeepAndCross(spec, embedding_dim, depth, width, dropout, cross_depth)
