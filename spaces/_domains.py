"""The ranges a space searches: small value objects that Optuna samples and JSON records.

``loguniform(1e-5, 1e-2)``, ``uniform(0.0, 0.5)``, ``integers(1, 8)`` (both ends included),
``choice([64, 128])`` (strings and bools too), ``powers_of_two(2, 64)`` (an ordered power-of-two
range such as a LoRA rank, which Optuna sees as the integer exponent ``<key>_log2``) and ``when("norm", ["group"], choice([2, 4]))``
for a key searched only while another searched key has one of the given values. They hold no
computation: the searcher turns them into Optuna suggestions, the space validator checks them
against the declared tables, and ``to_json`` saves them with every search. Each knows the forms the
tools that read it need: the name and value Optuna samples (``encode``), coordinates in the unit
interval (``unit``, the replay's curve model) and NePS's form (``neps`` and back, ``from_neps``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from results.errors import UserError


@dataclass(frozen=True)
class FloatRange:
    low: float
    high: float
    log: bool = False
    step: float | None = None
    kind = float

    def __post_init__(self) -> None:
        _check_bounds(self, "loguniform" if self.log else "uniform", (int, float))
        if self.step is not None and not (_is_number(self.step, (int, float)) and 0 < self.step <= self.high - self.low):
            raise DomainError(f"uniform: step must be in (0, high - low]; got step={self.step!r}.")

    def suggest(self, trial: Any, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)

    def sampled(self, name: str, value: Any) -> tuple[str, Any, Any]:
        """``name = value`` as Optuna samples it here: its name, value and distribution (what
        :meth:`suggest` asks for), to hand Optuna a trial that was not suggested (a warm start)."""
        from optuna.distributions import FloatDistribution

        return name, float(value), FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high

    def encode(self, name: str, value: Any) -> dict[str, Any]:
        """A value as Optuna samples it: under its own name, as it is."""
        return {name: value}

    def unit(self, value: Any) -> list[float]:
        """``value``'s coordinate in [0, 1] (on a log scale for a log range; 0.5 where the key is unset)."""
        if value is None:
            return [0.5]
        low, high, v = float(self.low), float(self.high), float(value)
        if self.log:
            low, high, v = math.log(low), math.log(high), math.log(v)
        return [(v - low) / (high - low) if high > low else 0.0]

    def neps(self, name: str, prior: dict[str, Any]) -> dict[str, Any]:
        """The range in NePS's terms (:mod:`search.bench.neps_worker`), with its value in ``prior`` (Optuna's
        names) where it sets one."""
        return {"name": name, "kind": "float" if self.kind is float else "int", "low": self.low, "high": self.high,
                "log": bool(self.log), "prior": prior.get(name)}

    def from_neps(self, name: str, sampled: dict[str, Any]) -> dict[str, Any]:
        """NePS's value of ``name`` in ``sampled`` as Optuna samples it: kept inside the range, on its step."""
        v = min(max(float(sampled[name]), self.low), self.high)
        return {name: self.low + round((v - self.low) / self.step) * self.step if self.step else v}

    def describe(self) -> str:
        text = f"{'log-' if self.log else ''}uniform [{self.low:g}, {self.high:g}]"
        return text + (f" step {self.step:g}" if self.step else "")

    def to_json(self) -> dict[str, Any]:
        return {"type": "float", "low": self.low, "high": self.high, "log": self.log, "step": self.step}


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    log: bool = False
    kind = int

    def __post_init__(self) -> None:
        _check_bounds(self, "integers", (int,))

    def suggest(self, trial: Any, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log)

    def sampled(self, name: str, value: Any) -> tuple[str, Any, Any]:
        """As :meth:`FloatRange.sampled`."""
        from optuna.distributions import IntDistribution

        return name, int(value), IntDistribution(self.low, self.high, log=self.log)

    def contains(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high

    encode = FloatRange.encode
    unit = FloatRange.unit
    neps = FloatRange.neps

    def from_neps(self, name: str, sampled: dict[str, Any]) -> dict[str, Any]:
        """As :meth:`FloatRange.from_neps`: the nearest integer."""
        return {name: int(round(float(sampled[name])))}

    def describe(self) -> str:
        return f"{'log-' if self.log else ''}int [{self.low}, {self.high}]"

    def to_json(self) -> dict[str, Any]:
        return {"type": "int", "low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class PowerOfTwoRange(IntRange):
    """``low``, ``2 * low``, ..., ``high`` (powers of two). Optuna samples the exponent as an integer
    named ``<key>_log2``, so TPE knows 8 lies between 4 and 16 (a ``choice`` would be unordered, and
    Optuna refuses a stepped log range); the trial's config holds the value itself under ``<key>``."""

    log: bool = True

    def __post_init__(self) -> None:
        for bound in (self.low, self.high):
            if not _is_number(bound, (int,)) or bound < 1 or bound & (bound - 1):
                raise DomainError(f"powers_of_two: bounds must be powers of two (1, 2, 4, ...); got {bound!r}.")
        if not self.low < self.high:
            raise DomainError(f"powers_of_two: low < high must hold, but got (low={self.low}, high={self.high}).")

    @staticmethod
    def encoded(name: str) -> str:
        return f"{name}_log2"

    def suggest(self, trial: Any, name: str) -> int:
        exponent = trial.suggest_int(self.encoded(name), self.low.bit_length() - 1, self.high.bit_length() - 1)
        return 2 ** exponent

    def encode(self, name: str, value: Any) -> dict[str, Any]:
        """A starting point's value as what Optuna samples: its exponent, under ``<key>_log2``."""
        return {self.encoded(name): int(value).bit_length() - 1}

    def sampled(self, name: str, value: Any) -> tuple[str, Any, Any]:
        """As :meth:`FloatRange.sampled`: the exponent, under ``<key>_log2``."""
        from optuna.distributions import IntDistribution

        (encoded, exponent), = self.encode(name, value).items()
        return encoded, exponent, IntDistribution(self.low.bit_length() - 1, self.high.bit_length() - 1)

    def contains(self, value: Any) -> bool:
        return super().contains(value) and value > 0 and value & (value - 1) == 0

    def unit(self, value: Any) -> list[float]:
        """As :meth:`FloatRange.unit`, on the exponent."""
        if value is None:
            return [0.5]
        return [(math.log2(value) - math.log2(self.low)) / (math.log2(self.high) - math.log2(self.low))]

    def neps(self, name: str, prior: dict[str, Any]) -> dict[str, Any]:
        """As :meth:`FloatRange.neps`: the exponent, an integer range under ``<key>_log2``."""
        encoded = self.encoded(name)
        return {"name": encoded, "kind": "int", "low": self.low.bit_length() - 1,
                "high": self.high.bit_length() - 1, "log": False, "prior": prior.get(encoded)}

    def from_neps(self, name: str, sampled: dict[str, Any]) -> dict[str, Any]:
        """As :meth:`FloatRange.from_neps`: the exponent, under ``<key>_log2``."""
        return super().from_neps(self.encoded(name), sampled)

    def describe(self) -> str:
        return f"powers of two [{self.low}, {self.high}] (searched as the integer log2)"

    def to_json(self) -> dict[str, Any]:
        return {"type": "power_of_two", "low": self.low, "high": self.high, "searched_as": "integer log2"}


@dataclass(frozen=True)
class Categorical:
    values: tuple[Any, ...]
    kind = None

    def __post_init__(self) -> None:
        if not self.values:
            raise DomainError("choice: needs at least one value; got [].")
        if len(set(map(repr, self.values))) < len(self.values):
            raise DomainError(f"choice: values must differ; got {list(self.values)}.")

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.values))

    def sampled(self, name: str, value: Any) -> tuple[str, Any, Any]:
        """As :meth:`FloatRange.sampled`."""
        from optuna.distributions import CategoricalDistribution

        return name, value, CategoricalDistribution(list(self.values))

    def contains(self, value: Any) -> bool:
        return any(value == v and type(value) is type(v) for v in self.values)

    encode = FloatRange.encode

    def unit(self, value: Any) -> list[float]:
        """One coordinate per choice: 1 for ``value``'s, 0 for the others (all 0 where the key is unset)."""
        return [1.0 if value is not None and value == v else 0.0 for v in self.values]

    def neps(self, name: str, prior: dict[str, Any]) -> dict[str, Any]:
        """As :meth:`FloatRange.neps`: a choice's index, so that NePS never sees a choice's value."""
        value = prior.get(name)
        index = None if value is None else [repr(v) for v in self.values].index(repr(value))
        return {"name": name, "kind": "index", "low": 0, "high": len(self.values) - 1, "log": False, "prior": index}

    def from_neps(self, name: str, sampled: dict[str, Any]) -> dict[str, Any]:
        """As :meth:`FloatRange.from_neps`: the choice at NePS's index."""
        return {name: self.values[int(sampled[name])]}

    def describe(self) -> str:
        return f"choice {list(self.values)}"

    def to_json(self) -> dict[str, Any]:
        return {"type": "choice", "values": list(self.values)}


Domain = FloatRange | IntRange | Categorical


class DomainError(UserError):
    """A range that cannot be searched (``low >= high``, a log range from 0, an empty choice)."""


def _is_number(value: Any, kinds: tuple[type, ...]) -> bool:
    return isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)


def _check_bounds(domain: Any, what: str, kinds: tuple[type, ...]) -> None:
    """Optuna's rules, checked when the range is written rather than when a trial first samples it."""
    for bound in (domain.low, domain.high):
        if not _is_number(bound, kinds):
            kind = "an int" if kinds == (int,) else "a finite number"
            raise DomainError(f"{what}: bounds must be {kind}; got (low={domain.low!r}, high={domain.high!r}).")
    if not domain.low < domain.high:
        raise DomainError(f"{what}: low < high must hold, but got (low={domain.low}, high={domain.high}).")
    if domain.log and domain.low <= 0:
        raise DomainError(f"{what}: a log range needs low > 0; got low={domain.low}.")


@dataclass(frozen=True)
class When:
    """``domain``, searched only in trials where the searched key ``key`` takes one of ``values``."""

    key: str
    values: tuple[Any, ...]
    domain: Domain

    def encode(self, name: str, value: Any) -> dict[str, Any]:
        return self.domain.encode(name, value)

    def unit(self, value: Any) -> list[float]:
        """Whether the key is set (0 or 1), then its domain's coordinates."""
        return [0.0 if value is None else 1.0, *self.domain.unit(value)]

    def neps(self, name: str, prior: dict[str, Any]) -> dict[str, Any]:
        return self.domain.neps(name, prior)

    def from_neps(self, name: str, sampled: dict[str, Any]) -> dict[str, Any]:
        return self.domain.from_neps(name, sampled)

    def describe(self) -> str:
        shown = self.values[0] if len(self.values) == 1 else list(self.values)
        return f"{self.domain.describe()} when {self.key} = {shown!r}"

    def to_json(self) -> dict[str, Any]:
        return {**self.domain.to_json(), "when": {"key": self.key, "values": list(self.values)}}


def uniform(low: float, high: float, step: float | None = None) -> FloatRange:
    return FloatRange(low, high, step=step)


def loguniform(low: float, high: float) -> FloatRange:
    return FloatRange(low, high, log=True)


def integers(low: int, high: int, log: bool = False) -> IntRange:
    """Integers from ``low`` to ``high``, both included."""
    return IntRange(low, high, log)


def powers_of_two(low: int, high: int) -> PowerOfTwoRange:
    """Powers of two from ``low`` to ``high`` (both powers of two, both included), ordered."""
    return PowerOfTwoRange(low, high)


def choice(values: Sequence[Any]) -> Categorical:
    return Categorical(tuple(values))


def when(key: str, values: Sequence[Any], domain: Domain) -> When:
    return When(key, tuple(values), domain)


def domain_from_json(obj: dict[str, Any]) -> Domain | When:
    """The domain that :meth:`to_json` wrote (``space.json`` of a search), checked like a new one."""
    try:
        return _from_json(dict(obj))
    except (KeyError, TypeError) as exc:
        raise DomainError(f"a saved domain lacks {exc}: {obj!r}; was the space.json edited by hand?") from None


def _from_json(obj: dict[str, Any]) -> Domain | When:
    condition = obj.pop("when", None)
    kind = obj.get("type")
    if kind == "float":
        domain: Domain = FloatRange(obj["low"], obj["high"], log=bool(obj.get("log")), step=obj.get("step"))
    elif kind == "int":
        domain = IntRange(obj["low"], obj["high"], log=bool(obj.get("log")))
    elif kind == "power_of_two":
        domain = PowerOfTwoRange(obj["low"], obj["high"])
    elif kind == "choice":
        domain = Categorical(tuple(obj["values"]))
    else:
        raise DomainError(f"a saved domain must have type float, int, power_of_two or choice; got {kind!r}.")
    return when(condition["key"], condition["values"], domain) if condition else domain
