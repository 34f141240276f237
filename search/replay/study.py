"""``spectune replay``: many replayed searches of several strategies on one space's recorded curves.

The panel: random search (the baseline every share is measured against), TPE alone, random + ASHA,
the space's default (TPE + ASHA with its grace, reduction factor and trials factor), Optuna alone as a user
without Ray would run it (TPE + ``HyperbandPruner``, random + ``MedianPruner``, Optuna's defaults),
and the candidates to beat random search at small budgets: draws around the space's starting config
(``--sampler prior``), TPE after Sobol start-up trials (``--sampler qmc-tpe``) and Optuna's Gaussian
process (``--sampler gp``), each with ASHA; TPE with ASHA promoting by extrapolated curves
(``--scheduler asha-curve``), beside the plain rule it must beat, one rung (every config the grace
epochs, the best of them to the budget); and many cheap trials (four times the trials, ASHA from one
epoch), with random search (where the recording holds that many configs) and with TPE. Random search is
served exactly; the model-served strategies are judged only where the curve model's held-out check passes,
and the replay says so plainly otherwise. Each strategy is replayed ``repeats`` times with seeds 0, 1, ...;
no Ray is started: the simulator calls the searcher and scheduler objects directly.

The research instrument built on this (NePS's PriorBand, sweeps, nearest serving, size curves, live
searches) is the bench's lab, :mod:`search.bench.lab`: it imports this module, never the reverse.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import re
import reprlib
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from results.curves import curves_dir, kendall_by_rung, read_curves
from results.export import check_name
from results.files import read_csv, write_csv, write_json
from search.replay.advice import advise
from search.replay.report import plot_study, record, summarise, to_markdown
from search.replay.serve import FOLDS, CurveModel, ModelCheck, Table, check_model, checkable
from search.options import SearchOptions, check_configs
from search.running.progress import console
from search.resolve import resolve
from search.replay.simulate import ReplayLog, Strategy, replay
from search.replay.stats import inside
from search.running.tracking import default_tracking_uri, log_study
from spaces import Budget, Space
from results.errors import OptionError, UserError
from trainables.pair import load_data
from trainables.settings import TrialSettings

BASELINE = "random (FIFO)"
MANY = 4   # the many-cheap-trials strategies run this many times the trials of the others
REFERENCE = "Optuna TPE + HyperbandPruner"


@dataclass(frozen=True)
class ReplayOptions:
    """``search`` carries the space, the data options the curves must match, the trials (default: the
    budget's), the concurrency and the patience, as for a live search."""

    search: SearchOptions
    curves: str
    repeats: int = 20
    optuna: bool = True
    jobs: int | None = None   # processes replaying at once (default: the CPUs this process may use)


def panel(space: Space, trials: int, concurrency: int, patience: int | None, max_epochs: int,
          optuna: bool, configs: int | None = None) -> list[Strategy]:
    """The strategies a study replays (see the module docstring); ``configs``: how many the recording
    holds (random search with more trials than that is left out: it would meet a config twice)."""
    grace = space.grace_for(max_epochs)
    default_trials = space.search_trials(Budget(trials=trials))
    base = Strategy(name="", trials=trials, concurrency=concurrency, patience=patience, grace=grace,
                    reduction=space.reduction_factor, startup=space.startup_trials)
    out = [replace(base, name=BASELINE, sampler="random", scheduler="fifo"),
           replace(base, name="TPE (FIFO)", scheduler="fifo"),
           replace(base, name="random + ASHA", sampler="random"),
           # A default with more trials than random search's is capped at random search's most epochs, as
           # spectune search caps it (SearchOptions.with_budget).
           replace(base, name=f"TPE + ASHA (default: grace {grace}, rf {space.reduction_factor}"
                              + (f", {space.startup_trials} start-up" if space.startup_trials else "")
                              + (f", {default_trials} trials, at most {trials * max_epochs} epochs"
                                 if default_trials != trials else "") + ")",
                   trials=default_trials,
                   max_total_epochs=trials * max_epochs if default_trials != trials else None)]
    if optuna:
        out += [replace(base, name=REFERENCE, runner="optuna", pruner="hyperband",
                        grace=1, reduction=3),
                replace(base, name="Optuna random + MedianPruner", runner="optuna", sampler="random",
                        pruner="median", grace=0)]
    # The candidates to beat random search at small budgets (issue "then win"): the space's starting config
    # as a prior, TPE after Sobol start-up trials, and a Gaussian process, each with the default's ASHA;
    # then the default's TPE with promotion by extrapolated curves, against the plain rule it must beat:
    # every config the grace epochs, the best 1/rf of them to the budget (one rung).
    one_rung = max(2, math.ceil(max_epochs / grace))
    out += [replace(base, name="prior + ASHA", sampler="prior"),
            replace(base, name="QMC-TPE + ASHA", sampler="qmc-tpe"),
            replace(base, name="GP + ASHA", sampler="gp"),
            replace(base, name="TPE + curve ASHA", scheduler="asha-curve"),
            replace(base, name=f"TPE + one rung (grace {grace}, best 1/{one_rung} to the budget)",
                    reduction=one_rung)]
    # Many cheap trials: four times the trials, each first judged after one epoch (ASHA grace 1, rf 3); they
    # spend more epochs than random search (live on California 340 against 238), so compare at its epochs.
    many = replace(base, trials=MANY * trials, grace=1, reduction=3)
    if configs is None or configs >= many.trials:
        out.append(replace(many, name=f"random + ASHA, {many.trials} trials, grace 1", sampler="random"))
    if out[3].settings() != many.settings():   # a space whose default it is has it already
        out.append(replace(many, name=f"TPE + ASHA, {many.trials} trials, grace 1"))
    return out


def available_cpus() -> int:
    """The CPUs this process may run on (a container's or ``taskset``'s share, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def worker_count(jobs: int | None) -> int:
    """``--jobs``, at most the CPUs this process may use (their number without it): more processes than CPUs
    only share them, each holding its own copy of the recording (said in one line when capped)."""
    cpus = available_cpus()
    if jobs is not None and jobs > cpus:
        console.print(f"--jobs {jobs}: this process may use {cpus} CPU(s), so {cpus} process(es) run at once",
                      soft_wrap=True)
    return min(jobs or cpus, cpus)


_SHARED: tuple[Any, ...] = ()   # a replay process's curves, params, start, table and model


def _share(shared: tuple[Any, ...], threads: int | None = None) -> None:
    global _SHARED
    _SHARED = shared
    if threads:
        import torch
        from threadpoolctl import threadpool_limits

        # One thread per replaying process, in PyTorch (Optuna's GP) and in the BLAS and OpenMP pools (NumPy,
        # SciPy): more oversubscribe the CPUs (measured on 2 cores: wine's GP replays took 3.1 s a search in
        # each of 2 processes with the BLAS pools at their default, 1.4 s with one thread each).
        torch.set_num_threads(threads)
        threadpool_limits(threads)


def _replay_chunk(strategy: Strategy, seeds: range, peer: Any) -> tuple[list[ReplayLog], float]:
    curves, params, start, table, model = _SHARED
    t0 = time.perf_counter()
    logs = [replay(curves, params, start, strategy, seed=seed, table=table, model=model, peer=peer)
            for seed in seeds]
    return logs, time.perf_counter() - t0


def replay_panel(strategies: list[Strategy], shared: tuple[Any, ...], repeats: int, jobs: int, peer: Any = None
                 ) -> dict[str, list[ReplayLog]]:
    """``repeats`` replays of each strategy (seeds 0, 1, ...; ``shared``: curves, params, start, table and
    model), in ``jobs`` processes when more than one: a replay depends on its seed only, so the logs are
    the same whatever ``jobs`` is. ``peer``: the driver of a ``neps`` strategy (:func:`replay`). Prints each
    strategy's seconds per replayed search (in one process) as it ends."""
    chunk = max(1, math.ceil(repeats / max(1, 2 * jobs)))
    tasks = [(s, range(a, min(a + chunk, repeats)), peer) for s in strategies for a in range(0, repeats, chunk)]
    logs: dict[str, list[ReplayLog]] = {s.name: [] for s in strategies}
    seconds: dict[str, float] = {s.name: 0.0 for s in strategies}
    if jobs <= 1:
        _share(shared)
        done: Any = (_replay_chunk(*task) for task in tasks)
    else:
        # spawn, not fork: a forked child of a process that has run PyTorch's thread pool (the GP) can hang.
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_share, initargs=(shared, 1))
        done = pool.map(_replay_chunk, *zip(*tasks))
    try:
        for (strategy, seeds, _), (part, spent) in zip(tasks, done):
            logs[strategy.name] += part
            seconds[strategy.name] += spent
            if seeds.stop == repeats:
                console.print(f"  {strategy.name}: {strategy.describe()}; {seconds[strategy.name] / repeats:.2f} s "
                              f"per replayed search{' (one of ' + str(jobs) + ' processes)' if jobs > 1 else ''}",
                              soft_wrap=True)
    finally:
        if jobs > 1:
            pool.shutdown(cancel_futures=True)
    return logs


@dataclass(frozen=True)
class Prepared:
    """What every replay study reads first: the options with the budget applied, the space, the data it
    checks the curves against, the curves, and the patience a live search would use."""

    options: SearchOptions
    space: Space
    data: Any
    curves: Any
    max_epochs: int
    patience: int | None
    settings: TrialSettings


def prepare(r: ReplayOptions) -> Prepared:
    """Check the options and read the curves, refusing in one line what a replay cannot serve."""
    resolved = resolve(r.search, baseline=True)
    o, space = resolved.options, resolved.space
    if r.repeats < 2:
        raise OptionError(f"--repeats must be >= 2 to give a spread; got {r.repeats}.")
    if r.jobs is not None and r.jobs < 1:
        raise OptionError(f"--jobs must be >= 1; got {r.jobs}.")
    check_name(r.curves, "--curves")
    options = resolved.data
    data = load_data(space.pair, o.data, o.classes, test=False, seed=o.seed, **options.scaling())
    curves = read_curves(space.to_json(), r.curves, o.results_root,
                         data=replace(options, fingerprint=data.fingerprint))
    folder = curves_dir(space.name, r.curves, o.results_root)
    _received(lambda: check_configs(space, {i: c["searched"] for i, c in curves.configs.items()},
                                    f"curves {folder}: configs.json config", in_ranges=True),
              "record them again for today's space")
    max_epochs = resolved.max_epochs
    if max_epochs != curves.max_epochs:
        raise OptionError(f"curves {r.curves} hold {curves.max_epochs} epochs per run; a replay of {max_epochs} "
                          "epochs would meet another schedule (cosine and warm-up depend on the budget). Replay "
                          f"with --max-epochs {curves.max_epochs}, or record at {max_epochs}.")
    return Prepared(o, space, data, curves, max_epochs, resolved.patience, resolved.settings)


def _received(check: Any, fix: str) -> None:
    """Run ``check`` on a received file's configs; its refusal, in one line, with ``fix`` added."""
    try:
        check()
    except UserError as exc:
        raise OptionError(f"{str(exc).rstrip('.')}; {fix}.") from None


def serving(table: Table, serve: str = "model", by_size: Callable[[Table, ModelCheck], Any] | None = None,
            announce: bool = True) -> tuple[CurveModel | None, ModelCheck | None]:
    """The curve model that serves a model-based sampler's proposals from the recording read for serving
    (``serve`` ``model``; ``None`` for the lab's ``nearest``), with its held-out check; ``by_size``: where the
    check fails, how its error falls with the table's size (the lab's :func:`search.bench.size_curve.size_curve`)."""
    if serve == "nearest":
        return None, None
    with warnings.catch_warnings():
        # The GP's optimiser warns at its bounds on small tables; the check reports how well it did.
        warnings.simplefilter("ignore")
        check = check_model(table)
        model = check.fit(table)
        if not check.faithful and by_size is not None:
            check = replace(check, by_size=by_size(table, check))
    if announce:
        console.print(check.describe(), soft_wrap=True)
    return model, check


def run_replay(r: ReplayOptions) -> dict[str, Any]:
    """Replay every strategy ``repeats`` times; write the study and print its table (with ``--objective``,
    the front study of :mod:`search.replay.front` instead)."""
    if r.search.objectives:
        from search.replay.front import run_front_replay

        return run_front_replay(r, prepare(r))
    p = prepare(r)
    o = p.options
    strategies = panel(p.space, o.trials, o.concurrency or 1, p.patience, p.max_epochs, r.optuna,
                       len(p.curves.configs))
    return replay_study(r, p, plan(r, p, strategies))


@dataclass(frozen=True)
class Plan:
    """What a study replays: the recording read for serving, its kept live searches (:func:`read_live`), the
    strategies (random search's only, where the curve model cannot be checked: ``too_few`` says why, and
    ``left_out`` names the others) and the space's default."""

    table: Table
    kept: pd.DataFrame | None
    strategies: list[Strategy]
    default: Strategy
    too_few: str | None
    left_out: list[str]


def plan(r: ReplayOptions, p: Prepared, strategies: list[Strategy], serve: str = "model") -> Plan:
    """Refuse a recording with fewer configs than trials; read it for serving; keep random search's strategies
    only where the curve model that would serve the others cannot be checked."""
    o, curves = p.options, p.curves
    if len(curves.configs) < o.trials:
        raise OptionError(f"curves {r.curves} hold {len(curves.configs)} configs, fewer than the {o.trials} trials "
                          "a replayed random search draws from them without replacement; replay with --trials "
                          f"{len(curves.configs)} or fewer, or record at least {4 * o.trials} configs.")
    kept = read_live(curves_dir(p.space.name, r.curves, o.results_root) / LIVE_FILE, p.space)
    table = Table(curves, p.space.params)
    if serve != "model" or checkable(table):
        return Plan(table, kept, strategies, strategies[3], None, [])
    # Random search is served exactly (the recorded configs); the others need the curve model, unchecked here.
    too_few = (f"curves {r.curves} hold {len(table.complete)} complete configs, too few for a {FOLDS}-fold check "
               f"of the curve model that serves model-based samplers (at least {2 * FOLDS})")
    return Plan(table, kept, [s for s in strategies if s.sampler == "random"], strategies[3], too_few,
                [s.name for s in strategies if s.sampler != "random"])


def replay_study(r: ReplayOptions, p: Prepared, planned: Plan, serve: str = "model",
                 by_size: Callable[[Table, ModelCheck], Any] | None = None, peer: Any = None) -> dict[str, Any]:
    """Replay ``planned``'s strategies ``repeats`` times each, served as ``serve`` says (:func:`serving`;
    ``by_size`` and ``peer``: the lab's size curve and NePS driver); write the study, print its table and the
    advice, and return what it measured."""
    o, space, curves, max_epochs, patience = p.options, p.space, p.curves, p.max_epochs, p.patience
    table, kept, strategies, default, too_few = (planned.table, planned.kept, planned.strategies, planned.default,
                                                 planned.too_few)
    if too_few:
        console.print(f"note: {too_few}: replaying only random search, served exactly ("
                      f"{'; '.join(s.name for s in strategies)}), and leaving out {len(planned.left_out)} model-served "
                      f"strategies ({'; '.join(planned.left_out)}); record at least {2 * FOLDS} configs to replay them",
                      soft_wrap=True)
    console.print(f"replaying {len(strategies)} strategies x {r.repeats} repeats on curves {r.curves} "
                  f"({len(curves.configs)} configs x {len(curves.meta['seeds'])} seeds x {max_epochs} epochs; "
                  f"{o.trials} trials, {o.concurrency or 1} at once, patience {patience}; random search served "
                  f"exactly, other samplers by {'the curve model' if serve == 'model' else 'the nearest config'})",
                  soft_wrap=True)
    if len(curves.configs) < 4 * o.trials:
        console.print(f"note: {len(curves.configs)} recorded configs for {o.trials} trials; at least "
                      f"{4 * o.trials} (4 per trial) are needed before a comparison is judged", soft_wrap=True)
    jobs = worker_count(r.jobs)
    started = time.perf_counter()
    model, check = (None, None) if too_few else serving(table, serve, by_size)
    logs = replay_panel(strategies, (curves, space.params, list(space.start), table, model), r.repeats, jobs, peer)
    rows = [{"strategy": name, "repeat": repeat, "trial_id": t.trial_id, "config_id": t.config_id,
             "modelled": t.modelled, "seed": t.seed, "distance": t.distance, "epochs": t.epochs, "best": t.best,
             "quality": t.quality, "quality_unseen": t.quality_unseen, "outcome": t.outcome,
             "started_at": t.started_at, "ended_at": t.ended_at}
            for name, runs in logs.items() for repeat, log in enumerate(runs) for t in log.trials]
    events = [{"strategy": name, "repeat": repeat, "clock": clock, "trial": index, "best": best}
              for name, runs in logs.items() for repeat, log in enumerate(runs) for clock, index, best in log.events]
    study = summarise(logs, table, BASELINE, REFERENCE if r.optuna else None)
    unfaithful = too_few or ("model-based samplers were served the nearest recorded config (the lab's --serve "
                             "nearest), which "
                             "is not shown to be faithful" if check is None else None if check.faithful else
                             f"the curve model's held-out error ({check.errors[check.chosen]:.4f}) is not below one "
                             f"seed noise ({check.seed_noise:.4f})")
    # Where live searches of this recording disagree with its replay, the live panel decides (and gives no
    # advice this rule could compute): the replay is not used for that question.
    unfaithful = unfaithful or live_disagreement(kept, study.table, [strategies[0], default])
    advice = advise(study, strategies, default, unfaithful, baseline_trials=o.trials, max_epochs=max_epochs)
    rungs = sorted({min(max_epochs, default.grace * default.reduction ** k) for k in range(6)})
    tau = kendall_by_rung(curves, rungs)
    tag = time.strftime("%Y%m%d-%H%M%S")
    out = curves_dir(space.name, r.curves, o.results_root) / "replays" / tag
    write_csv(out / "trials.csv.gz", pd.DataFrame(rows))
    write_csv(out / "events.csv.gz", pd.DataFrame(events))
    figure = plot_study(study, curves.metric, out / "replay.png",
                        f"{space.name}: {r.repeats} replays per strategy on curves {r.curves} "
                        f"({len(curves.configs)} configs x {len(curves.meta['seeds'])} seeds)", peer=REFERENCE)
    text = to_markdown(study)
    (out / "table.md").write_text(text + "\n")
    summary = record(study, {"space": space.name, "curves": r.curves, "repeats": r.repeats, "trials": o.trials,
                             "configs": len(curves.configs), "seeds": len(curves.meta["seeds"]),
                             "concurrency": o.concurrency or 1, "patience": patience, "max_epochs": max_epochs,
                             "serve": serve, "model_check": asdict(check) if check else None,
                             "model": check.chosen if check else None,
                             "kendall_tau_by_rung": tau, "recommendation": advice.to_json(),
                             "seconds": time.perf_counter() - started,
                             "strategies_described": {s.name: s.describe() for s in strategies}})
    write_json(out / "study.json", summary)
    tracking_uri = o.tracking_uri or default_tracking_uri()
    run_id = log_study(tracking_uri, f"spectune-{space.name}-replay", f"{r.curves}-{tag}",
                       params={"curves": r.curves, "repeats": r.repeats, "trials": o.trials,
                               "concurrency": o.concurrency or 1, "patience": patience, "max_epochs": max_epochs,
                               "serve": serve},
                       metrics=_metrics(study.table), role="replay",
                       artifacts=[out / "table.md", figure, out / "study.json"])
    console.print(text, soft_wrap=True)
    console.print(f"best recorded config (true mean) {study.best_true:.4f}, median config {study.median_true:.4f}; "
                  f"one seed noise (pooled) {study.seed_noise:.4f}; random search's median epochs "
                  f"{study.baseline_epochs:.0f}; Kendall's tau of rung vs final value: "
                  + ", ".join(f"epoch {k} {v:.2f}" for k, v in tau.items()), soft_wrap=True)
    for line in advice.lines(space.name):
        console.print(line, soft_wrap=True)
    console.print(f"replay study -> {out} ({figure.name}, table.md, study.json, trials.csv.gz, events.csv.gz); "
                  f"MLflow run {run_id} in experiment spectune-{space.name}-replay at {tracking_uri}; "
                  f"{time.perf_counter() - started:.0f} s in all", soft_wrap=True)
    return {"out": out, "study": study, "summary": summary, "mlflow_run_id": run_id, "curves": curves,
            "default": default, "table": table, "model": model, "check": check, "logs": logs, "advice": advice,
            "strategies": strategies, "jobs": jobs}


LIVE_FILE = "live.csv"
# What a kept live search must give, and its columns that hold numbers.
LIVE_COLUMNS = ("strategy", "repeat", "epochs", "baseline_epochs", "final_quality", "final_config")
LIVE_NUMBERS = ("repeat", "epochs", "trials", "stopped", "failed", "baseline_epochs", "final_quality",
                "quality_at_0.25", "quality_at_1")
# A live search's final pick judged on the recording's seeds, as the replay judges its picks.
RECORDED_SEEDS = "final_quality_recorded_seeds"


def judged_picks(part: pd.DataFrame) -> pd.Series:
    """Live searches' final picks as the replay judges its own: on the recording's seeds where every search
    of ``part`` was judged there, else (searches kept from before) on the new seeds."""
    if RECORDED_SEEDS in part and part[RECORDED_SEEDS].notna().all():
        return part[RECORDED_SEEDS]
    return part["final_quality"]
def read_live(path: Path, space: Space) -> pd.DataFrame | None:
    """A recording's kept live searches (its ``live.csv``), or ``None`` where it has none. A received file: a
    number column holding text, a repeat that is not a whole number >= 0, or a final config that is not a config
    of the space (a kept pick is trained on the recording's seeds) is refused in one line naming the file and
    the fix, before any replay."""
    if not path.is_file():
        return None
    live = read_csv(path, "the recording's live searches", LIVE_COLUMNS)
    fix = "restore it or delete it (a live check searches again)"
    for column in [c for c in (*LIVE_NUMBERS, RECORDED_SEEDS) if c in live]:
        values = pd.to_numeric(live[column], errors="coerce")
        text = values.isna() & live[column].notna()
        if text.any():
            at = int(text.idxmax())
            raise OptionError(f"{path}: {column} holds text ({reprlib.repr(live.at[at, column])}, line {at + 2}) "
                              f"where a number belongs; {fix}.")
        live[column] = values
    bad = ~((live["repeat"] >= 0) & (live["repeat"] % 1 == 0))
    if bad.any():
        at = int(bad.idxmax())
        raise OptionError(f"{path}: repeat in line {at + 2} must be a whole number >= 0; got {live.at[at, 'repeat']}; "
                          f"{fix}.")
    live["repeat"] = live["repeat"].astype(int)
    configs = {}
    for at, text in live["final_config"].items():
        try:
            config = json.loads(text)
        except (TypeError, ValueError):
            config = None
        if not isinstance(config, dict):
            raise OptionError(f"{path}: final_config in line {at + 2} is not a JSON object of searched values "
                              f"({reprlib.repr(text)}); {fix}.")
        configs[f"line {at + 2}"] = config
    _received(lambda: check_configs(space, configs, f"{path}: final_config in", in_ranges=True), fix)
    return live


def live_disagreement(live: pd.DataFrame | None, table: pd.DataFrame, strategies: list[Strategy]) -> str | None:
    """Why a replay cannot judge: the kept live searches ``live`` (a recording's ``live.csv``, :func:`read_live`)
    put the median pick of one of ``strategies`` (under its settings) outside the replay's interquartile range
    (``table``, the study's), judged as the replay judges; ``None`` where they agree or there are none."""
    if live is None:
        return None
    predicted = table.set_index("strategy")
    off = []
    for s in strategies:
        part = live[(live["strategy"] == s.name)
                    & (live["settings"] == s.settings() if "settings" in live else True)]
        if part.empty or s.name not in predicted.index:
            continue
        q, low, high = float(judged_picks(part).median()), *predicted.loc[s.name, ["quality_q25", "quality_q75"]]
        if not inside(q, low, high):
            off.append(f"{s.name}'s {len(part)} live searches picked {q:.4f} (median), outside its replay's "
                       f"{low:.4f}-{high:.4f}")
    return f"the live searches beside this recording disagree with its replay ({'; '.join(off)})" if off else None


# Per strategy, the figures worth a chart in the MLflow UI (metric names allow no parentheses or commas).
LOGGED = ("quality_median", "epochs_median", "p_win_0.25", "p_win_1", "regret_area", "p_top1", "top3_stopped_share")


def _metrics(table: pd.DataFrame) -> dict[str, float]:
    out = {}
    for i, row in enumerate(table.to_dict("records")):
        slug = re.sub(r"[^0-9A-Za-z]+", "_", row["strategy"]).strip("_")
        out.update({f"{i:02d}_{slug}/{k}": row[k] for k in LOGGED if np.isfinite(row[k])})
    return out
