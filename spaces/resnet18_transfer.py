"""The notebook's transfer: ResNet-18 with ImageNet weights (torchvision's ``resnet18-f37072fd.pth``,
passed by path; it cannot be had on the development machine, so this space is tested on a generated
state dict of the same layout) moved to Fashion-MNIST, the fine-tuning method searched with its knobs.

One space with ``finetune`` searched, since its four methods cannot be compared here; the measured
comparison is the four efficientnet_lite0_* spaces. The first start is the notebook's method (a new
head on the frozen net); the other three methods start from the same recipe. 64-pixel images at both
budgets (the notebook resizes to 224: 12x the compute).
"""

from spaces import Budget, Space, choice, loguniform, powers_of_two, when

SPACE = Space(
    model="resnet18",
    data="fashion_mnist",
    description="ResNet-18 ImageNet weights (.pth by path) -> Fashion-MNIST (64 px), head / full / LoRA / scratch searched",
    params={
        "finetune": choice(["head", "lora", "full", "scratch"]),
        "lora_rank": when("finetune", ["lora"], powers_of_two(1, 32)),
        "lora_alpha_ratio": when("finetune", ["lora"], loguniform(0.25, 8.0)),
        "lr": loguniform(1e-4, 1e-2),
        "weight_decay": loguniform(1e-6, 1e-2),
    },
    fixed={"loss": "ce", "scheduler": "cosine", "warmup_epochs": 1, "start_factor": 0.1, "eta_min": 0.0,
           "batch_size": 64, "epochs": 8, "image_size": 64},
    start=[{"finetune": "head", "lr": 1e-3, "weight_decay": 1e-4},
           {"finetune": "lora", "lora_rank": 8, "lora_alpha_ratio": 2.0, "lr": 1e-3, "weight_decay": 1e-4},
           {"finetune": "full", "lr": 1e-3, "weight_decay": 1e-4},
           {"finetune": "scratch", "lr": 1e-3, "weight_decay": 1e-4}],
    max_epochs=8,
    grace_period=2,
    reduction_factor=2,
    cpu=Budget(trials=8, max_epochs=4, train_per_class=100),
    gpu=Budget(trials=32),
)
