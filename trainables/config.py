"""The hyperparameters of the shared training recipe, their defaults and their valid ranges.

Defaults are the seed notebook's ``final_config``. Every value that enters the recipe, from a
JSON file, the CLI or a search space, passes through :meth:`Recipe.from_dict`, which checks
names and ranges once, at the boundary, and says which value broke which rule.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

# name -> (type, low, high, low_inclusive, high_inclusive); None means unbounded.
_RULES: dict[str, tuple[type, float | None, float | None, bool, bool]] = {
    "lr": (float, 0.0, 1.0, False, True),
    "weight_decay": (float, 0.0, 1.0, True, True),
    "gamma": (float, 0.0, 10.0, True, True),
    "warmup_epochs": (int, 0, None, True, False),
    "T_0": (int, 1, None, True, False),
    "T_mult": (int, 1, None, True, False),
    "eta_min": (float, 0.0, None, True, False),
    "start_factor": (float, 0.0, 1.0, False, True),
    "batch_size": (int, 1, None, True, False),
    "dropout": (float, 0.0, 1.0, True, False),
    "epochs": (int, 1, None, True, False),
    "patience": (int, 1, None, True, False),
    "seed": (int, 0, None, True, False),
    "max_grad_norm": (float, 0.0, None, False, False),
}


class ConfigError(ValueError):
    """A hyperparameter that is unknown, of the wrong type, or out of range."""


@dataclass(frozen=True)
class Recipe:
    """Hyperparameters of one training run. ``patience=None`` disables early stopping."""

    lr: float = 8e-5
    weight_decay: float = 1e-5
    gamma: float = 2.0            # focal-loss focusing; 0 gives class-weighted cross-entropy
    warmup_epochs: int = 10
    T_0: int = 5
    T_mult: int = 1
    eta_min: float = 1e-5
    start_factor: float = 1e-6
    batch_size: int = 128
    dropout: float = 0.3
    epochs: int = 100
    patience: int | None = 5
    seed: int = 42
    max_grad_norm: float = 1.0

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> "Recipe":
        """Defaults overridden by ``values``; ``None`` values are ignored (unset CLI flags),
        except ``patience``, where null switches early stopping off."""
        unknown = sorted(set(values) - set(cls.keys()))
        if unknown:
            raise ConfigError(f"{source}: unknown hyperparameter(s) {unknown}; "
                              f"valid names are {cls.keys()}.")
        clean = {k: _check(k, v, source) for k, v in values.items() if v is not None or k == "patience"}
        recipe = cls(**{**asdict(cls()), **clean})
        if recipe.eta_min > recipe.lr:
            raise ConfigError(f"{source}: 'eta_min' must not exceed 'lr' (the cosine schedule would "
                              f"raise the rate); got eta_min={recipe.eta_min}, lr={recipe.lr}.")
        return recipe

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(name: str, value: Any, source: str) -> Any:
    kind, low, high, low_in, high_in = _RULES[name]
    if name == "patience" and value is None:
        return None
    if kind is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        ok_type = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok_type else value
    if not ok_type or (kind is float and not math.isfinite(value)):
        raise ConfigError(f"{source}: the {name!r} hyperparameter must be {_describe(name)}; "
                          f"got {value!r}.")
    below = low is not None and (value < low or (value == low and not low_in))
    above = high is not None and (value > high or (value == high and not high_in))
    if below or above:
        raise ConfigError(f"{source}: the {name!r} hyperparameter must be {_describe(name)}; "
                          f"got {value!r}.")
    return value


def _describe(name: str) -> str:
    kind, low, high, low_in, high_in = _RULES[name]
    left = "[" if low_in else "("
    right = "]" if high_in else ")"
    hi = "inf" if high is None else high
    return f"{'an int' if kind is int else 'a float'} in the range {left}{low}, {hi}{right}"


def check_hyperparameter(name: str, value: Any, source: str = "config") -> Any:
    """Validate one value against its rule (used for search-space bounds)."""
    if name not in _RULES:
        raise ConfigError(f"{source}: unknown hyperparameter {name!r}; valid names are {Recipe.keys()}.")
    return _check(name, value, source)
