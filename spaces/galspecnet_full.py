"""Baseline for galspecnet_lora, tuned with the same budget, recipe and data: every weight of the pretrained GalSpecNet fine-tuned."""

from spaces import Space
from spaces._transfer import COMMON, FIXED, SETTINGS, START

SPACE = Space(
    description="GalSpecNet source -> medium-resolution instrument, baseline: every weight of the pretrained GalSpecNet fine-tuned",
    params=dict(COMMON),
    fixed={**FIXED, "finetune": "full"},
    start=[dict(START)],
    **SETTINGS,
)
