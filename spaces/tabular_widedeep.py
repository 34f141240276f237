"""Wide&Deep on a multi-class table (Covertype by default; see trainables/data/tables.py for sources)."""

from spaces import Budget, Space, choice, integers, uniform
from spaces._tabular import FIXED, RECIPE_PARAMS, START

SPACE = Space(
    model="wide_deep",
    data="tables",
    description="Wide&Deep (linear over one-hot and crossed categoricals + MLP over embeddings) on a table",
    params={
        **RECIPE_PARAMS,
        "depth": integers(1, 4),
        "width": choice([64, 128, 256, 512]),
        "dropout": uniform(0.0, 0.5),
        "crossed": choice([False, True]),
    },
    fixed=FIXED,
    start=[{**START, "depth": 2, "width": 256, "dropout": 0.1, "crossed": True}],
    max_epochs=30,
    grace_period=5,
    reduction_factor=3,
    cpu=Budget(trials=16, max_epochs=12),
    gpu=Budget(trials=64),
)
