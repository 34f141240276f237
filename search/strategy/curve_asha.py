"""ASHA that promotes by the curve, not only by the rung value (``--scheduler asha-curve``).

At a rung, plain ASHA ranks trials by the value they reached so far; on the recorded spaces that
first-rung value ranks runs poorly against their final value (Kendall's tau 0.40-0.71), because a
slow starter (a small learning rate, a long warm-up) is behind at the rung and ahead at the end.
:class:`CurveASHA` ranks them instead by each trial's best-so-far curve extrapolated to the budget
with a power law, ``y(t) = a + b t^-c`` (Domhan et al. 2015 use power laws among their curve families;
``c`` is chosen from :data:`EXPONENTS` by least squares, ``a`` and ``b`` fitted in closed form). Two
guards keep an extrapolation from a few noisy epochs sane: the predicted final value is never worse
than the value reached, and the predicted further gain is at most the gain made so far. Everything
else (rungs, reduction factor, asynchronous promotion, ``--resume``) is :class:`PersistentASHA`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from search.strategy.asha import PersistentASHA

EXPONENTS = (0.5, 1.0, 2.0)
MIN_POINTS = 3


def extrapolate(values: Sequence[float], horizon: int, sign: float) -> float:
    """The value a best-so-far curve ``values`` (epochs 1, 2, ...) is predicted to reach at epoch
    ``horizon``; ``sign`` 1 where larger is better, -1 where smaller is. Curves shorter than
    :data:`MIN_POINTS` epochs are not extrapolated."""
    y = sign * np.asarray(values, dtype=float)
    n = len(y)
    if n < MIN_POINTS or horizon <= n or not np.all(np.isfinite(y)):
        return float(values[-1])
    t = np.arange(1, n + 1, dtype=float)
    best_sse, predicted = np.inf, y[-1]
    for c in EXPONENTS:
        design = np.column_stack([np.ones(n), t ** -c])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        sse = float(np.sum((design @ coef - y) ** 2))
        if sse < best_sse:
            best_sse, predicted = sse, float(coef[0] + coef[1] * horizon ** -c)
    gained = y[-1] - y[0]
    predicted = min(max(predicted, y[-1]), y[-1] + gained)
    return float(sign * predicted)


class CurveASHA(PersistentASHA):
    """ASHA whose rungs record each trial's extrapolated final value (see the module docstring)."""

    def __init__(self, path: str | Path | None, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self._curves: dict[str, list[float]] = {}

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if self._time_attr not in result or self._metric not in result:
            return super().on_trial_result(tune_controller, trial, result)
        curve = self._curves.setdefault(trial.trial_id, [])
        curve.append(float(result[self._metric]))
        sign = 1.0 if self._mode == "max" else -1.0
        seen = {**result, self._metric: extrapolate(curve, self._max_t, sign)}
        return super().on_trial_result(tune_controller, trial, seen)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self._curves.pop(trial.trial_id, None)
        super().on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._curves.pop(trial.trial_id, None)
        super().on_trial_remove(tune_controller, trial)
