"""Deep&Cross (DCN-V2) on the same multi-class table as tabular_widedeep."""

from spaces import Budget, Space, choice, integers, uniform
from spaces._tabular import FIXED, RECIPE_PARAMS, START

SPACE = Space(
    model="deep_cross",
    data="tables",
    description="Deep&Cross (cross layers + MLP over embeddings, in parallel) on a table",
    params={
        **RECIPE_PARAMS,
        "cross_depth": integers(1, 4),
        "depth": integers(1, 4),
        "width": choice([64, 128, 256, 512]),
        "dropout": uniform(0.0, 0.5),
    },
    fixed=FIXED,
    start=[{**START, "cross_depth": 2, "depth": 2, "width": 256, "dropout": 0.1}],
    max_epochs=30,
    grace_period=5,
    reduction_factor=3,
    cpu=Budget(trials=16, max_epochs=12),
    gpu=Budget(trials=64),
)
