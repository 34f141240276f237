"""Baseline for galspecnet_lora, tuned with the same budget, recipe and data: the pretrained GalSpecNet frozen, a new head trained."""

from spaces import Space
from spaces._transfer import COMMON, FIXED, SETTINGS, START

SPACE = Space(
    description="GalSpecNet source -> medium-resolution instrument, baseline: the pretrained GalSpecNet frozen, a new head trained",
    params=dict(COMMON),
    fixed={**FIXED, "finetune": "head"},
    start=[dict(START)],
    **SETTINGS,
)
