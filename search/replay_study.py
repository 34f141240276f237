"""``spectune replay``: many replayed searches of several strategies on one space's recorded curves.

The panel: random search (the baseline every share is measured against), TPE alone, random + ASHA,
the space's default (TPE + ASHA with its grace and reduction factor), and Optuna alone as a user
without Ray would run it (TPE + ``HyperbandPruner``, random + ``MedianPruner``, Optuna's defaults).
``--sweep`` adds TPE + ASHA variants over grace, reduction factor and start-up count, to choose a
space's defaults by measurement. Each strategy is replayed ``repeats`` times with seeds 0, 1, ...;
no Ray is started: the simulator calls the searcher and scheduler objects directly.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from results.curves import curves_dir, kendall_by_rung, read_curves
from results.export import check_name
from results.files import write_csv, write_json
from results.replay_report import plot_study, record, summarise, to_markdown
from search.options import SEARCH_OPTIONS, SearchOptions, check
from search.progress import console
from search.replay import Strategy, confirm_pick, replay
from search.tracking import default_tracking_uri, log_study
from spaces import Space, get_space
from trainables.errors import OptionError
from trainables.pair import load_data
from trainables.settings import TrialSettings

BASELINE = "random (FIFO)"


@dataclass(frozen=True)
class ReplayOptions:
    """``search`` carries the space, the data options the curves must match, the trials (default: the
    budget's), the concurrency and the patience, as for a live search."""

    search: SearchOptions
    curves: str
    repeats: int = 20
    sweep: bool = False
    optuna: bool = True
    confirm_top: int = 3
    confirm_seeds: int = 2


def panel(space: Space, trials: int, concurrency: int, patience: int | None, max_epochs: int,
          sweep: bool, optuna: bool) -> list[Strategy]:
    """The strategies a study replays (see the module docstring)."""
    grace = space.grace_for(max_epochs)
    base = Strategy(name="", trials=trials, concurrency=concurrency, patience=patience, grace=grace,
                    reduction=space.reduction_factor, startup=space.startup_trials)
    out = [replace(base, name=BASELINE, sampler="random", scheduler="fifo"),
           replace(base, name="TPE (FIFO)", scheduler="fifo"),
           replace(base, name="random + ASHA", sampler="random"),
           replace(base, name=f"TPE + ASHA (default: grace {grace}, rf {space.reduction_factor}"
                              + (f", {space.startup_trials} start-up" if space.startup_trials else "") + ")")]
    if optuna:
        out += [replace(base, name="Optuna TPE + HyperbandPruner", runner="optuna", pruner="hyperband",
                        grace=1, reduction=3),
                replace(base, name="Optuna random + MedianPruner", runner="optuna", sampler="random",
                        pruner="median", grace=0)]
    if sweep:
        graces = sorted({1, max(1, max_epochs // 9), max(1, max_epochs // 6), max(1, max_epochs // 3), grace})
        for g, rf, startup in itertools.product(graces, (2, 3, 4), (4, 10)):
            if g * rf <= max_epochs and (g, rf, startup) != (grace, space.reduction_factor, space.startup_trials):
                out.append(replace(base, name=f"TPE + ASHA g{g} rf{rf} startup {startup}", grace=g, reduction=rf,
                                   startup=startup))
    return out


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
    o = r.search
    check(SEARCH_OPTIONS, o)
    if r.repeats < 2:
        raise OptionError(f"--repeats must be >= 2 to give a spread; got {r.repeats}.")
    space = get_space(o.space)
    check_name(r.curves)
    if o.no_patience and o.patience is not None:
        raise OptionError(f"--no-patience and --patience {o.patience} contradict each other; pass one of them.")
    o = o.with_budget(space)
    pair = space.pair
    options = o.data_options(pair.data_module.default_dir)
    data = load_data(pair, o.data, o.classes, test=False, seed=o.seed, **options.scaling())
    curves = read_curves(space.to_json(), r.curves, o.results_root,
                         data=replace(options, fingerprint=data.fingerprint))
    max_epochs = o.max_epochs or space.max_epochs
    if max_epochs != curves.max_epochs:
        raise OptionError(f"curves {r.curves} hold {curves.max_epochs} epochs per run; a replay of {max_epochs} "
                          "epochs would meet another schedule (cosine and warm-up depend on the budget). Replay "
                          f"with --max-epochs {curves.max_epochs}, or record at {max_epochs}.")
    settings = TrialSettings(model=pair.model, data=pair.data, max_epochs=max_epochs, seed=o.seed,
                             fixed=dict(space.fixed), overrides=o.recipe_overrides(), searched=tuple(space.params))
    patience = settings.resolve(space.start[0] if space.start else {}).recipe.patience
    return Prepared(o, space, data, curves, max_epochs, patience, settings)


def run_replay(r: ReplayOptions) -> dict[str, Any]:
    """Replay every strategy ``repeats`` times; write the study and print its table (with ``--objective``,
    the front study of :mod:`search.replay_front` instead)."""
    if r.search.objectives:
        from search.replay_front import run_front_replay

        return run_front_replay(r, prepare(r))
    p = prepare(r)
    o, space, curves, max_epochs, patience = p.options, p.space, p.curves, p.max_epochs, p.patience
    strategies = panel(space, o.trials, o.concurrency or 1, patience, max_epochs, r.sweep, r.optuna)
    console.print(f"replaying {len(strategies)} strategies x {r.repeats} repeats on curves {r.curves} "
                  f"({len(curves.configs)} configs x {len(curves.meta['seeds'])} seeds x {max_epochs} epochs; "
                  f"{o.trials} trials, {o.concurrency or 1} at once, patience {patience})", soft_wrap=True)
    rows, started = [], time.perf_counter()
    default = strategies[3]
    logs = {s.name: [] for s in strategies}
    for strategy in strategies:
        t0 = time.perf_counter()
        for repeat in range(r.repeats):
            logs[strategy.name].append(replay(curves, space.params, list(space.start), strategy, seed=repeat))
        console.print(f"  {strategy.name}: {strategy.describe()}; {(time.perf_counter() - t0) / r.repeats:.2f} s "
                      "per replayed search", soft_wrap=True)
    # Confirmation at equal epochs: a shorter search of the default strategy, then its top configs over
    # recorded seeds, so that search + confirmation spend about what the default search alone spends.
    per_trial = float(np.median([log.epochs / len(log.trials) for log in logs[default.name]]))
    # A confirmation run ends only at its patience or budget, as a FIFO trial does.
    extra = r.confirm_top * r.confirm_seeds * float(np.median([log.epochs / len(log.trials)
                                                               for log in logs["TPE (FIFO)"]]))
    wanted = o.trials - round(extra / per_trial)
    shorter = max(r.confirm_top + 1, wanted)
    label = "equal epochs" if shorter == wanted else f"more epochs: {r.confirm_top + 1} trials at the least"
    confirmed = replace(default, name=f"default, {shorter} trials + confirm top {r.confirm_top} x "
                                      f"{r.confirm_seeds} seeds ({label})", trials=shorter)
    logs[confirmed.name] = []
    for repeat in range(r.repeats):
        log = replay(curves, space.params, list(space.start), confirmed, seed=repeat)
        log.trials.append(confirm_pick(log, curves, r.confirm_top, r.confirm_seeds, patience,
                                       np.random.default_rng([repeat, 1])))
        logs[confirmed.name].append(log)
    for name, runs in logs.items():
        rows += [{"strategy": name, "repeat": repeat, "trial_id": t.trial_id, "config_id": t.config_id,
                  "seed": t.seed, "distance": t.distance, "epochs": t.epochs, "best": t.best, "outcome": t.outcome,
                  "started_at": t.started_at, "ended_at": t.ended_at}
                 for repeat, log in enumerate(runs) for t in log.trials]
    trials = pd.DataFrame(rows)
    study = summarise(trials, curves, BASELINE)
    rungs = sorted({min(max_epochs, strategies[3].grace * strategies[3].reduction ** k) for k in range(6)})
    tau = kendall_by_rung(curves, rungs)
    tag = time.strftime("%Y%m%d-%H%M%S")
    out = curves_dir(space.name, r.curves, o.results_root) / "replays" / tag
    write_csv(out / "trials.csv.gz", trials)
    figure = plot_study(study, curves.metric, out / "replay.png",
                        f"{space.name}: {r.repeats} replays per strategy on curves {r.curves}")
    table = to_markdown(study)
    (out / "table.md").write_text(table + "\n")
    summary = record(study, {"space": space.name, "curves": r.curves, "repeats": r.repeats, "trials": o.trials,
                             "concurrency": o.concurrency or 1, "patience": patience, "max_epochs": max_epochs,
                             "kendall_tau_by_rung": tau, "seconds": time.perf_counter() - started,
                             "strategies_described": {**{s.name: s.describe() for s in strategies},
                                                      confirmed.name: confirmed.describe()}})
    write_json(out / "study.json", summary)
    tracking_uri = o.tracking_uri or default_tracking_uri()
    run_id = log_study(tracking_uri, f"spectune-{space.name}-replay", f"{r.curves}-{tag}",
                       params={"curves": r.curves, "repeats": r.repeats, "trials": o.trials,
                               "concurrency": o.concurrency or 1, "patience": patience, "max_epochs": max_epochs},
                       metrics=_metrics(study.table), role="replay",
                       artifacts=[out / "table.md", figure, out / "study.json"])
    console.print(table, soft_wrap=True)
    console.print(f"best recorded config (true mean) {study.best_true:.4f}; seed noise of one config (median std "
                  f"over seeds) {study.seed_noise:.4f}; Kendall's tau of rung vs final value: "
                  + ", ".join(f"epoch {k} {v:.2f}" for k, v in tau.items()), soft_wrap=True)
    console.print(f"replay study -> {out} ({figure.name}, table.md, study.json); MLflow run {run_id} in "
                  f"experiment spectune-{space.name}-replay at {tracking_uri}; "
                  f"{time.perf_counter() - started:.0f} s in all", soft_wrap=True)
    return {"out": out, "study": study, "summary": summary, "mlflow_run_id": run_id, "curves": curves,
            "default": default}


# Per strategy, the figures worth a chart in the MLflow UI (metric names allow no parentheses or commas).
LOGGED = ("final_quality_median", "epochs_median", "share_of_baseline_epochs_to_reach_its_quality", "regret_median",
          "top3_stopped_share")


def _metrics(table: pd.DataFrame) -> dict[str, float]:
    out = {}
    for i, row in enumerate(table.to_dict("records")):
        slug = re.sub(r"[^0-9A-Za-z]+", "_", row["strategy"]).strip("_")
        out.update({f"{i:02d}_{slug}/{k}": row[k] for k in LOGGED if np.isfinite(row[k])})
    return out
