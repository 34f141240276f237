"""Searchers: Optuna TPE (or random, NSGA-II, the prior, QMC-TPE, GP) inside Ray Tune, told of stopped trials."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import optuna
from optuna.trial import TrialState
from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.optuna import OptunaSearch

from results.report import study_storage
from results.sqlite_files import fast_commits
from results.errors import OptionError
from search.options import SAMPLERS
from search.strategy.samplers import PriorSampler, sobol_then
from spaces import When

class PrunedAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna a scheduler-stopped trial was PRUNED.

    Ray's OptunaSearch reports such a trial as COMPLETE with the value it had when stopped, so
    TPE would learn from truncated scores as if they were final (ray PRs #5651, #15283). The
    recipe marks its own last epoch with ``finished``; a trial that ends without it was stopped.
    TPE still uses the intermediate values a pruned trial reported (a multi-objective study has none:
    Ray reports no intermediate values to it).
    """

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        stopped = bool(result) and not error and not result.get("finished", True)
        if stopped and trial_id in self._ot_trials and trial_id not in self._completed_trials:
            self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.PRUNED)
            self._completed_trials.add(trial_id)
            return
        super().on_trial_complete(trial_id, result=result, error=error)


def startup_trials(trials: int) -> int:
    """Random trials before TPE models the space: Optuna's 10, fewer for small budgets so that
    TPE still decides at least two thirds of a short search."""
    return max(2, min(10, trials // 3))


class DefineByRun:
    """A space's domains as an Optuna define-by-run function: keys in declaration order, a
    ``when`` key suggested only in trials where its condition holds. Picklable, so Tune can save
    the searcher with the experiment and restore it on resume."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = dict(params)

    def __call__(self, trial: Any) -> dict[str, Any] | None:
        chosen: dict[str, Any] = {}
        derived: dict[str, Any] = {}
        for key, domain in self.params.items():
            if isinstance(domain, When):
                if chosen.get(domain.key) not in domain.values:
                    continue
                domain = domain.domain
            chosen[key] = domain.suggest(trial, key)
            if key not in domain.encode(key, chosen[key]):
                derived[key] = chosen[key]
        # Values Optuna did not sample under their own name (a rank sampled as its log2) reach the
        # trial's config as constants, Ray's define-by-run contract.
        return derived or None

    def encode(self, point: dict[str, Any]) -> dict[str, Any]:
        """A starting point in the names and values Optuna samples."""
        out: dict[str, Any] = {}
        for key, value in point.items():
            domain = self.params.get(key)
            out.update(domain.encode(key, value) if domain is not None else {key: value})
        return out


def fail_lost_trials(study_file: Path, name: str, state: TrialState = TrialState.FAIL) -> list[int]:
    """Mark FAIL the study's trials still RUNNING once the search is over: those a killed driver
    asked for after Tune last saved its state, which the resumed search never ran; or mark them
    ``state`` (PRUNED: trials the search's epoch cap cut short, their reported epochs standing).
    Returns their numbers."""
    if not Path(study_file).exists():
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.load_study(study_name=name, storage=study_storage(study_file))
    lost = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    for number in lost:
        study.tell(number, state=state)
    return lost


def make_sampler(sampler: str, seed: int, trials: int, params: dict[str, Any],
                 startup: int | None = None, prior: dict[str, Any] | None = None) -> optuna.samplers.BaseSampler:
    """The Optuna sampler of a search, seeded: multivariate TPE (with ``group`` for conditional
    spaces, which models each set of keys that appear together) after ``startup`` random trials
    (default :func:`startup_trials`; with several objectives, Optuna's multi-objective TPE), the same
    TPE after Sobol start-up trials (``qmc-tpe``), draws around the space's starting config ``prior``
    (in Optuna's names), the incumbent or uniform (``prior``: :class:`search.strategy.samplers.PriorSampler`),
    random search, Ray Tune's default (``tune-tpe``: Optuna's ``TPESampler`` with its defaults, ``startup``
    unused), NSGA-II (generations of ``startup`` trials, the first random; only trials that
    ran their budget fill a generation, so under early stopping a short search stays mostly random), or
    Optuna's ``GPSampler`` (a Gaussian process with log expected improvement, after ``startup`` random
    trials; a trial stopped early is told its last value, as TPE is)."""
    startup = startup if startup is not None else startup_trials(trials)
    if sampler == "tune-tpe":
        # What Ray's OptunaSearch builds when given no sampler: Optuna's defaults (10 start-up trials, each key
        # drawn alone), as a user writing Tune + Optuna by hand gets.
        return optuna.samplers.TPESampler(seed=seed)
    if sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if sampler == "nsga2":
        # Optuna's population of 50 would leave a CPU budget of 16 trials in its random first generation.
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(2, startup))
    if sampler == "prior":
        if not prior:
            raise OptionError("--sampler prior draws around the space's first starting config, and this search has "
                              "none; add start=[{...}] to the space, or choose another --sampler.")
        return PriorSampler(prior, seed=seed)
    if sampler == "gp":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # Conditional keys outside the GP's joint space are drawn at random; Optuna warns on each one.
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup, warn_independent_sampling=False)
    if sampler not in ("tpe", "qmc-tpe"):
        raise AssertionError(f"sampler {sampler!r} is not one of {SAMPLERS}; search.options checks it first")
    with warnings.catch_warnings():
        # group (TPE over the sets of keys that appear together) is marked experimental in Optuna.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        tpe = optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                         group=any(isinstance(d, When) for d in params.values()),
                                         n_startup_trials=startup)
    return sobol_then(tpe, startup, seed) if sampler == "qmc-tpe" else tpe


def make_searcher(sampler: str, seed: int, trials: int, concurrency: int, metric: str | list[str],
                  mode: str | list[str],
                  start: list[dict[str, Any]], params: dict[str, Any], study: tuple[str, Path] | None = None,
                  startup: int | None = None, carried: Sequence[optuna.trial.FrozenTrial] = ()) -> Searcher:
    """:func:`make_sampler`'s sampler inside Ray's OptunaSearch (which ignores its own seed when given a
    sampler), starting points first, at most ``concurrency`` trials in flight. ``study`` (name,
    SQLite file) keeps the Optuna study on disk, one study per search, for the report. ``carried``:
    finished trials of earlier searches (:mod:`search.strategy.warm_start`), in the study before the first
    suggestion. Lists of metrics and modes make a multi-objective study (the first is the primary)."""
    space = DefineByRun(params)
    ot_sampler = make_sampler(sampler, seed, trials, params, startup, prior=space.encode(start[0]) if start else None)
    storage = None
    if study is not None:
        Path(study[1]).parent.mkdir(parents=True, exist_ok=True)
        fast_commits(study[1])
        storage = optuna.storages.RDBStorage(study_storage(study[1]))
    # tune-tpe is Tune's own OptunaSearch, which tells Optuna a trial ASHA stopped was complete.
    searcher_class = OptunaSearch if sampler == "tune-tpe" else PrunedAwareOptunaSearch
    search = searcher_class(space=space, metric=metric, mode=mode, sampler=ot_sampler,
                            points_to_evaluate=[space.encode(p) for p in start] or None,
                            study_name=study[0] if study else None, storage=storage)
    # The study exists once the searcher does (its space is given): TPE sees these from its first ask.
    search._ot_study.add_trials(carried)
    return ConcurrencyLimiter(search, max_concurrent=concurrency)
