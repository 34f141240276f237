"""The one recommendation a replay study ends with, and how to apply it.

The rule, fixed before any study was looked at: a setting a ``spectune search`` can run (spectune's
searcher and scheduler, not Optuna alone) is recommended over the space's default when

1. its normalised-regret area is lower than the default's, paired by repeat (one-sided Wilcoxon
   signed-rank test, Holm-corrected over the candidates, p < 0.05);
2. its P(win) at 25 % of random search's epochs is at least the default's; and
3. it stops a top-3 config's trial no more often than the default, or than 5 %, whichever is higher.

Of the settings that pass, the one with the lowest mean regret area is recommended; when none passes,
the advice is to keep the default, because nothing was told apart from it. When the curve model that
serves a model-based sampler's proposals is not faithful on the recording (its held-out error is not
below one seed noise, :func:`search.replay.serve.check_model`), only strategies served exactly (random
search, with or without early stopping) are compared; the default's TPE is not, so the replay gives no
advice and says that the live panel (the lab's ``--live``, :mod:`search.bench.lab`) decides. So it does where
live searches of the recording (its ``live.csv``) disagree with the replay for random search or the default: the replay is not used for a
question the live panel has answered otherwise.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from typing import Any

import numpy as np

from search.replay import stats
from search.replay.simulate import Strategy

ALPHA = 0.05
TOP3_FLOOR = 0.05


@dataclass(frozen=True)
class Advice:
    """``strategy`` is ``None`` when the default is kept; ``p`` the Holm-adjusted p value of each candidate;
    ``baseline_trials`` random search's trials (a space's ``trials_factor`` multiplies them) and ``max_epochs``
    a trial's epoch budget: a setting with more trials was judged at random search's epochs at most, so one
    search of it is capped there."""

    default: Strategy
    strategy: Strategy | None
    p: dict[str, float]
    reason: str
    baseline_trials: int
    max_epochs: int | None = None

    def lines(self, space: str) -> list[str]:
        """What to print: the advice, and how to apply it."""
        if self.strategy is None:
            return [f"recommendation: keep the default ({self.default.name}): {self.reason}"]
        s = self.strategy
        flags = f"--sampler {s.sampler} --scheduler {s.scheduler}" + (
            f" --trials {s.trials}" if s.trials != self.default.trials else "") + (
            f" --max-total-epochs {self.baseline_trials * self.max_epochs}"
            if s.trials > self.baseline_trials and self.max_epochs else "")
        out = [f"recommendation: {s.name} instead of the default ({self.reason})",
               f"  apply it to one search: spectune search --space {shlex.quote(space)} {flags}"]
        if s.scheduler in ("asha", "asha-curve"):
            factor, rest = divmod(s.trials, self.baseline_trials)
            left = (f"--sampler {s.sampler} --scheduler {s.scheduler}" if (s.sampler, s.scheduler) != ("tpe", "asha")
                    else "") + (f" --trials {s.trials}" if rest else "")
            out.append(f"  or make it the space's default: in spaces/{space}.py set grace_period={s.grace}, "
                       f"reduction_factor={s.reduction}, startup_trials={s.startup}"
                       + ("" if rest else f", trials_factor={factor}")
                       + (f" (and pass {left.strip()})" if left else ""))
        return out

    def to_json(self) -> dict[str, Any]:
        s = self.strategy
        return {"default": self.default.name, "recommended": s.name if s else None, "reason": self.reason,
                "p_holm": self.p, **({"sampler": s.sampler, "scheduler": s.scheduler, "grace_period": s.grace,
                                      "reduction_factor": s.reduction, "startup_trials": s.startup,
                                      "trials": s.trials} if s else {})}


def advise(study: Any, strategies: list[Strategy], default: Strategy, unfaithful: str | None = None,
           baseline_trials: int | None = None, max_epochs: int | None = None) -> Advice:
    """The recommendation of :mod:`this rule <search.replay.advice>` from a replay study; ``unfaithful``:
    why the curve model cannot serve model-based samplers here (``None`` where it can, or none is used);
    ``baseline_trials``: random search's trials (default: the default's); ``max_epochs``: a trial's budget."""
    from scipy.stats import wilcoxon

    baseline_trials = baseline_trials or default.trials
    if unfaithful and default.sampler != "random":
        return Advice(default, None, {}, f"this replay cannot judge it, because {unfaithful}; compare the "
                                         "settings in live searches (python -m search.bench.lab replay ... --live 10)",
                      baseline_trials, max_epochs)

    table = study.table.set_index("strategy")
    areas = {name: np.array([stats.regret_area(p, study.baseline_epochs, study.best_true, study.median_true,
                                               study.mode) for p in paths])
             for name, paths in study.paths.items()}
    candidates = [s for s in strategies if s.runner == "tune" and s.name != default.name and not s.objectives]
    raw = []
    for s in candidates:
        d = areas[s.name] - areas[default.name]
        raw.append(1.0 if np.allclose(d, 0.0) else float(wilcoxon(d, alternative="less", zero_method="zsplit").pvalue))
    adjusted = dict(zip((s.name for s in candidates), stats.holm(raw) if raw else []))
    base = table.loc[default.name]
    top3_cap = max(base["top3_stopped_share"] if not math.isnan(base["top3_stopped_share"]) else 0.0, TOP3_FLOOR)
    passing = [s for s in candidates
               if adjusted[s.name] < ALPHA and table.loc[s.name, "p_win_0.25"] >= base["p_win_0.25"]
               and not table.loc[s.name, "top3_stopped_share"] > top3_cap]
    if not passing:
        better = sum(p < ALPHA for p in adjusted.values())
        reason = (f"nothing was told apart from it: no other setting had a lower regret area in paired repeats "
                  f"(Holm p < {ALPHA})" if not better else
                  f"{better} setting(s) had a lower regret area (Holm p < {ALPHA}) but a lower P(win) at 25 % of "
                  "random search's epochs or more top-3 configs stopped")
        return Advice(default, None, adjusted, reason, baseline_trials, max_epochs)
    best = min(passing, key=lambda s: areas[s.name].mean())
    reason = (f"regret area {areas[best.name].mean():.3f} against {areas[default.name].mean():.3f}, Holm p "
              f"{adjusted[best.name]:.2g}; P(win) at 25 % {table.loc[best.name, 'p_win_0.25']:.2f} against "
              f"{base['p_win_0.25']:.2f}")
    return Advice(default, best, adjusted, reason, baseline_trials, max_epochs)
