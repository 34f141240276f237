"""spectune's own samplers (search/strategy/samplers.py): the space's starting config as a prior, Sobol start-up."""

from __future__ import annotations

import math
import warnings

import numpy as np
import optuna
import pytest

from search.strategy.samplers import PriorSampler, StartupSampler, centred
from search.strategy.searcher import DefineByRun, make_sampler
from spaces import get_space

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _near(params: dict, prior: dict, space) -> bool:
    """Within a tenth of the range (on the log scale for log ranges) of the prior's lr and weight decay."""
    out = True
    for key in ("lr", "weight_decay"):
        d = space.params[key]
        span = math.log(d.high) - math.log(d.low)
        out &= abs(math.log(params[key]) - math.log(prior[key])) < 0.1 * span
    return out


def _run(prior_value: float, trials: int = 40, seed: int = 0) -> tuple[optuna.Study, dict]:
    """A study of wine's space whose objective rewards closeness to a target lr; the enqueued first trial
    is the prior (the space's start config, its lr replaced by ``prior_value``)."""
    space = get_space("wine_mlp")
    define = DefineByRun(space.params)
    prior = define.encode({**space.start[0], "lr": prior_value})
    study = optuna.create_study(direction="maximize", sampler=make_sampler("prior", seed, trials, space.params,
                                                                             prior=prior))
    study.enqueue_trial(prior)

    def objective(trial):
        define(trial)
        return -abs(math.log(trial.params["lr"]) - math.log(3e-3))

    study.optimize(objective, n_trials=trials)
    return study, prior


def _unit_lr(params: dict) -> float:
    d = get_space("wine_mlp").params["lr"]
    return (math.log(params["lr"]) - math.log(d.low)) / (math.log(d.high) - math.log(d.low))


def test_the_prior_is_the_first_trial_and_early_draws_gather_near_it():
    study, prior = _run(3e-3)
    assert study.trials[0].params == prior
    gaps = [abs(_unit_lr(t.params) - _unit_lr(prior)) for t in study.trials[1:21]]
    # Uniform draws would sit 0.26 of the range away on average (the prior lies at 0.6 of it); draws
    # centred on a leading prior or on an incumbent near it sit much closer.
    assert np.mean(gaps) < 0.15


def test_a_bad_prior_hands_its_draws_to_uniform_and_the_incumbent():
    space = get_space("wine_mlp")
    sampler_study, prior = _run(1e-4, trials=40)
    sampler = sampler_study.sampler
    w = sampler.weights(sampler_study)
    # The prior's trial ranks last: its share of draws is gone once the evidence is in.
    assert w["prior"] < 0.02 and w["uniform"] == pytest.approx(1 / 3) and w["incumbent"] > 0.6
    late = [_near(t.params, prior, space) for t in sampler_study.trials[20:]]
    assert sum(late) <= 2
    # And the search still finds the good region: the best lr is within a factor 2 of the target.
    assert abs(math.log(sampler_study.best_params["lr"]) - math.log(3e-3)) < math.log(2)


def test_weights_before_any_trial_and_the_prior_is_required():
    sampler = PriorSampler({"lr": 1e-3}, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    assert sampler.weights(study) == {"prior": pytest.approx(2 / 3), "incumbent": 0.0, "uniform": pytest.approx(1 / 3)}
    from results.errors import OptionError

    with pytest.raises(OptionError, match="--sampler prior draws around the space's first starting config"):
        make_sampler("prior", 0, 10, get_space("wine_mlp").params, prior=None)


def test_centred_draws_stay_inside_their_distribution():
    rng = np.random.default_rng(0)
    dists = [optuna.distributions.FloatDistribution(1e-4, 3e-2, log=True),
             optuna.distributions.IntDistribution(1, 4),
             optuna.distributions.FloatDistribution(0.0, 0.5, step=0.1),
             optuna.distributions.CategoricalDistribution(["relu", "gelu", "tanh"])]
    for dist, value in zip(dists, (3e-2, 4, 0.5, "gelu")):
        draws = [centred(dist, value, 0.3, 0.6, rng) for _ in range(200)]
        assert all(dist._contains(dist.to_internal_repr(d)) for d in draws)
    cats = [centred(dists[3], "gelu", 0.3, 0.6, rng) for _ in range(1000)]
    assert 0.65 < cats.count("gelu") / 1000 < 0.8   # kept 60 %, plus a third of the other 40 %


def test_qmc_tpe_draws_sobol_points_for_its_start_up_then_tpe():
    space = get_space("wine_mlp")
    sampler = make_sampler("qmc-tpe", 0, 20, space.params, startup=4)
    assert isinstance(sampler, StartupSampler)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    define = DefineByRun(space.params)
    seen = []

    def objective(trial):
        seen.append(type(sampler._active(trial.study)).__name__)
        define(trial)
        return -abs(math.log(trial.params["lr"]) - math.log(3e-3))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(objective, n_trials=8)
    assert seen[:4] == ["QMCSampler"] * 4 and seen[4:] == ["TPESampler"] * 4
    # The same seed repeats the same search.
    again = optuna.create_study(direction="maximize", sampler=make_sampler("qmc-tpe", 0, 20, space.params, startup=4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again.optimize(objective, n_trials=8)
    assert [t.params for t in again.trials] == [t.params for t in study.trials]
