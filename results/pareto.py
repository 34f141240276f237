"""Several objectives: what they are, which trials form the Pareto front, its hypervolume, and the rule
that picks one point of the front as *the* config (``best.json``'s ``config``).

A space optimises its ``metric`` first (the primary objective, the one ASHA stops trials on) and may
declare more (``objectives``, or ``--objective`` on the command line): the size of the model, say.
The front is taken over the trials that ran their whole budget (or stopped on their own patience):
an ASHA-stopped trial's value is a truncated one, not what its config reaches, so it is shown but
never offered as a choice. The rule ``--choose`` picks the best primary value among the front's
points that satisfy every constraint, such as ``trainable_params<=50000``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from results.errors import OptionError

# What a trial reports that may be a further objective (constant per trial, from
# trainables.models._finetune.parameter_counts), and the direction that is usually wanted: base_bytes is
# the frozen base's memory as held, which QLoRA's quantize knob trades against macro-F1.
SIZE_OBJECTIVES = {"trainable_params": "min", "total_params": "min", "trainable_fraction": "min",
                   "base_bytes": "min"}
_OBJECTIVE = re.compile(r"^([a-z][a-z0-9_]*):(min|max)$")
_CONSTRAINT = re.compile(r"^\s*([a-z][a-z0-9_]*)\s*(<=|>=)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Objective:
    """One objective: the column of ``trials.csv`` it is read from and the direction that improves it."""

    name: str
    mode: str

    def __str__(self) -> str:
        return f"{self.name}:{self.mode}"


def parse_objective(text: str, primary: str) -> Objective:
    """``--objective NAME:MODE`` (``trainable_params:min``), checked against what trials report."""
    found = _OBJECTIVE.match(text.strip())
    if not found:
        raise OptionError(f"--objective must be NAME:min or NAME:max (e.g. trainable_params:min); got {text!r}.")
    name, mode = found.groups()
    check_objective(name, mode, primary, "--objective")
    return Objective(name, mode)


def check_objective(name: str, mode: str, primary: str, where: str) -> None:
    """A further objective is one of :data:`SIZE_OBJECTIVES`, in a valid direction, not the primary metric."""
    if name == primary:
        raise OptionError(f"{where}: {name!r} is already the space's metric (the primary objective); name a "
                          f"further one, one of {sorted(SIZE_OBJECTIVES)}.")
    if name not in SIZE_OBJECTIVES:
        raise OptionError(f"{where}: unknown objective {name!r}; a further objective is one of "
                          f"{sorted(SIZE_OBJECTIVES)} (the primary is the space's metric).")
    if mode not in ("min", "max"):
        raise OptionError(f"{where}: the direction of {name!r} must be 'min' or 'max'; got {mode!r}.")


@dataclass(frozen=True)
class Constraint:
    """``NAME<=VALUE`` or ``NAME>=VALUE`` on one objective's column."""

    name: str
    op: str
    value: float

    def holds(self, column: pd.Series) -> pd.Series:
        """Which values of ``column`` (this constraint's objective) satisfy it."""
        return column <= self.value if self.op == "<=" else column >= self.value

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value:g}"


def parse_choose(texts: Sequence[str], objectives: Sequence[Objective]) -> tuple[Constraint, ...]:
    """``--choose`` constraints (``trainable_params<=50000``), each on one of the search's objectives."""
    names = [o.name for o in objectives]
    out = []
    for text in texts:
        found = _CONSTRAINT.match(text)
        if not found:
            raise OptionError(f"--choose must be NAME<=VALUE or NAME>=VALUE (e.g. trainable_params<=50000); "
                              f"got {text!r}.")
        name, op, value = found.groups()
        if name not in names:
            raise OptionError(f"--choose {text!r}: {name!r} is not an objective of this search; its objectives "
                              f"are {names} (add one with --objective {name}:min).")
        try:
            bound = float(value)
        except ValueError:
            raise OptionError(f"--choose {text!r}: {value!r} is not a number.") from None
        # 1e999 parses as inf: no point could be ranked by how far it misses it, and that is found only
        # after the whole budget.
        if not math.isfinite(bound):
            raise OptionError(f"--choose {text!r}: the bound must be a finite number; got {value!r} ({bound}).")
        out.append(Constraint(name, op, bound))
    return tuple(out)


def _losses(values: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """``values`` (rows x objectives) as quantities to minimise: a maximised objective negated."""
    return np.asarray(values, dtype=float).reshape(-1, len(modes)) * np.array([-1.0 if m == "max" else 1.0
                                                                             for m in modes])


def pareto_mask(values: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """Which rows of ``values`` (trials x objectives) no other row dominates (as good in every objective
    and better in one). Rows with a NaN are never on the front; equal rows are all kept."""
    loss = _losses(values, modes)
    ok = ~np.isnan(loss).any(axis=1)
    mask = np.zeros(len(loss), dtype=bool)
    for i in np.flatnonzero(ok):
        others = loss[ok]
        dominated = ((others <= loss[i]).all(axis=1) & (others < loss[i]).any(axis=1)).any()
        mask[i] = not dominated
    return mask


def pareto_ranks(values: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """Each row's non-dominated front, NSGA-II's sorting: 0 for the Pareto front, 1 for the front of what
    remains, and so on (rows with a NaN last)."""
    v = np.asarray(values, dtype=float).reshape(-1, len(modes))
    ranks = np.full(len(v), len(v), dtype=int)
    left = ~np.isnan(v).any(axis=1)
    rank = 0
    while left.any():
        idx = np.flatnonzero(left)
        on = idx[pareto_mask(v[idx], modes)]
        ranks[on] = rank
        left[on] = False
        rank += 1
    return ranks


def reference_point(values: np.ndarray, modes: Sequence[str]) -> list[float]:
    """The hypervolume's reference corner: each objective's worst value pushed 10 % of its range further
    (10 % of its magnitude, or 0.1, when every value is equal), so that the worst points and a constant
    objective still count."""
    out = []
    for col, mode in zip(np.asarray(values, dtype=float).reshape(-1, len(modes)).T, modes):
        if np.isnan(col).all():
            # An objective no trial reported: no corner (and no front, so a hypervolume of 0), and no warning.
            out.append(float("nan"))
            continue
        worst = float(np.nanmin(col) if mode == "max" else np.nanmax(col))
        span = float(np.nanmax(col) - np.nanmin(col))
        pad = 0.1 * span if span > 0 else 0.1 * max(abs(worst), 1.0)
        out.append(worst - pad if mode == "max" else worst + pad)
    return out


def hypervolume(values: np.ndarray, modes: Sequence[str], reference: Sequence[float]) -> float:
    """The volume the points dominate up to ``reference`` (a worst-case corner in the objectives' own
    units), computed by Optuna's exact algorithm; 0 when no point is better than the corner."""
    from optuna._hypervolume import compute_hypervolume

    loss, ref = _losses(values, modes), _losses(reference, modes)[0]
    loss = loss[~np.isnan(loss).any(axis=1) & (loss < ref).all(axis=1)]
    return float(compute_hypervolume(loss, ref)) if len(loss) else 0.0


def front(frame: pd.DataFrame, objectives: Sequence[Objective]) -> pd.DataFrame:
    """The Pareto front over the trials of ``frame`` (``trials.csv``'s rows) that ran to their end, best
    primary first. ``objectives[0]`` is the primary (its column ``best_<metric>``)."""
    done = frame[frame["outcome"] == "completed"]
    names = columns(objectives)
    mask = pareto_mask(done[names].to_numpy(dtype=float), [o.mode for o in objectives])
    return done[mask].sort_values(names[0], ascending=objectives[0].mode == "min", kind="stable")


def columns(objectives: Sequence[Objective]) -> list[str]:
    """The ``trials.csv`` columns the objectives are read from: the primary's best value at any epoch, the
    others as reported."""
    return [f"best_{o.name}" if i == 0 else o.name for i, o in enumerate(objectives)]


def choose(points: pd.DataFrame, objectives: Sequence[Objective], constraints: Sequence[Constraint]
           ) -> tuple[pd.Series, str]:
    """The chosen point of a front (``points``, best primary first): the best primary value among those that
    satisfy every constraint. When none does, the point nearest to satisfying them (the smallest largest
    relative excess) and a sentence saying so; when no excess can be measured (an infinite bound made by
    hand), the best primary value, saying so. Raises only on an empty front (see :func:`no_front`): it
    runs after a search's whole budget, before anything is written."""
    if points.empty:
        raise ValueError("an empty front has no point to choose")
    column = dict(zip((o.name for o in objectives), columns(objectives)))
    ok = pd.Series(True, index=points.index)
    for c in constraints:
        ok &= c.holds(points[column[c.name]])
    rule = " and ".join(map(str, constraints))
    if ok.any():
        chosen = points[ok].iloc[0]
        return chosen, (f"best {objectives[0].name} on the front" + (f" with {rule}" if rule else ""))
    excess = pd.concat([((points[column[c.name]] - c.value) / max(abs(c.value), 1e-12)) * (1 if c.op == "<=" else -1)
                        for c in constraints], axis=1).max(axis=1)
    if excess.isna().all():
        return points.iloc[0], (f"no point of the front has {rule}, and none can be ranked by how far it misses it; "
                                f"chose the best {objectives[0].name} on the front")
    chosen = points.loc[excess.idxmin()]
    return chosen, (f"no point of the front has {rule}; chose the one nearest to it "
                    f"({', '.join(f'{c.name} {chosen[column[c.name]]:g}' for c in constraints)})")


def no_front(frame: pd.DataFrame, objectives: Sequence[Objective]) -> str:
    """Why :func:`front` over ``frame`` (the scored trials) is empty, and what is chosen instead."""
    done = frame[frame["outcome"] == "completed"]
    if done.empty:
        return "no trial ran its whole budget, so there is no front; chose the best primary value"
    values = done[columns(objectives)]
    unreported = [o.name for o, c in zip(objectives, values.columns) if values[c].isna().all()]
    if unreported:
        return (f"no trial that ran its whole budget reported {' or '.join(unreported)}, so there is no front; "
                "chose the best primary value")
    return ("no trial that ran its whole budget reported every objective, so there is no front; chose the best "
            "primary value")


def front_record(points: pd.DataFrame, objectives: Sequence[Objective], params: Sequence[str]) -> list[dict[str, Any]]:
    """The front as ``best.json`` keeps it: each point's trial, objective values and searched values."""
    out, names = [], columns(objectives)
    for _, row in points.iterrows():
        out.append({"trial_id": row["trial_id"], "best_epoch": int(row["best_epoch"]),
                    "objectives": {o.name: float(row[c]) for o, c in zip(objectives, names)},
                    "searched": {p: _plain(row[p]) for p in params if p in row and not _missing(row[p])}})
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
