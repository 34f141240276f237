"""ResNet-18 with ImageNet weights moved to a new image task, as the course notebook does it (a new
10-class head on a frozen net), plus LoRA, full fine-tuning and the from-scratch baseline (``finetune``).

The architecture is defined here (torchvision does not import on the development machine) with
torchvision's module names, so its ``state_dict()`` has the keys and shapes of
``torchvision.models.resnet18()`` and torchvision's ``resnet18-f37072fd.pth`` loads as it is. The
weights come from a local file (``--base PATH``, read with ``weights_only=True``, its sha256 recorded
and checked against the prefix in its name); nothing is downloaded. LoRA adapts the convolutions
(peft copies their kernel, stride and padding; none is dilated or grouped) and the new ``fc`` head
trains in full. Images pass through :class:`~trainables.models._imagenet.ImageNetInput` first.
"""

from __future__ import annotations

import torch
from torch import nn

from trainables.data._base import InputSpec
from trainables.hparams import ConfigError
from trainables.models._base import register_model
from trainables.models._finetune import adapt, finetune_table
from trainables.models._imagenet import IMAGE_SIZE, ImageNetClassifier, check_image_input
from trainables.pretrained import Base, BaseError, Pretrained, state_dict_file

DEFAULT = "models/resnet18-f37072fd.pth"
FIX = ("Download torchvision's ResNet-18 ImageNet weights on a machine with network "
       "(https://download.pytorch.org/models/resnet18-f37072fd.pth, or torch.save(torchvision.models.resnet18("
       f"weights='IMAGENET1K_V1').state_dict(), path)) and put the file at {DEFAULT}, or pass --base PATH.")
HEAD = "net.fc"
STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))


class BasicBlock(nn.Module):
    """Two 3x3 convs with batch norm and a shortcut (a strided 1x1 conv where the shape changes)."""

    def __init__(self, inplanes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    """torchvision's ``resnet18`` with ``n_classes`` outputs, under the same module names."""

    def __init__(self, n_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for i, (planes, stride) in enumerate(STAGES, start=1):
            self.add_module(f"layer{i}", nn.Sequential(BasicBlock(inplanes, planes, stride),
                                                       BasicBlock(planes, planes, 1)))
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, n_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # torchvision's init, so that finetune='scratch' starts as it would
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, len(STAGES) + 1):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _convs(stages: tuple[int, ...]) -> tuple[str, ...]:
    """The names of ResNet-18's convolutions in ``stages`` (0: the stem), as the wrapper's peft targets."""
    names = ["conv1"] if 0 in stages else []
    for i in (s for s in stages if s):
        names += [f"layer{i}.{j}.conv{k}" for j in (0, 1) for k in (1, 2)]
        names += [f"layer{i}.0.downsample.0"] if i > 1 else []
    return tuple(f"net.{n}" for n in names)


# Full names: peft matches name suffixes, so a bare "conv1" would also catch every block's conv1.
TARGETS = {"conv": _convs((0, 1, 2, 3, 4)), "layer4": _convs((4,))}


def load_resnet18(source: str) -> Base:
    """A torchvision-layout ResNet-18 state dict from a ``.pth`` file, its layout checked key by key."""
    path, digest, state = state_dict_file(source, "base", FIX)
    # Batch-norm counters (num_batches_tracked) are not weights, and older saves lack them: neither needed nor refused.
    reference = {k: v.shape for k, v in ResNet18().state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = [k for k in reference if k not in state]
    unexpected = [k for k in state if k not in reference and not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        hint = (" Its keys start with 'module.': strip that prefix (a DataParallel save)."
                if all(k.startswith("module.") for k in state) else "")
        raise BaseError(f"base {path}: not torchvision's resnet18 layout: {len(missing)} key(s) missing "
                        f"{missing[:4]}, {len(unexpected)} unexpected {unexpected[:4]}.{hint} {FIX}")
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(shape)})" for k, shape in reference.items()
             if k != "fc.weight" and k != "fc.bias" and state[k].shape != shape]
    if wrong or state["fc.weight"].shape[1] != 512:
        raise BaseError(f"base {path}: tensors of another shape than resnet18's: {wrong[:3] or ['fc.weight']}; "
                        f"is it another ResNet depth or width? {FIX}")
    return Base(source=source, path=str(path), sha256=digest, state=state,
                meta={"classes": int(state["fc.weight"].shape[0])})


@register_model("resnet18", inputs="image", hparams={**finetune_table(tuple(TARGETS)), **IMAGE_SIZE},
                pretrained=Pretrained(DEFAULT, load_resnet18, "torchvision's ImageNet ResNet-18 state dict (.pth)"))
def resnet18(spec: InputSpec, base: Base, finetune: str, image_size: int, lora_rank: int = 8,
             lora_alpha_ratio: float = 1.0, lora_dropout: float = 0.0, lora_targets: str = "conv") -> nn.Module:
    check_image_input(spec, "resnet18")
    net = ResNet18(spec.n_classes)
    if finetune != "scratch":
        # The ImageNet head (1000 classes) is dropped: the new one starts fresh, as in the notebook.
        loaded = net.load_state_dict({k: v for k, v in base.state.items() if not k.startswith("fc.")}, strict=False)
        missing = [k for k in loaded.missing_keys if not k.startswith("fc.") and not k.endswith("num_batches_tracked")]
        if missing or loaded.unexpected_keys:
            raise ConfigError(f"the base {base.path} does not fit resnet18 (missing {missing[:3]}, unexpected "
                              f"{loaded.unexpected_keys[:3]}); load it with load_resnet18, which names the fix.")
    model = ImageNetClassifier(net, image_size)
    return adapt(model, finetune, head=[HEAD], targets=TARGETS[lora_targets], lora_rank=lora_rank,
                 lora_alpha_ratio=lora_alpha_ratio, lora_dropout=lora_dropout)
