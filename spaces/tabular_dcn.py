"""Deep&Cross (DCN-V2) on the same multi-class table as tabular_widedeep."""

from spaces import Budget, Space, choice, integers, loguniform, uniform, when

SPACE = Space(
    model="deep_cross",
    data="tables",
    description="Deep&Cross (cross layers + MLP over embeddings, in parallel) on a table",
    params={
        "optimizer": choice(["adamw", "sgd", "rmsprop"]),
        "lr": loguniform(1e-4, 3e-2),
        "momentum": when("optimizer", ["sgd", "rmsprop"], uniform(0.0, 0.95)),
        "weight_decay": loguniform(1e-7, 1e-3),
        "batch_size": choice([256, 512, 1024]),
        "embedding_dim": choice([4, 8, 16, 32]),
        "cross_depth": integers(1, 4),
        "depth": integers(1, 4),
        "width": choice([64, 128, 256, 512]),
        "dropout": uniform(0.0, 0.5),
    },
    fixed={"loss": "weighted_ce", "scheduler": "cosine", "warmup_epochs": 1, "start_factor": 0.1, "eta_min": 0.0,
           "epochs": 30},
    start=[{"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-5, "batch_size": 512, "embedding_dim": 8,
            "cross_depth": 2, "depth": 2, "width": 256, "dropout": 0.1}],
    max_epochs=30,
    grace_period=5,
    reduction_factor=3,
    cpu=Budget(trials=16, max_epochs=12),
    gpu=Budget(trials=64),
)
