"""waveform_cnn narrowed after a first search (docs/warm_start.md): lr from 1e-3, smaller dropouts, batch
size 128 and the step schedule removed, the residual switch fixed off. Put this folder on SPECTUNE_PATH."""

from spaces import Budget, Space, choice, integers, loguniform, uniform, when

SPACE = Space(
    model="waveform_cnn",
    data="waveforms",
    description="waveform_cnn's space narrowed around a first search's best trials",
    params={
        "lr": loguniform(1e-3, 1e-2),
        "batch_size": choice([32, 64]),
        "batch_norm": choice([False, True]),
        "dropout_conv": uniform(0.0, 0.2),
        "dropout_fc": uniform(0.1, 0.4),
        "scheduler": choice(["cosine", "plateau"]),
        "warmup_epochs": when("scheduler", ["cosine"], integers(0, 5)),
        "decay": when("scheduler", ["plateau"], uniform(0.1, 0.7)),
    },
    fixed={"loss": "ce", "weight_decay": 1e-4, "eta_min": 0.0, "warmup_epochs": 0, "epochs": 30, "residual": False},
    start=[{"lr": 1e-3, "batch_size": 64, "batch_norm": False, "dropout_conv": 0.0, "dropout_fc": 0.3,
            "scheduler": "cosine", "warmup_epochs": 0}],
    max_epochs=30,
    grace_period=6,
    reduction_factor=3,
    cpu=Budget(trials=20),
    gpu=Budget(trials=64),
)
