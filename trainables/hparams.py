"""Declared hyperparameter tables, checked once at the boundary with one message style.

The recipe, every model and every data module declares its knobs as a table of :class:`HParam`
(type, default, range or choices, and optionally the condition under which the knob applies).
A config from a JSON file, the CLI, a space's starting point or a trial passes through
:func:`resolve`, which fills defaults, refuses unknown names, wrong types, out-of-range values
and conditional keys given without their condition, and says which value broke which rule::

    best.json: the 'lr' hyperparameter must be a float in the range (0.0, 1.0]; got -1.0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from results.errors import ConfigError

_CLOSED = {"both": ("[", "]"), "left": ("[", ")"), "right": ("(", "]"), "neither": ("(", ")")}


@dataclass(frozen=True)
class HParam:
    """One knob: its type, default and valid values.

    ``low``/``high`` bound numbers (``None``: unbounded) and ``closed`` says which ends are
    included, as in scikit-learn's ``Interval``; ``choices`` lists the only valid values;
    ``nullable`` lets ``None`` through (``patience=None`` switches early stopping off);
    ``when=(key, values)`` makes the knob apply only while ``key`` has one of ``values``.
    """

    kind: type
    default: Any
    low: float | None = None
    high: float | None = None
    closed: str = "both"
    choices: tuple[Any, ...] | None = None
    nullable: bool = False
    when: tuple[str, tuple[Any, ...]] | None = None
    help: str = ""

    def __post_init__(self) -> None:
        if self.kind not in (int, float, bool, str):
            raise TypeError(f"HParam kind must be int, float, bool or str; got {self.kind!r}")
        if self.closed not in _CLOSED:
            raise ValueError(f"HParam closed must be one of {list(_CLOSED)}; got {self.closed!r}")

    def describe(self) -> str:
        """The rule in words, e.g. ``an int in the range [1, inf)`` or ``one of ['none', 'batch']``."""
        if self.choices is not None:
            text = f"one of {list(self.choices)}"
        elif self.kind is bool:
            text = "a bool (true or false)"
        elif self.kind is str:
            text = "a string"
        else:
            left, right = _CLOSED[self.closed]
            left, right = "(" if self.low is None else left, ")" if self.high is None else right
            low = "-inf" if self.low is None else self.low
            high = "inf" if self.high is None else self.high
            text = f"{'an int' if self.kind is int else 'a float'} in the range {left}{low}, {high}{right}"
        return text + (" or null" if self.nullable else "")

    def check(self, name: str, value: Any, source: str) -> Any:
        """``value`` converted to the declared type (an integral float to int, an int to float),
        or :class:`ConfigError` naming ``source``, the knob, the rule and the value."""
        if value is None and self.nullable:
            return None
        ok, value = _convert(self.kind, value)
        if ok and self.choices is not None:
            ok = value in self.choices
        elif ok and self.kind in (int, float):
            ok = _inside(value, self.low, self.high, self.closed)
        if not ok:
            raise ConfigError(f"{source}: the {name!r} hyperparameter must be {self.describe()}; got {value!r}.")
        return value

    def applies(self, values: Mapping[str, Any]) -> bool:
        """Whether the knob's condition holds for ``values`` (always, for an unconditional knob)."""
        return self.when is None or values.get(self.when[0]) in self.when[1]


def Int(default: int | None, low: int | None = None, high: int | None = None, closed: str = "both",
        **kw: Any) -> HParam:
    return HParam(int, default, low, high, closed, **kw)


def Float(default: float | None, low: float | None = None, high: float | None = None, closed: str = "both",
          **kw: Any) -> HParam:
    return HParam(float, default, low, high, closed, **kw)


def Bool(default: bool, **kw: Any) -> HParam:
    return HParam(bool, default, **kw)


def Choice(default: Any, choices: Iterable[Any], **kw: Any) -> HParam:
    choices = tuple(choices)
    kinds = {type(c) for c in choices}
    kind = str if kinds == {str} else int if kinds == {int} else float if kinds <= {int, float} else None
    if kind is None:
        raise TypeError(f"Choice values must be all strings or all numbers; got {list(choices)}")
    return HParam(kind, default, choices=choices, **kw)


Table = Mapping[str, HParam]


def _convert(kind: type, value: Any) -> tuple[bool, Any]:
    if kind is bool:
        return isinstance(value, bool), value
    if kind is str:
        return isinstance(value, str), value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False, value
    if kind is int:
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return isinstance(value, int), value
    return math.isfinite(value), float(value)


def _inside(value: float, low: float | None, high: float | None, closed: str) -> bool:
    left, right = _CLOSED[closed]
    if low is not None and (value < low or (value == low and left == "(")):
        return False
    return not (high is not None and (value > high or (value == high and right == ")")))


def resolve(table: Table, values: Mapping[str, Any], source: str = "config",
            soft: Iterable[str] = ()) -> dict[str, Any]:
    """The table's defaults overridden by ``values``, checked; only the knobs that apply are kept.

    ``None`` in ``values`` means "unset" (a CLI flag left out), except for nullable knobs. A knob
    given in ``values`` whose condition does not hold is an error, unless it is named in ``soft``
    (values a space holds fixed for every trial, which apply only to the trials that meet them).
    """
    unknown = sorted(set(values) - set(table))
    if unknown:
        raise ConfigError(f"{source}: unknown hyperparameter(s) {unknown}; valid names are {list(table)}.")
    given = {k: v for k, v in values.items() if v is not None or table[k].nullable}
    out = {k: p.check(k, given[k], source) if k in given else p.default for k, p in table.items()}
    soft = set(soft)
    for key, p in table.items():
        if p.applies(out):
            continue
        if key in given and key not in soft:
            cond, allowed = p.when
            shown = repr(allowed[0]) if len(allowed) == 1 else f"one of {list(allowed)}"
            raise ConfigError(f"{source}: {key!r} applies only when {cond!r} is {shown}; "
                              f"got {cond}={out.get(cond)!r}. Drop {key!r} or set {cond!r}.")
        del out[key]
    return out


def check_table(table: Table, owner: str) -> None:
    """A declared table is itself valid: defaults obey their rules and conditions name known knobs."""
    for key, p in table.items():
        if p.when is not None:
            if p.when[0] not in table:
                raise ValueError(f"{owner}: {key!r} applies when {p.when[0]!r}, which the table does not declare")
            for v in p.when[1]:
                table[p.when[0]].check(p.when[0], v, f"{owner}: condition of {key!r}")
        if p.default is not None or not p.nullable:
            p.check(key, p.default, f"{owner}: default of {key!r}")
