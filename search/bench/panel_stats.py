"""A panel's statistics, recomputed from its rows alone (``make bench`` and ``python -m search.bench.panel
summarise`` run them; nothing here reads a run's logs).

- **Paired differences.** On each pair, each candidate's score minus each baseline's over the same seeds,
  signed so that positive is better (the space's ``mode``); a search without a pick takes the pair's
  worst score. The score is the pick's mean over the
  design's confirmation seeds where it has them, else the pick's validation score in its search.
- **Counts.** Better / tied / worse, tied meaning within the pair's stated tolerance.
- **Tests.** One-sided paired Wilcoxon signed-rank, for better and (separately) for worse, zeros split
  as :func:`search.replay.stats.non_inferiority` does; all-zero differences give p = 1.
- **Correction.** Holm (:func:`search.replay.stats.holm`) over every candidate and pair compared with one
  baseline: the family from which a winner is chosen.
- **Proportions.** Wilson and exact (Clopper-Pearson) 95 % intervals (scipy's ``binomtest``), never a
  bootstrap over ten pairs (too narrow: 9/10 gives [0.70, 1.00] against Wilson's [0.60, 0.98]).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from search.replay.stats import holm

CONFIDENCE = 0.95


def signed(x: np.ndarray, mode: str) -> np.ndarray:
    """Scores signed so that larger is better."""
    return np.asarray(x, dtype=float) * (1.0 if mode == "max" else -1.0)


def counts(diff: np.ndarray, tolerance: float) -> tuple[int, int, int]:
    """Better, tied (within ``tolerance``) and worse, from differences signed so that positive is better."""
    diff = np.asarray(diff, dtype=float)
    return int((diff > tolerance).sum()), int((np.abs(diff) <= tolerance).sum()), int((diff < -tolerance).sum())


def wilcoxon_one_sided(diff: np.ndarray, alternative: str) -> float:
    """One-sided paired Wilcoxon signed-rank p (``greater``: the candidate better), zeros split."""
    from scipy.stats import wilcoxon

    diff = np.asarray(diff, dtype=float)
    if np.allclose(diff, 0.0):
        return 1.0
    return float(wilcoxon(diff, alternative=alternative, zero_method="zsplit").pvalue)


def interval(successes: int, n: int, method: str) -> tuple[float, float]:
    """The 95 % interval of a proportion: ``wilson`` (score interval) or ``exact`` (Clopper-Pearson)."""
    from scipy.stats import binomtest

    ci = binomtest(successes, n).proportion_ci(confidence_level=CONFIDENCE, method=method)
    return float(ci.low), float(ci.high)


def paired(rows: pd.DataFrame, pair: str, candidate: str, baseline: str, mode: str) -> pd.DataFrame:
    """The seeds both strategies ran on ``pair``, with each one's score; a search with no pick (NaN) takes the
    worst score of any search on the pair (as :func:`search.replay.stats.non_inferiority` treats one), so it
    loses to every search above that worst one."""
    part = rows[rows["pair"] == pair]
    scores = part["score"].astype(float)
    worst = float(scores.min() if mode == "max" else scores.max()) if scores.notna().any() else 0.0
    table = part.assign(score=scores.fillna(worst)).pivot_table(index="seed", columns="strategy", values="score",
                                                                aggfunc="first")
    if candidate not in table or baseline not in table:
        return pd.DataFrame(columns=["candidate", "baseline", "diff"])
    table = table[[candidate, baseline]].dropna()   # seeds one of them has not run yet
    return pd.DataFrame({"candidate": table[candidate], "baseline": table[baseline],
                         "diff": signed(table[candidate], mode) - signed(table[baseline], mode)})


def compare(rows: pd.DataFrame, design: dict[str, Any]) -> pd.DataFrame:
    """One row per (baseline, candidate, pair): n, counts, mean difference, both one-sided p values and
    their Holm-adjusted values (over candidates and pairs, per baseline); ``design`` is the design's JSON."""
    out = []
    for baseline in design["baselines"]:
        family = []
        for candidate in design["candidates"]:
            for key, pair in design["pairs"].items():
                part = rows[rows["pair"] == key]
                mode = str(part["mode"].iloc[0]) if len(part) else "max"
                d = paired(rows, key, candidate, baseline, mode)["diff"].to_numpy()
                better, tied, worse = counts(d, pair["tie_tolerance"])
                family.append({"baseline": baseline, "candidate": candidate, "pair": key, "n": len(d),
                               "better": better, "tied": tied, "worse": worse,
                               "mean_diff": float(d.mean()) if len(d) else np.nan,
                               "p_better": wilcoxon_one_sided(d, "greater") if len(d) else np.nan,
                               "p_worse": wilcoxon_one_sided(d, "less") if len(d) else np.nan})
        for column in ("p_better", "p_worse"):
            ps = [f[column] for f in family]
            ok = [i for i, p in enumerate(ps) if p == p]
            adjusted = holm([ps[i] for i in ok]) if ok else []
            for f in family:
                f[f"{column}_holm"] = np.nan
            for i, a in zip(ok, adjusted):
                family[i][f"{column}_holm"] = a
        out += family
    return pd.DataFrame(out)


def pooled(rows: pd.DataFrame, design: dict[str, Any], candidate: str) -> dict[str, Any] | None:
    """The design's pooled proportion for ``candidate``: paired searches over every pair in which it was at
    least as good as the pooled baseline (not worse by more than the pair's tolerance), with its interval."""
    rule = design.get("pooled")
    if not rule:
        return None
    successes = n = 0
    for key, pair in design["pairs"].items():
        part = rows[rows["pair"] == key]
        if part.empty:
            continue
        d = paired(rows, key, candidate, rule["baseline"], str(part["mode"].iloc[0]))["diff"].to_numpy()
        better, tied, _ = counts(d, pair["tie_tolerance"])
        successes, n = successes + better + tied, n + len(d)
    if not n:
        return {"candidate": candidate, "baseline": rule["baseline"], "n": 0}
    low, high = interval(successes, n, rule["interval"])
    wilson, exact = interval(successes, n, "wilson"), interval(successes, n, "exact")
    return {"candidate": candidate, "baseline": rule["baseline"], "n": n, "at_least_as_good": successes,
            "share": successes / n, "interval": rule["interval"], "low": low, "high": high,
            "wilson": list(wilson), "exact": list(exact),
            "met": bool(successes / n >= rule["share"] and low > rule["above"])}


def verdict(table: pd.DataFrame, design: dict[str, Any], candidate: str) -> dict[str, Any]:
    """Per baseline: the pairs where ``candidate`` is better (Holm-adjusted p below alpha) and where it is
    worse, and whether the design's target holds (better on at least ``better_pairs_at_least`` pairs, worse
    on none)."""
    out = {}
    alpha = design["alpha"]
    for baseline, part in table[table["candidate"] == candidate].groupby("baseline", sort=False):
        better = part.loc[part["p_better_holm"] < alpha, "pair"].tolist()
        worse = part.loc[part["p_worse_holm"] < alpha, "pair"].tolist()
        out[baseline] = {"better_on": better, "worse_on": worse,
                         "met": len(better) >= design["better_pairs_at_least"] and not worse}
    return out
