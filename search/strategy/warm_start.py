"""``spectune search --warm-start NAME[,NAME...]``: start TPE from earlier searches' trials, even when the
space changed since.

Ray's ``points_to_evaluate`` + ``evaluated_rewards`` refuse points whose keys differ from the space
(ray#18847) and Optuna refuses a study whose choices changed (optuna#2328). Here each earlier trial
is rewritten in the *new* space's terms (its keys, its values, its distributions, only the keys
active in that config) and added to the new search's Optuna study as a finished trial, before the
first suggestion. A trial is carried only when it describes a config the new search could run:

- a value outside a narrowed range is left out, or moved to the nearest bound with ``clip``;
- a value inside the range that the new space does not offer (off a float range's new step, not a
  power of two) is left out, even with ``clip``;
- a removed choice leaves its trials out;
- a dropped key (or a changed fixed value) keeps the trials that ran at the new search's value;
- a new key takes the value the earlier search ran with (its fixed value, else the default),
  when that value lies inside the new range;
- a failed trial, or one that reported no epoch, is left out; a trial the scheduler stopped is
  carried as PRUNED at the epoch it reached, as a live one is told;
- a damaged row is left out, saying why: the last row of a ``trials.csv`` cut mid-line, a searched
  value missing where it applied (never replaced by a default the trial did not run), a text cell
  where a number belongs (each cell read on its own, so one bad cell costs only its row), a value
  or score that is not finite, and, with ``clip``, a value outside the earlier search's own range.

Searches of another model, data set, metric or mode are refused, and so are those of other data
(another fingerprint) unless ``any_data``; a damaged ``best.json``, ``space.json`` or ``trials.csv``
is one line. Nothing here starts Ray; the functions on rows and spaces are pure.
"""

from __future__ import annotations

import io
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from results.export import RESULTS_DIR, check_name
from spaces import Categorical, FloatRange, IntRange, Space, When, domain_from_json
from spaces._diff import diff_spaces, same_value
from results.errors import UserError

# Run settings a command line may change between searches: reported by the diff, never a reason to
# leave a trial out.
RUN_KEYS = ("epochs", "seed", "patience")
_MISSING = object()


class WarmStartError(UserError):
    """An earlier search that cannot warm-start this one; the message names it and the fix."""


@dataclass(frozen=True)
class Side:
    """One space as the trials see it: its searched domains and the value of every key it does not
    search (its fixed value, else the default)."""

    params: dict[str, Any]
    constants: dict[str, Any]


@dataclass(frozen=True)
class EarlierSearch:
    """A finished search read back from ``results/<space>/<name>/``."""

    name: str
    folder: Path
    space: dict[str, Any]
    best: dict[str, Any]
    rows: list[dict[str, Any]]
    cut_last: bool = False       # trials.csv ended mid-line: its last row lost the values after the cut

    @property
    def params(self) -> dict[str, Any]:
        return {k: domain_from_json(v) for k, v in self.space.get("params", {}).items()}

    def side(self, defaults: Mapping[str, Any]) -> Side:
        """Its keys and constants: a key it did not search ran at the value its best config records."""
        params = self.params
        config = {k: v for k, v in (self.best.get("config") or {}).items() if k not in params}
        return Side(params, {**defaults, **config, **self.space.get("fixed", {})})

    @property
    def epochs(self) -> int | None:
        return (self.best.get("config") or {}).get("epochs")


@dataclass(frozen=True)
class Carried:
    """One earlier trial as the new search sees it: ``params`` over the new space's active keys."""

    source: str
    trial_id: str
    params: dict[str, Any]
    value: float
    pruned: bool
    epochs: int
    clipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class WarmStartPlan:
    """What a warm start gives the new searcher, and why the rest was left out."""

    searches: tuple[str, ...]
    changes: dict[str, list[str]]
    carried: tuple[Carried, ...]
    left_out: dict[str, Counter] = field(default_factory=dict)
    offered: dict[str, int] = field(default_factory=dict)
    clip: bool = False

    def describe(self, startup: int | None) -> list[str]:
        """The printed plan: per earlier search, what changed and what was carried; then what the
        carried trials do to TPE's random start-up (``startup``; ``None``: random search)."""
        lines = []
        for name in self.searches:
            mine = [c for c in self.carried if c.source == name]
            pruned, clipped = sum(c.pruned for c in mine), sum(bool(c.clipped) for c in mine)
            lines.append(f"warm start from {name}: " + ("; ".join(self.changes[name]) if self.changes[name]
                                                          else "the same space"))
            why = ", ".join(f"{n} {reason}" for reason, n in self.left_out[name].most_common())
            lines.append(f"    carried {len(mine)} of {self.offered[name]} trials ({len(mine) - pruned} completed, "
                         f"{pruned} stopped early as pruned" + (f", {clipped} clipped to the new bounds"
                                                                if clipped else "") + ")"
                         + (f"; not carried: {why}" if why else ""))
        if any(("outside the new range" in r) for c in self.left_out.values() for r in c) and not self.clip:
            lines.append("    (--warm-start-clip carries values outside a narrowed range at the nearest bound)")
        n = len(self.carried)
        if startup is None:
            lines.append(f"    random search does not learn from the {n} carried trials; they are in its study only")
        elif n >= startup:
            lines.append(f"    TPE counts the {n} carried trials toward its {startup} random start-up trials: it "
                         "models the space from the first new trial")
        else:
            lines.append(f"    TPE counts the {n} carried trials toward its {startup} random start-up trials: "
                         f"{startup - n} random trials remain")
        return lines

    def record(self) -> dict[str, Any]:
        """What ``best.json`` keeps under ``warm_start``."""
        return {"searches": list(self.searches), "carried": len(self.carried), "clip": self.clip,
                "per_search": {name: {"offered": self.offered[name],
                                      "carried": sum(c.source == name for c in self.carried),
                                      "clipped": sum(bool(c.clipped) for c in self.carried if c.source == name),
                                      "not_carried": dict(self.left_out[name])} for name in self.searches}}

    def params(self) -> dict[str, Any]:
        """The MLflow params of the search's parent run."""
        return {"warm_start": ",".join(self.searches), "warm_start_carried": len(self.carried)}

    def frozen_trials(self, params: dict[str, Any]) -> list[FrozenTrial]:
        """The carried trials as Optuna trials over the new space's distributions (``params``)."""
        out = []
        for c in self.carried:
            values, dists = optuna_params(params, c.params)
            out.append(create_trial(params=values, distributions=dists, value=c.value,
                                    state=TrialState.PRUNED if c.pruned else TrialState.COMPLETE,
                                    intermediate_values={c.epochs: c.value} if c.pruned else None,
                                    user_attrs={"warm_start": c.source, "warm_start_trial": c.trial_id}))
        return out

    def not_run(self, start: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The starting points that no carried trial already ran."""
        return [p for p in start if not any(_same_config(p, c.params) for c in self.carried)]


def parse_names(text: str) -> tuple[str, ...]:
    """``NAME[,NAME...]`` (each ``NAME`` or ``SPACE/NAME``), each once."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise WarmStartError(f"--warm-start needs one or more earlier search names, comma-separated; got {text!r}.")
    if len(set(names)) < len(names):
        raise WarmStartError(f"--warm-start names a search twice: {text!r}; give each once.")
    return names


def find_search(ref: str, space: str, root: Path = RESULTS_DIR) -> Path:
    """The folder of the finished search ``ref`` (``NAME``: this space's first, else any space's;
    ``SPACE/NAME``), or a one-line error listing the searches found. Each part must be a name a search
    could have (:func:`check_name`): ``..`` or a deeper path would read outside ``root``."""
    parts = [check_name(part, "--warm-start") for part in ref.split("/", 1)]
    if len(parts) == 2:
        candidates = [root / parts[0] / parts[1]]
    else:
        own = root / space / ref
        candidates = [own] if (own / "best.json").is_file() else sorted(root.glob(f"*/{ref}"))
    found = [c for c in candidates if (c / "best.json").is_file()]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise WarmStartError(f"--warm-start {ref}: searches of that name exist for several spaces "
                             f"({', '.join(p.parent.name for p in found)}); give SPACE/NAME.")
    known = [p.parent.name for p in sorted((root / space).glob("*/best.json"))]
    others = [f"{p.parent.parent.name}/{p.parent.name}" for p in sorted(root.glob("*/*/best.json"))
              if p.parent.parent.name != space]
    listed = known + others
    shown = ", ".join(listed[:20]) + (f" and {len(listed) - 20} more" if len(listed) > 20 else "")
    raise WarmStartError(f"--warm-start {ref}: no finished search of that name under {root}/ (found: "
                         f"{shown or 'none'}); give one of these, as NAME or SPACE/NAME.")


def read_search(folder: Path) -> EarlierSearch:
    """A finished search's ``best.json``, ``space.json`` and ``trials.csv``, or a one-line error naming
    the damaged file."""
    name = folder.name
    if not (folder / "space.json").is_file() or not (folder / "trials.csv").is_file():
        raise WarmStartError(f"--warm-start {name}: {folder} lacks space.json or trials.csv (a search from before "
                             "they were written); warm-start from a newer search.")
    space, best = _read_object(name, folder / "space.json"), _read_object(name, folder / "best.json")
    for record, key in ((best, "config"), (best, "data_options"), (space, "params"), (space, "fixed")):
        if record.get(key) is not None and not isinstance(record[key], dict):
            path = folder / ("best.json" if record is best else "space.json")
            raise _damaged(name, path, f": {key!r} is {type(record[key]).__name__}, not an object")
    rows, cut = _read_rows(name, folder / "trials.csv")
    return EarlierSearch(name, folder, space, best, rows, cut)


def _damaged(name: str, path: Path, what: str) -> WarmStartError:
    return WarmStartError(f"--warm-start {name}: {path.name} ({path}){what}; warm-start from another search, or "
                          "start this one without --warm-start.")


def _read_object(name: str, path: Path) -> dict[str, Any]:
    """A JSON object written by a search (best.json, space.json)."""
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise _damaged(name, path, " is not a text JSON file (binary content)") from None
    except json.JSONDecodeError as exc:
        raise _damaged(name, path, f" is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise _damaged(name, path, f" holds a {type(value).__name__}, not the object a search writes")
    return value


def _read_rows(name: str, path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The rows of ``trials.csv`` and whether its last line was cut (a search writes a line end after
    every row)."""
    import pandas as pd

    raw = path.read_bytes()
    if not raw.strip():
        raise _damaged(name, path, " is empty (not even a header)")
    try:
        text = raw.decode("utf-8")
        rows = pd.read_csv(io.StringIO(text)).to_dict("records")
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise _damaged(name, path, f" is not a CSV file a search writes ({str(exc).splitlines()[0]})") from None
    return rows, bool(rows) and not text.endswith(("\n", "\r"))


def check_earlier(earlier: EarlierSearch, space: Space) -> None:
    """Refuse a search of another model, data set, metric or mode, or one that shares no searched key with
    ``space``."""
    ran = earlier.space.get("model"), earlier.space.get("data")
    if None not in ran and ran != (space.model, space.data):
        # Without a data fingerprint (an older best.json) nothing else would tell another pair's scores apart.
        raise WarmStartError(f"--warm-start {earlier.name}: it searched model {ran[0]} on data {ran[1]} and space "
                             f"{space.name} trains model {space.model} on data {space.data}; warm-start only from a "
                             "search of the same model and data.")
    metric, mode = earlier.best.get("metric", earlier.space.get("metric")), earlier.best.get("mode")
    if (metric, mode) != (space.metric, space.mode):
        raise WarmStartError(f"--warm-start {earlier.name}: it optimised {metric} ({mode}) and space {space.name} "
                             f"optimises {space.metric} ({space.mode}); warm-start only from a search of the same "
                             "metric and mode.")
    shared = set(earlier.params) & set(space.params)
    if not shared:
        raise WarmStartError(f"--warm-start {earlier.name}: space {earlier.space.get('name')} searched "
                             f"{sorted(earlier.params)}, which shares no key with space {space.name} "
                             f"({sorted(space.params)}); warm-start from a search of a related space.")


def load_earlier(text: str, space: Space, root: Path = RESULTS_DIR, resume: bool = False) -> list[EarlierSearch]:
    """The searches ``--warm-start`` names, found, read and checked (before any data is read)."""
    if resume:
        raise WarmStartError("--warm-start with --resume: a resumed search keeps the trials it was warm-started "
                             "with; drop --warm-start.")
    out = [read_search(find_search(ref, space.name, root)) for ref in parse_names(text)]
    for earlier in out:
        check_earlier(earlier, space)
    return out


def data_change(recorded: Mapping[str, Any], fingerprint: str, scaling: Mapping[str, Any]) -> str | None:
    """The data difference in words when the earlier search ran on other data, else ``None``."""
    if not recorded.get("fingerprint") or recorded["fingerprint"] == fingerprint:
        return None
    moved = [f"{k} {recorded.get(k)} -> {v}" for k, v in scaling.items() if recorded.get(k) != v]
    return (f"data fingerprint {recorded['fingerprint']} -> {fingerprint}"
            + (f" (scaling: {', '.join(moved)})" if moved else ""))


def space_defaults(space: Space) -> dict[str, Any]:
    """Every knob of ``space``'s pair at the value a trial gets when the space does not search it."""
    table = space.pair.table()
    resolved = space.pair.resolve(space.fixed, source=f"{space.where}: fixed", soft=tuple(space.fixed))
    return {**{k: p.default for k, p in table.items()}, **resolved.to_dict(), **space.fixed}


def plan_warm_start(earlier: Sequence[EarlierSearch], space: Space, *, fingerprint: str,
                    scaling: Mapping[str, Any], max_epochs: int, clip: bool = False,
                    any_data: bool = False) -> WarmStartPlan:
    """What each earlier search gives the new one; refuses other data (unless ``any_data``)."""
    defaults = space_defaults(space)
    new = Side(dict(space.params), defaults)
    new_json = {**space.to_json(), "max_epochs": max_epochs}
    changes, carried, left_out, offered = {}, [], {}, {}
    for e in earlier:
        data = data_change(e.best.get("data_options") or {}, fingerprint, scaling)
        if data and not any_data:
            raise WarmStartError(f"--warm-start {e.name}: it ran on other data ({data}); pass the same data "
                                 "options, or --warm-start-any-data to carry its trials anyway.")
        old_json = {**e.space, "max_epochs": e.epochs or e.space.get("max_epochs")}
        changes[e.name] = [c.describe() for c in diff_spaces(old_json, new_json)] + ([data] if data else [])
        rows = e.rows[:-1] if e.cut_last else e.rows
        mine, why = carry_trials(e.name, rows, e.side(defaults), new, space.metric, clip)
        if e.cut_last:
            why["the last row is cut short (trials.csv ends mid-line)"] += 1
        carried += mine
        left_out[e.name], offered[e.name] = why, len(e.rows)
    return WarmStartPlan(tuple(e.name for e in earlier), changes, tuple(carried), left_out, offered, clip)


def carry_trials(source: str, rows: Sequence[Mapping[str, Any]], old: Side, new: Side, metric: str,
                 clip: bool = False) -> tuple[list[Carried], Counter]:
    """The rows of an earlier ``trials.csv`` that the new space can take, and a count of the reasons
    the others were left out."""
    carried, why = [], Counter()
    for row in rows:
        outcome = row.get("outcome")
        value, bad_value = _number(f"best_{metric}", row.get(f"best_{metric}"))
        epochs, bad_epochs = _number("epochs", row.get("epochs"))
        point, reason, clipped = {}, None, ()
        if outcome == "failed":
            reason = "failed"
        elif bad_value or bad_epochs:
            reason = bad_value or bad_epochs
        elif value is _MISSING:
            reason = "reported no epoch"
        else:
            point, reason, clipped = carry_trial(row, old, new, clip)
        if reason:
            why[reason] += 1
            continue
        carried.append(Carried(source, str(row.get("trial_id")), point, float(value), outcome == "stopped early",
                               1 if epochs is _MISSING else max(1, int(epochs)), clipped))
    return carried, why


def carry_trial(row: Mapping[str, Any], old: Side, new: Side, clip: bool = False
                ) -> tuple[dict[str, Any], str | None, tuple[str, ...]]:
    """An earlier trial's config over the new space's active keys, or the reason it cannot be carried
    (``None`` when it can), and the keys whose values were clipped."""
    point: dict[str, Any] = {}
    clipped: list[str] = []
    missing = _missing_searched(row, old)
    if missing:
        # A value the row lacks where it applied (a row cut short) is not the constant: never carry a
        # score under values the trial did not run.
        return point, f"{missing} has no recorded value", ()
    for key, domain in new.params.items():
        if isinstance(domain, When):
            if point.get(domain.key, _MISSING) not in domain.values:
                continue
            domain = domain.domain
        value = _coerce(domain, _old_value(row, old, key))
        if value is _MISSING:
            return point, f"{key} has no earlier value", ()
        bad = _not_a_number(key, domain, value)
        if bad:
            return point, bad, ()
        if not _fits(key, domain, value):
            # Only a value beyond the bounds is clipped: one between them that is off the grid (a float
            # range's step, powers of two) earned its score away from every value the range offers.
            if not isinstance(domain, (FloatRange, IntRange)) or not _is_number(value) \
                    or domain.low <= value <= domain.high:
                return point, (f"{key} = {value!r} is no longer a choice" if isinstance(domain, Categorical)
                               else f"{key} = {value!r} does not fit {domain.describe()}"), ()
            if not clip:
                what = "new key " if key not in old.params else ""
                return point, f"{what}{key} outside the new range [{domain.low:g}, {domain.high:g}]", ()
            was = _unwrap(old.params.get(key))
            if isinstance(was, (FloatRange, IntRange)) and not was.low <= value <= was.high:
                # The earlier search could not have run it: a damaged cell, not a narrowed range.
                return point, (f"{key} = {value:g} lies outside the earlier search's own range "
                               f"[{was.low:g}, {was.high:g}] too"), ()
            # A stepped float range ends at its last step below high, as Optuna adjusts it.
            top = domain.sampled(key, domain.low)[2].high if isinstance(domain, FloatRange) else domain.high
            value = domain.low if value < domain.low else top
            clipped.append(key)
        point[key] = value
    # Everything the new search does not sample must be what the earlier trial ran with.
    keys = (set(old.params) | set(new.params) | set(old.constants) & set(new.constants)) - set(point) - set(RUN_KEYS)
    for key in sorted(keys):
        was, now = _old_value(row, old, key), new.constants.get(key, _MISSING)
        if was is _MISSING or now is _MISSING or same_value(_coerce_like(now, was), now):
            continue
        if key in old.params and key not in new.params:
            return point, f"dropped key {key} not at the new value {now!r}", ()
        return point, f"{key} ran at another value than the new {now!r}", ()
    return point, None, tuple(clipped)


def optuna_params(params: dict[str, Any], point: Mapping[str, Any]
                  ) -> tuple[dict[str, Any], dict[str, BaseDistribution]]:
    """A config over ``params`` as the values and distributions Optuna samples: the active keys only."""
    values: dict[str, Any] = {}
    dists: dict[str, BaseDistribution] = {}
    for key, value in point.items():
        domain = params[key]
        inner = domain.domain if isinstance(domain, When) else domain
        name, values[name], dists[name] = inner.sampled(key, value)
    return values, dists


def _fits(key: str, domain: Any, value: Any) -> bool:
    """Whether ``value`` is one ``domain`` offers, as Optuna's ``create_trial`` checks it (a float range's
    step included, which :meth:`FloatRange.contains` does not check)."""
    if not domain.contains(value):
        return False
    _, sampled, dist = domain.sampled(key, value)
    return dist._contains(dist.to_internal_repr(sampled))


def _old_value(row: Mapping[str, Any], old: Side, key: str) -> Any:
    """The value an earlier trial ran with: its own where it searched the key (and the key applied),
    else the earlier space's constant."""
    if key in old.params:
        value = _clean(row.get(key, _MISSING))
        if value is not _MISSING:
            return value
    return old.constants.get(key, _MISSING)


def _clean(value: Any) -> Any:
    """A value read from ``trials.csv``: NaN (a key that did not apply) as missing, numpy as Python."""
    if value is None or value is _MISSING:
        return _MISSING
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return _MISSING
    return value


def _number(name: str, value: Any) -> tuple[Any, str | None]:
    """A score or an epoch count read from ``trials.csv`` (``_MISSING`` if empty), or why it is not one."""
    value = _clean(value)
    if value is _MISSING:
        return value, None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return _MISSING, f"{name} = {value!r} is not a number"
        if math.isnan(value):
            return _MISSING, None
    if not _is_number(value):
        return _MISSING, f"{name} = {value!r} is not a number"
    if not math.isfinite(value):
        return _MISSING, f"{name} = {value!r} is not a finite number"
    return value, None


def _not_a_number(key: str, domain: Any, value: Any) -> str | None:
    """Why ``value`` cannot be one of a numeric ``domain``'s values (text, inf), else ``None``."""
    numeric = isinstance(domain, (FloatRange, IntRange)) or (
        isinstance(domain, Categorical) and all(_is_number(v) for v in domain.values))
    if not numeric:
        return None
    if not _is_number(value):
        return f"{key} = {value!r} is not a number"
    return None if math.isfinite(value) else f"{key} = {value!r} is not a finite number"


def _unwrap(domain: Any) -> Any:
    return domain.domain if isinstance(domain, When) else domain


def _missing_searched(row: Mapping[str, Any], old: Side) -> str | None:
    """The first key the earlier search searched that applied to ``row`` but has no value in it."""
    for key, domain in old.params.items():
        if isinstance(domain, When):
            parent = _coerce(_unwrap(old.params.get(domain.key)), _clean(row.get(domain.key, _MISSING)))
            if parent is _MISSING or not any(same_value(parent, v) for v in domain.values):
                continue
        if _clean(row.get(key, _MISSING)) is _MISSING:
            return key
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _coerce(domain: Any, value: Any) -> Any:
    """``value`` in ``domain``'s type: a CSV reads ``16`` as ``16.0`` next to an empty cell and a bool
    as the text ``True``; a choice gets its own value back."""
    if value is _MISSING:
        return value
    if isinstance(domain, Categorical):
        return next((v for v in domain.values if same_value(v, _coerce_like(v, value))), value)
    if isinstance(domain, (IntRange, FloatRange)) and isinstance(value, str):
        # One text cell makes pandas read the whole column as text: read each cell on its own.
        try:
            value = float(value)
        except ValueError:
            return value
    if isinstance(domain, IntRange) and _is_number(value) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    if isinstance(domain, FloatRange) and _is_number(value):
        return float(value)
    return value


def _coerce_like(example: Any, value: Any) -> Any:
    if isinstance(example, bool) and isinstance(value, str) and value in ("True", "False"):
        return value == "True"
    if _is_number(example) and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _same_config(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return set(a) == set(b) and all(same_value(a[k], b[k]) for k in a)
