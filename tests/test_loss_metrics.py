import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score

from trainables.losses import FocalLoss, balanced_alpha
from trainables.metrics import confusion_matrix, macro_f1


def test_focal_loss_matches_a_hand_computed_value():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    target = torch.tensor([0, 2])
    alpha = torch.tensor([1.0, 2.0, 3.0])
    p0 = math.exp(2) / (math.exp(2) + 1 + math.exp(-1))
    p1 = 1 / (2 * math.exp(0.5) + 1)
    terms = [1.0 * (1 - p0) ** 2 * -math.log(p0), 3.0 * (1 - p1) ** 2 * -math.log(p1)]
    expected = sum(terms) / (1.0 + 3.0)
    assert FocalLoss(alpha, gamma=2.0)(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_focal_loss_at_gamma_zero_is_weighted_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(64, 9, generator=g), torch.randint(0, 9, (64,), generator=g)
    alpha = torch.rand(9, generator=g) + 0.5
    assert FocalLoss(alpha, gamma=0.0)(logits, target).item() == pytest.approx(
        F.cross_entropy(logits, target, weight=alpha).item(), rel=1e-6)


def test_focusing_down_weights_easy_examples():
    easy = torch.tensor([[5.0, 0.0]])
    target = torch.tensor([0])
    alpha = torch.ones(2)
    assert FocalLoss(alpha, 2.0)(easy, target) < 0.01 * FocalLoss(alpha, 0.0)(easy, target)


@pytest.mark.parametrize("gamma", [0.3, 0.9, 2.0])
def test_gradient_stays_finite_for_confident_predictions(gamma):
    # A logit gap of 30 makes p == 1.0 in float32: (1 - p) ** gamma has an infinite slope there.
    logits = torch.tensor([[30.0, 0.0, 0.0], [0.0, 1.0, 0.0]], requires_grad=True)
    FocalLoss(torch.ones(3), gamma)(logits, torch.tensor([0, 1])).backward()
    assert torch.isfinite(logits.grad).all()


def test_balanced_alpha_weights_rare_classes_up():
    alpha = balanced_alpha(np.array([0, 0, 0, 1]), 2)
    assert alpha.tolist() == pytest.approx([4 / 6, 2.0])


@pytest.mark.parametrize("seed", range(6))
def test_macro_f1_equals_sklearn(seed):
    rng = np.random.default_rng(seed)
    n_classes = 9
    y = rng.integers(0, n_classes - 2 * (seed % 2), 50)   # some seeds leave classes absent
    pred = np.where(rng.random(50) < 0.6, y, rng.integers(0, n_classes, 50))
    confusion = confusion_matrix(torch.tensor(y), torch.tensor(pred), n_classes)
    assert macro_f1(confusion).item() == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-12)


def test_confusion_matrix_rows_are_true_classes():
    confusion = confusion_matrix(torch.tensor([0, 0, 1]), torch.tensor([1, 0, 1]), 2)
    assert confusion.tolist() == [[1, 1], [0, 1]]
