"""Registered panels: ``python -m search.bench.panel run DESIGN`` and ``... summarise [NAME ...]``.

``run`` refuses a design that is not committed or changed since its commit, or whose seeds were used
before (:mod:`search.bench.panel_design`), then, pair by pair and seed by seed, runs each strategy's
search one at a time through ``spectune search``'s own path (:func:`search.commands.search.run_search`) with the
pair's budget (``--time-budget`` minutes, or an epoch cap), the strategies' order reversed every other
seed. Each pick is then judged on the design's confirmation seeds: retrained for its full epochs
without patience by the live check's :class:`search.bench.live.Trainer`, on the data its search saw.
After each search one row goes to ``results/panels/<name>/rows.csv`` (with the design's commit, the code's
commit and the time it ran), so an interrupted panel continues where it stopped; ``meta.json`` holds the
design's commit. Searches work under ``runs/panels/<name>/`` (not committed).

``summarise`` recomputes every statistic from the committed rows (:mod:`search.bench.panel_stats`) and the
design as committed, and labels the result: *confirmatory* only if the design was committed before every
run and every run's code contains that commit; otherwise *exploratory*, said wherever it is quoted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from results.errors import SearchError, SearchInterrupted, UserError
from results.files import read_json, write_csv, write_json
from results.provenance import git_commit
from search.bench.panel_design import (RESULTS, WORK, Design, DesignError, PanelPair, check_fresh_seeds,
                                       design_commit, read_design)
from search.bench.panel_stats import compare, pooled, verdict

ROOT = Path(__file__).resolve().parents[2]
ROWS, META, SUMMARY = "rows.csv", "meta.json", "summary.md"
# Commits and picks stay text (a commit of digits alone would read as a number).
TEXT = {"design_commit": str, "code_commit": str, "pick": str, "started_at": str, "failed": str}
ROW_COLUMNS = ("panel", "design_commit", "code_commit", "started_at", "pair", "space", "metric", "mode", "seed",
               "strategy", "position", "wall_s", "epochs", "trials", "search_score", "confirmed_score", "score",
               "pick", "failed")


def _now() -> str:
    # Microseconds: git records a commit's time to the second, and a run in that same second is not after it.
    return datetime.now(timezone.utc).isoformat()


def search_options(design: Design, pair: PanelPair, strategy: str, seed: int, work: Path, root: Path) -> Any:
    """The :class:`search.options.SearchOptions` of one search: the pair's scale and budget, the strategy's
    options, the seed; its files under ``work``."""
    from search.options import SearchOptions

    given = dict(design.strategies[strategy])
    scale = dict(pair.options)
    if "data" in scale:
        scale["data"] = root / scale["data"]
    name = f"{design.name}-{pair.key}-{strategy}-s{seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    return SearchOptions(space=pair.space, seed=seed, name=name, storage=work / "ray_results",
                         results_root=work / "results", tracking_uri=f"sqlite:///{work / 'mlflow.db'}",
                         time_budget=pair.minutes, **({"max_total_epochs": pair.epochs} if pair.epochs else {}),
                         **scale, **given)


def run_one(options: Any) -> dict[str, Any]:
    """One search through ``spectune search``'s path: its epochs, trials and pick."""
    from search.commands.search import run_search

    outcome = run_search(options)
    best = outcome.best
    return {"epochs": int(outcome.trials["epochs"].sum()), "trials": len(outcome.trials),
            "search_score": float(best["best_value"]), "pick": dict(best["searched"]),
            "epochs_per_run": int(best["config"]["epochs"])}


class Confirmation:
    """Picks judged on the design's confirmation seeds: each (config, seed) trained once per pair and search
    seed (the data a search saw depends on its seed where the pair scales its data down)."""

    def __init__(self, seeds: tuple[int, ...]) -> None:
        self.seeds = seeds
        self.trainers: dict[tuple[str, int], Any] = {}
        self.runs: dict[tuple[str, int, str, int], float] = {}

    def trainer(self, options: Any, epochs: int) -> Any:
        from search.bench.live import Trainer
        from spaces import get_space
        from trainables.pair import load_data
        from trainables.settings import TrialSettings

        key = (options.space, options.seed)
        if key not in self.trainers:
            space = get_space(options.space)
            o = options.with_budget(space)
            scale = o.data_options(space.pair.data_module.default_dir)
            data = load_data(space.pair, o.data, o.classes, test=False, seed=o.seed, **scale.scaling())
            settings = TrialSettings(model=space.pair.model, data=space.pair.data, max_epochs=epochs, seed=o.seed,
                                     fixed=dict(space.fixed), metric=space.metric, mode=space.mode,
                                     searched=tuple(space.params))
            self.trainers = {key: Trainer(data, settings, space.pair.load_base(None))}   # one data set held at once
        return self.trainers[key]

    def score(self, options: Any, pick: dict[str, Any], epochs: int) -> float:
        """The pick's mean best value over the confirmation seeds (NaN without seeds)."""
        if not self.seeds:
            return math.nan
        trainer = self.trainer(options, epochs)
        config = json.dumps(pick, sort_keys=True, default=str)
        values = []
        for seed in self.seeds:
            key = (options.space, options.seed, config, seed)
            if key not in self.runs:
                self.runs[key] = trainer.best(pick, seed)
            values.append(self.runs[key])
        return float(sum(values) / len(values))


def _spectune_path(design: Design, root: Path) -> None:
    """Pairs kept outside the toolkit (the digits example) are found through ``SPECTUNE_PATH``."""
    folders = [str(root / p.spectune_path) for p in design.pairs.values() if p.spectune_path]
    have = [f for f in os.environ.get("SPECTUNE_PATH", "").split(os.pathsep) if f]
    if folders:
        os.environ["SPECTUNE_PATH"] = os.pathsep.join(dict.fromkeys(have + folders))


def _preflight(design: Design, root: Path) -> dict[str, Any]:
    """Every pair's space (returned by pair key) and data folder found before the first search, not hours into
    the panel."""
    from spaces import get_space

    found = {}
    for pair in design.pairs.values():
        found[pair.key] = get_space(pair.space)
        data = pair.options.get("data")
        if data and not (root / data).is_dir():
            raise DesignError(f"design {design.path}: pairs.{pair.key}.options.data: no folder {root / data}; write it "
                              f"first (spectune data --space {pair.space} --out {data}, with the source it needs).")
    return found


def _machine() -> dict[str, Any]:
    import platform

    import torch

    return {"platform": platform.platform(), "cpus": os.cpu_count(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def run_panel(path: Path, root: Path = ROOT, search: Callable[[Any], dict[str, Any]] = run_one,
              confirm: Confirmation | None = None) -> Path:
    """Run the design at ``path`` (see the module docstring); returns its results folder."""
    design = read_design(path)
    commit, committed_at = design_commit(path, root)
    check_fresh_seeds(design, root)
    out, work = root / RESULTS / design.name, root / WORK / design.name
    rows_path = out / ROWS
    rows = pd.read_csv(rows_path, dtype=TEXT) if rows_path.is_file() else pd.DataFrame(columns=list(ROW_COLUMNS))
    others = sorted(set(rows["design_commit"]) - {commit})
    if others:
        raise DesignError(f"design {path}: results/panels/{design.name} holds runs of design commit {others[0][:12]}, "
                          f"not of {commit[:12]}; a changed design is a new panel (a new name).")
    _spectune_path(design, root)
    spaces = _preflight(design, root)
    rel = Path(path).resolve().relative_to(root.resolve()).as_posix()
    write_json(out / META, {"panel": design.name, "design": rel, "design_commit": commit,
                            "design_committed_at": committed_at, "machine": _machine()})
    confirm = confirm or Confirmation(design.confirm_seeds)
    done = {(p, int(s), st) for p, s, st in zip(rows["pair"], rows["seed"], rows["strategy"])}
    strategies = list(design.strategies)
    for pair in design.pairs.values():
        for i, seed in enumerate(pair.seeds):
            order = strategies if i % 2 == 0 else strategies[::-1]
            for position, strategy in enumerate(order):
                if (pair.key, seed, strategy) in done:
                    continue
                options = search_options(design, pair, strategy, seed, work, root)
                row = {"panel": design.name, "design_commit": commit, "code_commit": git_commit(root),
                       "started_at": _now(), "pair": pair.key, "space": pair.space, "metric": spaces[pair.key].metric,
                       "mode": spaces[pair.key].mode, "seed": seed, "strategy": strategy, "position": position}
                began = time.perf_counter()
                try:
                    found = search(options)
                except SearchInterrupted:
                    raise   # Ctrl+C stops the panel; run it again to continue
                except SearchError as exc:
                    # A search with no pick (its time ran out before any epoch ended, every trial failed) loses
                    # its comparisons (panel_stats); the panel goes on.
                    row.update(wall_s=round(time.perf_counter() - began, 2), epochs=0, trials=0,
                               search_score=math.nan, confirmed_score=math.nan, score=math.nan, pick="",
                               failed=str(exc).splitlines()[0])
                else:
                    row["wall_s"] = round(time.perf_counter() - began, 2)   # the search's, not its confirmation's
                    confirmed = confirm.score(options, found["pick"], found["epochs_per_run"])
                    row.update(epochs=found["epochs"],
                               trials=found["trials"], search_score=found["search_score"], confirmed_score=confirmed,
                               score=found["search_score"] if math.isnan(confirmed) else confirmed,
                               pick=json.dumps(found["pick"], sort_keys=True, default=str), failed="")
                rows = pd.concat([rows, pd.DataFrame([row])], ignore_index=True) if len(rows) else pd.DataFrame([row])
                write_csv(rows_path, rows)
    summarise(out, root)
    return out


# --- summary ---------------------------------------------------------------------------------------------------


def _committed_design(meta: dict[str, Any], root: Path) -> tuple[dict[str, Any], str]:
    """The design's JSON as committed (``git show``), else the working file's, with a note saying so."""
    try:
        text = subprocess.run(["git", "show", f"{meta['design_commit']}:{meta['design']}"], cwd=root,
                              capture_output=True, text=True, check=True, timeout=30).stdout
        return json.loads(text), ""
    except (OSError, subprocess.CalledProcessError):
        return json.loads((root / meta["design"]).read_text()), " (read from the working file: git cannot show it)"


def _contains(root: Path, design: str, code: str) -> bool:
    """Whether the code commit a run recorded contains the design's commit."""
    code = str(code).removesuffix("-dirty")
    try:
        return subprocess.run(["git", "merge-base", "--is-ancestor", design, code], cwd=root, capture_output=True,
                              timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def standing(rows: pd.DataFrame, meta: dict[str, Any], root: Path) -> tuple[str, str]:
    """``confirmatory`` or ``exploratory``, and why."""
    if rows.empty:
        return "exploratory", "no runs"
    committed = pd.Timestamp(meta["design_committed_at"])
    first = pd.to_datetime(rows["started_at"], utc=True).min()
    if set(rows["design_commit"]) != {meta["design_commit"]}:
        return "exploratory", "its rows come from more than one design commit"
    if not first > committed:
        return "exploratory", f"a run began ({first.isoformat()}) before the design's commit ({committed.isoformat()})"
    outside = sorted(c for c in set(rows["code_commit"]) if not _contains(root, meta["design_commit"], c))
    if outside:
        return "exploratory", f"a run's code ({outside[0][:12]}) does not contain the design's commit"
    return "confirmatory", (f"the design (commit {meta['design_commit'][:12]}, {committed.isoformat()}) was "
                            f"committed before every run (the first at {first.isoformat()})")


def summarise(out: Path, root: Path = ROOT) -> dict[str, Any]:
    """Recompute a panel's statistics from ``out``'s rows and its design as committed; write
    ``summary.json`` and ``summary.md`` beside them and return the summary."""
    meta = read_json(out / META, "a panel's meta.json")
    rows = pd.read_csv(out / ROWS, dtype=TEXT)
    design, note = _committed_design(meta, root)
    label, why = standing(rows, meta, root)
    expected = sum(len(p["seeds"]) for p in design["pairs"].values()) * len(design["strategies"])
    table = compare(rows, design)
    summary = {"panel": meta["panel"], "standing": label, "why": why, "design": meta["design"] + note,
               "design_commit": meta["design_commit"], "searches": len(rows), "searches_planned": expected,
               "score": "the pick's mean over the confirmation seeds" if design.get("confirm_seeds")
               else "the pick's validation score in its search",
               "comparisons": table.to_dict("records"),
               "verdicts": {c: verdict(table, design, c) for c in design["candidates"]},
               "pooled": [p for c in design["candidates"] if (p := pooled(rows, design, c))],
               "cost": rows.groupby(["pair", "strategy"])[["wall_s", "epochs", "trials"]].median().reset_index()
               .to_dict("records")}
    write_json(out / "summary.json", summary)
    (out / SUMMARY).write_text(to_markdown(summary, design))
    return summary


def to_markdown(summary: dict[str, Any], design: dict[str, Any]) -> str:
    """The summary as the docs quote it, its standing in its first line."""
    lines = [f"# Panel {summary['panel']}: {summary['standing'].upper()}", "",
             f"{summary['standing'].capitalize()}: {summary['why']}. Design {summary['design']} at "
             f"{summary['design_commit'][:12]}; {summary['searches']} of {summary['searches_planned']} searches run. "
             f"Score: {summary['score']}. Paired one-sided Wilcoxon signed-rank (zeros split), Holm over every "
             f"candidate and pair per baseline, alpha {design['alpha']}.", "",
             "| baseline | candidate | pair | n | better / tied / worse | mean diff | p better (Holm) "
             "| p worse (Holm) |",
             "|---|---|---|---|---|---|---|---|"]
    for c in summary["comparisons"]:
        lines.append(f"| {c['baseline']} | {c['candidate']} | {c['pair']} | {c['n']} | {c['better']} / {c['tied']} / "
                     f"{c['worse']} | {c['mean_diff']:+.4f} | {c['p_better']:.4f} ({c['p_better_holm']:.4f}) | "
                     f"{c['p_worse']:.4f} ({c['p_worse_holm']:.4f}) |")
    lines.append("")
    for candidate, by_baseline in summary["verdicts"].items():
        for baseline, v in by_baseline.items():
            lines.append(f"- {candidate} against {baseline}: better on {len(v['better_on'])} pair(s) "
                         f"({', '.join(v['better_on']) or 'none'}), worse on {', '.join(v['worse_on']) or 'none'}; "
                         f"target (better on at least {design['better_pairs_at_least']}, worse on none) "
                         f"{'met' if v['met'] else 'missed'}.")
    for p in summary["pooled"]:
        if p["n"]:
            lines.append(f"- pooled, {p['candidate']} at least as good as {p['baseline']}: {p['at_least_as_good']} of "
                         f"{p['n']} ({p['share']:.0%}), 95 % {p['interval']} [{p['low']:.3f}, {p['high']:.3f}] "
                         f"(Wilson [{p['wilson'][0]:.3f}, {p['wilson'][1]:.3f}], exact [{p['exact'][0]:.3f}, "
                         f"{p['exact'][1]:.3f}]); target {'met' if p['met'] else 'missed'}.")
    lines += ["", "| pair | strategy | median wall s | median epochs | median trials |", "|---|---|---|---|---|"]
    lines += [f"| {c['pair']} | {c['strategy']} | {c['wall_s']:.0f} | {c['epochs']:.0f} | {c['trials']:.0f} |"
              for c in summary["cost"]]
    return "\n".join(lines) + "\n"


def summarise_all(root: Path = ROOT) -> list[dict[str, Any]]:
    """``make bench``: every panel's summary under ``results/panels/``, recomputed from its rows."""
    folders = sorted(p.parent for p in (root / RESULTS).glob(f"*/{ROWS}"))
    if not folders:
        print(f"panels: no panel results under {RESULTS}/ yet")
    out = []
    for folder in folders:
        summary = summarise(folder, root)
        print(f"panel {summary['panel']}: {summary['standing']} ({summary['searches']} of "
              f"{summary['searches_planned']} searches); {folder / SUMMARY}")
        out.append(summary)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m search.bench.panel", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a committed design (search/bench/panels/NAME.json)")
    run.add_argument("design", type=Path)
    check = sub.add_parser("check", help="check a design (keys, commit, fresh seeds) without running it")
    check.add_argument("design", type=Path)
    again = sub.add_parser("summarise", help="recompute the summaries of results/panels/* (or of the panels named)")
    again.add_argument("names", nargs="*")
    args = p.parse_args(argv)
    try:
        if args.command == "run":
            print(f"panel: {run_panel(args.design)}")
        elif args.command == "check":
            design = read_design(args.design)
            commit, _ = design_commit(args.design, ROOT)
            check_fresh_seeds(design, ROOT)
            print(f"design {design.name}: valid, committed at {commit[:12]}, seeds fresh")
        elif args.names:
            for name in args.names:
                print(to_markdown(summarise(ROOT / RESULTS / name), _committed_design(
                    read_json(ROOT / RESULTS / name / META, "a panel's meta.json"), ROOT)[0]))
        else:
            summarise_all()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
