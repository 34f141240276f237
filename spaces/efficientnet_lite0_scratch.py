"""Baseline for efficientnet_lite0_lora, tuned with the same budget, recipe and data: the same EfficientNet-Lite0 trained from random weights on Fashion-MNIST alone."""

from spaces import Space
from spaces._lite0 import COMMON, FIXED, SETTINGS, START

SPACE = Space(
    description="EfficientNet-Lite0 ImageNet -> Fashion-MNIST (64 px), baseline: the same EfficientNet-Lite0 trained from random weights on Fashion-MNIST alone",
    params=dict(COMMON),
    fixed={**FIXED, "finetune": "scratch"},
    start=[dict(START)],
    **SETTINGS,
)
