"""Wide&Deep on a multi-class table (Covertype by default; see trainables/data/tables.py for sources)."""

from spaces import Budget, Space, choice, integers, loguniform, uniform, when

SPACE = Space(
    model="wide_deep",
    data="tables",
    description="Wide&Deep (linear over one-hot and crossed categoricals + MLP over embeddings) on a table",
    params={
        "optimizer": choice(["adamw", "sgd", "rmsprop"]),
        "lr": loguniform(1e-4, 3e-2),
        "momentum": when("optimizer", ["sgd", "rmsprop"], uniform(0.0, 0.95)),
        "weight_decay": loguniform(1e-7, 1e-3),
        "batch_size": choice([256, 512, 1024]),
        "embedding_dim": choice([4, 8, 16, 32]),
        "depth": integers(1, 4),
        "width": choice([64, 128, 256, 512]),
        "dropout": uniform(0.0, 0.5),
        "crossed": choice([False, True]),
    },
    fixed={"loss": "weighted_ce", "scheduler": "cosine", "warmup_epochs": 1, "start_factor": 0.1, "eta_min": 0.0,
           "epochs": 30},
    start=[{"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-5, "batch_size": 512, "embedding_dim": 8,
            "depth": 2, "width": 256, "dropout": 0.1, "crossed": True}],
    max_epochs=30,
    grace_period=5,
    reduction_factor=3,
    cpu=Budget(trials=16, max_epochs=12),
    gpu=Budget(trials=64),
)
