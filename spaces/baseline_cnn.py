"""The notebook's baseline CNN (2 conv layers + a wide MLP) on the ZTF transient spectra."""

from ray import tune

from spaces import Space

SPACE = Space(
    trainable="baseline_cnn_ztf",
    description="Baseline CNN (2 conv + 131072->256 MLP) on ZTF-format spectra",
    params={
        "lr": tune.loguniform(2e-5, 1e-3),
        "weight_decay": tune.loguniform(1e-6, 1e-2),
        "warmup_epochs": tune.randint(0, 11),
        "T_0": tune.randint(3, 16),
        "dropout": tune.uniform(0.0, 0.6),
        "gamma": tune.uniform(0.0, 3.0),
        "batch_size": tune.choice([64, 128, 256]),
    },
    start=[{"lr": 8e-5, "weight_decay": 1e-5, "warmup_epochs": 10, "T_0": 5, "dropout": 0.3,
            "gamma": 2.0, "batch_size": 128}],
    max_epochs=40,
    grace_period=15,
    reduction_factor=3,
)
