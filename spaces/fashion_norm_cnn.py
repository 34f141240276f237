"""The normalisation / imbalance exercise: DeeperCNN on imbalanced Fashion-MNIST, norm type and loss searched."""

from spaces import Budget, Space, choice, integers, loguniform, uniform, when

SPACE = Space(
    model="deeper_cnn",
    data="fashion_mnist",
    description="DeeperCNN (2 blocks of 3x3 convs) on Fashion-MNIST made imbalanced (class k keeps (k+1)*600)",
    params={
        "lr": loguniform(1e-4, 3e-3),
        "weight_decay": loguniform(1e-6, 1e-2),
        "batch_size": choice([64, 128, 256]),
        "norm": choice(["none", "batch", "layer", "group"]),
        "groups": when("norm", ["group"], choice([2, 4, 8])),
        "convs_per_block": integers(1, 3),
        "hidden_1": choice([16, 32]),
        "hidden_2": choice([32, 64]),
        "dropout": uniform(0.0, 0.5),
        "loss": choice(["ce", "focal"]),
        "gamma": when("loss", ["focal"], uniform(0.5, 3.0)),
        "hflip": choice([False, True]),
    },
    fixed={"scheduler": "cosine", "warmup_epochs": 1, "start_factor": 0.1, "eta_min": 0.0, "epochs": 20},
    start=[{"lr": 1e-3, "weight_decay": 1e-4, "batch_size": 128, "norm": "batch", "convs_per_block": 2,
            "hidden_1": 32, "hidden_2": 64, "dropout": 0.3, "loss": "ce", "hflip": False}],
    max_epochs=20,
    grace_period=4,
    reduction_factor=3,
    # 2 CPU cores: a quarter of the training images (the class mix kept), 8 epochs.
    cpu=Budget(trials=12, max_epochs=8, train_fraction=0.25),
    gpu=Budget(trials=64),
)
