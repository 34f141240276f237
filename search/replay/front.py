"""``spectune replay --objective``: how much of the Pareto front a multi-objective search finds, with and
without early stopping.

ASHA takes one metric, so a multi-objective search that stops trials on the primary (macro-F1, say)
lets the others (the model's size) only decide the front. That can cut exactly the small models
whose lower macro-F1 is the trade the user asked to see; MO-ASHA ranks each rung by Pareto front
instead. This study measures both on recorded curves: each strategy (random search, multi-objective
TPE and NSGA-II, each with FIFO, ASHA on the primary metric and MO-ASHA) is replayed
``repeats`` times; a replayed search's front is taken as a live one is (over the trials that ran their
budget, by the values they showed), and scored by the hypervolume of the **true** values of its configs
(their mean over the recorded seeds; the corner just beyond the recorded configs' worst values), as a
share of the hypervolume of the recorded configs' own true front: 1.0 means the search found every
point of the best front the recorded configs allow.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from results.curves import curves_dir
from results.files import write_csv, write_json
from results.pareto import Objective, hypervolume, pareto_mask, reference_point
from search.replay.report import plot_front_study, summarise_front
from search.running.progress import console
from search.replay.simulate import ReplayLog, Strategy, replay
from search.resolve import search_objectives
from search.running.tracking import default_tracking_uri, log_study
from trainables.settings import config_sizes


def served(strategy: Strategy) -> str:
    """How a front replay serves the strategy's proposals: random search exactly (the recorded configs, without
    replacement); a multi-objective sampler by the nearest recorded config, which is not shown faithful
    (docs/replay.md), so its row is shown, not judged."""
    return "exact" if strategy.sampler == "random" else "nearest config, not judged"


def front_panel(base: Strategy) -> list[Strategy]:
    """Three samplers, each with FIFO, ASHA on the primary metric and MO-ASHA (rungs ranked by Pareto front),
    at the space's own grace period and reduction factor."""
    out = []
    for sampler, label in (("random", "random"), ("tpe", "MO-TPE"), ("nsga2", "NSGA-II")):
        out += [replace(base, name=f"{label} (FIFO)", sampler=sampler, scheduler="fifo"),
                replace(base, name=f"{label} + ASHA", sampler=sampler, scheduler="asha"),
                replace(base, name=f"{label} + MO-ASHA", sampler=sampler, scheduler="moasha")]
    return out


def replay_front(log: ReplayLog, sizes: dict[int, dict[str, float]], objectives: list[Objective]) -> list[int]:
    """The config ids on a replayed search's front: its trials that ran their budget, by the values it saw."""
    done = [t for t in log.trials if t.outcome == "completed" and np.isfinite(t.best)]
    if not done:
        return []
    values = np.array([[t.best, *(sizes[t.config_id][o.name] for o in objectives[1:])] for t in done])
    return sorted({t.config_id for t, on in zip(done, pareto_mask(values, [o.mode for o in objectives])) if on})


def run_front_replay(r: Any, p: Any) -> dict[str, Any]:
    """Replay the :func:`front_panel` strategies; write and print the study (``r``: ReplayOptions, ``p``:
    what :func:`search.replay.study.prepare` read)."""
    o, space, curves = p.options, p.space, p.curves
    objectives = search_objectives(space, o)
    sizes = {i: c["sizes"] for i, c in curves.configs.items() if c.get("sizes")}
    if len(sizes) < len(curves.configs):
        # Recordings made before sizes were kept: build each config's model (no training) to count them.
        sizes = config_sizes(space.pair, p.data.spec, p.settings,
                             {i: c["searched"] for i, c in curves.configs.items()}, space.pair.load_base(o.base))
        console.print(f"counted the parameters of the {len(sizes)} recorded configs by building their models")
    truth = curves.true_quality()["mean"]
    modes = [x.mode for x in objectives]
    true_values = np.array([[truth[i], *(sizes[i][x.name] for x in objectives[1:])] for i in truth.index])
    # The reference corner, from the recorded configs' true values: the same for every replay.
    reference = reference_point(true_values, modes)
    attainable = hypervolume(true_values, modes, reference)
    ideal = sorted(int(i) for i, on in zip(truth.index, pareto_mask(true_values, modes)) if on)
    strategy0 = Strategy(name="", trials=o.trials, concurrency=o.concurrency or 1, patience=p.patience,
                    grace=space.grace_for(p.max_epochs), reduction=space.reduction_factor,
                    startup=space.startup_trials, objectives=tuple((x.name, x.mode) for x in objectives[1:]))
    strategies = front_panel(strategy0)
    console.print(f"replaying {len(strategies)} multi-objective strategies x {r.repeats} repeats on curves "
                  f"{r.curves} ({len(curves.configs)} configs x {len(curves.meta['seeds'])} seeds x {p.max_epochs} "
                  f"epochs; {o.trials} trials, objectives {', '.join(map(str, objectives))}; ASHA grace "
                  f"{strategy0.grace}, "
                  f"rf {strategy0.reduction}); the recorded configs' true front holds configs {ideal}", soft_wrap=True)
    started, rows = time.perf_counter(), []
    true_of = dict(zip(truth.index, true_values))
    for strategy in strategies:
        for repeat in range(r.repeats):
            log = replay(curves, space.params, list(space.start), strategy, seed=repeat, sizes=sizes)
            found = replay_front(log, sizes, objectives)
            share = hypervolume(np.array([true_of[i] for i in found]), modes, reference) / attainable if found else 0.0
            rows.append({"strategy": strategy.name, "repeat": repeat, "epochs": log.epochs, "hv_share": share,
                         "front_size": len(found), "ideal_found": len(set(found) & set(ideal)),
                         "stopped": sum(t.outcome == "stopped early" for t in log.trials), "front": found})
    repeats = pd.DataFrame(rows)
    table = summarise_front(repeats, len(ideal))
    table.insert(1, "served", table["strategy"].map({s.name: served(s) for s in strategies}))
    tag = time.strftime("%Y%m%d-%H%M%S")
    out = curves_dir(space.name, r.curves, o.results_root) / "replays" / f"front-{tag}"
    write_csv(out / "repeats.csv", repeats.assign(front=repeats["front"].map(lambda f: " ".join(map(str, f)))))
    markdown = table.to_markdown(index=False, floatfmt=".3f")
    (out / "table.md").write_text(markdown + "\n")
    figure = plot_front_study(repeats, out / "front_replay.png",
                              f"{space.name}: {r.repeats} replays per strategy on curves {r.curves}, "
                              f"{o.trials} trials, {' vs '.join(x.name for x in objectives)}")
    summary = {"space": space.name, "curves": r.curves, "repeats": r.repeats, "trials": o.trials,
               "objectives": [str(x) for x in objectives], "reference": reference,
               "attainable_hypervolume": attainable, "true_front_configs": ideal, "grace": strategy0.grace,
               "reduction_factor": strategy0.reduction, "seconds": time.perf_counter() - started,
               "table": table.to_dict("records")}
    write_json(out / "study.json", summary)
    tracking_uri = o.tracking_uri or default_tracking_uri()
    run_id = log_study(tracking_uri, f"spectune-{space.name}-replay", f"{r.curves}-front-{tag}",
                       params={"curves": r.curves, "repeats": r.repeats, "trials": o.trials,
                               "objectives": ", ".join(map(str, objectives))},
                       metrics={f"{i:02d}/hv_share_median": float(row["hv share median"])
                                for i, row in enumerate(table.to_dict("records"))},
                       role="replay", artifacts=[out / "table.md", figure, out / "study.json"])
    console.print(markdown, soft_wrap=True)
    console.print("rows served by the nearest recorded config are shown, not judged: nearest-config serving "
                  "misjudges model-based samplers; random search's rows are exact", soft_wrap=True)
    console.print(f"front replay study -> {out} ({figure.name}, table.md, study.json); MLflow run {run_id}; "
                  f"{time.perf_counter() - started:.0f} s in all", soft_wrap=True)
    return {"out": out, "table": table, "repeats": repeats, "summary": summary}
