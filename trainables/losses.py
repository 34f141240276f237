"""Alpha-balanced multi-class focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection")."""

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
