"""How the curve model's held-out error falls as a recording grows: what a larger recording would buy.

The lab (:mod:`search.bench.lab`) measures it where the model's check fails (:func:`search.replay.serve.check_model`)
and sets it on the check (:attr:`~search.replay.serve.ModelCheck.by_size`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from search.replay.serve import ModelCheck, Table, check_model


@dataclass(frozen=True)
class SizeCurve:
    """How the chosen curve model's held-out error falls as the table grows: its error on random subsets of
    the recorded configs (``sizes``; the last, all of them, is the study's own check), and the configs at
    which a straight line through them on log-log axes reaches one seed noise (``needed``: an extrapolation,
    ``None`` where the error does not fall)."""

    model: str
    sizes: tuple[int, ...]
    errors: tuple[float, ...]
    seed_noise: float
    needed: float | None

    def steps(self) -> str:
        """Each table size with its error, e.g. ``32 configs 0.1561, 64 configs 0.1503``."""
        return ", ".join(f"{n} configs {e:.4f}" for n, e in zip(self.sizes, self.errors))

    def order(self) -> str:
        """``needed`` to one significant figure: a line through four noisy points, extrapolated, gives an order
        of magnitude (``needed`` must be set)."""
        return f"{float(f'{self.needed:.1g}'):,.0f}"

    def describe(self) -> str:
        verdict = (f"at that rate one seed noise ({self.seed_noise:.4f}) needs of the order of {self.order()} "
                   "recorded configs (a log-log extrapolation)" if self.needed else
                   "it does not fall with more configs here, so a larger table is not known to help")
        return f"curve model by table size ({self.model}, held-out RMSE): {self.steps()}; {verdict}"


def configs_needed(sizes: list[int], errors: list[float], target: float) -> float | None:
    """Where ``log(error) = a + b log(size)``, fitted by least squares, reaches ``target``; ``None`` unless the
    error falls (b < 0)."""
    slope, intercept = np.polyfit(np.log(sizes), np.log(errors), 1)
    # Flat errors fit a slope of about -1e-17 (float noise), which would "reach" any target at infinity.
    if slope > -1e-9:
        return None
    return float(np.exp((math.log(target) - intercept) / slope))


def size_curve(table: Table, check: ModelCheck, fractions: tuple[float, ...] = (0.25, 0.5, 0.75),
               repeats: int = 3, seed: int = 0) -> SizeCurve:
    """The chosen model's held-out error (as :func:`check_model` measures it) on ``repeats`` random subsets
    of each fraction of the complete recorded configs, beside ``check``'s on all of them."""
    kind = check.chosen.partition(" ")[0]
    ids, folds = table.complete, check.folds
    sizes = sorted({n for f in fractions if (n := round(f * len(ids))) >= 2 * folds and n < len(ids)})
    errors = []
    for n in sizes:
        runs = []
        for r in range(repeats):
            keep = set(np.random.default_rng([seed, n, r]).choice(ids, n, replace=False).tolist())
            curves = table.curves
            sub = replace(curves, table=curves.table[curves.table["config_id"].isin(keep)],
                          configs={i: c for i, c in curves.configs.items() if i in keep})
            runs.append(check_model(Table(sub, table.params), folds, (kind,), seed).errors[check.chosen])
        errors.append(float(np.mean(runs)))
    sizes, errors = [*sizes, len(ids)], [*errors, check.errors[check.chosen]]
    return SizeCurve(check.chosen, tuple(sizes), tuple(errors), check.seed_noise,
                     configs_needed(sizes, errors, check.seed_noise) if len(sizes) > 1 else None)
