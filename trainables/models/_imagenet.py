"""What an ImageNet-pretrained image model needs in front of it: three channels, ImageNet's
normalisation and its input size (the course notebook's ``Resize(224)`` + ``Normalize``), applied
inside the model so that any image data module (grey Fashion-MNIST, colour CIFAR-10) feeds it.

Data modules hand over standardised pixels (their training split's mean and std), not the [0, 1]
pixels ImageNet's normalisation expects, so each image is first stretched back to [0, 1] by its own
minimum and maximum: standardising is an increasing affine map, which the stretch undoes whatever its
statistics were. For Fashion-MNIST, whose images hold black background, this is the notebook's
``ToTensor`` up to each image's brightest pixel. The size is a knob: 224 as the notebook, smaller at a
CPU budget (the nets pool by 32, so 32 pixels leaves a 1 x 1 map).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainables.data._base import InputSpec
from trainables.hparams import ConfigError, Int

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
IMAGE_SIZE = {"image_size": Int(224, 32, 1024, help="pixels the images are resized to (224: ImageNet's)")}


class ImageNetInput(nn.Module):
    """Grey images repeated to 3 channels, stretched to [0, 1], resized to ``size`` and normalised."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        # Not persistent: constants, not weights, so checkpoints and the base's layout do not carry them.
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        low = x.amin(dim=(1, 2, 3), keepdim=True)
        high = x.amax(dim=(1, 2, 3), keepdim=True)
        x = (x - low) / (high - low).clamp_min(1e-6)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return (x - self.mean) / self.std


class ImageNetClassifier(nn.Module):
    """``net`` (an ImageNet architecture with its head sized for the data) behind :class:`ImageNetInput`."""

    def __init__(self, net: nn.Module, size: int) -> None:
        super().__init__()
        self.input = ImageNetInput(size)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.input(x))


def check_image_input(spec: InputSpec, model: str) -> None:
    """Refuse images that are neither grey nor RGB, before any weights are built."""
    channels = spec.shapes["x"][0]
    if channels not in (1, 3):
        raise ConfigError(f"{model} takes grey (1-channel) or RGB (3-channel) images; the data gives {channels} "
                          "channels. Pick 1 or 3 channels in the data module.")
