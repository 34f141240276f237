"""Baseline for galspecnet_lora, tuned with the same budget, recipe and data: the same GalSpecNet trained from random weights on the target alone."""

from spaces import Space
from spaces._transfer import COMMON, FIXED, SETTINGS, START

SPACE = Space(
    description="GalSpecNet source -> medium-resolution instrument, baseline: the same GalSpecNet trained from random weights on the target alone",
    params=dict(COMMON),
    fixed={**FIXED, "finetune": "scratch"},
    start=[dict(START)],
    **SETTINGS,
)
