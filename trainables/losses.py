"""The recipe's losses: alpha-balanced multi-class focal loss (Lin et al. 2017, "Focal Loss for Dense
Object Detection"), which also gives class-weighted and plain cross-entropy, and the regression losses.

Each loss is a mean over its batch weighted per example, and says that weight (``weight_sum``), so
the loop can turn batch means into one mean over a whole split, whatever the batch size."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def balanced_alpha(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """Per-class weights ``N / (C * count_c)`` from the training labels (sklearn's "balanced")."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    return torch.as_tensor(len(labels) / (n_classes * np.maximum(counts, 1.0)), dtype=torch.float32)


class FocalLoss(nn.Module):
    """``sum_i alpha_{y_i} (1 - p_i)^gamma (-log p_i) / sum_i alpha_{y_i}``.

    Normalising by the summed weights makes ``gamma = 0`` exactly ``F.cross_entropy(weight=alpha)``.
    """

    def __init__(self, alpha: torch.Tensor, gamma: float = 2.0) -> None:
        super().__init__()
        self.register_buffer("alpha", alpha.float())
        self.gamma = float(gamma)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # Float32 log-softmax: under bf16 autocast the focusing term would lose its small values.
        logp = F.log_softmax(logits.float(), dim=1)
        if self.gamma:
            # 1 - p via expm1 keeps precision near p = 1; the floor keeps the gradient of
            # x ** gamma finite there when gamma < 1 (at x = 0 it is infinite, and inf * 0 = NaN).
            logp = (-torch.expm1(logp)).clamp(min=1e-6).pow(self.gamma) * logp
        return F.nll_loss(logp, target, weight=self.alpha)

    def weight_sum(self, target: torch.Tensor) -> torch.Tensor:
        """The weights of a batch's mean: each example's class weight."""
        return self.alpha[target].double().sum()


class RegressionLoss(nn.Module):
    """Mean squared error, Huber (``delta`` in the standardised target's unit) or mean absolute error
    of a model's one output per example against float targets."""

    def __init__(self, kind: str, delta: float = 1.0) -> None:
        super().__init__()
        self.kind = kind
        self.delta = float(delta)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # Float32: under bf16 autocast a squared error loses its small values.
        output, target = output.float().squeeze(-1), target.float()
        if self.kind == "mse":
            return F.mse_loss(output, target)
        if self.kind == "l1":
            return F.l1_loss(output, target)
        return F.huber_loss(output, target, delta=self.delta)

    def weight_sum(self, target: torch.Tensor) -> torch.Tensor:
        """Every example weighs one."""
        # Filled on the device: a tensor made from a host number would be a copy, and a sync on a GPU.
        return target.new_full((), target.shape[0], dtype=torch.float64)
