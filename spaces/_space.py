"""What a search-space module declares, and the checks it must pass when it is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ray.tune.search.sample import Categorical, Domain, Float, Integer

from trainables.config import ConfigError, Recipe, check_hyperparameter
from trainables.registry import get_trainable

# Metrics the shared recipe reports every epoch that a space may optimise.
METRICS = ("val_macro_f1", "val_acc", "val_top3_acc", "val_loss")


class SpaceError(ValueError):
    """A space module that breaks a rule; the message names the module and the key."""


@dataclass(frozen=True)
class Space:
    """A search space over one trainable's hyperparameters.

    ``params`` maps hyperparameter names to Ray Tune domains (``tune.loguniform``, ``tune.randint``,
    ``tune.choice`` ...). ``fixed`` overrides recipe defaults without searching them. ``start``
    lists known-good configs (over the keys of ``params``) that are evaluated first.
    ``grace_period`` is ASHA's first rung: put it after warm-up plus the first cosine cycle, or
    trials are judged while their learning rate is still climbing.
    """

    trainable: str
    params: dict[str, Domain]
    description: str = ""
    fixed: dict[str, Any] = field(default_factory=dict)
    start: list[dict[str, Any]] = field(default_factory=list)
    metric: str = "val_macro_f1"
    mode: str = "max"
    max_epochs: int = 60
    grace_period: int = 15
    reduction_factor: int = 3
    name: str = ""

    @property
    def search_metric(self) -> str:
        """What the searcher and scheduler compare: the best value so far, not the last epoch's,
        so a trial is not judged on a cosine restart's dip."""
        return "best_val_macro_f1" if self.metric == "val_macro_f1" else self.metric


def describe_domain(domain: Domain) -> str:
    """A short human-readable form, e.g. ``log-uniform [1e-05, 0.003]``."""
    if isinstance(domain, Categorical):
        return f"choice {list(domain.categories)}"
    sampler = type(domain.get_sampler()).__name__
    log = "log-" if "Log" in sampler else ""
    if isinstance(domain, Integer):
        return f"{log}int [{domain.lower}, {domain.upper - 1}]"
    step = getattr(domain.get_sampler(), "q", None)
    return f"{log}uniform [{domain.lower:g}, {domain.upper:g}]" + (f" step {step:g}" if step else "")


def validate_space(space: Space, module: str) -> None:
    """Raise :class:`SpaceError` naming ``module`` and the offending key for any broken rule."""
    where = f"spaces/{module}.py"
    try:
        pair = get_trainable(space.trainable)
    except KeyError as exc:
        raise SpaceError(f"{where}: trainable: {exc.args[0]}") from None
    if not space.params:
        raise SpaceError(f"{where}: params: a space must search at least one hyperparameter.")
    for key, value in space.fixed.items():
        _check_key(where, "fixed", key, pair.hyperparameters)
        if key in space.params:
            raise SpaceError(f"{where}: fixed[{key!r}]: {key!r} is also searched in params; keep it in one place.")
        _check_value(where, f"fixed[{key!r}]", key, value)
    for key, domain in space.params.items():
        _check_key(where, "params", key, pair.hyperparameters)
        _check_domain(where, key, domain, space.fixed)
    for i, point in enumerate(space.start):
        missing, extra = set(space.params) - set(point), set(point) - set(space.params)
        if missing or extra:
            raise SpaceError(f"{where}: start[{i}]: a starting point must give exactly the searched keys; "
                             f"missing {sorted(missing)}, not searched {sorted(extra)}.")
        for key, value in point.items():
            _check_in_domain(where, i, key, value, space.params[key])
        _check_recipe(where, f"start[{i}]", {**space.fixed, **point})
    if space.metric not in METRICS:
        raise SpaceError(f"{where}: metric: must be one of {list(METRICS)}; got {space.metric!r}.")
    if space.mode not in ("max", "min"):
        raise SpaceError(f"{where}: mode: must be 'max' or 'min'; got {space.mode!r}.")
    for key in ("max_epochs", "grace_period", "reduction_factor"):
        value = getattr(space, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < (2 if key == "reduction_factor" else 1):
            raise SpaceError(f"{where}: {key}: must be an int >= {2 if key == 'reduction_factor' else 1}; got {value!r}.")
    if space.grace_period > space.max_epochs:
        raise SpaceError(f"{where}: grace_period: must not exceed max_epochs ({space.max_epochs}); "
                         f"got {space.grace_period}.")


def _check_key(where: str, section: str, key: str, allowed: tuple[str, ...]) -> None:
    if key not in allowed:
        raise SpaceError(f"{where}: {section}[{key!r}]: unknown hyperparameter for this trainable; "
                         f"valid names are {list(allowed)}.")


def _check_value(where: str, label: str, key: str, value: Any) -> None:
    try:
        check_hyperparameter(key, value, source=f"{where}: {label}")
    except ConfigError as exc:
        raise SpaceError(str(exc)) from None


def _check_recipe(where: str, label: str, values: dict[str, Any]) -> None:
    # Cross-field rules (eta_min <= lr) hold only for whole configs, so bounds are tried in one.
    try:
        Recipe.from_dict(values, source=f"{where}: {label}")
    except ConfigError as exc:
        raise SpaceError(str(exc)) from None


def _check_domain(where: str, key: str, domain: Any, fixed: dict[str, Any]) -> None:
    label = f"params[{key!r}]"
    if not isinstance(domain, (Float, Integer, Categorical)):
        raise SpaceError(f"{where}: {label}: must be a Ray Tune domain such as tune.loguniform(a, b), "
                         f"tune.randint(a, b) or tune.choice([...]); got {domain!r}.")
    if isinstance(domain, Categorical):
        if not domain.categories:
            raise SpaceError(f"{where}: {label}: tune.choice needs at least one value.")
        for value in domain.categories:
            _check_value(where, label, key, value)
        return
    upper = domain.upper - 1 if isinstance(domain, Integer) else domain.upper
    if not domain.lower < domain.upper:
        raise SpaceError(f"{where}: {label}: lower < upper must hold, but got (lower={domain.lower}, "
                         f"upper={domain.upper}).")
    _check_value(where, f"{label} lower bound", key, domain.lower)
    _check_value(where, f"{label} upper bound", key, upper)
    _check_recipe(where, f"{label} lower bound", {**fixed, key: domain.lower})


def _check_in_domain(where: str, i: int, key: str, value: Any, domain: Domain) -> None:
    label = f"start[{i}][{key!r}]"
    if isinstance(domain, Categorical):
        if value not in domain.categories:
            raise SpaceError(f"{where}: {label}: {value!r} is not one of {list(domain.categories)}.")
        return
    upper = domain.upper - 1 if isinstance(domain, Integer) else domain.upper
    if isinstance(domain, Integer) and not (isinstance(value, int) and not isinstance(value, bool)):
        raise SpaceError(f"{where}: {label}: must be an int; got {value!r}.")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not domain.lower <= value <= upper:
        raise SpaceError(f"{where}: {label}: {value!r} lies outside the searched range "
                         f"[{domain.lower}, {upper}].")
