"""What the four GalSpecNet transfer spaces share, so that LoRA and its baselines are tuned alike: the
target data and its scaling, the recipe, the epochs, the ASHA rungs and the budgets. Only the
``finetune`` method and the knobs it owns differ between ``galspecnet_lora``, ``galspecnet_full``,
``galspecnet_head`` and ``galspecnet_scratch``.

The source checkpoint (``make source``) was trained on 1024-point spectra, so both budgets
block-average the target to 1024 points (GalSpecNet's dense layer is sized by the length).
"""

from spaces import Budget, loguniform, uniform

MODEL, DATA = "galspecnet_transfer", "medres_spectra"
# 20 labelled spectra per class train: small batches, a short warm-up, one cosine decay.
FIXED = {"loss": "focal", "gamma": 2.0, "scheduler": "cosine", "warmup_epochs": 2, "start_factor": 0.1,
         "eta_min": 0.0, "batch_size": 32, "epochs": 40}
COMMON = {"lr": loguniform(1e-4, 1e-2), "weight_decay": loguniform(1e-6, 1e-2), "dropout": uniform(0.0, 0.6)}
START = {"lr": 1e-3, "weight_decay": 1e-4, "dropout": 0.3}
SETTINGS = dict(
    model=MODEL, data=DATA, max_epochs=40,
    # Judge after warm-up plus a few epochs at full rate: larger LoRA ranks start slower.
    grace_period=8, reduction_factor=3,
    cpu=Budget(trials=16, max_epochs=30, points=1024), gpu=Budget(trials=64, points=1024),
)
