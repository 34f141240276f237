"""The run options of ``spectune search`` and ``spectune confirm``: one declared table each, checked once.

As the hyperparameters have their tables (:mod:`trainables.hparams`), the run options have theirs:
the CLI takes its choices from them and passes values through unchecked, and :func:`check` is the
one place that refuses a bad value, before any data is read or Ray starts::

    --trials must be an int in the range [1, inf); got 0.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from results.errors import ConfigError, OptionError
from trainables.hparams import Bool, Choice, Float, HParam, Int
from trainables.scaling import SCALING_OPTIONS

if TYPE_CHECKING:   # the CLI imports this module for its tables; spaces pull in torch
    from spaces import Space

SAMPLERS = ("tpe", "random", "nsga2", "prior", "qmc-tpe", "gp", "tune-tpe")
# Trial schedulers (which trials stop early), not the recipe's learning-rate schedules.
TRIAL_SCHEDULERS = ("asha", "fifo", "moasha", "asha-curve", "asha-time")
BUDGETS = ("cpu", "gpu")
DEFAULT_TRIALS = 20
FUSE_AUTO = "auto"
MAX_FUSE = 64   # members per group; past 32 the prototype stopped scaling (issue 37)


@dataclass(frozen=True)
class FuseRule(HParam):
    """``--fuse``: ``auto`` or a whole number of members per group in [1, MAX_FUSE]; the CLI passes text."""

    def describe(self) -> str:
        return f"'{FUSE_AUTO}' or an int in the range [1, {MAX_FUSE}]"

    def check(self, name: str, value: Any, source: str) -> Any:
        if fuse_members(value) is None and str(value) != FUSE_AUTO:
            raise ConfigError(f"{source}: the {name!r} option must be {self.describe()}; got {value!r}.")
        return value


def fuse_members(value: Any) -> int | None:
    """The members per group ``--fuse`` asks for, ``None`` for ``auto`` (or a value :class:`FuseRule` refuses)."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit():
        return None
    k = int(text)
    return k if 1 <= k <= MAX_FUSE else None


SEARCH_OPTIONS: dict[str, HParam] = {
    "trials": Int(None, 1, nullable=True,
                  help="number of trials (default: the budget's times the space's trials_factor, else 20)"),
    "max_epochs": Int(None, 1, nullable=True, help="epoch budget per trial (default: the budget's, else the space's)"),
    "max_total_epochs": Int(None, 1, nullable=True,
                            help="end the search once its trials have trained this many epochs in all (the running "
                                 "ones stop where they are). Default: where the space's trials_factor runs more "
                                 "trials than the budget's, the budget's trials x the epoch budget, what random "
                                 "search spends at most; else none (--trials N: none)"),
    "time_budget": Float(None, 0.0, None, closed="neither", nullable=True,
                         help="end the search after this many minutes of trials (Tune's time budget; the running "
                              "ones stop where they are, the finished results are kept); a resumed search keeps "
                              "the budget it began with, whole again. Default: none"),
    "sampler": Choice("tpe", SAMPLERS, help="Optuna's TPE (multi-objective TPE with several objectives), random "
                                            "search, NSGA-II (its generations fill only with trials that ran "
                                            "their budget: mostly random under early stopping in short searches), "
                                            "prior (draws around the space's starting config, the best trial so "
                                            "far, or uniform; one objective), qmc-tpe (TPE after Sobol start-up "
                                            "trials) or gp (Optuna's GPSampler after the same start-up trials; "
                                            "one objective); docs/replay.md says what each was measured to do"),
    "scheduler": Choice(None, TRIAL_SCHEDULERS, nullable=True,
                        help="ASHA early stopping (on the primary metric), FIFO (every trial runs its budget), or "
                             "MO-ASHA (rungs ranked by Pareto front; several objectives), or asha-curve (ASHA "
                             "ranking each trial by its curve extrapolated to the budget; one objective), or "
                             "asha-time (ASHA whose rungs are a trial's training seconds, not its epochs: a slow "
                             "config is judged by what it gives per second). "
                             "Default: asha, and moasha with several objectives"),
    "grace_period": Int(None, 1, nullable=True, help="ASHA's first rung in epochs (default: the space's, lowered "
                                                      "for short budgets)"),
    "reduction_factor": Int(None, 2, nullable=True, help="ASHA's reduction factor (default: the space's)"),
    "startup_trials": Int(None, 1, nullable=True, help="random trials before TPE, qmc-tpe, gp or nsga2 model the "
                                                      "space (default: the space's, else min(10, trials // 3))"),
    "budget": Choice("cpu", BUDGETS, nullable=True, help="the space's CPU or GPU budget for options left unset"),
    "gpus_per_trial": Float(None, 0.0, 8.0, nullable=True, help="GPU share per trial (default 0.25 with GPUs)"),
    "cpus_per_trial": Float(None, 0.0, None, closed="neither", nullable=True, help="CPUs per trial"),
    "concurrency": Int(None, 1, nullable=True, help="trials at once (default: as many as fit)"),
    "seed": Int(None, 0, nullable=True, help="sampler and recipe seed (default: the space's fixed seed, else 0)"),
    "patience": Int(None, 1, nullable=True, help="in-trial early stopping (default: the space's fixed value, else 5)"),
    **SCALING_OPTIONS,
    "fuse": FuseRule(str, FUSE_AUTO, help="train K configs of one architecture and batch size as one fused model, "
                                          "each still its own trial (its own ASHA decisions, MLflow run, row and "
                                          "checkpoint); auto (default): fused only where the model fuses and a "
                                          "stored measurement (search/strategy/fusion_rules.json) says it pays on this "
                                          "device; 1: one process per trial"),
    "infra_retries": Int(2, 0, help="retries of a trial whose worker died, whose node was lost or that ran out of "
                                    "memory, from its last checkpoint and outside --trials (default 2)"),
    "stop_after_failures": Int(3, 0, help="stop the search when its first N trials not failed by the machine "
                                          "all fail on their configuration, or N in a row fail on the machine after "
                                          "their retries (default 3; 0: never)"),
    "warm_start": HParam(str, None, nullable=True, help="start TPE from the trials of earlier searches "
                         "(NAME[,NAME...], or SPACE/NAME) that fit this space, even if it changed"),
    "warm_start_clip": Bool(False, help="with --warm-start: carry values outside a narrowed range at the "
                                        "nearest bound instead of leaving their trials out"),
    "warm_start_any_data": Bool(False, help="with --warm-start: carry trials that ran on other data (another "
                                            "fingerprint)"),
}

CONFIRM_OPTIONS: dict[str, HParam] = {
    "top": Int(5, 2, help="configs to re-run (default 5)"),
    "seeds": Int(5, 2, help="new seeds per config (default 5)"),
    "concurrency": SEARCH_OPTIONS["concurrency"],
    "gpus_per_trial": SEARCH_OPTIONS["gpus_per_trial"],
}


def check(table: Mapping[str, HParam], values: Any) -> None:
    """Every option of ``table`` that ``values`` (a dataclass) holds obeys its rule, or one
    :class:`OptionError` in the CLI's words."""
    for key, rule in table.items():
        value = getattr(values, key)
        try:
            rule.check(key, value, "")
        except ConfigError:
            rule_text = rule.describe().removesuffix(" or null")   # null is the flag left out
            raise OptionError(f"--{key.replace('_', '-')} must be {rule_text}; got {value!r}.") from None


@dataclass(frozen=True)
class SearchOptions:
    """Everything ``spectune search`` takes; ``None`` means "the budget's, the space's or the machine's
    default". ``budget`` (``cpu`` or ``gpu``) takes the space's budget for that kind of machine for
    every option left unset. ``patience``: ``None`` keeps the space's value; ``no_patience`` switches
    in-trial early stopping off. ``start`` lists configs to evaluate first, then the space's own
    starting points unless ``space_start`` is off (a pure random-search baseline, say).
    ``time_budget``: minutes of trials, Tune's time budget. ``grace_period``, ``reduction_factor`` and
    ``startup_trials`` override the space's. ``fuse``: members per fused group, ``auto`` or a number
    (see :mod:`search.strategy.fusion`). ``infra_retries`` and ``stop_after_failures``: see
    :mod:`search.running.failures`; ``warm_start`` and its
    two switches: see :mod:`search.strategy.warm_start`. ``objectives`` (``NAME:MODE``) adds objectives to the
    space's and ``choose`` (``NAME<=VALUE``) is the rule that picks a point of the front: see
    :mod:`results.pareto`."""

    space: str
    trials: int | None = None
    max_epochs: int | None = None
    max_total_epochs: int | None = None
    time_budget: float | None = None
    sampler: str = "tpe"
    scheduler: str | None = None
    grace_period: int | None = None
    reduction_factor: int | None = None
    startup_trials: int | None = None
    gpus_per_trial: float | None = None
    cpus_per_trial: float | None = None
    concurrency: int | None = None
    seed: int | None = None
    name: str | None = None
    resume: bool = False
    address: str | None = None
    tracking_uri: str | None = None
    data: Path | None = None
    classes: tuple[str, ...] | None = None
    points: int | None = None
    tokens: int | None = None
    train_per_class: int | None = None
    train_fraction: float | None = None
    budget: str | None = None
    patience: int | None = None
    no_patience: bool = False
    storage: Path = Path("ray_results")
    results_root: Path = Path("results")
    start: tuple[dict[str, Any], ...] = ()
    space_start: bool = True
    base: str | None = None
    fuse: str = FUSE_AUTO
    infra_retries: int = 2
    stop_after_failures: int = 3
    warm_start: str | None = None
    warm_start_clip: bool = False
    warm_start_any_data: bool = False
    objectives: tuple[str, ...] = ()
    choose: tuple[str, ...] = ()

    def recipe_overrides(self) -> dict[str, Any]:
        """Recipe knobs the user set for this run; they beat the space's fixed values."""
        if self.no_patience:
            return {"patience": None}
        return {"patience": self.patience} if self.patience is not None else {}

    def data_options(self, default_dir: Path | None) -> Any:
        """The :class:`results.best_file.DataOptions` these options ask for (``default_dir``: the data
        module's own folder, used when ``data`` is unset)."""
        from results.best_file import DataOptions

        return DataOptions(path=str(self.data or default_dir or ""), classes=list(self.classes) if self.classes else None,
                           points=self.points, tokens=self.tokens, train_per_class=self.train_per_class,
                           train_fraction=self.train_fraction)

    def with_budget(self, space: Space, baseline: bool = False) -> "SearchOptions":
        """Options left unset take the space's ``cpu`` or ``gpu`` budget (``budget``), else the defaults;
        the seed left unset takes the space's fixed seed, else 0. Trials left unset are the default
        search's (:meth:`Space.search_trials`), or with ``baseline`` the budget's own, random search's (what a
        replay compares against)."""
        from spaces import Budget

        budget = getattr(space, self.budget) if self.budget else Budget(trials=DEFAULT_TRIALS)
        pick = (lambda mine, theirs: mine if mine is not None else theirs)
        seed = pick(self.seed, space.fixed.get("seed", 0))
        trials = pick(self.trials, budget.trials if baseline else space.search_trials(budget))
        max_epochs = pick(self.max_epochs, budget.max_epochs)
        factored = self.trials is None and not baseline and space.trials_factor > 1
        cap = pick(self.max_total_epochs, budget.trials * (max_epochs or space.max_epochs) if factored else None)
        return replace(self, trials=trials, seed=seed, max_epochs=max_epochs, max_total_epochs=cap,
                       **{k: pick(getattr(self, k), getattr(budget, k))
                          for k in ("points", "tokens", "train_per_class", "train_fraction")})


@dataclass(frozen=True)
class ConfirmOptions:
    """Everything ``spectune confirm`` takes."""

    space: str
    name: str | None = None
    top: int = 5
    seeds: int = 5
    data: Path | None = None
    tracking_uri: str | None = None
    concurrency: int | None = None
    gpus_per_trial: float | None = None
    address: str | None = None
    storage: Path = Path("ray_results")
    results_root: Path = Path("results")


def read_start_configs(path: Path) -> tuple[dict[str, Any], ...]:
    """``--start``: a JSON list of configs (a single object is one config); keys are checked
    against the space with the other options, before Ray starts."""
    from results.files import read_json

    configs = read_json(path, "--start file")
    configs = [configs] if isinstance(configs, dict) else configs
    if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
        raise OptionError(f"--start file {path} must hold a JSON list of objects, one per config, e.g. "
                          '[{"lr": 0.0001, "batch_size": 128, ...}].')
    return tuple(configs)


def check_configs(space: Space, configs: tuple[dict[str, Any], ...] | list[dict[str, Any]] | Mapping[Any, Any],
                  what: str, in_ranges: bool = False) -> None:
    """Each config gives exactly the searched keys that apply to it, with valid values; with ``in_ranges``, each
    value inside the space's range too (a config read from a received file: the space, not the file, bounds
    what is trained). ``configs``: a list (named ``what`` and its index) or a mapping (``what`` and its key)."""
    from spaces import When, active_keys

    for i, point in configs.items() if isinstance(configs, Mapping) else enumerate(configs):
        need = active_keys(space.params, point)
        if set(point) != need:
            raise OptionError(f"{what} {i} must give exactly the searched keys {sorted(need)}; got {sorted(point)}.")
        space.pair.resolve({**space.fixed, **point}, source=f"{what} {i}", soft=tuple(space.fixed))
        for key, value in point.items() if in_ranges else ():
            domain = space.params[key].domain if isinstance(space.params[key], When) else space.params[key]
            if not domain.contains(value):
                raise ConfigError(f"{what} {i}: {key}={reprlib.repr(value)} lies outside the space's "
                                  f"{domain.describe()}.")

