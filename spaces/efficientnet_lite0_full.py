"""Baseline for efficientnet_lite0_lora, tuned with the same budget, recipe and data: every weight fine-tuned from the ImageNet weights."""

from spaces import Space
from spaces._lite0 import COMMON, FIXED, SETTINGS, START

SPACE = Space(
    description="EfficientNet-Lite0 ImageNet -> Fashion-MNIST (64 px), baseline: every weight fine-tuned from the ImageNet weights",
    params=dict(COMMON),
    fixed={**FIXED, "finetune": "full"},
    start=[dict(START)],
    **SETTINGS,
)
