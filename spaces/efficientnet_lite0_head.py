"""Baseline for efficientnet_lite0_lora, tuned with the same budget, recipe and data: the ImageNet net frozen, a new head trained (the notebook's method)."""

from spaces import Space
from spaces._lite0 import COMMON, FIXED, SETTINGS, START

SPACE = Space(
    description="EfficientNet-Lite0 ImageNet -> Fashion-MNIST (64 px), baseline: the ImageNet net frozen, a new head trained (the notebook's method)",
    params=dict(COMMON),
    fixed={**FIXED, "finetune": "head"},
    start=[dict(START)],
    **SETTINGS,
)
