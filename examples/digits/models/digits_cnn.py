"""A small CNN for 8x8 digit images: two 3x3 convolutions, one 2x2 pooling, dropout and
a linear head."""

import torch
from torch import nn

from trainables.hparams import Float, Int
from trainables.models import register_model


class DigitsCNN(nn.Module):
    def __init__(self, shape, n_outputs, channels, dropout):
        super().__init__()
        depth, height, width = shape
        self.features = nn.Sequential(
            nn.Conv2d(depth, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2))
        flat = 2 * channels * (height // 2) * (width // 2)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(flat, n_outputs))

    # Images arrive as the keyword x, shaped (batch, channels, height, width).
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model("digits_cnn", inputs="image", hparams={
    "channels": Int(16, 4, 64, help="channels of the first convolution (then twice)"),
    "dropout": Float(0.2, 0.0, 0.8, help="dropout before the linear head"),
})
def digits_cnn(spec, channels, dropout):
    return DigitsCNN(spec.shapes["x"], spec.n_outputs, channels, dropout)
