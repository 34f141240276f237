"""What the four EfficientNet-Lite0 transfer spaces share, so that LoRA and its baselines are tuned alike:
the data (real Fashion-MNIST, Debian's dataset-fashion-mnist), the input size, the recipe, the epochs,
the ASHA rungs and the budgets. Only the ``finetune`` method and the knobs it owns differ between
``efficientnet_lite0_lora``, ``efficientnet_lite0_full``, ``efficientnet_lite0_head`` and
``efficientnet_lite0_scratch``. Four spaces rather than one with ``finetune`` searched: a search over the
method would spend its trials on whichever method TPE likes early, while the comparison needs each
method tuned with the same budget (as the GalSpecNet spaces do).

64-pixel images (not the notebook's 224) at both budgets: the size is fixed in the space, and 224 costs
12x the compute on 2 cores. The CPU budget trains on 100 images per class (the imbalanced validation
and test splits are kept whole, 4,950 and 5,500 images).
"""

from spaces import Budget, loguniform, uniform

MODEL, DATA = "efficientnet_lite0", "fashion_mnist"
# PyTorch's batch-norm momentum, not the package's 0.01 (TF's 0.99 decay): in the CPU budget's ~100 steps the
# running statistics barely move at 0.01, and evaluation uses them. Measured (docs/image_transfer.md, seed 42,
# 6 epochs, test macro-F1 at 0.01 -> 0.1): scratch 0.03 -> 0.67, head 0.48 -> 0.63, full 0.73 -> 0.82.
FIXED = {"loss": "ce", "scheduler": "cosine", "warmup_epochs": 1, "start_factor": 0.1, "eta_min": 0.0,
         "batch_size": 64, "epochs": 8, "image_size": 64, "bn_momentum": 0.1}
COMMON = {"lr": loguniform(1e-4, 1e-2), "weight_decay": loguniform(1e-6, 1e-2), "dropout": uniform(0.0, 0.5)}
START = {"lr": 1e-3, "weight_decay": 1e-4, "dropout": 0.2}
SETTINGS = dict(
    model=MODEL, data=DATA, max_epochs=8,
    # After the warm-up epoch; halving at each rung leaves two rungs in the CPU budget's 4 epochs.
    grace_period=2, reduction_factor=2,
    cpu=Budget(trials=6, max_epochs=4, train_per_class=100),
    gpu=Budget(trials=32),
)
