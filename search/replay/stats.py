"""The statistics a search strategy is judged by, fixed before any figure is looked at.

Over ``n`` repeats of each strategy (repeat ``i`` of every strategy uses seed ``i``):

- **Budgets** are fractions of random search's median epochs (:data:`BUDGETS`: 10, 25, 50 and 100 %).
  A strategy's pick at budget ``b`` is what it would return if stopped after ``b`` epochs in all
  (the trial with the best value seen so far; running trials count), or its final pick when it ended
  sooner. A search with no epoch by then has no pick: it loses every comparison and has regret 1.
- **Quality of a pick** is judged on the recorded seeds the search did not see (``quality_unseen``
  of :mod:`search.replay.serve`), never on the lucky run it saw.
- **P(win) at b**: P(the strategy's pick at ``b`` is at least as good as random search's final pick),
  ties counting one half, paired repeat ``i`` with random search's repeat ``i + 1`` (cyclically),
  so that random search's own figure compares two independent searches; 95 % interval by bootstrap
  over the pairs.
- **Normalised regret**: ``(best - q) / (best - median)`` in the metric's direction, where ``best`` is
  the best recorded config's true quality and ``median`` the median recorded config's: 0 is the best
  recorded config, 1 a typical random config. Its **area** is the mean over 50 budgets evenly spaced
  from 2 % to 100 % of random search's median epochs.
- **P(top-1)**: P(the final pick's true quality, over all its seeds, is at least the best recorded
  config's).
- **Non-inferiority** against a reference strategy (Optuna TPE + ``HyperbandPruner``): at each budget,
  the one-sided Wilcoxon signed-rank test of ``q_strategy - q_reference + margin > 0`` over repeats
  paired by seed, ``margin`` one pooled seed noise; p values Holm-corrected over the budgets (and,
  in ``make bench``, over spaces too).
"""

from __future__ import annotations

import math

import numpy as np

from search.replay.simulate import ReplayLog, epochs_spent

BUDGETS = (0.1, 0.25, 0.5, 1.0)
AREA_POINTS = 50


def pick_path(log: ReplayLog, mode: str, unseen: bool = True) -> np.ndarray:
    """After each epoch of the search: the quality of its pick so far (:meth:`ReplayLog.picks`)."""
    trials = log.trials
    return np.array([trials[i].quality_unseen if unseen else trials[i].quality for i in log.picks(mode)],
                    dtype=float)


def at_budget(path: np.ndarray, epochs: float) -> float:
    """The pick's quality after ``epochs`` epochs (the final pick when the search ended sooner; NaN when
    it had not run one epoch)."""
    spent = epochs_spent(epochs, len(path))
    return float(path[spent - 1]) if spent else math.nan


def paired_win(x: np.ndarray, y: np.ndarray, mode: str, resamples: int = 2000,
               seed: int = 0) -> tuple[float, float, float]:
    """P(x_i at least as good as y_i), ties one half, NaN in ``x`` a loss; with a 95 % bootstrap interval."""
    sign = 1.0 if mode == "max" else -1.0
    a = np.where(np.isnan(x), -np.inf, sign * np.asarray(x, dtype=float))
    b = sign * np.asarray(y, dtype=float)
    score = (a > b) + 0.5 * (a == b)
    rng = np.random.default_rng(seed)
    boot = score[rng.integers(0, len(score), size=(resamples, len(score)))].mean(axis=1)
    return float(score.mean()), float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))


def normalised_regret(q: np.ndarray, best: float, median: float, mode: str) -> np.ndarray:
    """0 for the best recorded config's quality, 1 for the median recorded config's; NaN (no pick) is 1."""
    sign = 1.0 if mode == "max" else -1.0
    spread = sign * (best - median)
    if not spread > 0:
        raise ValueError(f"the best recorded quality {best} does not beat the median {median}: regret is undefined")
    r = sign * (best - np.asarray(q, dtype=float)) / spread
    return np.where(np.isnan(r), 1.0, r)


def regret_area(path: np.ndarray, total: float, best: float, median: float, mode: str) -> float:
    """Mean normalised regret over :data:`AREA_POINTS` budgets evenly spaced up to ``total`` epochs."""
    grid = np.linspace(total / AREA_POINTS, total, AREA_POINTS)
    q = np.array([at_budget(path, g) for g in grid])
    return float(normalised_regret(q, best, median, mode).mean())


def non_inferiority(x: np.ndarray, y: np.ndarray, margin: float, mode: str) -> float:
    """One-sided p value that x is not worse than y by ``margin`` or more, paired (Wilcoxon signed-rank on
    ``x - y + margin``, zeros split); NaN in either is the worst value seen."""
    from scipy.stats import wilcoxon

    sign = 1.0 if mode == "max" else -1.0
    a, b = sign * np.asarray(x, dtype=float), sign * np.asarray(y, dtype=float)
    floor = np.nanmin(np.concatenate([a, b])) if np.isfinite(np.concatenate([a, b])).any() else 0.0
    d = np.nan_to_num(a, nan=floor) - np.nan_to_num(b, nan=floor) + margin
    if np.allclose(d, 0.0):
        return 1.0
    return float(wilcoxon(d, alternative="greater", zero_method="zsplit").pvalue)


def inside(value: float, low: float, high: float) -> bool:
    """The live check's test of a pick: ``value`` within [low, high] (the replay's interquartile range)."""
    return low - 1e-9 <= value <= high + 1e-9


def within(value: float, reference: float, share: float = 0.15) -> bool:
    """The live check's test of epochs: ``value`` within ``share`` of ``reference`` (the replay's median)."""
    return abs(value - reference) <= share * reference


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment: the adjusted p values, in the order given."""
    order = np.argsort(pvalues)
    adjusted, running = np.empty(len(pvalues)), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted.tolist()
