"""Promotion by extrapolated curves (search/strategy/curve_asha.py) and the Gaussian-process sampler, each replayed
through the objects a live search builds."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest

from results.curves import Curves
from search.strategy.curve_asha import CurveASHA, extrapolate
from search.replay.simulate import Strategy, replay
from search.strategy.schedulers import make_scheduler
from search.strategy.searcher import DefineByRun, make_sampler
from spaces import get_space
from trainables.settings import TrialSettings


def test_a_power_law_curve_is_extrapolated_to_its_value_at_the_budget():
    t = np.arange(1, 6)
    assert extrapolate(list(0.9 - 0.5 / t), 20, 1.0) == pytest.approx(0.9 - 0.5 / 20)
    # An error falling as 1 + t^-0.5 (smaller is better).
    assert extrapolate(list(1.0 + t ** -0.5), 16, -1.0) == pytest.approx(1.0 + 16 ** -0.5)


def test_an_extrapolation_never_falls_below_the_value_reached_nor_gains_more_than_it_gained():
    # A flat curve with one late step: a fit through it predicts nothing below the value reached.
    assert extrapolate([0.5, 0.5, 0.5, 0.5, 0.52], 30, 1.0) >= 0.52
    # A steep start: the fit would run far past 1; the further gain is at most the gain so far (0.3).
    steep = [0.1, 0.3, 0.4]
    assert 0.4 < extrapolate(steep, 100, 1.0) <= 0.4 + 0.3 + 1e-12
    # Too short, at the budget already, or not finite: the value as reached.
    assert extrapolate([0.2, 0.4], 10, 1.0) == 0.4
    assert extrapolate([0.2, 0.3, 0.4], 3, 1.0) == 0.4
    assert extrapolate([0.2, float("nan"), 0.4], 10, 1.0) == 0.4


def _slow_and_fast(configs: int = 8, epochs: int = 12) -> Curves:
    """Half the configs start fast and stall at about 0.62; the other half start slow and end at about 0.72."""
    space = get_space("wine_mlp")
    settings = TrialSettings(model=space.model, data=space.data, max_epochs=epochs, seed=0, fixed=dict(space.fixed),
                             searched=tuple(space.params))
    t = np.arange(1, epochs + 1)
    rows, table = {}, []
    for i in range(configs):
        searched = {**space.start[0], "lr": 1e-4 * (i + 1)}
        rows[i] = {"searched": searched, "resolved": settings.resolve(searched).to_dict()}
        curve = 0.62 - 0.02 / t - 0.001 * i if i % 2 == 0 else 0.9 - 0.6 / t ** 0.5 - 0.001 * i
        table += [{"config_id": i, "seed": 0, "epoch": e, "val_macro_f1": float(v), "epoch_time_s": 1.0,
                   "outcome": "completed"} for e, v in zip(t, curve)]
    return Curves("wine_mlp", "slow-fast", pd.DataFrame(table), rows,
                  {"metric": "val_macro_f1", "mode": "max", "max_epochs": epochs, "seeds": [0]}, space.to_json())


def test_curve_asha_keeps_the_slow_starters_plain_asha_stops():
    """On a table where the first rung ranks runs against their final value, plain ASHA stops slow starters
    that end best; ASHA on extrapolated curves promotes them, replayed through the live search's objects."""
    curves = _slow_and_fast()
    params = get_space("wine_mlp").params
    slow_stopped, picks = {}, {}
    for scheduler in ("asha", "asha-curve"):
        stopped, quality = [], []
        for seed in range(6):
            log = replay(curves, params, [], Strategy(scheduler, trials=8, sampler="random", scheduler=scheduler,
                                                      grace=3, reduction=2), seed=seed)
            stopped.append(sum(t.outcome == "stopped early" for t in log.trials if t.config_id % 2))
            quality.append(log.pick("max").quality)
        slow_stopped[scheduler], picks[scheduler] = np.mean(stopped), np.mean(quality)
    assert slow_stopped["asha-curve"] < slow_stopped["asha"]
    assert picks["asha-curve"] > picks["asha"]
    assert isinstance(make_scheduler("asha-curve", 12, 3, 2), CurveASHA)


def test_the_gp_sampler_is_optunas_seeded_and_replays_like_any_sampler():
    space = get_space("wine_mlp")
    sampler = make_sampler("gp", 0, 12, space.params, startup=4)
    assert isinstance(sampler, optuna.samplers.GPSampler)
    define = DefineByRun(space.params)

    def search(seed: int) -> list[dict]:
        study = optuna.create_study(direction="maximize", sampler=make_sampler("gp", seed, 12, space.params,
                                                                               startup=4))
        study.optimize(lambda trial: (define(trial), -abs(np.log(trial.params["lr"] / 3e-3)))[1], n_trials=8)
        return [t.params for t in study.trials]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    first = search(0)
    assert search(0) == first and search(1) != first
    log = replay(_slow_and_fast(), space.params, [], Strategy("gp", trials=6, sampler="gp", startup=3, grace=3,
                                                               reduction=2), seed=0)
    assert len(log.trials) == 6 and not np.isnan(log.pick("max").quality)
