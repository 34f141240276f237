"""The replay simulator: hours of tuning in seconds, through the live search's classes.

A replayed trial reads a served run instead of training (:mod:`search.replay.serve`: random search
takes the recorded configs exactly, without replacement; a model-based sampler's proposals are served
from a model of the curves fitted on the recording). Its epochs are reported one by one, in simulated
time, to the **same searcher and scheduler objects a live search builds**
(:func:`search.strategy.searcher.make_searcher`, :func:`search.strategy.schedulers.make_scheduler`), in the order Tune
calls them: the scheduler's decision, then the searcher's result, then both ``on_trial_complete`` when
the scheduler stops the trial or it ends (its budget, or the recipe's own patience, the rule of
:class:`trainables.recipe.EarlyStop`). Epochs take their recorded wall time, and ``concurrency``
trials run at once, so asynchronous decisions happen in the order they would live. The peer runner
replays Optuna alone (ask and tell, TPE with ``HyperbandPruner`` or random search with
``MedianPruner``) on the same served runs and clock, and a peer driven from outside (the bench's NePS
PriorBand, :mod:`search.bench.neps_peer`), whose promotions continue the runs they promote.
:mod:`search.bench.live` drives the same objects with every proposal trained for real.
"""

from __future__ import annotations

import heapq
import json
import math
import warnings
from dataclasses import asdict, dataclass, field, replace
from types import SimpleNamespace
from typing import Any

import numpy as np
import optuna
from ray.tune.schedulers import TrialScheduler

from results.curves import Curves
from search.replay.serve import CurveModel, ExactRandom, Modelled, Nearest, Server, ServedRun, Table
from search.strategy.schedulers import make_scheduler
from search.strategy.searcher import DefineByRun, make_sampler, make_searcher
from trainables.recipe import EarlyStop

RUNNERS = ("tune", "optuna", "neps")
# A driver's answer to each epoch, as Tune's schedulers give it.
CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP


@dataclass(frozen=True)
class Strategy:
    """One way to search: ``runner`` ``tune`` (spectune's searcher and scheduler), ``optuna`` (Optuna
    alone with ``pruner``) or ``neps`` (NePS's PriorBand from ``grace`` epochs, eta ``reduction``, for
    ``trials`` times the epoch budget). ``startup`` random trials before TPE (``None``: the live default)."""

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
    # The search ends once its trials have trained this many epochs in all (``spectune search
    # --max-total-epochs``): the running trials stop where they are.
    max_total_epochs: int | None = None

    def __post_init__(self) -> None:
        if self.runner not in RUNNERS:
            raise AssertionError(f"runner {self.runner!r} is not one of {RUNNERS}")
        if self.objectives and self.runner != "tune":
            raise AssertionError("Optuna alone cannot prune a multi-objective study (optuna#3450): no peer runner")

    def settings(self) -> str:
        """Every field but the name, as JSON: what a kept live search must match to stand for this strategy
        (a space's changed grace period keeps the name "random + ASHA" but not the search)."""
        # A field added since the first live checks is left out while it is off, so their searches stay kept.
        return json.dumps({k: v for k, v in asdict(self).items()
                           if k != "name" and not (k == "max_total_epochs" and v is None)}, sort_keys=True)

    def describe(self) -> str:
        if self.runner == "neps":
            return (f"NePS PriorBand, Hyperband from {self.grace} epoch(s), eta {self.reduction}, "
                    f"{self.trials} x the epoch budget x {self.concurrency} at once")
        stop = (f"{self.scheduler}" + (f" grace {self.grace} rf {self.reduction}" if self.scheduler != "fifo" else "")
                if self.runner == "tune" else f"optuna {self.pruner} pruner")
        start = f", {self.startup} start-up" if self.sampler == "tpe" and self.startup is not None else ""
        cap = f", at most {self.max_total_epochs} epochs in all" if self.max_total_epochs else ""
        return f"{self.sampler}{start} + {stop}, {self.trials} trials x {self.concurrency} at once{cap}"


@dataclass
class ReplayedTrial:
    trial_id: str
    config_id: int
    seed: int
    distance: float
    epochs: int = 0
    best: float = math.nan
    # completed (budget or patience) / stopped early (by the scheduler) / failed / promoted (continued by a
    # later trial, PriorBand's promotion) / cut (running when the search reached its epoch cap)
    outcome: str = "running"
    ended_at: float = math.nan
    started_at: float = math.nan
    modelled: bool = False          # served from the curve model, not a recorded run
    quality: float = math.nan       # what the config is worth: mean best value over its seeds
    quality_unseen: float = math.nan  # the same over the seeds this trial did not see
    first_epoch: int = 0            # epochs of the run before this trial (a PriorBand promotion continues one)
    config: dict[str, Any] | None = None   # what the searcher proposed (a served run may hold another)


@dataclass
class ReplayLog:
    strategy: Strategy
    seed: int
    trials: list[ReplayedTrial]
    # One per epoch, in simulated time: (clock, index of the trial in ``trials``, its best value so far).
    events: list[tuple[float, int, float]] = field(default_factory=list)

    def picks(self, mode: str) -> np.ndarray:
        """After each epoch of the search (in simulated time): the index in ``trials`` of its pick so far, the
        trial with the best value at any epoch, as a live search selects; of tied trials, the one launched first."""
        sign = 1.0 if mode == "max" else -1.0
        best_key, pick, out = None, -1, np.empty(len(self.events), dtype=int)
        for k, (_, index, best) in enumerate(self.events):
            key = (sign * best, -index)
            if best_key is None or key > best_key:
                best_key, pick = key, index
            out[k] = pick
        return out

    def pick(self, mode: str) -> ReplayedTrial | None:
        """The search's final pick (:meth:`picks`); ``None`` when no epoch ended."""
        chosen = self.picks(mode)
        return self.trials[chosen[-1]] if len(chosen) else None

    @property
    def epochs(self) -> int:
        return sum(t.epochs for t in self.trials)


def epochs_spent(epochs: float, ran: int) -> int:
    """How many of the ``ran`` epochs of a search count at a budget of ``epochs``: all of them when it ended
    sooner, none below one epoch."""
    if epochs < 1 or not ran:
        return 0
    return ran if epochs >= ran else int(math.floor(epochs + 1e-9))


def replay(curves: Curves, params: dict[str, Any], start: list[dict[str, Any]], strategy: Strategy,
           seed: int, sizes: dict[int, dict[str, float]] | None = None, table: Table | None = None,
           model: CurveModel | None = None, server: Server | None = None, peer: Any = None) -> ReplayLog:
    """One replayed search of ``strategy`` with seed ``seed`` (the sampler's and the seed draws').

    Random search is served exactly (:class:`~search.replay.serve.ExactRandom`); a model-based sampler's
    proposals by ``model`` where one is given (:class:`~search.replay.serve.Modelled`), else by the
    nearest recorded config; ``server``, where given, serves every proposal instead (a live search's
    trainer). ``table`` is the recording read for serving (built here when not given; a study builds
    it once). ``sizes`` (config id -> its further objectives' values) when the strategy
    has several objectives. ``peer``: the driver class of a ``neps`` strategy (the bench's
    :class:`~search.bench.neps_peer.NepsDriver`: this package does not import the bench)."""
    if strategy.objectives and sizes is None:
        raise AssertionError("a multi-objective replay needs each recorded config's sizes")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if server is None:
        table = table or Table(curves, params)
        # One recorded seed for every trial of the search, as a live search has (serve.py says why); the
        # repeats take the recording's seeds in turn.
        seen = table.recording_seeds[seed % len(table.recording_seeds)]
        if strategy.sampler == "random":
            server = ExactRandom(table, len(start) if strategy.space_start else 0, np.random.default_rng([seed, 7]),
                                 seen)
        else:
            server = Modelled(table, model, seen) if model is not None else Nearest(table, seen)
    sign = 1.0 if curves.mode == "max" else -1.0
    if strategy.runner == "neps":
        if peer is None:
            raise AssertionError("a neps strategy is driven by the peer it is given (search.bench.neps_peer)")
        driver: Any = peer(curves, params, start, strategy, seed)
    else:
        driver = (_TuneDriver if strategy.runner == "tune" else _OptunaDriver)(curves, params, start, strategy, seed)
    log = ReplayLog(strategy, seed, [])
    runs: dict[str, tuple[ReplayedTrial, ServedRun, EarlyStop]] = {}
    ended: dict[str, tuple[ReplayedTrial, ServedRun, EarlyStop]] = {}   # what a promotion may continue
    clock: list[tuple[float, int, str]] = []
    # A trial count bounds Tune's and Optuna's searches; PriorBand's ends when it has asked for its epochs.
    limit = strategy.trials if strategy.runner != "neps" else math.inf

    def launch(now: float) -> None:
        while len(runs) < strategy.concurrency and len(log.trials) < limit:
            trial_id = f"r{len(log.trials):05d}"
            config = driver.ask(trial_id)
            if config is None:
                return
            previous = getattr(driver, "previous", lambda _: None)(trial_id)
            if previous is not None:
                # A promotion: the same run, continued from where its earlier trial left it.
                before, run, stop = ended.pop(previous)
                before.outcome = "promoted"
                record = replace(before, trial_id=trial_id, epochs=0, outcome="running", started_at=now,
                                 ended_at=math.nan, first_epoch=before.first_epoch + before.epochs, config=config)
            else:
                run = server.serve(config)
                record = ReplayedTrial(trial_id, run.config_id, run.seed, run.distance, started_at=now,
                                       modelled=run.modelled, quality=run.quality, quality_unseen=run.quality_unseen,
                                       config=config)
                stop = EarlyStop(patience=strategy.patience, warmup_epochs=run.warmup, sign=sign)
            log.trials.append(record)
            if previous is not None and stop.stopped:
                # The recipe's patience already ended this run: the promotion trains nothing, and the searcher is
                # told the run's best at once.
                record.outcome, record.ended_at, record.best = "completed", now, stop.best
                driver.tell_epoch(trial_id, record.first_epoch, stop.best, stop.best, True,
                                  (sizes or {}).get(record.config_id, {}))
                ended[trial_id] = (record, run, stop)
                continue
            if run.failed:
                # A run that failed when it was recorded (a diverging loss, say) fails here too, at once.
                record.outcome, record.ended_at = "failed", now
                driver.fail(trial_id)
                continue
            runs[trial_id] = (record, run, stop)
            heapq.heappush(clock, (now + float(run.times[record.first_epoch]), len(log.trials), trial_id))

    launch(0.0)
    while clock:
        now, _, trial_id = heapq.heappop(clock)
        record, run, stop = runs[trial_id]
        at = record.first_epoch + record.epochs
        value = float(run.values[at])
        if math.isnan(value):
            # A live run whose loss diverged: the trial fails, as a live trial that raised does.
            record.outcome, record.ended_at = "failed", now
            driver.fail(trial_id)
            del runs[trial_id]
            launch(now)
            continue
        record.epochs += 1
        at += 1
        stop.update(at, value)
        finished = stop.stopped or at == curves.max_epochs
        decision = driver.tell_epoch(trial_id, at, value, stop.best, finished,
                                     (sizes or {}).get(record.config_id, {}))
        record.best = stop.best
        log.events.append((now, int(trial_id[1:]), stop.best))
        if strategy.max_total_epochs and log.epochs >= strategy.max_total_epochs:
            # The epoch cap ends the search: every running trial stops where it is, none starts.
            for running, _, _ in runs.values():
                running.outcome = "completed" if running is record and finished else "cut"
                running.ended_at = now
            break
        if decision == STOP or finished:
            record.outcome = "completed" if finished else "stopped early"
            record.ended_at = now
            ended[trial_id] = runs.pop(trial_id)
            launch(now)
        elif at >= len(run.values):
            raise ValueError(f"curves {curves.name}: run (config {record.config_id}, seed {record.seed}) holds "
                             f"{len(run.values)} of {curves.max_epochs} epochs, and the replayed search continues it")
        else:
            heapq.heappush(clock, (now + float(run.times[at]), len(log.trials) + 1, trial_id))
    return log


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
        with warnings.catch_warnings():
            # Ray warns when the define-by-run function is slow; a Gaussian process's suggestion is (~1 s).
            warnings.simplefilter("ignore", UserWarning)
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
        if decision != STOP:
            self.searcher.on_trial_result(trial_id, result)
        if decision == STOP or finished:
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
        space = DefineByRun(params)
        starts = start if s.space_start else []
        sampler = make_sampler(s.sampler, seed, s.trials, params, s.startup,
                               prior=space.encode(starts[0]) if starts else None)
        pruner = {"hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=s.grace,
                                                                      max_resource=curves.max_epochs,
                                                                      reduction_factor=s.reduction),
                  "median": lambda: optuna.pruners.MedianPruner(n_warmup_steps=s.grace),
                  "none": optuna.pruners.NopPruner}[s.pruner]()
        # A fixed name: HyperbandPruner assigns brackets by a hash of the study's name, and an unnamed
        # study gets a random one, which made replays of the same seed differ.
        self.study = optuna.create_study(study_name=f"spectune-replay-{seed}", sampler=sampler, pruner=pruner,
                                         direction="maximize" if curves.mode == "max" else "minimize")
        for point in starts:
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
            return CONTINUE
        if trial.should_prune():
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return STOP
        return CONTINUE
