import math

import pytest
import torch

from trainables.config import Recipe
from trainables.recipe import build_scheduler


def lr_trajectory(recipe: Recipe, epochs: int) -> list[float]:
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=recipe.lr)
    sched = build_scheduler(opt, recipe)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched is not None:
            sched.step()
    return out


def expected(recipe: Recipe, epoch: int) -> float:
    w = recipe.warmup_epochs
    if epoch < w:
        return recipe.lr * (recipe.start_factor + (1 - recipe.start_factor) * epoch / w)
    t, period = epoch - w, recipe.T_0
    while t >= period:
        t, period = t - period, period * recipe.T_mult
    return recipe.eta_min + (recipe.lr - recipe.eta_min) * (1 + math.cos(math.pi * t / period)) / 2


@pytest.mark.parametrize("overrides", [
    {},                                                   # the notebook: 10 warm-up, T_0 5
    {"warmup_epochs": 3, "T_0": 4, "T_mult": 2, "lr": 1e-3},
    {"warmup_epochs": 0, "T_0": 6},
])
def test_warmup_then_cosine_restarts_follow_the_formula(overrides):
    recipe = Recipe.from_dict(overrides)
    got = lr_trajectory(recipe, 40)
    assert got == pytest.approx([expected(recipe, e) for e in range(40)], rel=1e-9, abs=1e-15)


def test_notebook_schedule_restarts_at_the_peak():
    got = lr_trajectory(Recipe.from_dict({}), 21)
    assert got[0] == pytest.approx(8e-5 * 1e-6)
    assert got[10] == pytest.approx(8e-5) and got[15] == pytest.approx(8e-5) and got[20] == pytest.approx(8e-5)
    assert got[14] < got[13] < got[12] < got[11] < got[10]


def test_cosine_and_step_schedules_after_warm_up():
    cosine = Recipe.from_dict({"scheduler": "cosine", "warmup_epochs": 2, "epochs": 12, "lr": 1e-3, "eta_min": 0.0})
    got = lr_trajectory(cosine, 12)
    assert got[2] == pytest.approx(1e-3)
    assert got[2:] == pytest.approx([1e-3 * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(10)], rel=1e-9)
    step = Recipe.from_dict({"scheduler": "step", "warmup_epochs": 0, "step_size": 3, "decay": 0.5, "lr": 1e-3})
    assert lr_trajectory(step, 7) == pytest.approx([1e-3] * 3 + [5e-4] * 3 + [2.5e-4])


def test_constant_and_plateau_keep_the_rate_after_warm_up():
    for name in ("constant", "plateau"):
        recipe = Recipe.from_dict({"scheduler": name, "warmup_epochs": 2, "lr": 1e-3, "start_factor": 0.5})
        assert lr_trajectory(recipe, 5) == pytest.approx([5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    assert build_scheduler(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1),
                           Recipe.from_dict({"scheduler": "constant", "warmup_epochs": 0})) is None
