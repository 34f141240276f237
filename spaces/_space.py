"""What a search-space module declares, and the checks it must pass when it is loaded."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

from spaces._domains import Categorical, FloatRange, IntRange, When
from trainables.data import DataError
from results.errors import UserError
from trainables.hparams import ConfigError, Int
from trainables.pair import Pair
from trainables.recipe import METRICS
from trainables.scaling import SCALING_OPTIONS
from trainables.tasks import check_metric


class SpaceError(UserError):
    """A space module that breaks a rule; the message names the module and the key."""


@dataclass(frozen=True)
class Budget:
    """How much of the space a search covers: trials, epochs per trial and, for small machines, the data
    scaling (``points`` block-averages sequences, ``tokens`` cuts token sequences, ``train_per_class``
    caps the training examples per class, ``train_fraction`` keeps a stratified fraction of them).
    ``None`` keeps the space's or the data's own."""

    trials: int
    max_epochs: int | None = None
    points: int | None = None
    tokens: int | None = None
    train_per_class: int | None = None
    train_fraction: float | None = None

    def describe(self) -> str:
        parts = [f"{self.trials} trials"]
        if self.max_epochs:
            parts.append(f"up to {self.max_epochs} epochs each")
        return ", ".join(parts + self.describe_data())

    def describe_data(self) -> list[str]:
        """The data scaling, one phrase per option set (empty: the data as stored)."""
        parts = []
        if self.points:
            parts.append(f"sequences block-averaged to {self.points} points")
        if self.tokens:
            parts.append(f"texts cut to {self.tokens} tokens")
        if self.train_per_class:
            parts.append(f"at most {self.train_per_class} training examples per class")
        if self.train_fraction:
            parts.append(f"{self.train_fraction:g} of the training examples (stratified)")
        return parts


@dataclass(frozen=True)
class Space:
    """A search space over one pair: a registered ``model`` and ``data`` module, with the recipe.

    ``params`` maps knob names (of the recipe, the model or the data module) to domains
    (``loguniform``, ``uniform``, ``integers``, ``choice``, ``when``). ``fixed`` overrides defaults
    without searching them (for a ``when`` key, in the trials where it is not searched). ``start`` lists known-good configs (over the keys of ``params``) that are
    evaluated first; the first is also what ``spectune train --space`` trains. ``metric`` and
    ``mode`` say what is optimised: one of the data's task's metrics, in the direction it improves
    (``val_macro_f1``/``max`` by default; ``val_rmse``/``min`` for a regression, say). ``objectives``
    adds further objectives as ``(name, mode)`` pairs, such as ``(("trainable_params", "min"),)``: the
    search then returns a Pareto front (:mod:`results.pareto`), stopping trials with MO-ASHA. ``grace_period`` is ASHA's first rung: put it after warm-up
    plus the first cosine cycle, or trials are judged while their learning rate is still climbing.
    ``startup_trials`` is how many random trials TPE runs before it models the space (``None``:
    ``min(10, trials // 3)``, at least 2). ``trials_factor``: the default search runs this many times a
    budget's trials, which stay random search's (the replay's baseline); with ASHA from an early first rung
    most of the extra trials stop after an epoch or three. Choose these four from a replay (``spectune
    replay``), checked live (the lab's ``--live``, :mod:`search.bench.lab`) where the replay cannot judge the
    sampler, and say in ``measured`` what they were measured to do on this pair (one line, the figure that chose them; its command is in
    docs/replay.md); empty: not measured here, the generic rule (``spectune spaces`` says which).
    ``cpu`` and ``gpu`` are the budgets ``make search`` uses on each kind of machine (their epochs at
    most ``max_epochs``, their data scaling by the rules of the search's flags).
    ``gpus_per_trial`` is the share of a GPU one trial needs (``None``: a quarter, so four small
    trials share a GPU; a transformer may ask for 1.0); ``--gpus-per-trial`` overrides it.
    ``description`` and ``measured`` are printed by ``spectune spaces``: one line each, no control
    characters. ``name`` and ``file`` are set by ``get_space``.
    """

    model: str
    data: str
    params: dict[str, Any]
    description: str = ""
    fixed: dict[str, Any] = field(default_factory=dict)
    start: list[dict[str, Any]] = field(default_factory=list)
    metric: str = "val_macro_f1"
    mode: str = "max"
    objectives: tuple[tuple[str, str], ...] = ()
    max_epochs: int = 60
    grace_period: int = 15
    reduction_factor: int = 3
    startup_trials: int | None = None
    trials_factor: int = 1
    measured: str = ""
    cpu: Budget = Budget(trials=18)
    gpu: Budget = Budget(trials=64)
    gpus_per_trial: float | None = None
    name: str = ""
    file: str = ""

    @property
    def where(self) -> str:
        """The space's file as messages name it: a user's path as it is (set by ``get_space``), else
        ``spaces/<name>.py``."""
        return self.file or f"spaces/{self.name}.py"

    @property
    def pair(self) -> Pair:
        return Pair(self.model, self.data)

    @property
    def search_metric(self) -> str:
        """What the searcher and scheduler compare: the best value so far, not the last epoch's,
        so a trial is not judged on a cosine restart's dip."""
        return f"best_{self.metric}"

    def grace_for(self, max_epochs: int) -> int:
        """ASHA's first rung for an epoch budget: the space's grace period, lowered when a cut-down
        budget would leave no room for later rungs."""
        return min(self.grace_period, max(1, max_epochs // self.reduction_factor))

    def search_trials(self, budget: Budget) -> int:
        """The default search's trials on ``budget``: its trials (random search's) times ``trials_factor``."""
        return budget.trials * self.trials_factor

    def first_config(self) -> dict[str, Any]:
        """The space's fixed values and its first starting point: what ``train --space`` starts from."""
        return {**self.fixed, **(self.start[0] if self.start else {})}

    def to_json(self) -> dict[str, Any]:
        """The searched ranges and settings, saved with every search."""
        return {"name": self.name, "model": self.model, "data": self.data, "description": self.description,
                "params": {k: d.to_json() for k, d in self.params.items()}, "fixed": self.fixed,
                "start": self.start, "metric": self.metric, "mode": self.mode,
                "objectives": [list(o) for o in self.objectives], "max_epochs": self.max_epochs,
                "grace_period": self.grace_period, "reduction_factor": self.reduction_factor,
                "startup_trials": self.startup_trials, "trials_factor": self.trials_factor,
                "gpus_per_trial": self.gpus_per_trial}


def describe_domain(domain: Any) -> str:
    """A short human-readable form, e.g. ``log-uniform [1e-05, 0.003]``."""
    return domain.describe()


def active_keys(params: dict[str, Any], point: dict[str, Any]) -> set[str]:
    """The searched keys that a config over ``params`` must give (conditional keys only when they apply)."""
    return {k for k, d in params.items() if not isinstance(d, When) or point.get(d.key) in d.values}


def validate_space(space: Space, module: str, where: str | None = None) -> None:
    """Raise :class:`SpaceError` naming the space's file (``where``: a user's path as it is, default
    ``spaces/<module>.py``) and the offending key for any broken rule."""
    where = where or f"spaces/{module}.py"
    pair = space.pair
    try:
        table = pair.table()
        if pair.data_module.kind not in pair.model_entry.inputs:
            raise ConfigError(f"model {space.model!r} takes {' or '.join(pair.model_entry.inputs)} inputs, but data "
                              f"{space.data!r} gives {pair.data_module.kind} inputs.")
    except (ConfigError, DataError) as exc:
        raise SpaceError(f"{where}: model/data: {exc.args[0]}") from None
    if not space.params:
        raise SpaceError(f"{where}: params: a space must search at least one hyperparameter.")
    for key in space.fixed:
        # A when(...) key may also be fixed: the fixed value holds in trials where it is not searched.
        if key in space.params and not isinstance(space.params[key], When):
            raise SpaceError(f"{where}: fixed[{key!r}]: {key!r} is also searched in params; keep it in one place "
                             "(only a when(...) key may have a fixed value too, used where it is not searched).")
    _resolve(pair, space, {}, f"{where}: fixed")
    searched: list[str] = []
    for key, domain in space.params.items():
        label = f"{where}: params[{key!r}]"
        if key not in table:
            raise SpaceError(f"{label}: unknown hyperparameter for model {space.model!r}, data {space.data!r} and "
                             f"the recipe; valid names are {list(table)}.")
        _check_domain(space, table, searched, key, domain, label)
        searched.append(key)
    for i, point in enumerate(space.start):
        need = active_keys(space.params, point)
        missing, extra = need - set(point), set(point) - need
        if missing or extra:
            raise SpaceError(f"{where}: start[{i}]: a starting point must give exactly the searched keys that "
                             f"apply to it; missing {sorted(missing)}, not searched {sorted(extra)}.")
        for key, value in point.items():
            domain = space.params[key]
            domain = domain.domain if isinstance(domain, When) else domain
            if not domain.contains(value):
                if isinstance(domain, Categorical):
                    raise SpaceError(f"{where}: start[{i}][{key!r}]: {value!r} is not one of {list(domain.values)}.")
                raise SpaceError(f"{where}: start[{i}][{key!r}]: {value!r} lies outside the searched range "
                                 f"[{domain.low}, {domain.high}]" + (" (an int is needed)." if isinstance(domain, IntRange)
                                                                      else "."))
        _resolve(pair, space, point, f"{where}: start[{i}]")
    if space.metric not in METRICS:
        raise SpaceError(f"{where}: metric: must be one of {list(METRICS)}; got {space.metric!r}.")
    if space.mode not in ("max", "min"):
        raise SpaceError(f"{where}: mode: must be 'max' or 'min'; got {space.mode!r}.")
    try:
        check_metric(pair.task, space.metric, space.mode, where, space.data)
    except ConfigError as exc:
        raise SpaceError(str(exc)) from None
    _check_objectives(space, where)
    for key in ("max_epochs", "grace_period", "reduction_factor", "trials_factor"):
        value, low = getattr(space, key), 2 if key == "reduction_factor" else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise SpaceError(f"{where}: {key}: must be an int >= {low}; got {value!r}.")
    if space.startup_trials is not None and not (isinstance(space.startup_trials, int)
                                                 and not isinstance(space.startup_trials, bool)
                                                 and space.startup_trials >= 1):
        raise SpaceError(f"{where}: startup_trials: must be an int >= 1 or None; got {space.startup_trials!r}.")
    if space.gpus_per_trial is not None and not (isinstance(space.gpus_per_trial, (int, float))
                                                 and 0 < space.gpus_per_trial <= 8):
        raise SpaceError(f"{where}: gpus_per_trial: must be a number in (0, 8] or None; got {space.gpus_per_trial!r}.")
    if "epochs" in space.fixed and space.fixed["epochs"] != space.max_epochs:
        raise SpaceError(f"{where}: fixed['epochs']: the epoch budget is max_epochs ({space.max_epochs}); got "
                         f"{space.fixed['epochs']}. Drop 'epochs' from fixed or make the two agree.")
    if space.grace_period > space.max_epochs:
        raise SpaceError(f"{where}: grace_period: must not exceed max_epochs ({space.max_epochs}); "
                         f"got {space.grace_period}.")
    for kind in ("cpu", "gpu"):
        _check_budget(space, kind, where)
    for key in ("description", "measured"):
        _check_line(getattr(space, key), f"{where}: {key}")


def _check_budget(space: Space, kind: str, where: str) -> None:
    """Each field of the ``cpu`` or ``gpu`` budget by its rule (the data scaling by the rules the search's
    flags obey), so that a search never refuses it later in the words of a flag the user did not give."""
    budget = getattr(space, kind)
    if not isinstance(budget, Budget):
        raise SpaceError(f"{where}: {kind}: must be a Budget(trials=N, ...); got {budget!r}.")
    # A budget cuts the space's epochs for a smaller machine; it never trains longer than the space's own.
    rules = {"trials": Int(None, 1), "max_epochs": Int(None, 1, space.max_epochs, nullable=True), **SCALING_OPTIONS}
    for key, rule in rules.items():
        value = getattr(budget, key)
        try:
            rule.check(key, value, where)
        except ConfigError:
            bound = " (at most the space's max_epochs)" if key == "max_epochs" else ""
            raise SpaceError(f"{where}: {kind}.{key}: must be {rule.describe()}{bound}; got {value!r}.") from None


def _check_line(text: Any, label: str) -> None:
    """Text that ``spectune spaces`` prints: one line, without control characters (a newline, an ANSI escape)."""
    if not isinstance(text, str):
        raise SpaceError(f"{label}: must be a string; got {type(text).__name__}.")
    bad = next((c for c in text if not c.isprintable() and unicodedata.category(c) != "Zs"), None)
    if bad is not None:
        raise SpaceError(f"{label}: must be one line of printable text; it holds {bad!r} at character "
                         f"{text.index(bad)}.")


def _check_objectives(space: Space, where: str) -> None:
    from results.pareto import check_objective

    if not isinstance(space.objectives, tuple) or not all(isinstance(o, tuple) and len(o) == 2
                                                          for o in space.objectives):
        raise SpaceError(f"{where}: objectives: must be a tuple of (name, mode) pairs, e.g. "
                         f"(('trainable_params', 'min'),); got {space.objectives!r}.")
    names = [name for name, _ in space.objectives]
    if len(set(names)) != len(names):
        raise SpaceError(f"{where}: objectives: {names} names an objective twice.")
    for name, mode in space.objectives:
        try:
            check_objective(name, mode, space.metric, f"{where}: objectives")
        except UserError as exc:
            raise SpaceError(str(exc)) from None


def _resolve(pair: Pair, space: Space, values: dict[str, Any], label: str) -> None:
    try:
        pair.resolve({**space.fixed, **values}, source=label, soft=tuple(space.fixed))
    except ConfigError as exc:
        raise SpaceError(str(exc)) from None


def _check_domain(space: Space, table: dict, searched: list[str], key: str, domain: Any, label: str) -> None:
    condition: dict[str, Any] = {}
    if isinstance(domain, When):
        if domain.key not in searched:
            raise SpaceError(f"{label}: when({domain.key!r}, ...) needs {domain.key!r} searched before {key!r} "
                             "in params.")
        parent = space.params[domain.key]
        for v in domain.values:
            if not (parent.domain if isinstance(parent, When) else parent).contains(v):
                raise SpaceError(f"{label}: when({domain.key!r}, {list(domain.values)}): {v!r} is not a value "
                                 f"{domain.key!r} can take.")
        condition = {domain.key: domain.values[0]}
        domain = domain.domain
    if not isinstance(domain, (FloatRange, IntRange, Categorical)):
        raise SpaceError(f"{label}: must be a spectune domain such as loguniform(a, b), uniform(a, b), "
                         f"integers(a, b) or choice([...]) from spaces; got {domain!r}.")
    rule = table[key]
    if rule.when is not None and rule.when[0] in space.params:
        cond, allowed = rule.when
        wrapper = space.params[key]
        if not (isinstance(wrapper, When) and wrapper.key == cond and set(wrapper.values) <= set(allowed)):
            raise SpaceError(f"{label}: {key!r} applies only when {cond!r} is one of {list(allowed)}, and {cond!r} "
                             f"is searched: declare it as when({cond!r}, {list(allowed)}, ...).")
    if isinstance(domain, Categorical):
        for value in domain.values:
            _resolve(space.pair, space, {**condition, key: value}, label)
        return
    if domain.kind is float and rule.kind is not float:
        raise SpaceError(f"{label}: {key!r} is {rule.describe()}; search it with integers(a, b) or choice([...]).")
    if rule.kind in (bool, str):
        raise SpaceError(f"{label}: {key!r} is {rule.describe()}; search it with choice([...]).")
    _resolve(space.pair, space, {**condition, key: domain.low}, f"{label} lower bound")
    _resolve(space.pair, space, {**condition, key: domain.high}, f"{label} upper bound")
