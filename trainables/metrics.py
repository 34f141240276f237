"""Classification metrics computed on the device from a confusion matrix (no host round-trip)."""

from __future__ import annotations

import torch


def confusion_matrix(target: torch.Tensor, pred: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``C[i, j]`` = number of samples of true class ``i`` predicted as ``j`` (int64, on the device)."""
    flat = target.long() * n_classes + pred.long()
    return torch.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def macro_f1(confusion: torch.Tensor) -> torch.Tensor:
    """Macro-F1 as ``sklearn.metrics.f1_score(average="macro")`` defines it: the mean over the
    classes that occur in the targets or the predictions, with F1 = 0 where precision or
    recall is undefined."""
    tp = confusion.diagonal().double()
    support = confusion.sum(dim=1).double()
    predicted = confusion.sum(dim=0).double()
    denom = support + predicted
    present = denom > 0
    f1 = torch.where(present, 2 * tp / denom.clamp(min=1), torch.zeros_like(tp))
    return f1.sum() / present.sum().clamp(min=1)
