"""The course notebook's CIFAR-10 ConvNet: two blocks of a 3x3 convolution with padding 2, ReLU and
2x2 max-pooling (3 -> 64 -> 128 channels), then dropout, a 512-unit hidden layer, dropout and the class
logits. On 32x32 images the features are 128 x 9 x 9, as in the notebook's ``Linear(128*9*9, 512)``."""

from __future__ import annotations

import torch
from torch import nn

from trainables.data._base import InputSpec
from trainables.hparams import Float, Int
from trainables.models._base import register_model


def pooled(size: int) -> int:
    """A side after one block: padding 2 grows it by 2, the pool halves it (32 -> 17 -> 9)."""
    return (size + 2) // 2


class ConvNet(nn.Module):
    def __init__(self, n_outputs: int, shape: tuple[int, int, int], width_1: int, width_2: int, fc: int,
                 dropout_conv: float, dropout_fc: float) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(shape[0], width_1, 3, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width_1, width_2, 3, padding=2), nn.ReLU(), nn.MaxPool2d(2))
        height, width = pooled(pooled(shape[1])), pooled(pooled(shape[2]))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout_conv), nn.Linear(width_2 * height * width, fc), nn.ReLU(),
            nn.Dropout(dropout_fc), nn.Linear(fc, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# Defaults are the notebook's layers; its dropouts are nn.Dropout(), p = 0.5.
@register_model("cifar_convnet", inputs="image", hparams={
    "width_1": Int(64, 1, help="channels of the first convolution"),
    "width_2": Int(128, 1, help="channels of the second convolution"),
    "fc": Int(512, 1, help="units of the hidden linear layer"),
    "dropout_conv": Float(0.5, 0.0, 1.0, closed="left", help="dropout on the flattened conv features"),
    "dropout_fc": Float(0.5, 0.0, 1.0, closed="left", help="dropout before the output layer"),
})
def cifar_convnet(spec: InputSpec, width_1: int, width_2: int, fc: int, dropout_conv: float,
                  dropout_fc: float) -> ConvNet:
    """The notebook's ConvNet for ``spec``'s image shape, with its widths and dropouts as given."""
    return ConvNet(spec.n_outputs, spec.shapes["x"], width_1, width_2, fc, dropout_conv, dropout_fc)
