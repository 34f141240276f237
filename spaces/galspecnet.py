"""GalSpecNet on the ZTF transient spectra: the notebook's recipe knobs around its final_config."""

from ray import tune

from spaces import Space

SPACE = Space(
    trainable="galspecnet_ztf",
    description="GalSpecNet (4 conv blocks + MLP) on ZTF-format spectra",
    params={
        "lr": tune.loguniform(2e-5, 3e-3),
        "weight_decay": tune.loguniform(1e-6, 1e-2),
        "warmup_epochs": tune.randint(0, 11),
        "T_0": tune.randint(3, 16),
        "dropout": tune.uniform(0.0, 0.6),
        "gamma": tune.uniform(0.0, 3.0),
        "batch_size": tune.choice([64, 128, 256, 512]),
    },
    # The notebook's final_config, restricted to the searched keys: evaluated first.
    start=[{"lr": 8e-5, "weight_decay": 1e-5, "warmup_epochs": 10, "T_0": 5, "dropout": 0.3,
            "gamma": 2.0, "batch_size": 128}],
    max_epochs=60,
    # The notebook warms up for 10 epochs and restarts every 5: judge after both.
    grace_period=15,
    reduction_factor=3,
)
