"""A registered panel's design file: read strictly, refused unless committed, its seeds never used before.

A design (``search/bench/panels/<name>.json``) fixes, before any run, what a panel compares and how it
will be judged (docs/panels.md shows one)::

    {"name": ..., "description": ...,
     "strategies": {NAME: {search option: value, ...}, ...},     # spectune search's options
     "candidates": [NAME, ...], "baselines": [NAME, ...],         # each candidate against each baseline
     "pairs": {KEY: {"space": S, "options": {...}, "budget": {"minutes": M} or {"epochs": E},
                     "seeds": [...], "tie_tolerance": T, "spectune_path": DIR (optional)}},
     "confirm_seeds": [...] (optional: judge each pick on these seeds; [] judges its search score),
     "statistic": "wilcoxon-paired-one-sided", "alpha": 0.05, "correction": "holm",
     "better_pairs_at_least": N,
     "pooled": {"baseline": NAME, "share": 0.7, "interval": "wilson", "above": 0.5} (optional)}

Every key is checked; an unknown key or a bad value is one :class:`DesignError` line naming the file
and the key. Seeds already used for a pair (by another design, by a panel's committed rows, or by the
earlier work listed in ``panels/used_seeds.json``) are refused.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from results.errors import ConfigError, OptionError
from search.options import SEARCH_OPTIONS

PANELS = Path(__file__).resolve().parent / "panels"
USED_SEEDS = "used_seeds.json"
# Where a panel writes its rows (committed) and its searches' working files (not committed), from the repository.
RESULTS = Path("results/panels")
WORK = Path("runs/panels")

STATISTICS = ("wilcoxon-paired-one-sided",)
CORRECTIONS = ("holm",)
INTERVALS = ("wilson", "exact")
# spectune search's options a strategy may set (the rest: the pair's scale, the seed and the budget).
STRATEGY_KEYS = ("trials", "max_epochs", "max_total_epochs", "sampler", "scheduler", "grace_period",
                 "reduction_factor", "startup_trials", "patience", "concurrency", "cpus_per_trial", "gpus_per_trial")
STRATEGY_FLAGS = ("space_start", "no_patience")
# A pair's scale: the budget kind and data options of spectune search.
PAIR_OPTION_KEYS = ("budget", "max_epochs", "points", "tokens", "train_per_class", "train_fraction", "data")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class DesignError(OptionError):
    """A design file that cannot be run as it is: the message names the file and the key."""


@dataclass(frozen=True)
class PanelPair:
    key: str
    space: str
    options: dict[str, Any]
    minutes: float | None
    epochs: int | None
    seeds: tuple[int, ...]
    tie_tolerance: float
    spectune_path: str | None = None


@dataclass(frozen=True)
class Design:
    path: Path
    name: str
    description: str
    strategies: dict[str, dict[str, Any]]
    candidates: tuple[str, ...]
    baselines: tuple[str, ...]
    pairs: dict[str, PanelPair]
    confirm_seeds: tuple[int, ...]
    statistic: str
    alpha: float
    correction: str
    better_pairs_at_least: int
    pooled: dict[str, Any] | None = None


class _Reader:
    """Reads one JSON object's keys, each refused in one line ``<file>: <key path>: <problem>``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> DesignError:
        return DesignError(f"design {self.path}: {key}: {problem}")

    def keys(self, obj: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
        if not isinstance(obj, dict):
            raise self.fail(where, f"must be an object; got {type(obj).__name__}")
        for key in obj:
            if key not in required + optional:
                raise self.fail(f"{where}.{key}".lstrip("."),
                                f"unknown key; the keys are {', '.join(required + optional)}")
        for key in required:
            if key not in obj:
                raise self.fail(f"{where}.{key}".lstrip("."), "missing")
        return obj

    def number(self, value: Any, key: str, low: float, high: float | None = None, whole: bool = False,
               low_open: bool = False) -> Any:
        kind_ok = isinstance(value, int) if whole else isinstance(value, (int, float))
        if isinstance(value, bool) or not kind_ok or value < low or (low_open and value == low) \
                or (high is not None and value > high):
            span = f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'}{']' if high else ')'}"
            raise self.fail(key, f"must be {'an int' if whole else 'a number'} in {span}; got {value!r}")
        return value

    def choice(self, value: Any, key: str, choices: tuple[str, ...] | list[str]) -> str:
        if value not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def seeds(self, value: Any, key: str, at_least: int) -> tuple[int, ...]:
        if not isinstance(value, list) or len(value) < at_least:
            raise self.fail(key, f"must be a list of at least {at_least} seeds; got {value!r}")
        for seed in value:
            self.number(seed, key, 0, whole=True)
        if len(set(value)) != len(value):
            raise self.fail(key, f"repeats a seed: {sorted(s for s in value if value.count(s) > 1)[0]}")
        return tuple(value)


def read_design(path: Path) -> Design:
    """The design at ``path``, every key checked (one :class:`DesignError` line on the first that fails)."""
    path = Path(path)
    r = _Reader(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise DesignError(f"design {path}: no such file; designs live in {PANELS}.") from None
    except json.JSONDecodeError as exc:
        raise DesignError(f"design {path}: not JSON (line {exc.lineno}: {exc.msg}).") from None
    r.keys(raw, "", ("name", "strategies", "candidates", "baselines", "pairs", "statistic", "alpha", "correction",
                     "better_pairs_at_least"), ("description", "confirm_seeds", "pooled"))
    name = raw["name"]
    if not isinstance(name, str) or not NAME.match(name) or name != path.stem:
        raise r.fail("name", f"must be the file's name {path.stem!r} (lower-case letters, digits, - and _); "
                             f"got {name!r}")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise r.fail("description", "must be a string")
    strategies = _strategies(r, raw["strategies"])
    roles = {}
    for role in ("candidates", "baselines"):
        names = raw[role]
        if not isinstance(names, list) or not names:
            raise r.fail(role, f"must be a non-empty list of strategy names; got {names!r}")
        for s in names:
            r.choice(s, role, list(strategies))
        roles[role] = tuple(names)
    both = set(roles["candidates"]) & set(roles["baselines"])
    if both:
        raise r.fail("baselines", f"{sorted(both)[0]!r} is a candidate too; a strategy is one or the other")
    confirm = r.seeds(raw.get("confirm_seeds", []), "confirm_seeds", 0)
    pairs = _pairs(r, raw["pairs"], strategies, confirm)
    statistic = r.choice(raw["statistic"], "statistic", STATISTICS)
    alpha = r.number(raw["alpha"], "alpha", 0, 0.5, low_open=True)
    correction = r.choice(raw["correction"], "correction", CORRECTIONS)
    at_least = r.number(raw["better_pairs_at_least"], "better_pairs_at_least", 0, len(pairs), whole=True)
    pooled = raw.get("pooled")
    if pooled is not None:
        r.keys(pooled, "pooled", ("baseline", "share", "interval", "above"))
        r.choice(pooled["baseline"], "pooled.baseline", roles["baselines"])
        r.number(pooled["share"], "pooled.share", 0, 1, low_open=True)
        r.choice(pooled["interval"], "pooled.interval", INTERVALS)
        r.number(pooled["above"], "pooled.above", 0, 1)
    return Design(path=path, name=name, description=description, strategies=strategies,
                  candidates=roles["candidates"], baselines=roles["baselines"], pairs=pairs, confirm_seeds=confirm,
                  statistic=statistic, alpha=alpha, correction=correction, better_pairs_at_least=at_least,
                  pooled=pooled)


def _option(r: _Reader, key: str, name: str, value: Any) -> None:
    """One spectune search option, by its rule in :data:`search.options.SEARCH_OPTIONS`."""
    try:
        SEARCH_OPTIONS[name].check(name, value, "")
    except ConfigError as exc:
        raise r.fail(key, str(exc).rstrip(".")) from None


def _strategies(r: _Reader, raw: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict) or len(raw) < 2:
        raise r.fail("strategies", "must be an object of at least two named strategies")
    out = {}
    for name, options in raw.items():
        if not NAME.match(name):
            raise r.fail(f"strategies.{name}", "a strategy's name is lower-case letters, digits, - and _")
        r.keys(options, f"strategies.{name}", (), STRATEGY_KEYS + STRATEGY_FLAGS)
        for key, value in options.items():
            if key in STRATEGY_FLAGS:
                if not isinstance(value, bool):
                    raise r.fail(f"strategies.{name}.{key}", f"must be true or false; got {value!r}")
            else:
                _option(r, f"strategies.{name}.{key}", key, value)
        out[name] = dict(options)
    return out


def _pairs(r: _Reader, raw: Any, strategies: dict[str, dict[str, Any]],
           confirm: tuple[int, ...]) -> dict[str, PanelPair]:
    if not isinstance(raw, dict) or not raw:
        raise r.fail("pairs", "must be an object of at least one pair")
    out = {}
    for key, pair in raw.items():
        where = f"pairs.{key}"
        if not NAME.match(key):
            raise r.fail(where, "a pair's key is lower-case letters, digits, - and _")
        r.keys(pair, where, ("space", "options", "budget", "seeds", "tie_tolerance"), ("spectune_path",))
        if not isinstance(pair["space"], str) or not pair["space"]:
            raise r.fail(f"{where}.space", "must name a space")
        options = r.keys(pair["options"], f"{where}.options", (), PAIR_OPTION_KEYS)
        for name, value in options.items():
            if name == "data":
                if not isinstance(value, str):
                    raise r.fail(f"{where}.options.data", "must be a folder, relative to the repository")
            else:
                _option(r, f"{where}.options.{name}", name, value)
        for strategy, given in strategies.items():
            clash = sorted(set(given) & set(options))
            if clash:
                raise r.fail(f"strategies.{strategy}.{clash[0]}", f"is set by pair {key} too; set it in one place")
        budget = r.keys(pair["budget"], f"{where}.budget", (), ("minutes", "epochs"))
        if len(budget) != 1:
            raise r.fail(f"{where}.budget", "must give exactly one of minutes (wall-clock) or epochs")
        minutes = budget.get("minutes")
        epochs = budget.get("epochs")
        if minutes is not None:
            r.number(minutes, f"{where}.budget.minutes", 0, low_open=True)
        if epochs is not None:
            r.number(epochs, f"{where}.budget.epochs", 1, whole=True)
            for strategy, given in strategies.items():
                if "max_total_epochs" in given:
                    raise r.fail(f"strategies.{strategy}.max_total_epochs", f"pair {key}'s budget sets it")
        seeds = r.seeds(pair["seeds"], f"{where}.seeds", 2)
        shared = sorted(set(seeds) & set(confirm))
        if shared:
            raise r.fail(f"{where}.seeds", f"seed {shared[0]} is a confirmation seed too; a pick is judged on seeds "
                                           "its search did not see")
        tie = r.number(pair["tie_tolerance"], f"{where}.tie_tolerance", 0)
        path = pair.get("spectune_path")
        if path is not None and not isinstance(path, str):
            raise r.fail(f"{where}.spectune_path", "must be a folder, relative to the repository")
        out[key] = PanelPair(key=key, space=pair["space"], options=dict(options), minutes=minutes, epochs=epochs,
                             seeds=seeds, tie_tolerance=float(tie), spectune_path=path)
    return out


# --- the registry of seeds used -------------------------------------------------------------------------------


def used_seeds(root: Path, besides: str) -> dict[str, dict[int, str]]:
    """Per pair key (``*``: every pair), the seeds used before, each with where: other designs under
    ``search/bench/panels/``, every panel's rows under ``results/panels/`` but ``besides``'s own, and
    ``used_seeds.json`` (earlier work)."""
    out: dict[str, dict[int, str]] = {}

    def add(pair: str, seed: int, where: str) -> None:
        out.setdefault(pair, {}).setdefault(int(seed), where)

    panels = root / "search" / "bench" / "panels"
    listed = panels / USED_SEEDS
    if listed.is_file():
        for pair, entries in json.loads(listed.read_text()).get("used", {}).items():
            for entry in entries:
                for seed in range(entry["from"], entry["to"] + 1):
                    add(pair, seed, f"{USED_SEEDS}: {entry['by']}")
    for other in sorted(panels.glob("*.json")):
        if other.name == USED_SEEDS or other.stem == besides:
            continue
        raw = json.loads(other.read_text())
        for key, pair in (raw.get("pairs") or {}).items():
            for seed in pair.get("seeds", []):
                add(key, seed, f"design {other.name}")
            for seed in raw.get("confirm_seeds", []):
                add(key, seed, f"design {other.name} (confirmation)")
    for rows in sorted((root / RESULTS).glob("*/rows.csv")):
        if rows.parent.name == besides:
            continue
        frame = pd.read_csv(rows, usecols=["pair", "seed"])
        for pair, seed in zip(frame["pair"], frame["seed"]):
            add(pair, seed, f"the rows of panel {rows.parent.name}")
    return out


def check_fresh_seeds(design: Design, root: Path) -> None:
    """Refuse a design whose search or confirmation seeds were used before for one of its pairs."""
    used = used_seeds(root, design.name)
    for key, pair in design.pairs.items():
        before = {**used.get("*", {}), **used.get(key, {})}
        for seed in (*pair.seeds, *design.confirm_seeds):
            if seed in before:
                raise DesignError(f"design {design.path}: pairs.{key}.seeds: seed {seed} was used before for this "
                                  f"pair ({before[seed]}); a registered panel runs on fresh seeds only.")


# --- the refusal: committed, unchanged ------------------------------------------------------------------------


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=30).stdout


def design_commit(path: Path, root: Path) -> tuple[str, str]:
    """The commit that last changed the design at ``path`` and its commit time (ISO, UTC); refused when the
    file is not committed or differs from its commit."""
    rel = Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    try:
        status = _git(root, "status", "--porcelain", "--", rel)
        sha = _git(root, "log", "-1", "--format=%H %cI", "--", rel).strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise DesignError(f"design {path}: git cannot read it ({exc}); a panel runs from a git checkout.") from None
    if not sha:
        raise DesignError(f"design {path}: not committed; commit the design (git add, git commit) before it runs, "
                          "so that the history shows it came first.")
    if status.strip():
        raise DesignError(f"design {path}: changed since its commit {sha.split()[0][:12]}; commit the change (a "
                          "new design) or restore it (git checkout -- the file) before it runs.")
    commit, when = sha.split()
    return commit, pd.Timestamp(when).tz_convert("UTC").isoformat()
