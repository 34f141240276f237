"""Recorded learning curves (``spectune record``): configs x seeds x epochs of one space, read back by
``spectune replay``.

A curves folder ``results/<space>/curves/<name>/`` holds ``curves.csv.gz`` (one row per config, seed
and epoch: every reported metric, the epoch's wall time and the run's outcome), ``configs.json``
(each config's searched values and its resolved recipe), ``space.json`` (the ranges it was drawn
from) and ``meta.json`` (metric, mode, epoch budget, seeds, data options with the fingerprint,
versions). A replay refuses curves of another space, ranges, data or scaling in one line, and so a
damaged table (unreadable gzip, a missing column, text or a non-finite value where a number belongs,
an epoch time below zero), before any replay.
"""

from __future__ import annotations

import gzip
import io
import zlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from results.files import read_json, write_csv, write_json
from results.best_file import DataOptions
from results.errors import OptionError

TABLE = "curves.csv.gz"
# The columns every replay reads; the metric's column is required besides.
REQUIRED = ("config_id", "seed", "epoch", "epoch_time_s", "outcome")
# Columns that are not numbers a run reported.
_NOT_VALUES = frozenset({"config_id", "seed", "epoch", "outcome"})
# Fixed values a recording does not depend on: runs are recorded without patience, which a replay
# applies from today's space.
REPLAYED_FIXED = frozenset({"patience"})


def curves_dir(space: str, name: str, root: Path = Path("results")) -> Path:
    return Path(root) / space / "curves" / name


@dataclass(frozen=True)
class Curves:
    """A recorded table: ``table`` has ``config_id``, ``seed``, ``epoch``, the metrics, ``epoch_time_s``
    and ``outcome``; ``configs`` maps a config id to ``{"searched": ..., "resolved": ...}``."""

    space: str
    name: str
    table: pd.DataFrame
    configs: dict[int, dict[str, Any]]
    meta: dict[str, Any]
    space_json: dict[str, Any]

    @property
    def metric(self) -> str:
        return self.meta["metric"]

    @property
    def mode(self) -> str:
        return self.meta["mode"]

    @property
    def max_epochs(self) -> int:
        return int(self.meta["max_epochs"])

    @cached_property
    def _grouped(self) -> tuple[dict[tuple[int, int], pd.DataFrame], frozenset[tuple[int, int]]]:
        # Grouped once: every replayed search of a study reads the same runs.
        runs = {(int(c), int(s)): part.sort_values("epoch").reset_index(drop=True)
                for (c, s), part in self.table.groupby(["config_id", "seed"])}
        return runs, frozenset(k for k, run in runs.items() if (run["outcome"] == "failed").any())

    def runs(self, failed: bool = False) -> dict[tuple[int, int], pd.DataFrame]:
        """(config id, seed) -> that run's rows in epoch order; failed runs only when ``failed``."""
        runs, failures = self._grouped
        return runs if failed else {k: run for k, run in runs.items() if k not in failures}

    def true_quality(self) -> pd.DataFrame:
        """Per config: the mean (and standard deviation) over its recorded seeds of the best value each
        run reached in the full budget: what a config is worth, not what one lucky run showed."""
        best = self.table[self.table["outcome"] != "failed"].groupby(["config_id", "seed"])[self.metric]
        best = best.max() if self.mode == "max" else best.min()
        out = best.groupby("config_id").agg(["mean", "std", "count"])
        return out.sort_values("mean", ascending=self.mode == "min")


def write_curves(out_dir: Path, table: pd.DataFrame, configs: dict[int, dict[str, Any]], meta: dict[str, Any],
                 space_json: dict[str, Any]) -> Path:
    """Write the four files; the table last, so a folder with a table is complete."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "configs.json", {str(k): v for k, v in configs.items()})
    write_json(out_dir / "space.json", space_json)
    write_json(out_dir / "meta.json", meta)
    write_csv(out_dir / TABLE, table)
    return out_dir


def read_curves(space_json: dict[str, Any], name: str, root: Path = Path("results"),
                data: DataOptions | None = None) -> Curves:
    """The curves ``name`` of the space whose ranges are ``space_json``; :class:`OptionError` in one line
    when they are missing, were recorded over other ranges, or on other data (``data``'s fingerprint)."""
    space = space_json["name"]
    folder = curves_dir(space, name, root)
    if not (folder / TABLE).is_file():
        found = sorted(p.parent.name for p in (Path(root) / space / "curves").glob(f"*/{TABLE}"))
        raise OptionError(f"no recorded curves {name!r} for space {space!r} under {folder.parent}"
                          + (f"; recorded: {', '.join(found)}" if found else "")
                          + f". Record them with `spectune record --space {space} --name {name}`.")
    meta = _read_part(folder, "meta.json")
    saved = _read_part(folder, "space.json")
    _check_meta(folder, meta, space_json)
    if not isinstance(saved, dict) or not isinstance(saved.get("params"), dict) \
            or not isinstance(saved.get("fixed") or {}, dict):
        raise OptionError(f"curves {folder}: space.json must hold the recorded space (an object with its params and "
                          f"fixed values, as `spectune record` writes it){_AGAIN}")
    changed = sorted(k for k in set(saved["params"]) | set(space_json["params"])
                     if saved["params"].get(k) != space_json["params"].get(k))
    saved_fixed, fixed = saved.get("fixed") or {}, space_json.get("fixed") or {}
    changed += sorted(f"fixed {k}" for k in (set(saved_fixed) | set(fixed)) - REPLAYED_FIXED
                      if saved_fixed.get(k) != fixed.get(k))
    if changed:
        raise OptionError(f"curves {folder} were recorded over other ranges of space {space!r} (changed: "
                          f"{_shown(changed)}); record them again for today's space.")
    recorded = DataOptions.from_record(meta)
    if data is not None and recorded.mismatch(data.fingerprint or ""):
        raise OptionError(f"curves {folder}: {recorded.mismatch(data.fingerprint or '')} (recorded with "
                          f"{_scaling(recorded)}; asked for {_scaling(data)}); replay with the recorded data "
                          "options or record again.")
    configs = _read_configs(folder)
    # A recording holds at most one row per config, seed and epoch: a table that inflates past that (a gzip
    # bomb) is refused while it is read, not after.
    table = _read_table(folder, meta["metric"], len(configs) * len(meta["seeds"]) * int(meta["max_epochs"]))
    curves = Curves(space=space, name=name, table=table, configs=configs, meta=meta, space_json=saved)
    expected = list(range(1, curves.max_epochs + 1))
    short = [key for key, run in curves.runs().items() if run["epoch"].tolist() != expected]
    if short:
        raise OptionError(f"curves {folder}: {len(short)} run(s) do not hold epochs 1..{curves.max_epochs} once each "
                          f"(config, seed: {short[:3]}); record them again.")
    if not curves.runs():
        raise OptionError(f"curves {folder}: every recorded run failed, so there is no curve to replay; record them "
                          "again (with settings that train).")
    if set(configs) != set(table["config_id"]):
        raise OptionError(f"curves {folder}: configs.json and {TABLE} name different configs; record them again.")
    return curves


_AGAIN = "; copy the folder again or record them again."
# What a recorded row may take in the table, at most (a row of the committed recordings takes about 150 bytes),
# and what the header and a few stray rows may add.
ROW_BYTES = 2048
SLACK_BYTES = 1 << 20


def _shown(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: a message about a received file stays one short line."""
    return _cut(repr(value), limit)


def _cut(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _read_part(folder: Path, file: str) -> Any:
    """One of a recording's JSON files, or :class:`OptionError` naming it and the fix."""
    try:
        return read_json(folder / file, "curves")
    except OptionError as exc:
        raise OptionError(f"{str(exc).rstrip('.')}{_AGAIN}") from None


def _check_meta(folder: Path, meta: Any, space_json: dict[str, Any]) -> None:
    """``meta.json`` as ``spectune record`` writes it, recorded for this space: its metric and direction are the
    space's (a received file does not choose what a replay maximises)."""
    where = f"curves {folder}: meta.json"
    if not isinstance(meta, dict):
        raise OptionError(f"{where} must hold an object (the recording's metric, mode, max_epochs, seeds, ...); got "
                          f"{type(meta).__name__}{_AGAIN}")
    space = space_json["name"]
    if meta.get("space") != space:
        raise OptionError(f"curves {folder} were recorded for space {_shown(meta.get('space'))}, not {space!r}.")
    for key in ("metric", "mode"):
        if meta.get(key) != space_json[key]:
            raise OptionError(f"{where} gives {key} {_shown(meta.get(key))}, but space {space!r} has "
                              f"{key} {space_json[key]!r}: a recording is replayed by its space's {key}; record "
                              "them again, or restore meta.json.")
    epochs = meta.get("max_epochs")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise OptionError(f"{where}: max_epochs must be a whole number >= 1 (each run's epochs); got "
                          f"{_shown(epochs)}{_AGAIN}")
    seeds = meta.get("seeds")
    if not isinstance(seeds, list) or not seeds or not all(isinstance(x, int) and not isinstance(x, bool)
                                                           for x in seeds) or len(set(seeds)) < len(seeds):
        raise OptionError(f"{where}: seeds must be a list of the recorded seeds (different whole numbers); got "
                          f"{_shown(seeds)}{_AGAIN}")
    if not isinstance(meta.get("data_options") or {}, dict):
        raise OptionError(f"{where}: data_options must be an object (the data the runs trained on); got "
                          f"{_shown(meta.get('data_options'))}{_AGAIN}")


def _read_configs(folder: Path) -> dict[int, dict[str, Any]]:
    """``configs.json``: config id -> ``{"searched": {...}, "resolved": {...}}``, or :class:`OptionError` naming
    what is wrong (the searched values are checked against the space by the replay, which knows it)."""
    raw = _read_part(folder, "configs.json")
    where = f"curves {folder}: configs.json"
    if not isinstance(raw, dict) or not raw:
        raise OptionError(f"{where} must hold an object mapping each config id to its searched and resolved "
                          f"values; got {'an empty object' if raw == {} else type(raw).__name__}{_AGAIN}")
    configs = {}
    for key, config in raw.items():
        parts = (config.get("searched"), config.get("resolved")) if isinstance(config, dict) else (None,)
        if not (key.isascii() and key.isdigit()) or not all(isinstance(part, dict) for part in parts):
            raise OptionError(f"{where}: config {_shown(key)} must be a config id (a whole number) mapping to "
                              f"{{\"searched\": {{...}}, \"resolved\": {{...}}}}{_AGAIN}")
        warmup = config["resolved"].get("warmup_epochs", 0)
        if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
            raise OptionError(f"{where}: config {key}'s resolved warmup_epochs must be a whole number >= 0; got "
                              f"{_shown(warmup)}{_AGAIN}")
        configs[int(key)] = config
    return configs


class _TooLarge(Exception):
    """Raised while reading a table past its bound."""


class _Bounded(io.RawIOBase):
    """A binary stream that stops with :class:`_TooLarge` once more than ``limit`` bytes were read."""

    def __init__(self, stream: Any, limit: int) -> None:
        super().__init__()
        self.stream, self.limit, self.read_bytes = stream, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.stream.readinto(buffer)
        self.read_bytes += n
        if self.read_bytes > self.limit:
            raise _TooLarge
        return n


def _read_table(folder: Path, metric: str, rows: int) -> pd.DataFrame:
    """``curves.csv.gz`` read and checked, or :class:`OptionError` in one line naming the file, what is
    wrong and the fix: a replay on a damaged table would run, with wrong times or values. ``rows``: the rows
    the recording holds at most (configs x seeds x epochs); a table that inflates past what they take is
    refused as it is read."""
    where = f"curves {folder}: {TABLE}"
    limit = rows * ROW_BYTES + SLACK_BYTES
    try:
        with gzip.open(folder / TABLE) as stream, io.BufferedReader(_Bounded(stream, limit)) as bounded:
            table = pd.read_csv(bounded)
    except _TooLarge:
        raise OptionError(f"{where} inflates to more than {limit / 2**20:.1f} MiB, more than {rows} rows (its configs "
                          f"x seeds x epochs) can take; it is not a recording's table{_AGAIN}") from None
    except pd.errors.EmptyDataError:
        raise OptionError(f"{where} cannot be read: it is empty; copy the folder again or record them again.") from None
    except (EOFError, gzip.BadGzipFile, zlib.error, UnicodeDecodeError, pd.errors.ParserError) as exc:
        # A copy cut short ends early (EOFError); a changed byte fails the gzip checksum.
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise OptionError(f"{where} cannot be read ({type(exc).__name__}: {cause[:200]}); copy the folder again or "
                          "record them again.") from None
    missing = [c for c in (*REQUIRED[:3], metric, *REQUIRED[3:]) if c not in table.columns]
    if missing:
        raise OptionError(f"{where} lacks the column(s) {missing} (a recording holds config_id, seed, epoch, "
                          f"{metric}, epoch_time_s and outcome); record them again.")
    ok = table["outcome"] != "failed"
    for column in [c for c in table.columns if c not in ("outcome",)]:
        values = pd.to_numeric(table[column], errors="coerce")
        text = values.isna() & table[column].notna()
        if text.any():
            at = text.idxmax()
            raise OptionError(f"{where}: {column} holds text ({_shown(table.at[at, column])}, {_at(table, at)}) "
                              "where a number belongs; record them again.")
        table[column] = values
        if column in _NOT_VALUES:
            if values.isna().any():
                raise OptionError(f"{where}: {column} is empty in row {int(values.isna().idxmax()) + 2} of the file "
                                  "(every row names its config, seed and epoch); record them again.")
            continue
        # A run that failed may stop with no values; one that did not reported every value it has.
        bad = ok & ~np.isfinite(values)
        if column == "epoch_time_s":
            bad |= values < 0
        if bad.any():
            at = bad.idxmax()
            rule = ("an epoch's wall time is a finite number of seconds >= 0" if column == "epoch_time_s"
                    else "in a run that did not fail, which reports a finite value every epoch")
            raise OptionError(f"{where}: {column} holds {float(values[at])!r} ({_at(table, at)})"
                              + ("; " if column == "epoch_time_s" else " ") + f"{rule}; record them again.")
    return table


def _at(table: pd.DataFrame, row: Any) -> str:
    """Which run and epoch a row is, in words."""
    return ", ".join(f"{name} {_cut(str(table.at[row, key]))}" for name, key in
                     (("config", "config_id"), ("seed", "seed"), ("epoch", "epoch")))


def _scaling(options: DataOptions) -> str:
    parts = [f"{k}={v}" for k, v in options.scaling().items() if v is not None]
    return ", ".join(parts) or "no scaling"


def kendall_by_rung(curves: Curves, rungs: list[int]) -> dict[int, float]:
    """Per rung epoch: Kendall's tau between each recorded run's best value so far at that epoch and
    its best value over the full budget (1: the rung ranks runs as the end does)."""
    from scipy.stats import kendalltau

    sign = 1.0 if curves.mode == "max" else -1.0
    final, at = [], {r: [] for r in rungs}
    for run in curves.runs().values():
        best = np.maximum.accumulate(sign * run[curves.metric].to_numpy()) * sign
        final.append(best[-1])
        for r in rungs:
            at[r].append(best[min(r, len(best)) - 1])
    return {r: float(kendalltau(at[r], final).statistic) for r in rungs}
