"""``make bench``: how fast the toolkit trains and searches, measured in one go on one machine.

1. epoch time: the toolkit's recipe vs the notebook-style loop (same model, data, config);
2. throughput: a fixed list of galspecnet configs trained without early stopping through the
   search driver vs a plain in-process Optuna loop with notebook-style training, vs the
   practical limit (total spectra trained / the big-batch rate measured in the same run);
3. search efficiency, from the replay: every recording under ``results/<space>/curves/`` replayed
   (``spectune replay``, 20 repeats per strategy): the true quality of each strategy's pick against
   the epochs it spent, the share of random search's epochs the default needs, the chance that a
   top-3 config is stopped, the regret against the seed noise, and how long replays take;
4. per-trial cost on CPU through ``spectune search``: a trial that does no work, and a real one-epoch trial
   (the wine MLP) with what it costs above its own training;
5. fused trainer throughput: K configs of one model trained as one against K separate runs, on CPU
   with one torch thread (``search.bench.fused_throughput``).

On a machine without a GPU parts 1 and 2 are sized down to a smoke test; their figures are not
quoted as results. Part 3 does not train: its figures hold on any machine. Writes
``<out>/bench.json``, ``BENCHMARKS.md`` and the replay plots it links.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shlex
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import torch

from results.curves import TABLE
from results.files import read_json, write_json
from results.best_file import DataOptions
from results.provenance import git_commit, versions
from search.bench.fused_throughput import bench_fused, render_fused
from search.bench.notebook_loop import notebook_train
from search.options import SearchOptions
from search.commands.search import run_search
from search.running.tracking import EPOCH_METRICS
from results.errors import OptionError, UserError
from spaces import get_space
from trainables.data import Splits, get_data, scale_down
from trainables.pair import Pair, Resolved
from trainables.recipe import amp_dtype, pick_device, to_device, train

GALSPECNET = Pair("galspecnet", "ztf_spectra")


@dataclass(frozen=True)
class Size:
    """How big each part is. ``gpu`` follows the issue; ``cpu`` is a smoke test."""

    points: int | None
    train_per_class: int | None
    timing_epochs: int
    configs: int
    config_epochs: int
    noop_trials: tuple[int, int]
    cpu_ratio_points: int = 1024
    cpu_ratio_pairs: int = 3


GPU = Size(points=None, train_per_class=None, timing_epochs=8, configs=32, config_epochs=30, noop_trials=(4, 64))
CPU = Size(points=256, train_per_class=12, timing_epochs=3, configs=4, config_epochs=3, noop_trials=(4, 36))


def fixed_configs(n: int, seed: int = 1234) -> list[dict[str, Any]]:
    """The same ``n`` galspecnet configs for every method: seeded draws from the space's domains."""
    space = get_space("galspecnet")
    sampler = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(sampler=sampler)
    draws = []
    for _ in range(n):
        trial = study.ask()
        draws.append({k: d.suggest(trial, k) for k, d in space.params.items()})
        study.tell(trial, 0.0)
    return draws


def _resolve(config: dict[str, Any]) -> Resolved:
    return GALSPECNET.resolve(config, source="benchmark config")


def load_ztf(data_dir: Path, size: "Size", test: bool = False, seed: int = 0) -> Splits:
    data = scale_down(get_data("ztf_spectra").load(data_dir), size.points, size.train_per_class, seed=seed)
    return data if test else replace(data, test=None)


def epoch_pair(data: Splits, device: torch.device, epochs: int) -> tuple[float, float]:
    """Median epoch seconds of the toolkit's recipe and of the notebook-style loop, validation
    included, on the notebook's config (first epoch dropped: allocator and kernel warm-up)."""
    resolved = _resolve({"epochs": epochs + 1, "patience": None})
    toolkit = train(GALSPECNET.model_fn(data.spec, resolved), data, resolved.recipe, device)
    tk = float(np.median([h["epoch_time_s"] for h in toolkit.history[1:]]))
    _, times = notebook_train(GALSPECNET.model_fn(data.spec, resolved)(), data, resolved.recipe, device, epochs + 1)
    return tk, float(np.median(times[1:]))


def bench_epoch_time(data: Splits, device: torch.device, size: Size) -> dict[str, Any]:
    tk, nb = epoch_pair(data, device, size.timing_epochs)
    return {"toolkit_epoch_s": tk, "notebook_epoch_s": nb, "ratio": tk / nb, "batch_size": 128}


def bench_cpu_epoch(data_dir: Path, size: Size) -> dict[str, Any]:
    """The shared loop against the notebook-style DataLoader loop on CPU at the size the pair-contract
    issue measured (GalSpecNet, every training spectrum at 1,024 points, the notebook's config,
    validation included): the median ratio of interleaved runs, since this machine is noisy."""
    data = load_ztf(data_dir, replace(size, points=size.cpu_ratio_points, train_per_class=None))
    pairs = [epoch_pair(data, torch.device("cpu"), 2) for _ in range(size.cpu_ratio_pairs)]
    return {"runs": [{"toolkit_epoch_s": t, "notebook_epoch_s": n} for t, n in pairs],
            "median_ratio": float(np.median([t / n for t, n in pairs])), "train_spectra": len(data.train),
            "points": size.cpu_ratio_points, "threads": torch.get_num_threads()}


def big_batch_rate(data: Splits, device: torch.device, batch: int, steps: int = 20) -> float:
    """Spectra per second of forward + backward + AdamW at a large batch: the practical limit."""
    model = GALSPECNET.model_fn(data.spec, _resolve({}))().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    inputs, y = to_device(data.train, device)
    x = inputs["x"]
    idx = torch.randint(0, x.shape[0], (batch,), device=device)
    xb, yb = x[idx], y[idx]
    crit = torch.nn.CrossEntropyLoss()
    dtype = amp_dtype(device)
    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = crit(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for _ in range(3):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return batch * steps / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_throughput(data: Splits, device: torch.device, size: Size, data_dir: Path,
                     work: Path) -> dict[str, Any]:
    configs = fixed_configs(size.configs)
    epochs = size.config_epochs
    start = time.perf_counter()
    run_search(_options(work, data_dir, size, name="throughput", trials=len(configs), max_epochs=epochs,
                        sampler="random", scheduler="fifo", start=tuple(configs)))
    toolkit_s = time.perf_counter() - start

    def objective(trial: optuna.Trial) -> float:
        point = {k: trial.suggest_categorical(k, [c[k] for c in configs]) for k in configs[0]}
        resolved = _resolve({**point, "epochs": epochs, "patience": None})
        best, _ = notebook_train(GALSPECNET.model_fn(data.spec, resolved)(), data, resolved.recipe, device, epochs)
        return best

    study = optuna.create_study(direction="maximize")
    for c in configs:
        study.enqueue_trial(c)
    start = time.perf_counter()
    study.optimize(objective, n_trials=len(configs))
    notebook_s = time.perf_counter() - start

    rate = big_batch_rate(data, device, 2048 if device.type == "cuda" else 256)
    limit_s = len(configs) * epochs * len(data.train) / rate
    return {"configs": len(configs), "epochs": epochs, "toolkit_s": toolkit_s, "notebook_optuna_s": notebook_s,
            "speedup_vs_notebook": notebook_s / toolkit_s, "big_batch_spectra_per_s": rate,
            "practical_limit_s": limit_s, "fraction_of_limit": limit_s / toolkit_s}


def _options(work: Path, data_dir: Path, size: Size, **kw: Any) -> SearchOptions:
    # space_start=False: neither method is handed the notebook's config, so part 3 compares the
    # search algorithms alone (the notebook default is retrained on its own line).
    return SearchOptions(space="galspecnet", data=data_dir, points=size.points, train_per_class=size.train_per_class,
                         storage=work / "ray", results_root=work / "results", patience=None, space_start=False,
                         tracking_uri=f"sqlite:///{work / 'mlflow.db'}", **kw)


# The targets of the replay instrument (issue "know whether the search beats random search"), per space.
REPLAY_TARGETS = {"configs_per_trial": 4, "repeats": 100, "replay_64_trials_s": 1.0, "study_s": 300.0}


def bench_efficiency(curves_root: Path, work: Path, plots: Path, repeats: int) -> dict[str, Any]:
    """Part 3: every recording under ``curves_root`` with at least 4 configs per trial of its space's CPU
    search replayed as ``python -m search.bench.lab replay --budget cpu`` would (the recording's own data
    options, ``repeats`` per strategy), one replayed 64-trial search of the default timed, and the committed live
    check beside it where one was run (the lab's ``--live``; its live.csv is copied next to the
    curves). Smaller recordings are listed as not judged; a recording whose data is not here is listed
    as skipped with the reason, so the other spaces still report."""
    from search.bench.lab import LabOptions, run_lab
    from search.bench.neps_peer import NEPS_ENV, neps_python
    from search.replay.simulate import replay
    from search.replay.study import BASELINE, LIVE_FILE, REFERENCE, ReplayOptions

    neps = neps_python() is not None
    if not neps:
        print(f"efficiency: NePS PriorBand left out: no NePS environment ({NEPS_ENV}; make neps-env)")
    spaces: dict[str, Any] = {}
    for table in sorted(Path(curves_root).glob(f"*/curves/*/{TABLE}")):
        folder = table.parent
        space_name, name = folder.parent.parent.name, folder.name
        meta = read_json(folder / "meta.json", "curves meta.json")
        data = DataOptions.from_record(meta)
        key = f"{space_name}/{name}"
        space = get_space(space_name)
        trials = space.cpu.trials
        recorded = (f"{meta['configs']} configs x {len(meta['seeds'])} seeds x {meta['max_epochs']} epochs"
                    + (f"; {data.description}" if data.description else ""))
        if int(meta["configs"]) < REPLAY_TARGETS["configs_per_trial"] * trials:
            spaces[key] = {"not_judged": f"{meta['configs']} recorded configs for {trials}-trial searches (fewer than "
                                         f"{REPLAY_TARGETS['configs_per_trial']} per trial)", "recorded": recorded}
            print(f"efficiency: {key} not judged: {spaces[key]['not_judged']}")
            continue
        # Replays write their reports beside the curves: a copy keeps the checkout clean.
        root = work / "results"
        shutil.copytree(folder, root / space_name / "curves" / name, ignore=shutil.ignore_patterns("replays"))
        options = SearchOptions(space=space_name, budget="cpu", max_epochs=int(meta["max_epochs"]),
                                results_root=root, tracking_uri=f"sqlite:///{work / 'mlflow.db'}",
                                data=Path(data.path) if data.path else None, classes=data.classes,
                                **data.scaling())
        try:
            out = run_lab(LabOptions(ReplayOptions(options, curves=name, repeats=repeats), neps=neps))
        except UserError as exc:
            spaces[key] = {"skipped": str(exc)}
            print(f"efficiency: {key} skipped: {exc}")
            continue
        summary = out["summary"]
        started = time.perf_counter()
        replay(out["curves"], space.params, list(space.start), replace(out["default"], trials=64), seed=0,
               table=out["table"], model=out["model"])
        replay_64 = time.perf_counter() - started
        png = plots / f"replay_{space_name}_{name}.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out["out"] / "replay.png", png)
        live = folder / LIVE_FILE
        # The flags that reproduce the study: the recording's scaling and epochs where the budget's differ.
        flags = "".join(f" --{k.replace('_', '-')} {v:g}" if isinstance(v, float) else f" --{k.replace('_', '-')} {v}"
                        for k, v in data.scaling().items() if v is not None)
        if int(meta["max_epochs"]) != (space.cpu.max_epochs or space.max_epochs):
            flags += f" --max-epochs {meta['max_epochs']}"
        flags += " --neps" if neps else ""
        lab = ["python", "-m", "search.bench.lab", "replay", "--space", space_name, "--curves", name]
        spaces[key] = {"command": f"{shlex.join(lab)} "
                                  f"--budget cpu{flags} "
                                  f"--repeats {repeats}",
                       "recorded": recorded, "trials": summary["trials"], "patience": summary["patience"],
                       "best_true": summary["best_true"], "median_true": summary["median_true"],
                       "seed_noise": summary["seed_noise"], "baseline_epochs": summary["baseline_epochs"],
                       "model_check": summary["model_check"], "model": summary["model"],
                       "baseline": BASELINE, "reference": REFERENCE, "strategies": summary["strategies"],
                       "study_s": summary["seconds"], "replay_64_trials_s": replay_64, "png": str(png),
                       "live": _live_figures(live, summary) if live.is_file() else None}
    if not spaces:
        raise OptionError(f"no recorded curves under {curves_root} (<space>/curves/<name>/{TABLE}); record some "
                          "with `spectune record --space SPACE`.")
    _holm_across_spaces(spaces)
    return {"repeats": repeats, "targets": REPLAY_TARGETS, "spaces": spaces}


def _live_figures(path: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """Per strategy of a committed live check: the live pick's median and quartiles, the epochs, whether
    they fall inside the replay's interquartile range and within 15 % of its epochs, and P(win) at 25 %
    of random search's epochs, at its epochs and at the end against random search's final pick (paired as
    the replay pairs). Searches kept from before the pick at random search's epochs was confirmed have it
    where they spent no more than those epochs (it is their final pick), and none otherwise. The replay's
    interquartile range is set beside the live picks judged on the recording's seeds, as the replay judges
    its picks, where the live check judged them so (``None`` otherwise: then beside the new seeds' figure)."""
    from results.files import read_csv
    from search.bench.live import quality_at_baseline
    from search.replay.study import judged_picks
    from search.replay.stats import inside, paired_win, within

    live = read_csv(path, "the recording's live searches", ("strategy", "epochs", "final_quality", "quality_at_0.25"))
    predicted = {r["strategy"]: r for r in summary["strategies"]}
    mode = "max" if summary["best_true"] >= summary["median_true"] else "min"
    base = live[live["strategy"] == summary["strategies"][0]["strategy"]]["final_quality"].to_numpy()
    out = {}
    for name, part in live.groupby("strategy", sort=False):
        q, e, r = part["final_quality"], part["epochs"], predicted.get(name)
        win = paired_win(part["quality_at_0.25"].to_numpy(), np.roll(base, -1)[:len(part)], mode)
        final = paired_win(part["final_quality"].to_numpy(), np.roll(base, -1)[:len(part)], mode)
        at_1 = quality_at_baseline(part)
        equal = paired_win(at_1.to_numpy(), np.roll(base, -1)[:len(part)], mode) if at_1.notna().all() else None
        judged = judged_picks(part)
        on_recorded = judged if judged.name != "final_quality" else None
        out[name] = {"searches": len(part), "quality_median": float(q.median()), "quality_q25": float(q.quantile(0.25)),
                     "quality_q75": float(q.quantile(0.75)), "epochs_median": float(e.median()),
                     "recorded_seeds": None if on_recorded is None else [float(on_recorded.median()),
                                                                         float(on_recorded.quantile(0.25)),
                                                                         float(on_recorded.quantile(0.75))],
                     "p_win_0.25": win, "p_win_1": equal, "p_win_final": final,
                     # None: the strategy was not replayed (NePS without its environment)
                     "inside_replay_iqr": (bool(inside(judged.median(), r["quality_q25"], r["quality_q75"]))
                                           if r else None),
                     "epochs_within_15pc": bool(within(e.median(), r["epochs_median"])) if r else None}
    return out


def _holm_across_spaces(spaces: dict[str, Any]) -> None:
    """Non-inferiority against the reference, Holm-corrected over every budget and judged space at once."""
    from search.replay.stats import BUDGETS, holm

    cells = [(study, row, f) for study in spaces.values() if "strategies" in study
             for row in study["strategies"] for f in BUDGETS if f"ni_p_{f:g}" in row]
    for (study, row, f), adjusted in zip(cells, holm([row[f"ni_p_{f:g}"] for _, row, f in cells]) if cells else []):
        row[f"ni_p_holm_all_{f:g}"] = adjusted


def noop_trial(config: dict[str, Any], data: Any, settings: Any) -> None:
    """A trial that does no work: what is left of its wall time is the toolkit's overhead."""
    from ray import tune

    tune.report({"epoch": 1, **{k: 0.0 for k in EPOCH_METRICS}, "best_val_macro_f1": 0.0, "finished": True})


def bench_overhead(size: Size, data_dir: Path, work: Path, repeats: int) -> dict[str, Any]:
    """Per-trial cost of Ray + MLflow with actor reuse: the slope between a short and a long search,
    each timed ``repeats`` times (median) after an untimed warm-up, since a search's fixed cost
    varies by tenths of a second and would otherwise swamp the slope."""
    def timed(n: int, tag: str) -> float:
        start = time.perf_counter()
        run_search(_options(work, data_dir, size, name=f"noop-{n}-{tag}", trials=n, max_epochs=1, sampler="random",
                            scheduler="fifo", concurrency=1, gpus_per_trial=0), trial_fn=noop_trial)
        return time.perf_counter() - start

    timed(1, "warmup")
    walls = {n: float(np.median([timed(n, str(r)) for r in range(repeats)])) for n in size.noop_trials}
    per_trial, fixed = _slope(walls)
    return {"wall_s": walls, "repeats": repeats, "per_trial_s": per_trial, "fixed_s": fixed}


def _slope(walls: dict[int, float]) -> tuple[float, float]:
    """Seconds per trial and fixed seconds per search, from the walls of a short and a long search."""
    (small, short), (big, long) = sorted(walls.items())
    per_trial = (long - short) / (big - small)
    return per_trial, short - small * per_trial


# Part 4's real trials: the quick pair at its starting config, one epoch each; the issue's target for what a
# one-epoch trial costs above its training on CPU.
TRIAL_COST_SPACE = "wine_mlp"
TRIAL_COST_TARGET = 0.3


def bench_trial_cost(size: Size, work: Path, repeats: int) -> dict[str, Any]:
    """Per-trial cost of a real one-epoch trial above its own training: ``spectune search``'s path (FIFO,
    one trial at a time) over the quick pair's starting config, a short and a long search each timed
    ``repeats`` times (median) after an untimed warm-up. The slope of the wall between them is the wall
    per trial, the mean of the trials' reported epoch seconds (``train_time_s``) its training; the
    difference is what the toolkit adds to each trial."""
    start = get_space(TRIAL_COST_SPACE).start[0]

    def timed(n: int, tag: str) -> tuple[float, Any]:
        began = time.perf_counter()
        outcome = run_search(SearchOptions(space=TRIAL_COST_SPACE, storage=work / "ray", results_root=work / "results",
                                           tracking_uri=f"sqlite:///{work / 'mlflow.db'}", name=f"trial-{n}-{tag}",
                                           trials=n, max_epochs=1, sampler="random", scheduler="fifo", concurrency=1,
                                           gpus_per_trial=0, space_start=False, start=(start,) * n))
        return time.perf_counter() - began, outcome

    timed(1, "warmup")
    runs = {n: [timed(n, str(r)) for r in range(repeats)] for n in size.noop_trials}
    walls = {n: float(np.median([w for w, _ in r])) for n, r in runs.items()}
    per_trial, fixed = _slope(walls)
    train_s = float(np.median([o.trials["train_time_s"].mean() for r in runs.values() for _, o in r]))
    # The same cost seen from inside the long searches, free of their fixed cost: the median time from one
    # trial's first epoch to the next one's.
    starts = [o.trials["started_at"].sort_values().diff().dropna() for _, o in runs[max(runs)]]
    cadence = float(np.median(pd.concat(starts)))
    threads = runs[max(runs)][0][1].best["data_options"]["threads"]
    return {"space": TRIAL_COST_SPACE, "config": start, "wall_s": walls, "repeats": repeats,
            "per_trial_s": per_trial, "train_per_trial_s": train_s, "above_training_s": per_trial - train_s,
            "cadence_s": cadence, "cadence_above_training_s": cadence - train_s, "fixed_s": fixed,
            "threads": threads, "target_above_training_s": TRIAL_COST_TARGET}


# --parts name -> key of its figures in bench.json
PARTS = {"epoch": "epoch_time", "cpu_epoch": "cpu_epoch", "throughput": "throughput", "efficiency": "efficiency",
         "overhead": "overhead", "fused": "fused"}


def _parse_parts(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        raise OptionError(f"--parts: unknown part(s) {unknown or [text]}; choose from {','.join(PARTS)}.")
    return parts


def _parse_trials(text: str | None, size: Size) -> Size:
    """``--overhead-trials SMALL,BIG``: part 4's short and long searches (``None``: the size's)."""
    if text is None:
        return size
    try:
        small, big = (int(n) for n in text.split(","))
    except ValueError:
        small = big = 0
    if not 1 <= small < big:
        raise OptionError(f"--overhead-trials: {text!r} is not two trial counts SMALL,BIG with 1 <= SMALL < BIG; "
                          f"e.g. {','.join(map(str, size.noop_trials))} (this size's).")
    return replace(size, noop_trials=(small, big))


def _earlier_record(path: Path, device: str, size_name: str) -> dict[str, Any]:
    """``--merge``: the figures of an earlier run, only if it measured the same device at the same size."""
    old = read_json(path, "--merge: earlier benchmark record")
    if (old.get("device"), old.get("size_name")) != (device, size_name):
        raise OptionError(f"--merge: {path} was measured on {old.get('device')!r} at {old.get('size_name')!r} "
                         f"sizes, this run is {device!r} at {size_name!r}; figures from different machines "
                         "do not go in one table. Drop --merge, or use another --out.")
    return old


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.bench.benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/ztf-synthetic"))
    parser.add_argument("--out", type=Path, default=Path(".bench"), help="bench.json and the runs' scratch folders")
    parser.add_argument("--size", choices=["auto", "gpu", "cpu"], default="auto")
    parser.add_argument("--markdown", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--curves-root", type=Path, default=Path("results"),
                        help="part 3 replays every recording under <root>/<space>/curves/")
    parser.add_argument("--replay-repeats", type=int, default=100, help="part 3: replays per strategy (default 100)")
    parser.add_argument("--plots", type=Path, default=Path("results/bench"),
                        help="part 3's plots (one per recording), linked from the markdown")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--overhead-trials", metavar="SMALL,BIG",
                        help="part 4: trials of its short and long searches (default: the size's, "
                             f"{','.join(map(str, CPU.noop_trials))} on CPU, {','.join(map(str, GPU.noop_trials))} on "
                             "GPU); fewer for a quicker, noisier slope")
    parser.add_argument("--overhead-repeats", type=int, default=3, metavar="N",
                        help="part 4: timed runs of each search, median taken (default 3); 1 for a smoke run")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other parts' figures from <out>/bench.json (same device and size): "
                             "for machines that cannot run every part in one session")
    args = parser.parse_args(argv)
    try:
        parts = _parse_parts(args.parts)
        device = pick_device("auto")
        size = {"gpu": GPU, "cpu": CPU}.get(args.size) or (GPU if device.type == "cuda" else CPU)
        size_name = "gpu" if size is GPU else "cpu smoke"
        size = _parse_trials(args.overhead_trials, size)
        if args.overhead_repeats < 1:
            raise ValueError(f"--overhead-repeats: {args.overhead_repeats} is not a number of runs (1 or more)")
        device_name = _device_name(device)
        earlier = _earlier_record(args.out / "bench.json", device_name, size_name) if args.merge else {}
        data = load_ztf(args.data, size)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    work = (args.out / datetime.now().strftime("%Y%m%d-%H%M%S")).resolve()
    work.mkdir(parents=True)
    print(f"benchmark on {device_name} ({size_name} sizes), parts {','.join(parts)}: {data.describe()}")
    logging.getLogger("ray").setLevel(logging.ERROR)
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(log_to_driver=False, logging_level=logging.ERROR, include_dashboard=False)
    runners = {"epoch": lambda: bench_epoch_time(data, device, size),
               "cpu_epoch": lambda: bench_cpu_epoch(args.data, size),
               "throughput": lambda: bench_throughput(data, device, size, args.data, work),
               "efficiency": lambda: bench_efficiency(args.curves_root, work, args.plots, args.replay_repeats),
               "overhead": lambda: {**bench_overhead(size, args.data, work, args.overhead_repeats),
                                    "one_epoch": bench_trial_cost(size, work, args.overhead_repeats)},
               "fused": bench_fused}
    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "search.bench.benchmark", *(argv or sys.argv[1:])])
    figures, provenance = dict(earlier.get("figures", {})), dict(earlier.get("parts", {}))
    try:
        for part in parts:
            figures[PARTS[part]] = runners[part]()
            provenance[part] = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                "command": command, "git_commit": git_commit()}
            print(f"{part}:", {k: v for k, v in figures[PARTS[part]].items() if k not in ("spaces", "one_epoch")})
            if "one_epoch" in figures[PARTS[part]]:
                print("one-epoch trials:", figures[PARTS[part]]["one_epoch"])
    finally:
        if started:
            ray.shutdown()
    record = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command,
              "device": device_name, "cpu_count": os.cpu_count(), "platform": platform.platform(),
              "size": asdict(size), "size_name": size_name, "data": data.describe(),
              "versions": versions(), "git_commit": git_commit(), "parts": provenance, "figures": figures}
    for study in figures.get("efficiency", {}).get("spaces", {}).values():
        if "png" in study:
            study["png"] = os.path.relpath(Path(study["png"]).resolve(), args.markdown.resolve().parent)
    write_json(args.out / "bench.json", record)
    args.markdown.write_text(render_markdown(record))
    print(f"wrote {args.out / 'bench.json'} and {args.markdown}")
    return 0


def render_markdown(record: dict[str, Any]) -> str:
    """BENCHMARKS.md: the command, device, versions and every figure, with the issue's targets."""
    f = record["figures"]
    smoke = record["size_name"] != "gpu"
    commands = {p["command"] for p in record.get("parts", {}).values()} or {record["command"]}
    lines = ["# Benchmarks", "",
             f"Generated by `make bench` on {record['date']}.", ""]
    if len(commands) == 1:
        lines.append(f"- command: `{commands.pop()}`")
    else:
        lines += [f"- part {part}: `{p['command']}` on {p['date']} (commit {p['git_commit'][:12]})"
                  for part, p in record["parts"].items()]
    lines += [f"- device: {record['device']}; host CPU cores: {record['cpu_count']}; sizes: {record['size_name']}",
              f"- data: {record['data']}",
              "- versions: " + ", ".join(f"{k} {v}" for k, v in record["versions"].items()),
              f"- commit: {record['git_commit']}", ""]
    if smoke:
        lines += ["**CPU smoke run.** Sizes are cut down so that the benchmark runs anywhere; parts 1 and 2",
                  "show that the benchmark works and are not the toolkit's performance: their targets are",
                  "judged only from a GPU run (`make bench` on a machine with a CUDA GPU). Parts 1b and 4",
                  "are CPU measurements by design (1b at full size); part 3 replays recorded curves and",
                  "holds on any machine.", ""]
    if "epoch_time" in f:
        e = f["epoch_time"]
        lines += ["## 1. Epoch time (target: toolkit <= 0.5x notebook-style)", "",
                  "| loop | median epoch (s) |", "|---|---|",
                  f"| toolkit recipe | {e['toolkit_epoch_s']:.4f} |", f"| notebook-style | {e['notebook_epoch_s']:.4f} |",
                  f"| ratio | {e['ratio']:.2f} |", ""]
    if "cpu_epoch" in f:
        c = f["cpu_epoch"]
        lines += ["## 1b. The shared loop on CPU (target: ratio <= 1)", "",
                  f"GalSpecNet, {c['train_spectra']} training spectra at {c['points']} points, the notebook's config, "
                  f"validation included, {c['threads']} torch threads; interleaved runs, median epoch of each:", "",
                  "| run | toolkit recipe (s) | notebook-style DataLoader loop (s) |", "|---|---|---|"]
        lines += [f"| {i + 1} | {r['toolkit_epoch_s']:.2f} | {r['notebook_epoch_s']:.2f} |"
                  for i, r in enumerate(c["runs"])]
        lines += ["", f"Median ratio toolkit / notebook-style: {c['median_ratio']:.2f}.", ""]
    if "throughput" in f:
        t = f["throughput"]
        lines += [f"## 2. Throughput: {t['configs']} fixed configs x {t['epochs']} epochs, no early stopping",
                  "(targets: >= 3x the in-process Optuna loop, >= 60 % of the practical limit)", "",
                  "| runner | wall (s) |", "|---|---|",
                  f"| spectune search (random sampler over the fixed list, FIFO) | {t['toolkit_s']:.1f} |",
                  f"| plain Optuna loop, notebook-style training | {t['notebook_optuna_s']:.1f} |",
                  f"| practical limit ({t['big_batch_spectra_per_s']:.0f} spectra/s at big batch) | {t['practical_limit_s']:.1f} |",
                  "", f"Speed-up over the Optuna loop: {t['speedup_vs_notebook']:.2f}x; "
                  f"fraction of the practical limit: {100 * t['fraction_of_limit']:.1f} %.", ""]
    if "efficiency" in f:
        lines += render_efficiency(f["efficiency"])
    if "overhead" in f:
        o = f["overhead"]
        lines += ["## 4. Toolkit overhead per trial on CPU (a trial that does no work, actor reuse, MLflow)", "",
                  f"- per trial: {o['per_trial_s']:.2f} s (target < 1 s)", f"- fixed per search: {o['fixed_s']:.1f} s",
                  "- wall (median of " + str(o.get("repeats", 1)) + " searches each): "
                  + ", ".join(f"{n} trials {w:.2f} s" for n, w in o["wall_s"].items()), ""]
        if "one_epoch" in o:
            lines += render_trial_cost(o["one_epoch"])
    if "fused" in f:
        lines += render_fused(f["fused"])
    return "\n".join(lines)


def render_trial_cost(t: dict[str, Any]) -> list[str]:
    """Part 4b: a real one-epoch trial's cost above its own training."""
    config = ", ".join(f"{k} {v}" for k, v in t["config"].items())
    met = "met" if t["above_training_s"] <= t["target_above_training_s"] else "missed"
    return [f"### 4b. A real one-epoch trial above its training (target <= {t['target_above_training_s']:g} s)", "",
            f"`spectune search --space {t['space']}` at its starting config ({config}), one epoch per trial, FIFO, "
            f"one trial at a time, {t['threads']} torch thread per trial; the slope of the wall between the two "
            "searches is the wall per trial, the trials' reported epoch seconds their training:", "",
            "| per trial | seconds |", "|---|---|",
            f"| wall (slope) | {t['per_trial_s']:.3f} |", f"| its training | {t['train_per_trial_s']:.3f} |",
            f"| above its training | {t['above_training_s']:.3f} ({met}) |",
            f"| from one trial's start to the next's (median, the long searches) | {t['cadence_s']:.3f} |", "",
            f"- fixed per search: {t['fixed_s']:.1f} s",
            "- wall (median of " + str(t["repeats"]) + " searches each): "
            + ", ".join(f"{n} trials {w:.2f} s" for n, w in t["wall_s"].items()), ""]


def render_efficiency(e: dict[str, Any]) -> list[str]:
    """Part 3: per recorded space, what the replay measured, beside the live check where one was run."""
    from search.replay.stats import BUDGETS

    t = e["targets"]
    lines = [f"## 3. Search quality and cost, from replays of recorded curves ({e['repeats']} repeats per strategy)",
             "",
             "How each row was measured: random search is replayed exactly (the recorded configs in a random order, "
             "without replacement); a model-based sampler's proposals are served by a model of the curves fitted on "
             "the recording, whose held-out error is given against one seed noise; every pick is judged on recorded "
             "seeds the search did not see. P(win) at b: P(the strategy's pick after b x random search's median epochs "
             "is at least as good as random search's final pick), ties one half, with a 95 % bootstrap interval. "
             "Regret area: mean normalised regret (0 the best recorded config, 1 the median one) over budgets up to "
             "random search's median epochs. NI: one-sided Wilcoxon test of non-inferiority against Optuna TPE + "
             "HyperbandPruner with a margin of one pooled seed noise, Holm-corrected over every budget and space "
             f"(p < 0.05: not worse). Targets: at least {t['configs_per_trial']} recorded configs per trial, "
             f"{t['repeats']} repeats, a replayed 64-trial search <= {t['replay_64_trials_s']:.0f} s, a study <= "
             f"{t['study_s'] / 60:.0f} min; the live check: the live median pick inside the replay's interquartile "
             "range and its median epochs within 15 %.", ""]
    for key, study in e["spaces"].items():
        lines += [f"### {key}", ""]
        if "skipped" in study:
            lines += [f"Skipped: {study['skipped']}", ""]
            continue
        if "not_judged" in study:
            lines += [f"Not judged: {study['not_judged']} ({study['recorded']}).", ""]
            continue
        check = study["model_check"]
        chosen = study["model"]
        lines += [f"`{study['command']}` on curves of {study['recorded']}; {study['trials']} trials, patience "
                  f"{study['patience']}. Best recorded config {study['best_true']:.4f}, median config "
                  f"{study['median_true']:.4f}, one pooled seed noise {study['seed_noise']:.4f}; random search's "
                  f"median epochs {study['baseline_epochs']:.0f}.", "",
                  f"Curve model ({check['folds']}-fold over {check['configs']} configs): {chosen}, held-out RMSE "
                  f"{check['errors'][chosen]:.4f} ({'below' if check['errors'][chosen] < check['seed_noise'] else 'NOT below'}"
                  f" one seed noise); nearest recorded config {check['nearest']:.4f}."
                  + _by_size(check.get("by_size")), "",
                  f"![replay {key}]({study['png']})", "",
                  "| strategy | served | pick, median (IQR) | epochs | "
                  + " | ".join(f"P(win) at {f:g}x" for f in BUDGETS)
                  + " | regret area | P(top-1) | top-3 stopped | NI p (Holm) at 0.25x / 1x |",
                  "|---|---|---|---|" + "---|" * len(BUDGETS) + "---|---|---|---|"]
        faithful = check["errors"][chosen] < check["seed_noise"]
        for r in study["strategies"]:
            wins = " | ".join(f"{r[f'p_win_{f:g}']:.2f} [{r[f'p_win_{f:g}_low']:.2f}, {r[f'p_win_{f:g}_high']:.2f}]"
                              for f in BUDGETS)
            ni = (f"{r['ni_p_holm_all_0.25']:.2g} / {r['ni_p_holm_all_1']:.2g}" if "ni_p_holm_all_1" in r else "-")
            stopped = "-" if r["top3_stopped_share"] != r["top3_stopped_share"] else f"{r['top3_stopped_share']:.0%}"
            served = "exact" if r["modelled_share"] == 0 else "model" if faithful else "model, not judged"
            lines.append(f"| {r['strategy']} | {served} | {r['quality_median']:.4f} ({r['quality_q25']:.4f}-"
                         f"{r['quality_q75']:.4f}) "
                         f"| {r['epochs_median']:.0f} | {wins} | {r['regret_area']:.3f} | {r['p_top1']:.2f} | "
                         f"{stopped} | {ni} |")
        timings = (f"a replayed 64-trial search of the default {study['replay_64_trials_s']:.2f} s "
                   f"({'met' if study['replay_64_trials_s'] <= t['replay_64_trials_s'] else 'missed'}); the study "
                   f"{study['study_s']:.0f} s ({'met' if study['study_s'] <= t['study_s'] else 'missed'})")
        lines += ["", ("Rows served by the curve model are judged here: its held-out error is below one seed noise."
                       if faithful else "Rows marked \"model, not judged\" were served by a curve model whose held-out "
                       "error is not below one seed noise: their figures are shown, not judged; the live check decides "
                       "for them."), "", f"Timings on this machine: {timings}.", ""]
        if study.get("live"):
            lines += ["Live check (committed live.csv: every proposal trained, picks confirmed over 3 new seeds and "
                      "judged on the recording's seeds, as the replay judges its picks; the replay's interquartile "
                      "range is set beside the latter):", "",
                      "| strategy | live searches | live pick on new seeds, median (IQR) | on the recording's seeds | "
                      "inside replay IQR | live epochs | within 15 % | live P(win) at 0.25x | at 1x | at its end |",
                      "|---|---|---|---|---|---|---|---|---|---|"]

            def cell(p: Any) -> str:
                return "not confirmed" if p is None else f"{p[0]:.2f} [{p[1]:.2f}, {p[2]:.2f}]"

            def quartiles(q: Any) -> str:
                return "not judged" if q is None else f"{q[0]:.4f} ({q[1]:.4f}-{q[2]:.4f})"

            for name, v in study["live"].items():
                lines.append(f"| {name} | {v['searches']} | {v['quality_median']:.4f} ({v['quality_q25']:.4f}-"
                             f"{v['quality_q75']:.4f}) | {quartiles(v.get('recorded_seeds'))} | "
                             f"{_yes(v['inside_replay_iqr'])} | "
                             f"{v['epochs_median']:.0f} | {_yes(v['epochs_within_15pc'])} | "
                             f"{cell(v['p_win_0.25'])} | {cell(v.get('p_win_1'))} | "
                             f"{cell(v.get('p_win_final', v.get('p_win_1')))} |")
            off = [name for name, v in study["live"].items() if v["inside_replay_iqr"] is False]
            if off:
                lines += ["", f"The live check disagrees with this replay for {len(off)} of {len(study['live'])} "
                          "strategies (live median pick outside the replay's interquartile range): for those the live "
                          "figures decide, and the replayed ones are shown, not judged."]
            lines.append("")
    return lines


def _by_size(curve: dict[str, Any] | None) -> str:
    """The curve model's held-out error on smaller tables, where the replay measured it (an unfaithful model)."""
    from search.bench.size_curve import SizeCurve

    if not curve:
        return ""
    c = SizeCurve(**curve)
    needed = (f"one seed noise at the order of {c.order()} configs (a log-log extrapolation)" if c.needed
              else "no fall with more configs")
    return f" Its error by table size: {c.steps()}; {needed}."


def _yes(flag: bool | None) -> str:
    return "-" if flag is None else "yes" if flag else "no"


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


if __name__ == "__main__":
    sys.exit(main())
