"""Replaying searches on recorded curves: hours of tuning in seconds, through the live search's classes.

A replayed trial reads a recorded run instead of training: the searcher proposes a config, the
nearest recorded config serves it (one of its recorded seeds, drawn at random, as a live trial sees
one seed), and its epochs are reported one by one, in simulated time, to the **same searcher and
scheduler objects a live search builds** (:func:`search.searcher.make_searcher`,
:func:`search.searcher.make_scheduler`), in the order Tune calls them: the scheduler's decision,
then the searcher's result, then both ``on_trial_complete`` when the scheduler stops the trial or it
ends (its budget, or the recipe's own patience, the rule of :class:`trainables.recipe.EarlyStop`).
Epochs take their recorded wall time, and ``concurrency`` trials run at once, so asynchronous
decisions happen in the order they would live. The peer runner replays Optuna alone (ask and tell,
TPE with ``HyperbandPruner`` or random search with ``MedianPruner``) on the same curves and clock.

Why the nearest recorded config: TPE proposes continuous values that no table holds. Limiting the
sampler to the recorded configs would change the sampler; serving the nearest one (in the space's
normalised coordinates: log ranges on a log scale, a different choice or an inactive key counting
as the full width) keeps it, and every replay reports how far served configs were from the asked ones.
"""

from __future__ import annotations

import heapq
import math
import warnings
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import optuna
from ray.tune.schedulers import TrialScheduler

from results.curves import Curves
from search.searcher import DefineByRun, make_sampler, make_scheduler, make_searcher
from spaces import Categorical, FloatRange, IntRange, PowerOfTwoRange, When
from trainables.recipe import EarlyStop

RUNNERS = ("tune", "optuna")


@dataclass(frozen=True)
class Strategy:
    """One way to search: ``runner`` ``tune`` (spectune's searcher and scheduler) or ``optuna`` (Optuna
    alone with ``pruner``). ``startup`` random trials before TPE (``None``: the live default)."""

    name: str
    trials: int
    runner: str = "tune"
    sampler: str = "tpe"
    scheduler: str = "asha"
    pruner: str = "none"
    grace: int = 1
    reduction: int = 3
    startup: int | None = None
    concurrency: int = 1
    patience: int | None = None
    space_start: bool = True
    # Further objectives beside the curves' metric, as (name, mode): a multi-objective search, the
    # searcher told each trial's values at its end (read from the served config's ``sizes``).
    objectives: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.runner not in RUNNERS:
            raise AssertionError(f"runner {self.runner!r} is not one of {RUNNERS}")
        if self.objectives and self.runner != "tune":
            raise AssertionError("Optuna alone cannot prune a multi-objective study (optuna#3450): no peer runner")

    def describe(self) -> str:
        stop = (f"{self.scheduler}" + (f" grace {self.grace} rf {self.reduction}" if self.scheduler != "fifo" else "")
                if self.runner == "tune" else f"optuna {self.pruner} pruner")
        start = f", {self.startup} start-up" if self.sampler == "tpe" and self.startup is not None else ""
        return f"{self.sampler}{start} + {stop}, {self.trials} trials x {self.concurrency} at once"


@dataclass
class ReplayedTrial:
    trial_id: str
    config_id: int
    seed: int
    distance: float
    epochs: int = 0
    best: float = math.nan
    outcome: str = "running"   # completed (budget or patience) / stopped early (by the scheduler) / failed
    ended_at: float = math.nan
    started_at: float = math.nan


@dataclass
class ReplayLog:
    strategy: Strategy
    seed: int
    trials: list[ReplayedTrial]

    def pick(self, mode: str) -> ReplayedTrial:
        """The search's pick: the trial with the best value at any epoch, as a live search selects; of
        tied trials, the one launched first."""
        done = [t for t in self.trials if not math.isnan(t.best)]
        return (max if mode == "max" else min)(done, key=lambda t: t.best)

    @property
    def epochs(self) -> int:
        return sum(t.epochs for t in self.trials)


class Served:
    """Serves a proposed config with the nearest recorded one (see the module docstring)."""

    def __init__(self, curves: Curves, params: dict[str, Any]) -> None:
        self.params = params
        self.ids = sorted(curves.configs)
        self.points = np.array([self._coords(curves.configs[i]["searched"]) for i in self.ids])
        self.categorical = np.array([isinstance(d.domain if isinstance(d, When) else d, Categorical)
                                     for d in params.values()])

    def _coords(self, config: dict[str, Any]) -> list[float]:
        out = []
        for key, domain in self.params.items():
            inner = domain.domain if isinstance(domain, When) else domain
            value = config.get(key)
            if value is None:
                out.append(-1.0)    # an inactive conditional key: a full width from any active value
            elif isinstance(inner, Categorical):
                out.append(float(inner.values.index(value)) if value in inner.values else -1.0)
            elif isinstance(inner, PowerOfTwoRange):
                out.append((math.log2(value) - math.log2(inner.low)) / (math.log2(inner.high) - math.log2(inner.low)))
            elif isinstance(inner, (FloatRange, IntRange)):
                low, high, v = inner.low, inner.high, value
                if inner.log:
                    low, high, v = math.log(low), math.log(high), math.log(v)
                out.append((v - low) / (high - low))
        return out

    def nearest(self, config: dict[str, Any]) -> tuple[int, float]:
        """The recorded config id nearest ``config`` and the distance (RMS over keys, 0 to 1 per key)."""
        here = np.array(self._coords(config))
        diff = np.abs(self.points - here)
        # A different choice, or a key active on one side only, is a whole width apart.
        whole = (self.categorical | (self.points < 0) | (here < 0)) & (diff > 0)
        diff = np.where(whole, 1.0, np.minimum(diff, 1.0))
        dist = np.sqrt((diff ** 2).mean(axis=1))
        best = int(np.argmin(dist))
        return self.ids[best], float(dist[best])


def replay(curves: Curves, params: dict[str, Any], start: list[dict[str, Any]], strategy: Strategy,
           seed: int, sizes: dict[int, dict[str, float]] | None = None) -> ReplayLog:
    """One replayed search of ``strategy`` with seed ``seed`` (the sampler's and the seed draws');
    ``sizes`` (config id -> its further objectives' values) when the strategy has several objectives."""
    if strategy.objectives and sizes is None:
        raise AssertionError("a multi-objective replay needs each recorded config's sizes")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    served = Served(curves, params)
    runs = curves.runs(failed=True)
    seeds = {c: sorted(s for (cc, s) in runs if cc == c) for c in curves.configs}
    rng = np.random.default_rng(seed)
    sign = 1.0 if curves.mode == "max" else -1.0
    driver = (_TuneDriver if strategy.runner == "tune" else _OptunaDriver)(curves, params, start, strategy, seed)
    trials: list[ReplayedTrial] = []
    clock: list[tuple[float, int, str]] = []
    state: dict[str, tuple[ReplayedTrial, Any, EarlyStop]] = {}

    def launch(now: float) -> None:
        while len(state) < strategy.concurrency and len(trials) < strategy.trials:
            trial_id = f"r{len(trials):05d}"
            config = driver.ask(trial_id)
            if config is None:
                return
            config_id, distance = served.nearest(config)
            run_seed = int(rng.choice(seeds[config_id]))
            record = ReplayedTrial(trial_id, config_id, run_seed, distance, started_at=now)
            recipe = curves.configs[config_id]["resolved"]
            stop = EarlyStop(patience=strategy.patience, warmup_epochs=int(recipe.get("warmup_epochs", 0)), sign=sign)
            trials.append(record)
            run = runs[(config_id, run_seed)]
            if (run["outcome"] == "failed").any():
                # A run that failed when it was recorded (a diverging loss, say) fails here too, at once.
                record.outcome, record.ended_at = "failed", now
                driver.fail(trial_id)
                continue
            state[trial_id] = (record, run, stop)
            heapq.heappush(clock, (now + float(run["epoch_time_s"].iloc[0]), len(trials), trial_id))

    launch(0.0)
    while clock:
        now, _, trial_id = heapq.heappop(clock)
        record, run, stop = state[trial_id]
        row = run.iloc[record.epochs]
        record.epochs += 1
        stop.update(record.epochs, float(row[curves.metric]))
        finished = stop.stopped or record.epochs == curves.max_epochs
        decision = driver.tell_epoch(trial_id, record.epochs, float(row[curves.metric]), stop.best, finished,
                                     (sizes or {}).get(record.config_id, {}))
        record.best = stop.best
        if decision == TrialScheduler.STOP or finished:
            record.outcome = "completed" if finished else "stopped early"
            record.ended_at = now
            del state[trial_id]
            launch(now)
        elif record.epochs >= len(run):
            raise ValueError(f"curves {curves.name}: run (config {record.config_id}, seed {record.seed}) holds "
                             f"{len(run)} of {curves.max_epochs} epochs, and the replayed search continues it")
        else:
            heapq.heappush(clock, (now + float(run["epoch_time_s"].iloc[record.epochs]), len(trials) + 1, trial_id))
    return ReplayLog(strategy, seed, trials)


def confirm_pick(log: ReplayLog, curves: Curves, top: int, seeds: int, patience: int | None,
                 rng: np.random.Generator) -> ReplayedTrial:
    """``spectune confirm`` on a replayed search: the ``top`` configs it ranked best, each run again with
    ``seeds`` recorded seeds (drawn without replacement, leaving out the seed the search's own trial
    read while enough others remain), with the search's patience; the best mean wins. Returned as
    one more trial that spends those epochs and holds the winner (its ``best`` beats every observed
    value, so it becomes the pick)."""
    sign = 1.0 if curves.mode == "max" else -1.0
    ranked: dict[int, int] = {}   # config id -> the seed its best trial read
    for t in sorted((t for t in log.trials if not math.isnan(t.best)), key=lambda t: -sign * t.best):
        ranked.setdefault(t.config_id, t.seed)
    runs = curves.runs()
    means, spent = {}, 0
    for config_id, seen in list(ranked.items())[:top]:
        recorded = sorted(s for (c, s) in runs if c == config_id)
        fresh = [s for s in recorded if s != seen]
        pool = fresh if len(fresh) >= seeds else recorded
        warmup = int(curves.configs[config_id]["resolved"].get("warmup_epochs", 0))
        values = []
        for seed in rng.choice(pool, size=min(seeds, len(pool)), replace=False):
            stop = EarlyStop(patience=patience, warmup_epochs=warmup, sign=sign)
            for epoch, value in enumerate(runs[(config_id, int(seed))][curves.metric], start=1):
                stop.update(epoch, float(value))
                spent += 1
                if stop.stopped:
                    break
            values.append(stop.best)
        means[config_id] = float(np.mean(values))
    winner = (max if curves.mode == "max" else min)(means, key=means.get)
    return ReplayedTrial("confirmation", winner, -1, 0.0, epochs=spent, best=sign * math.inf,
                         outcome="confirmation", ended_at=max(t.ended_at for t in log.trials) + 1.0)


class _TuneDriver:
    """The live search's searcher and scheduler, called as Tune calls them."""

    def __init__(self, curves: Curves, params: dict[str, Any], start: list[dict[str, Any]], s: Strategy,
                 seed: int) -> None:
        self.metric, self.mode = f"best_{curves.metric}", curves.mode
        several = [self.metric, *(n for n, _ in s.objectives)], [curves.mode, *(m for _, m in s.objectives)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.searcher = make_searcher(s.sampler, seed, s.trials, s.concurrency,
                                          several[0] if s.objectives else self.metric,
                                          several[1] if s.objectives else curves.mode,
                                          start if s.space_start else [], params, startup=s.startup)
        self.scheduler = make_scheduler(s.scheduler, curves.max_epochs, s.grace, s.reduction, objectives=s.objectives)
        self.scheduler.set_search_properties(self.metric, curves.mode)
        self.trials: dict[str, SimpleNamespace] = {}

    def ask(self, trial_id: str) -> dict[str, Any] | None:
        config = self.searcher.suggest(trial_id)
        if config is None:
            return None
        self.trials[trial_id] = SimpleNamespace(trial_id=trial_id)
        self.scheduler.on_trial_add(None, self.trials[trial_id])
        return config

    def tell_epoch(self, trial_id: str, epoch: int, value: float, best: float, finished: bool,
                   sizes: dict[str, float]) -> str:
        trial = self.trials[trial_id]
        result = {"training_iteration": epoch, "epoch": epoch, self.metric: best, self.metric[5:]: value,
                  "finished": finished, **sizes}
        decision = self.scheduler.on_trial_result(None, trial, result)
        if decision != TrialScheduler.STOP:
            self.searcher.on_trial_result(trial_id, result)
        if decision == TrialScheduler.STOP or finished:
            self.scheduler.on_trial_complete(None, trial, result)
            self.searcher.on_trial_complete(trial_id, result)
        return decision


    def fail(self, trial_id: str) -> None:
        """As Tune does for a trial that raised: the scheduler forgets it, the searcher records an error."""
        self.scheduler.on_trial_error(None, self.trials[trial_id])
        self.searcher.on_trial_complete(trial_id, error=True)


class _OptunaDriver:
    """Optuna alone, as a user without Ray would write it: ask, report every epoch, prune, tell."""

    def __init__(self, curves: Curves, params: dict[str, Any], start: list[dict[str, Any]], s: Strategy,
                 seed: int) -> None:
        sampler = make_sampler(s.sampler, seed, s.trials, params, s.startup)
        pruner = {"hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=s.grace,
                                                                      max_resource=curves.max_epochs,
                                                                      reduction_factor=s.reduction),
                  "median": lambda: optuna.pruners.MedianPruner(n_warmup_steps=s.grace),
                  "none": optuna.pruners.NopPruner}[s.pruner]()
        # A fixed name: HyperbandPruner assigns brackets by a hash of the study's name, and an unnamed
        # study gets a random one, which made replays of the same seed differ.
        self.study = optuna.create_study(study_name=f"spectune-replay-{seed}", sampler=sampler, pruner=pruner,
                                         direction="maximize" if curves.mode == "max" else "minimize")
        space = DefineByRun(params)
        for point in (start if s.space_start else []):
            self.study.enqueue_trial(space.encode(point))
        self.space = space
        self.live: dict[str, Any] = {}

    def ask(self, trial_id: str) -> dict[str, Any] | None:
        trial = self.study.ask()
        self.live[trial_id] = trial
        derived = self.space(trial) or {}
        return {**trial.params, **derived}

    def fail(self, trial_id: str) -> None:
        self.study.tell(self.live[trial_id], state=optuna.trial.TrialState.FAIL)

    def tell_epoch(self, trial_id: str, epoch: int, value: float, best: float, finished: bool,
                   sizes: dict[str, float]) -> str:
        trial = self.live[trial_id]
        trial.report(best, epoch)
        if finished:
            self.study.tell(trial, best)
            return TrialScheduler.CONTINUE
        if trial.should_prune():
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE
