"""GalSpecNet pretrained on the ZTF-like survey, adapted to a medium-resolution instrument with 20
labels per class through LoRA (peft) on its Conv1d and Linear layers; the head trains in full.

The rank is searched as an ordered power of two (Optuna samples its log2 as an integer; the trial's
config, MLflow, trials.csv and best.json hold ``lora_rank`` itself). Alpha is tied to the rank:
``lora_alpha = lora_alpha_ratio * lora_rank``, so ``lora_alpha_ratio`` is the update's scale alpha/r
for every rank, and the rank is compared at equal scale.
"""

from spaces import Space, choice, loguniform, powers_of_two, uniform
from spaces._transfer import COMMON, FIXED, SETTINGS, START

SPACE = Space(
    description="GalSpecNet source -> medium-resolution instrument, LoRA adapters + head",
    params={
        "lora_rank": powers_of_two(1, 32),
        "lora_alpha_ratio": loguniform(0.25, 8.0),
        "lora_dropout": uniform(0.0, 0.3),
        "lora_targets": choice(["conv+linear", "linear", "conv"]),
        **COMMON,
    },
    fixed={**FIXED, "finetune": "lora"},
    start=[{"lora_rank": 8, "lora_alpha_ratio": 2.0, "lora_dropout": 0.0, "lora_targets": "conv+linear", **START}],
    **SETTINGS,
    measured="replayed exactly at 15 epochs, not live (2026-12-06; exploratory): random + ASHA picks as random search does "
             "(0.6027 macro-F1) for 134 instead of 231 epochs; TPE not judged",
)
