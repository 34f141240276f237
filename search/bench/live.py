"""Live searches of the replay's strategies: every proposal trained for real, to check the replay.

A live search here is the replay's event loop (:func:`search.replay.simulate.replay`) with a server
that trains: each proposed config is trained with the shared recipe (:func:`trainables.recipe.train`)
one epoch at a time, as the searcher and scheduler ask for it, from the state the last epoch left
(``resume``, which continues a run exactly), so a trial stopped by ASHA costs only the epochs it ran.
The searcher and scheduler are the objects a ``spectune search`` builds; what is left out is Ray's
process machinery, which decides nothing. Every trial of live search ``i`` uses the recipe seed
``LIVE_SEED + i``, as a ``spectune search --seed`` gives one seed to all its trials.

After a search, its picks at a quarter of random search's median epochs and at those epochs, and its
final pick, are each confirmed over ``confirm_seeds`` new seeds, trained for the full budget without patience, as the
recorded table's configs were: the pick is judged on seeds the search did not see. The final pick is also judged
on the recording's own seeds (``final_quality_recorded_seeds``), which is what the replay's figure measures: a
recording's seeds are shared by all its configs, so a set of seeds shifts every config alike (galspecnet's
confirmation seeds scored its live picks 0.044 macro-F1 above its recording's seeds, on average over ten), and
a live pick judged on other seeds than the replay's differs from it by that shift, not by the search.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from search.bench.neps_peer import NepsDriver
from search.running.progress import console
from search.replay.serve import ServedRun
from search.replay.simulate import ReplayLog, Strategy, epochs_spent, replay
from search.replay.study import RECORDED_SEEDS
from trainables.recipe import NonFiniteLossError, train
from trainables.settings import TrialSettings

LIVE_SEED = 5000
CONFIRM_SEED = 6000
LIVE_BUDGET = 0.25


class _Enough(Exception):
    """Raised from the per-epoch callback: the one epoch asked for is done."""


class _LazyCurve:
    """A run's values (or epoch times), trained one epoch at a time as the simulator reads them; a run
    whose loss diverges reads NaN from there on (the simulator fails the trial)."""

    def __init__(self, run: "_LiveRun", key: str) -> None:
        self.run, self.key = run, key

    def __len__(self) -> int:
        return self.run.epochs

    def __getitem__(self, k: int) -> float:
        self.run.extend(k)
        return self.run.rows[k][self.key] if k < len(self.run.rows) else math.nan


class _LiveRun:
    def __init__(self, one_epoch: Callable[[dict[str, Any] | None], tuple[dict[str, float], dict[str, Any]]],
                 epochs: int) -> None:
        self.one_epoch, self.epochs = one_epoch, epochs
        self.rows: list[dict[str, float]] = []
        self.state: dict[str, Any] | None = None
        self.diverged = False

    def extend(self, k: int) -> None:
        while len(self.rows) <= k and not self.diverged:
            try:
                row, self.state = self.one_epoch(self.state)
            except NonFiniteLossError:
                self.diverged = True
                return
            self.rows.append(row)


@dataclass
class Trainer:
    """Trains configs of one pair on one data set: ``settings`` as a search's (its seed replaced per run)."""

    data: Any
    settings: TrialSettings
    base: Any = None
    trained_epochs: int = 0

    def __post_init__(self) -> None:
        # As a trial does: PyTorch's default of every core oversubscribes a shared machine (measured here:
        # a 60-epoch wine run took 94 s at the default and 2.4 s on one thread beside other jobs).
        torch.set_num_threads(self.settings.threads)

    def resolved(self, config: dict[str, Any], seed: int) -> Any:
        """``config``'s recipe with ``seed`` and no patience: a live run's patience is the simulator's, and a
        confirmation runs its whole budget, as a recorded run did."""
        overrides = {**self.settings.overrides, "patience": None}
        return replace(self.settings, seed=seed, overrides=overrides).resolve(config)

    def one_epoch(self, config: dict[str, Any], seed: int) -> Callable[..., tuple[dict[str, float], dict[str, Any]]]:
        """A function that trains the epoch after ``state`` (the first when ``None``) and returns its metrics
        and the state after it. Patience is the simulator's, so the run itself has none."""
        resolved = self.resolved(config, seed)
        pair = self.settings.pair
        model_fn = pair.model_fn(self.data.spec, resolved, self.base)

        def step(state: dict[str, Any] | None) -> tuple[dict[str, float], dict[str, Any]]:
            got: dict[str, Any] = {}

            def on_epoch(report: Any) -> None:
                got["row"], got["state"] = report.metrics, report.state()
                raise _Enough

            try:
                train(model_fn, self.data, resolved.recipe, "cpu", on_epoch=on_epoch, metric=self.settings.metric,
                      mode=self.settings.mode, augment=pair.augment(resolved), resume=state)
            except _Enough:
                pass
            self.trained_epochs += 1
            return got["row"], got["state"]

        return step

    def best(self, config: dict[str, Any], seed: int) -> float:
        """The best value of a full-budget run without patience (how a recorded config is judged)."""
        resolved = self.resolved(config, seed)
        pair = self.settings.pair
        result = train(pair.model_fn(self.data.spec, resolved, self.base), self.data, resolved.recipe, "cpu",
                       metric=self.settings.metric, mode=self.settings.mode, augment=pair.augment(resolved))
        self.trained_epochs += result.epochs_run
        return float(result.best[self.settings.metric])


class Trained:
    """The server of a live search: every proposal trained, with the search's one seed."""

    def __init__(self, trainer: Trainer, seed: int) -> None:
        self.trainer, self.seed = trainer, seed

    def serve(self, config: dict[str, Any]) -> ServedRun:
        run = _LiveRun(self.trainer.one_epoch(config, self.seed), self.trainer.settings.max_epochs)
        warmup = self.trainer.resolved(config, self.seed).recipe.warmup_epochs
        return ServedRun(-1, False, self.seed, math.nan, _LazyCurve(run, self.trainer.settings.metric),
                         _LazyCurve(run, "epoch_time_s"), False, int(warmup), math.nan, math.nan)


def live_search(trainer: Trainer, params: dict[str, Any], start: list[dict[str, Any]], strategy: Strategy,
                repeat: int) -> tuple[ReplayLog, list[dict[str, Any]]]:
    """One live search of ``strategy`` (sampler seed ``repeat``, recipe seed ``LIVE_SEED + repeat``); its
    log and the config of each trial."""
    s = trainer.settings
    info = SimpleNamespace(name=f"live {s.model}/{s.data}", metric=s.metric, mode=s.mode, max_epochs=s.max_epochs)
    log = replay(info, params, start, strategy, seed=repeat, server=Trained(trainer, LIVE_SEED + repeat),
                 peer=NepsDriver)
    return log, [dict(t.config or {}) for t in log.trials]


def mean_best(config: dict[str, Any], seeds: tuple[int, ...], runs: dict[tuple[str, int], float]) -> float:
    """``config``'s mean best value over ``seeds``, from ``runs`` (best values by config and seed, each a
    full-budget run without patience: :func:`_train_runs`)."""
    return float(np.mean([runs[_key(config), seed] for seed in seeds]))


def _key(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def pick_indices(log: ReplayLog, mode: str, budgets: list[float]) -> dict[float, int]:
    """Per budget in epochs (``math.inf``: the final pick): the index of the search's pick then, or -1 (no
    trial had ended one epoch by then)."""
    chosen = log.picks(mode)
    spent = {budget: epochs_spent(budget, len(chosen)) for budget in budgets}
    return {budget: int(chosen[n - 1]) if n else -1 for budget, n in spent.items()}


def confirm_picks(configs: list[dict[str, Any]], chosen: dict[float, int], seeds: tuple[int, ...],
                  runs: dict[tuple[str, int], float]) -> dict[float, tuple[float, int]]:
    """Per budget of ``chosen`` (:func:`pick_indices`): the confirmed quality (mean best over the new
    ``seeds``, from ``runs``) of the search's pick then, and the pick's trial index."""
    return {budget: (math.nan if pick < 0 else mean_best(configs[pick], seeds, runs), pick)
            for budget, pick in chosen.items()}


def live_panel(trainer: Trainer, params: dict[str, Any], start: list[dict[str, Any]], strategies: list[Strategy],
               repeats: int, baseline: str, confirm_seeds: int = 3,
               save: Callable[[pd.DataFrame], None] | None = None, kept: pd.DataFrame | None = None,
               recorded_seeds: tuple[int, ...] = (), jobs: int = 1) -> pd.DataFrame:
    """``repeats`` live searches of each strategy (the baseline first: its median epochs set the budgets);
    one row per search: its epochs, trials stopped, and the confirmed quality of its picks, the final one also
    on ``recorded_seeds`` (the recording's; a kept search without that figure gets it, its search not run
    again). ``save``: called with the rows so far after each strategy, so that hours of live searches survive
    an interruption. ``kept``: rows of earlier live searches of the same recording; a strategy with ``repeats``
    of them under its name and settings (:meth:`Strategy.settings`), measured against the same baseline
    epochs, is not searched again. ``jobs``: processes training at once (searches, then confirmation runs);
    each run depends on its config and seed only, so the rows are the same whatever ``jobs`` is."""
    ordered = sorted(strategies, key=lambda s: s.name != baseline)
    rows: list[dict[str, Any]] = []
    runs: dict[tuple[str, int], float] = {}   # best value by config and seed, shared by every figure
    base_epochs = math.nan
    new_seeds = tuple(CONFIRM_SEED + j for j in range(confirm_seeds))
    # spawn, not fork: a forked child of a process that has run PyTorch's thread pool can hang.
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_share_trainer, initargs=(trainer,)) if jobs > 1 else None

    def judged(part: pd.DataFrame) -> pd.DataFrame:
        if not recorded_seeds:
            return part
        have = part[RECORDED_SEEDS] if RECORDED_SEEDS in part else pd.Series(math.nan, index=part.index)
        _train_runs(trainer, pool, [(json.loads(c), recorded_seeds)
                                    for v, c in zip(have.astype(float), part["final_config"]) if math.isnan(v)], runs)
        return part.assign(**{RECORDED_SEEDS: [
            v if not math.isnan(v) else mean_best(json.loads(c), recorded_seeds, runs)
            for v, c in zip(have.astype(float), part["final_config"])]})

    try:
        for strategy in ordered:
            earlier = _kept(kept, strategy, repeats, base_epochs, strategy.name == baseline)
            if earlier is not None:
                console.print(f"  live {strategy.name}: {repeats} searches kept from the recording's live.csv",
                              soft_wrap=True)
                rows += judged(earlier).to_dict("records")
                if strategy.name == baseline:
                    base_epochs = float(earlier["epochs"].median())
                continue
            logs = []
            searched: Any = (_search_timed(trainer, params, start, strategy, r) for r in range(repeats)) \
                if pool is None else pool.map(_search_in_worker, *zip(*[(params, start, strategy, r)
                                                                          for r in range(repeats)]))
            for repeat, (log, configs, trained, seconds) in enumerate(searched):
                logs.append((log, configs))
                console.print(f"  live {strategy.name} #{repeat}: {log.epochs} epochs, {seconds:.0f} s ({trained} "
                              f"epochs trained{'' if pool is None else ', one of ' + str(jobs) + ' processes'})",
                              soft_wrap=True)
            if strategy.name == baseline:
                base_epochs = float(np.median([log.epochs for log, _ in logs]))
            # The picks the live figures need: at a quarter of random search's epochs, at its epochs (for a
            # search that spends more, the comparison at equal epochs) and the final pick; a pick already
            # confirmed is not trained again (``runs``), so a search that ends sooner costs nothing for the second.
            budgets = [LIVE_BUDGET * base_epochs, base_epochs, math.inf]
            chosen = [pick_indices(log, trainer.settings.mode, budgets) for log, _ in logs]
            _train_runs(trainer, pool, [(configs[i], new_seeds) for (_, configs), at in zip(logs, chosen)
                                        for i in at.values() if i >= 0]
                        + [(configs[at[math.inf]], recorded_seeds) for (_, configs), at in zip(logs, chosen)
                           if at[math.inf] >= 0], runs)
            for repeat, ((log, configs), at) in enumerate(zip(logs, chosen)):
                found = confirm_picks(configs, at, new_seeds, runs)
                rows.append({"strategy": strategy.name, "settings": strategy.settings(), "repeat": repeat,
                             "epochs": log.epochs,
                             "trials": sum(t.outcome != "promoted" for t in log.trials),
                             "stopped": sum(t.outcome == "stopped early" for t in log.trials),
                             "failed": sum(t.outcome == "failed" for t in log.trials),
                             "baseline_epochs": base_epochs, "final_quality": found[math.inf][0],
                             f"quality_at_{LIVE_BUDGET:g}": found[budgets[0]][0], "quality_at_1": found[budgets[1]][0],
                             "final_config": _key(configs[found[math.inf][1]])})
                if recorded_seeds:
                    rows[-1][RECORDED_SEEDS] = mean_best(configs[found[math.inf][1]], recorded_seeds, runs)
            if save is not None:
                save(pd.DataFrame(rows))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return pd.DataFrame(rows)


_TRAINER: Trainer | None = None   # a live-check worker process's trainer


def _share_trainer(trainer: Trainer) -> None:
    global _TRAINER
    _TRAINER = trainer
    torch.set_num_threads(trainer.settings.threads)


def _search_timed(trainer: Trainer, params: dict[str, Any], start: list[dict[str, Any]], strategy: Strategy,
                  repeat: int) -> tuple[ReplayLog, list[dict[str, Any]], int, float]:
    t0, before = time.perf_counter(), trainer.trained_epochs
    log, configs = live_search(trainer, params, start, strategy, repeat)
    return log, configs, trainer.trained_epochs - before, time.perf_counter() - t0


def _search_in_worker(params: dict[str, Any], start: list[dict[str, Any]], strategy: Strategy, repeat: int
                      ) -> tuple[ReplayLog, list[dict[str, Any]], int, float]:
    assert _TRAINER is not None
    return _search_timed(_TRAINER, params, start, strategy, repeat)


def _best_in_worker(config: dict[str, Any], seed: int) -> float:
    assert _TRAINER is not None
    return _TRAINER.best(config, seed)


def _train_runs(trainer: Trainer, pool: Executor | None, wanted: list[tuple[dict[str, Any], tuple[int, ...]]],
                runs: dict[tuple[str, int], float]) -> None:
    """Trains the runs of ``wanted`` (configs, each over its seeds) that ``runs`` lacks, in ``pool`` or here
    without one, and adds them to it."""
    todo = {(_key(config), seed): config for config, seeds in wanted for seed in seeds}
    todo = {k: c for k, c in todo.items() if k not in runs}
    seeds = [seed for _, seed in todo]
    bests = map(trainer.best, todo.values(), seeds) if pool is None else \
        pool.map(_best_in_worker, todo.values(), seeds)
    for key, best in zip(todo, bests):
        runs[key] = best


def _kept(kept: pd.DataFrame | None, strategy: Strategy, repeats: int, base_epochs: float, is_baseline: bool
          ) -> pd.DataFrame | None:
    """The first ``repeats`` kept searches of ``strategy`` (its name and settings), or ``None`` when there are
    fewer or they were measured against other baseline epochs (their pick at a quarter of the budget would
    differ)."""
    if kept is None or kept.empty or "settings" not in kept:
        return None
    part = kept[(kept["strategy"] == strategy.name) & (kept["settings"] == strategy.settings())
                & (kept["repeat"] < repeats)].sort_values("repeat")
    if len(part) < repeats:
        return None
    if not is_baseline and not np.allclose(part["baseline_epochs"].to_numpy(dtype=float), base_epochs):
        return None
    at_1 = quality_at_baseline(part)
    if at_1.isna().any():
        return None
    return part.assign(quality_at_1=at_1)


def with_kept(rows: pd.DataFrame, kept: pd.DataFrame | None) -> pd.DataFrame:
    """``rows``, then every row of ``kept`` that none of them replaces (a search of the same strategy, settings
    and repeat): a save of a live check loses no kept search, of a strategy checked now at other settings or
    repeats included."""
    if kept is None or kept.empty:
        return rows
    done = set(zip(rows["strategy"], rows["settings"], rows["repeat"].astype(int)))
    settings = kept["settings"] if "settings" in kept else pd.Series(None, index=kept.index, dtype=object)
    replaced = [(name, s, int(r)) in done for name, s, r in zip(kept["strategy"], settings, kept["repeat"])]
    return pd.concat([rows, kept[~np.array(replaced, dtype=bool)]], ignore_index=True)


def quality_at_baseline(rows: pd.DataFrame) -> pd.Series:
    """Per live search, the confirmed quality of its pick at random search's epochs. Searches kept from before
    that pick was confirmed have it where they spent no more than those epochs (it is their final pick), and
    NaN otherwise."""
    at_1 = rows["quality_at_1"] if "quality_at_1" in rows else pd.Series(math.nan, index=rows.index)
    return at_1.where(at_1.notna() | (rows["epochs"] > rows["baseline_epochs"]), rows["final_quality"])
