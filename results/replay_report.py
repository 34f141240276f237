"""What a replay study measured, per strategy: a table, a figure and a JSON record (and, for a
multi-objective replay, the share of the attainable front each strategy found).

Every figure is about the **true** quality of the config a search would pick (its mean best value
over the recorded seeds), never the lucky single run it saw, and comes with its spread over the
replay repeats: the median and the interquartile range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from results.curves import Curves
from results.plots import save_figure

# Budgets at which strategies are compared, as fractions of the baseline's median epochs.
BUDGET_FRACTIONS = (0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class ReplayStudy:
    table: pd.DataFrame          # one row per strategy
    repeats: pd.DataFrame        # one row per strategy and repeat
    trajectories: pd.DataFrame   # strategy, repeat, epochs, quality (after each trial ends)
    best_true: float
    seed_noise: float
    baseline: str


def _trajectory(trials: pd.DataFrame, quality: pd.Series, mode: str,
                elapsed: dict[tuple[int, int], np.ndarray] | None = None) -> pd.DataFrame:
    """After each trial ends (in simulated time): the epochs spent so far by every trial, those still
    running included, and the true quality of the search's pick so far (the trial with the best value
    it saw; of tied trials the one launched first, as ``ReplayLog.pick`` and a live search choose).
    ``trials`` are in launch order; ``elapsed`` maps (config id, seed) to the recorded run's cumulative
    epoch times, which place each epoch's end on the clock. A trial without a start (a confirmation)
    spends its epochs when it ends."""
    sign = 1.0 if mode == "max" else -1.0
    ends = []
    for t in trials.itertuples():
        run = (elapsed or {}).get((int(t.config_id), int(t.seed)))
        start = getattr(t, "started_at", math.nan)
        if run is not None and not math.isnan(start) and t.epochs:
            ends.append(start + run[:int(t.epochs)])
        else:
            ends.append(np.full(int(t.epochs), t.ended_at))
    clock = np.sort(np.concatenate(ends)) if ends else np.array([])
    launched = trials.assign(launch=range(len(trials))).sort_values("ended_at", kind="stable")
    key, pick, rows = None, None, []
    for t in launched.itertuples():
        if not math.isnan(t.best) and (key is None or (sign * t.best, -t.launch) > key):
            key, pick = (sign * t.best, -t.launch), int(t.config_id)
        # The clock adds epoch times in another order than the simulator did: allow for the rounding.
        spent = int(np.searchsorted(clock, t.ended_at + 1e-6 * max(1.0, abs(t.ended_at)), side="right"))
        rows.append({"epochs": spent, "quality": float(quality[pick]) if pick is not None else math.nan})
    return pd.DataFrame(rows)


def summarise(trials: pd.DataFrame, curves: Curves, baseline: str) -> ReplayStudy:
    """``trials``: one row per replayed trial (strategy, repeat, config_id, seed, epochs, best, outcome,
    ended_at, distance). ``baseline``: the strategy whose final quality and epochs the others are
    measured against (random search)."""
    truth = curves.true_quality()
    quality, mode = truth["mean"], curves.mode
    best_true = float(quality.iloc[0])
    # Ties count: every config at least as good as the third best is a top-3 config.
    third = quality.iloc[min(2, len(quality) - 1)]
    top3 = set(quality.index[(quality >= third) if mode == "max" else (quality <= third)])
    sign = 1.0 if mode == "max" else -1.0
    per_repeat, paths = [], {}
    elapsed = {key: np.cumsum(run["epoch_time_s"].to_numpy(dtype=float))
               for key, run in curves.runs(failed=True).items()}
    for (strategy, repeat), part in trials.groupby(["strategy", "repeat"], sort=False):
        path = _trajectory(part, quality, mode, elapsed).assign(strategy=strategy, repeat=repeat)
        paths[strategy, repeat] = path
        searched = part[part["outcome"] != "confirmation"]
        in_top3 = searched[searched["config_id"].isin(top3)]
        per_repeat.append({
            "strategy": strategy, "repeat": repeat, "final_quality": float(path["quality"].iloc[-1]),
            "epochs": int(path["epochs"].iloc[-1]), "regret": sign * (best_true - float(path["quality"].iloc[-1])),
            "top3_trials": len(in_top3), "top3_stopped": int((in_top3["outcome"] == "stopped early").sum()),
            "stopped": int((searched["outcome"] == "stopped early").sum()), "trials": len(searched),
            "mean_distance": float(searched["distance"].mean()), "max_distance": float(searched["distance"].max())})
    repeats = pd.DataFrame(per_repeat)
    trajectories = pd.concat(paths.values(), ignore_index=True)
    base = repeats[repeats["strategy"] == baseline]
    # The target is a quality the baseline attained in at least half its repeats: with an even number
    # of repeats the interpolated median can fall between two configs' qualities, which no search
    # can reach, and every strategy would read "not reached".
    target = float(np.quantile(base["final_quality"], 0.5, method="lower" if mode == "max" else "higher"))
    base_epochs = float(base["epochs"].median())
    rows = []
    for strategy, part in repeats.groupby("strategy", sort=False):
        reach = []
        for repeat in part["repeat"]:
            path = paths[strategy, repeat]
            hit = path[sign * path["quality"] >= sign * target - 1e-12]
            reach.append(float(hit["epochs"].iloc[0]) / base_epochs if len(hit) else math.inf)
        row = {"strategy": strategy, "repeats": len(part),
               "final_quality_median": float(part["final_quality"].median()),
               "final_quality_q25": float(part["final_quality"].quantile(0.25)),
               "final_quality_q75": float(part["final_quality"].quantile(0.75)),
               "epochs_median": float(part["epochs"].median()),
               "share_of_baseline_epochs_to_reach_its_quality": float(np.median(reach)),
               "regret_median": float(part["regret"].median()),
               "top3_stopped_share": (float(part["top3_stopped"].sum() / part["top3_trials"].sum())
                                      if part["top3_trials"].sum() else math.nan),
               "served_distance_mean": float(part["mean_distance"].mean())}
        for fraction in BUDGET_FRACTIONS:
            # NaN where no trial had ended by that budget, in any repeat: nothing picked yet.
            at = pd.Series([_at(paths[strategy, r], fraction * base_epochs) for r in part["repeat"]])
            row[f"quality_at_{fraction:g}x"] = float(at.median())
        rows.append(row)
    noise = float(truth["std"].median()) if truth["std"].notna().any() else math.nan
    return ReplayStudy(pd.DataFrame(rows), repeats, trajectories, best_true, noise, baseline)


def _at(path: pd.DataFrame, epochs: float) -> float:
    """The true quality of the pick once ``epochs`` were spent (NaN before the first trial ended)."""
    done = path[path["epochs"] <= epochs]
    return float(done["quality"].iloc[-1]) if len(done) else math.nan


def plot_study(study: ReplayStudy, metric: str, path: Path, title: str) -> Path:
    """Median true quality of the pick against epochs spent, with the interquartile band, per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    top = study.trajectories["epochs"].max()
    grid = np.linspace(0, top, 200)
    for strategy, part in study.trajectories.groupby("strategy", sort=False):
        curves = np.array([[_at(p, g) for g in grid] for _, p in part.groupby("repeat")])
        with np.errstate(all="ignore"), __import__("warnings").catch_warnings():
            __import__("warnings").simplefilter("ignore")
            median = np.nanmedian(curves, axis=0)
            low, high = np.nanpercentile(curves, 25, axis=0), np.nanpercentile(curves, 75, axis=0)
        line, = ax.plot(grid, median, label=strategy)
        ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.15)
    ax.axhline(study.best_true, color="k", lw=0.8, ls=":", label="best recorded config (true mean)")
    ax.set_xlabel("epochs spent (all trials)")
    ax.set_ylabel(f"true {metric} of the pick (mean over recorded seeds)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def to_markdown(study: ReplayStudy) -> str:
    """The study's table as Markdown, for the docs and the terminal."""
    cols = ["strategy", "final_quality_median", "final_quality_q25", "final_quality_q75", "epochs_median",
            "share_of_baseline_epochs_to_reach_its_quality", "regret_median", "top3_stopped_share"]
    frame = study.table[cols + [c for c in study.table if c.startswith("quality_at_")]]
    return frame.to_markdown(index=False, floatfmt=".4f")


def record(study: ReplayStudy, extra: dict[str, Any]) -> dict[str, Any]:
    """The JSON written beside the table: every strategy's figures and what the study was."""
    return {**extra, "baseline": study.baseline, "best_true": study.best_true, "seed_noise": study.seed_noise,
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
