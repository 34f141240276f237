"""The course notebook's CIFAR-10 ConvNet with its augmentation (flips, padded crops): dropouts, widths, the
augmentation switches, optimizer, lr, weight decay, batch size and the LR schedule searched."""

from spaces import Budget, Space, choice, integers, loguniform, uniform, when

SPACE = Space(
    model="cifar_convnet",
    data="cifar10",
    description="The notebook's ConvNet (conv 64, conv 128, FC 512) on CIFAR-10 with flips and padded crops",
    params={
        "optimizer": choice(["adam", "adamw", "sgd"]),
        "lr": loguniform(1e-4, 1e-1),
        "momentum": when("optimizer", ["sgd"], uniform(0.8, 0.99)),
        "weight_decay": loguniform(1e-6, 1e-2),
        "batch_size": choice([64, 128, 256]),
        "scheduler": choice(["cosine", "step", "constant"]),
        "step_size": when("scheduler", ["step"], integers(3, 15)),
        "decay": when("scheduler", ["step"], uniform(0.1, 0.5)),
        "width_1": choice([32, 64, 96]),
        "width_2": choice([64, 128, 192]),
        "fc": choice([256, 512, 1024]),
        "dropout_conv": uniform(0.0, 0.6),
        "dropout_fc": uniform(0.0, 0.6),
        "hflip": choice([False, True]),
        "crop": choice([False, True]),
    },
    fixed={"loss": "ce", "warmup_epochs": 0, "eta_min": 0.0, "epochs": 30},
    metric="val_acc",
    # The notebook's network and augmentation, trained with Adam at 1e-3.
    start=[{"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 128, "scheduler": "cosine",
            "width_1": 64, "width_2": 128, "fc": 512, "dropout_conv": 0.5, "dropout_fc": 0.5, "hflip": True,
            "crop": True}],
    max_epochs=30,
    grace_period=5,
    reduction_factor=3,
    # 2 CPU cores: a 5 % stratified share of the training images (2,250), 8 epochs (an estimate: the real
    # data cannot be had on the development machine).
    cpu=Budget(trials=12, max_epochs=8, train_fraction=0.05),
    gpu=Budget(trials=64),
)
