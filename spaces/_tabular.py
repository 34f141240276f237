"""What the two table spaces (Wide&Deep and Deep&Cross) search and fix alike: the optimizer and its
knobs, the embedding size and the plain recipe of a large table, so the two models are compared
over the same recipe ranges."""

from spaces import choice, loguniform, uniform, when

RECIPE_PARAMS = {
    "optimizer": choice(["adamw", "sgd", "rmsprop"]),
    "lr": loguniform(1e-4, 3e-2),
    "momentum": when("optimizer", ["sgd", "rmsprop"], uniform(0.0, 0.95)),
    "weight_decay": loguniform(1e-7, 1e-3),
    "batch_size": choice([256, 512, 1024]),
    "embedding_dim": choice([4, 8, 16, 32]),
}
FIXED = {"loss": "weighted_ce", "scheduler": "cosine", "warmup_epochs": 1, "start_factor": 0.1, "eta_min": 0.0,
         "epochs": 30}
START = {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-5, "batch_size": 512, "embedding_dim": 8}
