"""What changed between two spaces, as saved in ``space.json`` (:meth:`Space.to_json`): keys added or
dropped, ranges narrowed, widened or moved, choices added or removed, conditions and fixed values
changed, and the settings that decide what a trial's value means (model, data, metric, epochs).

Pure space logic: a warm-started search prints these lines and decides from them which earlier
trials still describe the new space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from spaces._domains import Categorical, FloatRange, IntRange, PowerOfTwoRange, When, domain_from_json

# Settings compared beside the params: what a trial's value was measured against.
SETTINGS = ("model", "data", "metric", "mode", "max_epochs")


@dataclass(frozen=True)
class Change:
    """One difference: ``kind`` is one of ``added``, ``dropped``, ``narrowed``, ``widened``, ``moved``,
    ``scale``, ``step``, ``type``, ``choices added``, ``choices removed``, ``condition``, ``fixed`` or
    ``setting``; ``old`` and ``new`` are the two sides in words."""

    key: str
    kind: str
    old: str
    new: str

    def describe(self) -> str:
        if self.kind == "added":
            return f"{self.key}: added, {self.new} (earlier: {self.old})"
        if self.kind == "dropped":
            return f"{self.key}: dropped, was {self.old} (now: {self.new})"
        if self.kind in ("choices added", "choices removed"):
            return f"{self.key}: {self.kind} {self.new}"
        return f"{self.key}: {self.kind}, {self.old} -> {self.new}"


def same_value(a: Any, b: Any) -> bool:
    """Equal as hyperparameter values: numbers within rounding, a bool never equal to a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    return type(a) is type(b) and a == b


def diff_spaces(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Every difference between two ``space.json`` objects, settings first, then params in the new
    space's order, then dropped params, then fixed values."""
    changes = [Change(key, "setting", repr(old.get(key)), repr(new.get(key)))
               for key in SETTINGS if old.get(key) != new.get(key)]
    old_params = {k: domain_from_json(v) for k, v in old.get("params", {}).items()}
    new_params = {k: domain_from_json(v) for k, v in new.get("params", {}).items()}
    old_fixed, new_fixed = old.get("fixed", {}), new.get("fixed", {})
    for key, domain in new_params.items():
        if key in old_params:
            changes += _domain_changes(key, old_params[key], domain)
        else:
            changes.append(Change(key, "added", _constant(old_fixed, key), domain.describe()))
    for key, domain in old_params.items():
        if key not in new_params:
            changes.append(Change(key, "dropped", domain.describe(), _constant(new_fixed, key)))
    # A key added to or dropped from the search has its fixed value in that line already.
    for key in sorted((set(old_fixed) | set(new_fixed)) - (set(old_params) ^ set(new_params))):
        a, b = old_fixed.get(key), new_fixed.get(key)
        if (key in old_fixed) != (key in new_fixed) or not same_value(a, b):
            changes.append(Change(key, "fixed", _constant(old_fixed, key), _constant(new_fixed, key)))
    return changes


def _constant(fixed: dict[str, Any], key: str) -> str:
    return f"fixed at {fixed[key]!r}" if key in fixed else "the default"


def _domain_changes(key: str, old: Any, new: Any) -> list[Change]:
    out: list[Change] = []
    if isinstance(old, When) or isinstance(new, When):
        old_cond = (old.key, list(old.values)) if isinstance(old, When) else None
        new_cond = (new.key, list(new.values)) if isinstance(new, When) else None
        if old_cond != new_cond:
            out.append(Change(key, "condition", _condition(old_cond), _condition(new_cond)))
        old, new = (d.domain if isinstance(d, When) else d for d in (old, new))
    if isinstance(old, Categorical) and isinstance(new, Categorical):
        added = [v for v in new.values if not old.contains(v)]
        removed = [v for v in old.values if not new.contains(v)]
        out += [Change(key, kind, repr(list(old.values)), repr(values))
                for kind, values in (("choices added", added), ("choices removed", removed)) if values]
        return out
    if type(old) is not type(new) or isinstance(old, Categorical) or isinstance(new, Categorical):
        return out + [Change(key, "type", old.describe(), new.describe())]
    if old.log != new.log and not isinstance(new, PowerOfTwoRange):
        out.append(Change(key, "scale", "log" if old.log else "linear", "log" if new.log else "linear"))
    if isinstance(old, FloatRange) and old.step != new.step:
        out.append(Change(key, "step", repr(old.step), repr(new.step)))
    if (old.low, old.high) != (new.low, new.high):
        inside = old.low <= new.low and new.high <= old.high
        covers = new.low <= old.low and old.high <= new.high
        kind = "narrowed" if inside else "widened" if covers else "moved"
        out.append(Change(key, kind, _bounds(old), _bounds(new)))
    return out


def _bounds(domain: FloatRange | IntRange) -> str:
    return f"[{domain.low:g}, {domain.high:g}]"


def _condition(condition: tuple[str, list[Any]] | None) -> str:
    return "always" if condition is None else f"when {condition[0]} in {condition[1]}"
