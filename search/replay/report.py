"""What a replay study measured, per strategy: a table, a figure and a JSON record (and, for a
multi-objective replay, the share of the attainable front each strategy found).

Every figure is about the quality of the config a search would pick, judged on seeds it did not see
(the rules are :mod:`search.replay.stats`'), with its spread over the replay repeats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from results.plots import save_figure
from search.replay import stats
from search.replay.serve import Table
from search.replay.simulate import ReplayLog


@dataclass(frozen=True)
class ReplayStudy:
    table: pd.DataFrame          # one row per strategy
    repeats: pd.DataFrame        # one row per strategy and repeat
    paths: dict[str, list[np.ndarray]]   # per strategy, per repeat: the pick's quality after each epoch
    best_true: float
    median_true: float
    seed_noise: float
    baseline: str
    baseline_epochs: float
    mode: str


def summarise(logs: dict[str, list[ReplayLog]], table: Table, baseline: str, reference: str | None) -> ReplayStudy:
    """Every strategy's figures by the rules of :mod:`search.replay.stats`: ``logs`` per strategy name,
    repeat ``i`` replayed with seed ``i``; ``baseline`` is random search, ``reference`` the strategy the
    others must not be worse than (Optuna TPE + HyperbandPruner)."""
    mode = table.curves.mode
    sign = 1.0 if mode == "max" else -1.0
    truth = pd.Series({c: table.quality(c) for c in table.ids}).dropna()
    best_true = float(truth.max() if mode == "max" else truth.min())
    median_true = float(truth.median())
    ranked = truth.sort_values(ascending=mode == "min")
    # Ties count: every config at least as good as the third best is a top-3 config.
    third = ranked.iloc[min(2, len(ranked) - 1)]
    top3 = set(ranked.index[(sign * ranked) >= sign * third])
    paths = {name: [stats.pick_path(log, mode) for log in runs] for name, runs in logs.items()}
    full = {name: [stats.pick_path(log, mode, unseen=False) for log in runs] for name, runs in logs.items()}
    base_final = np.array([p[-1] if len(p) else math.nan for p in paths[baseline]])
    base_epochs = float(np.median([log.epochs for log in logs[baseline]]))
    partner = np.roll(base_final, -1)
    per_repeat, rows = [], []
    for name, runs in logs.items():
        for i, log in enumerate(runs):
            searched = log.trials
            in_top3 = [t for t in searched if not t.modelled and t.config_id in top3]
            per_repeat.append({"strategy": name, "repeat": i,
                               "final_quality": stats.at_budget(paths[name][i], math.inf),
                               "final_quality_all_seeds": stats.at_budget(full[name][i], math.inf),
                               "epochs": log.epochs, "trials": len(searched),
                               "stopped": sum(t.outcome == "stopped early" for t in searched),
                               "top3_trials": len(in_top3),
                               "top3_stopped": sum(t.outcome == "stopped early" for t in in_top3),
                               "modelled": sum(t.modelled for t in searched),
                               "mean_distance": float(np.mean([t.distance for t in searched]))})
    repeats = pd.DataFrame(per_repeat)
    for name, part in repeats.groupby("strategy", sort=False):
        q = part["final_quality"]
        row: dict[str, Any] = {
            "strategy": name, "repeats": len(part), "quality_median": float(q.median()),
            "quality_q25": float(q.quantile(0.25)), "quality_q75": float(q.quantile(0.75)),
            "epochs_median": float(part["epochs"].median()), "epochs_q25": float(part["epochs"].quantile(0.25)),
            "epochs_q75": float(part["epochs"].quantile(0.75)),
            "regret_area": float(np.mean([stats.regret_area(p, base_epochs, best_true, median_true, mode)
                                          for p in paths[name]])),
            "p_top1": float(np.mean(sign * part["final_quality_all_seeds"].to_numpy() >= sign * best_true - 1e-12)),
            "top3_stopped_share": (float(part["top3_stopped"].sum() / part["top3_trials"].sum())
                                   if part["top3_trials"].sum() else math.nan),
            "modelled_share": float(part["modelled"].sum() / part["trials"].sum()),
            "served_distance_mean": float(part["mean_distance"].mean())}
        for f in stats.BUDGETS:
            at = np.array([stats.at_budget(p, f * base_epochs) for p in paths[name]])
            row[f"p_win_{f:g}"], row[f"p_win_{f:g}_low"], row[f"p_win_{f:g}_high"] = stats.paired_win(at, partner, mode)
            row[f"regret_{f:g}"] = float(stats.normalised_regret(at, best_true, median_true, mode).mean())
        rows.append(row)
    frame = pd.DataFrame(rows)
    noise = table.seed_noise()
    if reference is not None and reference in paths:
        for name in frame["strategy"]:
            p = [stats.non_inferiority(np.array([stats.at_budget(x, f * base_epochs) for x in paths[name]]),
                                       np.array([stats.at_budget(x, f * base_epochs) for x in paths[reference]]),
                                       noise, mode) for f in stats.BUDGETS]
            for f, raw, adjusted in zip(stats.BUDGETS, p, stats.holm(p)):
                frame.loc[frame["strategy"] == name, f"ni_p_{f:g}"] = raw
                frame.loc[frame["strategy"] == name, f"ni_p_holm_{f:g}"] = adjusted
    return ReplayStudy(frame, repeats, paths, best_true, median_true, noise, baseline, base_epochs, mode)


# The strategies a reader looks for first stand out in every plot with one colour and line style each. The
# others are muted and keep one style across plots, read from their names: the colour says the sampler, the
# line the scheduler (the first word that matches, in this order).
LEAD_STYLES = {"default": dict(color="#d62728", ls="-", lw=2.6), "baseline": dict(color="#1f77b4", ls="--", lw=2.4),
               "peer": dict(color="#2ca02c", ls="-.", lw=2.4)}
MUTED_COLOURS = (("NePS", "#e7a6cf"), ("Optuna", "#7fb7c9"), ("QMC", "#9fc79f"), ("GP", "#b39bc8"),
                 ("prior", "#c49c94"), ("TPE", "#b5a642"), ("random", "#8c8c8c"))
MUTED_LINES = (("trials", (0, (6, 2))), ("one rung", (0, (1, 1))), ("curve", (0, (5, 2, 1, 2))),
               ("Pruner", "-."), ("ASHA", "--"), ("FIFO", ":"))


def strategy_style(name: str, baseline: str, peer: str) -> dict[str, Any]:
    """How ``name`` is drawn: the default search (its name says "default"), random search (``baseline``)
    and the by-hand peer (``peer``) in their own styles, any other strategy muted."""
    if name == baseline:
        return {**LEAD_STYLES["baseline"], "zorder": 3}
    if name == peer:
        return {**LEAD_STYLES["peer"], "zorder": 3}
    if "(default" in name:
        return {**LEAD_STYLES["default"], "zorder": 4}
    colour = next((c for word, c in MUTED_COLOURS if word in name), "#a1a1a1")
    line = next((ls for word, ls in MUTED_LINES if word in name), "-")
    return dict(color=colour, ls=line, lw=1.3, alpha=0.9, zorder=2)


def plot_study(study: ReplayStudy, metric: str, path: Path, title: str, peer: str = "") -> Path:
    """Mean normalised regret of the pick against epochs spent (as a share of random search's median), per
    strategy, with a band of one standard error over the repeats; the default, random search and ``peer``
    stand out, the legend beside the curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 5.5))
    grid = np.linspace(0.02, 1.5, 120)
    for name, paths in study.paths.items():
        regret = np.array([stats.normalised_regret(np.array([stats.at_budget(p, g * study.baseline_epochs)
                                                             for g in grid]),
                                                   study.best_true, study.median_true, study.mode) for p in paths])
        mean, err = regret.mean(axis=0), regret.std(axis=0, ddof=1) / np.sqrt(len(regret))
        style = strategy_style(name, study.baseline, peer)
        ax.plot(grid, mean, label=name, **style)
        ax.fill_between(grid, mean - err, mean + err, color=style["color"], alpha=0.12 if style["lw"] > 2 else 0.05,
                        zorder=1)
    for f in stats.BUDGETS:
        ax.axvline(f, color="k", lw=0.5, ls=":")
    ax.set_xlabel("epochs spent, as a share of random search's median epochs")
    ax.set_ylabel(f"normalised regret of the pick's {metric}\n(0 best recorded config, 1 median config)")
    ax.set_title(title, fontsize=10)
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
    # The leads first in the legend, and the legend outside the axes, where it hides no curve.
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: -handles[i].get_linewidth())
    ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=8, loc="upper left",
              bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return save_figure(fig, path)


def to_markdown(study: ReplayStudy) -> str:
    """The study's table as Markdown: one row per strategy, the figures a comparison is judged by."""
    t = study.table
    ni = [c for c in t if c.startswith("ni_p_holm_")]
    rows = []
    for r in t.to_dict("records"):
        rows.append({
            "strategy": r["strategy"],
            "pick quality, median (IQR)": f"{r['quality_median']:.4f} ({r['quality_q25']:.4f}-{r['quality_q75']:.4f})",
            "epochs, median": f"{r['epochs_median']:.0f}",
            **{f"P(win) at {f:g}x": (f"{r[f'p_win_{f:g}']:.2f} [{r[f'p_win_{f:g}_low']:.2f}, "
                                     f"{r[f'p_win_{f:g}_high']:.2f}]") for f in (0.25, 1.0)},
            "regret area": f"{r['regret_area']:.3f}",
            "P(top-1)": f"{r['p_top1']:.2f}",
            "top-3 stopped": "-" if math.isnan(r["top3_stopped_share"]) else f"{r['top3_stopped_share']:.3f}",
            **({"NI vs reference, Holm p (10/25/50/100 %)": " / ".join(f"{r[c]:.2g}" for c in ni)} if ni else {}),
            "modelled": f"{r['modelled_share']:.2f}"})
    return pd.DataFrame(rows).to_markdown(index=False)


def record(study: ReplayStudy, extra: dict[str, Any]) -> dict[str, Any]:
    """The JSON written beside the table: every strategy's figures and what the study was."""
    return {**extra, "baseline": study.baseline, "best_true": study.best_true, "median_true": study.median_true,
            "seed_noise": study.seed_noise, "baseline_epochs": study.baseline_epochs,
            "strategies": study.table.to_dict("records")}


def summarise_front(repeats: pd.DataFrame, ideal: int) -> pd.DataFrame:
    """Per strategy: the share of the attainable hypervolume (median, quartiles), the true-front configs
    found, the epochs spent, the trials ASHA stopped, and whether ASHA's share differs from the same
    sampler's FIFO share (two-sided Mann-Whitney over the repeats)."""
    from scipy.stats import mannwhitneyu

    rows = []
    for name, part in repeats.groupby("strategy", sort=False):
        q1, med, q3 = np.percentile(part["hv_share"], [25, 50, 75])
        row = {"strategy": name, "hv share median": med, "hv share IQR": f"{q1:.3f}-{q3:.3f}",
               f"true-front configs found (of {ideal}), median": float(part["ideal_found"].median()),
               "epochs median": float(part["epochs"].median()), "trials stopped median": float(part["stopped"].median()),
               "p vs FIFO": np.nan}
        if "ASHA" in name:
            fifo = repeats[repeats["strategy"] == name.split(" + ")[0] + " (FIFO)"]["hv_share"]
            if fifo.nunique() > 1 or part["hv_share"].nunique() > 1:
                row["p vs FIFO"] = float(mannwhitneyu(part["hv_share"], fifo, alternative="two-sided").pvalue)
            else:
                row["p vs FIFO"] = 1.0
        rows.append(row)
    return pd.DataFrame(rows)


def plot_front_study(repeats: pd.DataFrame, path: Path, title: str) -> Path:
    """Each strategy's share of the attainable hypervolume against the epochs it spent, one dot per replay,
    with its median as a cross (``spectune replay --objective``)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    for i, (name, part) in enumerate(repeats.groupby("strategy", sort=False)):
        colour = f"C{i}"
        jitter = np.random.default_rng(i).normal(0, 0.004, len(part))
        ax.scatter(part["epochs"], part["hv_share"] + jitter, s=10, alpha=0.35, color=colour)
        ax.scatter(part["epochs"].median(), part["hv_share"].median(), marker="X", s=140, color=colour,
                   edgecolor="black", label=name, zorder=3)
    ax.set_xlabel("epochs spent by the search")
    ax.set_ylabel("hypervolume of its front (true values) / attainable")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path)
