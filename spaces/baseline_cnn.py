"""The notebook's baseline CNN (2 conv layers + a wide MLP) on the ZTF transient spectra."""

from spaces import Budget, Space, choice, integers, loguniform, uniform

SPACE = Space(
    model="baseline_cnn",
    data="ztf_spectra",
    description="Baseline CNN (2 conv + 131072->256 MLP) on ZTF-format spectra",
    params={
        "lr": loguniform(2e-5, 1e-3),
        "weight_decay": loguniform(1e-6, 1e-2),
        "warmup_epochs": integers(0, 10),
        "T_0": integers(3, 15),
        "dropout": uniform(0.0, 0.6),
        "gamma": uniform(0.0, 3.0),
        "batch_size": choice([64, 128, 256]),
    },
    start=[{"lr": 8e-5, "weight_decay": 1e-5, "warmup_epochs": 10, "T_0": 5, "dropout": 0.3,
            "gamma": 2.0, "batch_size": 128}],
    max_epochs=40,
    grace_period=15,
    reduction_factor=3,
    cpu=Budget(trials=18, max_epochs=20, points=1024, train_per_class=280),
    gpu=Budget(trials=64),
)
