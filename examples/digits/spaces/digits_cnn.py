"""The digits CNN searched around a known-good start: what a space needs, and no more."""

from spaces import Budget, Space, integers, loguniform, uniform

SPACE = Space(
    model="digits_cnn",
    data="digits",
    description="a small CNN on scikit-learn's 8x8 digits (examples/digits/)",
    params={
        "lr": loguniform(1e-4, 1e-2),
        "weight_decay": loguniform(1e-6, 1e-2),
        "channels": integers(4, 32),
        "dropout": uniform(0.0, 0.5),
    },
    # The recipe's defaults are the ZTF notebook's (focal loss, 10 warm-up epochs):
    # plainer ones suit 10 epochs.
    fixed={"loss": "ce", "scheduler": "cosine", "warmup_epochs": 1,
           "batch_size": 64, "epochs": 10},
    start=[{"lr": 3e-3, "weight_decay": 1e-4, "channels": 16, "dropout": 0.2}],
    max_epochs=10, grace_period=3, reduction_factor=2,
    cpu=Budget(trials=8),
    gpu=Budget(trials=32),
)
