"""Samplers spectune adds to Optuna's: the space's starting config as a prior, and Sobol start-up for TPE.

- :class:`PriorSampler` (after PriorBand, Mallik et al. 2023, and piBO): each trial draws all its
  values from one of three sources, chosen at random: centred on the **prior** (the space's first
  starting config), centred on the **incumbent** (the best trial so far), or **uniform** over the
  space. Uniform draws keep a fixed share; the prior's share shrinks as evidence comes in, and
  faster the worse the prior's own trial ranks among the finished ones, so a bad prior hands its
  draws to uniform and incumbent sampling instead of steering the search.
- :class:`StartupSampler`: Optuna's ``QMCSampler`` (scrambled Sobol points) for the start-up trials,
  TPE after them; at 10-30 trials Sobol start-up ranked above random start-up in Optuna's own
  benchmark (optuna#2964).

Centred draws work in the coordinates Optuna samples in: a numeric value is moved by a normal step of
``prior_sd`` (or ``incumbent_sd``) of its range (on a log scale for log ranges), clipped to the range;
a categorical value is kept with probability ``keep`` and otherwise drawn uniformly.
"""

from __future__ import annotations

import math
import warnings
import zlib
from typing import Any, Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

SOURCES = ("prior", "incumbent", "uniform")


def _score(trial: FrozenTrial) -> float | None:
    """A finished trial's value: its final one, or for a trial stopped early its last reported one."""
    if trial.state == TrialState.COMPLETE and trial.values:
        return trial.values[0]
    if trial.state == TrialState.PRUNED and trial.intermediate_values:
        return trial.intermediate_values[max(trial.intermediate_values)]
    return None


class PriorSampler(BaseSampler):
    """Draws around the prior, around the incumbent, or uniformly (see the module docstring)."""

    def __init__(self, prior: dict[str, Any], seed: int | None = None, uniform: float = 1 / 3,
                 prior_sd: float = 0.15, incumbent_sd: float = 0.1, keep: float = 0.6, decay: float = 10.0) -> None:
        if not prior:
            raise ValueError("PriorSampler needs a prior: the space's first starting config")
        self.prior, self.seed = dict(prior), seed
        self.uniform, self.prior_sd, self.incumbent_sd = uniform, prior_sd, incumbent_sd
        self.keep, self.decay = keep, decay
        self._random = RandomSampler(seed=seed)
        self._chosen: dict[tuple[int, int], tuple[str, dict[str, Any]]] = {}

    def reseed_rng(self) -> None:
        self._random.reseed_rng()

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def weights(self, study: Study) -> dict[str, float]:
        """The chance of each source for the next trial, from the trials finished so far."""
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        scored = [(sign * s, t) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,
                                                                                  TrialState.PRUNED))
                  if (s := _score(t)) is not None]
        rest = 1.0 - self.uniform
        if not scored:
            return {"prior": rest, "incumbent": 0.0, "uniform": self.uniform}
        own = [s for s, t in scored if all(t.params.get(k) == v for k, v in self.prior.items() if k in t.params)]
        # The share of finished trials that beat the prior's best run: 0 for a prior that leads, 1 for the worst.
        beaten = (sum(s > max(own) for s, _ in scored) / len(scored)) if own else 0.5
        prior = rest * (1.0 - beaten) / (1.0 + len(scored) / self.decay)
        incumbent = rest - prior if len(scored) >= 2 else 0.0
        return {"prior": prior, "incumbent": incumbent, "uniform": 1.0 - prior - incumbent}

    def _source(self, study: Study, trial: FrozenTrial) -> tuple[str, dict[str, Any]]:
        key = (study._study_id, trial.number)
        if key not in self._chosen:
            w = self.weights(study)
            rng = np.random.default_rng([self.seed or 0, trial.number])
            source = SOURCES[int(rng.choice(3, p=[w[s] for s in SOURCES]))]
            centre = self.prior if source == "prior" else self._incumbent(study) if source == "incumbent" else {}
            self._chosen[key] = (source, centre)
        return self._chosen[key]

    @staticmethod
    def _incumbent(study: Study) -> dict[str, Any]:
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        # A trial that ran its budget is preferred: a stopped trial's value is truncated.
        ranked = sorted(finished, key=lambda t: (t.state == TrialState.COMPLETE, sign * (_score(t) or -math.inf)))
        return dict(ranked[-1].params) if ranked else {}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        source, centre = self._source(study, trial)
        value = centre.get(param_name)
        if source == "uniform" or value is None or not param_distribution._contains(
                param_distribution.to_internal_repr(value)):
            return self._random.sample_independent(study, trial, param_name, param_distribution)
        rng = np.random.default_rng([self.seed or 0, trial.number, zlib.crc32(param_name.encode())])
        sd = self.prior_sd if source == "prior" else self.incumbent_sd
        return centred(param_distribution, value, sd, self.keep, rng)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._random.before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self._random.after_trial(study, trial, state, values)


def centred(dist: BaseDistribution, value: Any, sd: float, keep: float, rng: np.random.Generator) -> Any:
    """A draw of ``dist`` near ``value`` (see the module docstring)."""
    if isinstance(dist, CategoricalDistribution):
        return value if rng.random() < keep else dist.choices[int(rng.integers(len(dist.choices)))]
    if not isinstance(dist, (FloatDistribution, IntDistribution)):
        raise TypeError(f"no centred draw for {type(dist).__name__}")
    low, high, v = float(dist.low), float(dist.high), float(value)
    if dist.log:
        low, high, v = math.log(low), math.log(high), math.log(v)
    if high <= low:
        return value
    unit = min(1.0, max(0.0, (v - low) / (high - low) + rng.normal(0.0, sd)))
    out = low + unit * (high - low)
    out = math.exp(out) if dist.log else out
    if dist.step is not None:
        out = float(dist.low) + round((out - float(dist.low)) / dist.step) * dist.step
    out = min(float(dist.high), max(float(dist.low), out))
    return int(round(out)) if isinstance(dist, IntDistribution) else out


class StartupSampler(BaseSampler):
    """``first`` for the trials before ``startup`` have finished, ``then`` after them."""

    def __init__(self, first: BaseSampler, then: BaseSampler, startup: int) -> None:
        self.first, self.then, self.startup = first, then, startup

    def _active(self, study: Study) -> BaseSampler:
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        return self.first if len(finished) < self.startup else self.then

    def reseed_rng(self) -> None:
        self.first.reseed_rng()
        self.then.reseed_rng()

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        with warnings.catch_warnings():
            # QMCSampler warns that conditional keys fall back to independent (random) draws.
            warnings.simplefilter("ignore")
            return self._active(study).infer_relative_search_space(study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self._active(study).sample_relative(study, trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self._active(study).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.first.before_trial(study, trial)
        self.then.before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self.first.after_trial(study, trial, state, values)
        self.then.after_trial(study, trial, state, values)


def sobol_then(then: BaseSampler, startup: int, seed: int) -> StartupSampler:
    """Scrambled Sobol start-up trials, then ``then``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return StartupSampler(optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed,
                                                           warn_independent_sampling=False), then, startup)
