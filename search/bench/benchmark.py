"""``make bench``: how fast the toolkit trains and searches, measured in one go on one machine.

1. epoch time: the toolkit's recipe vs the notebook-style loop (same model, data, config);
2. throughput: a fixed list of galspecnet configs trained without early stopping through the
   search driver vs a plain in-process Optuna loop with notebook-style training, vs the
   practical limit (total spectra trained / the big-batch rate measured in the same run);
3. search efficiency: TPE + ASHA vs random + FIFO over seeds: best val macro-F1 against
   cumulative epochs, the epochs TPE + ASHA needed to reach random search's final best, and the
   test macro-F1 of each method's best config retrained once next to the notebook default;
4. per-trial overhead of Ray + MLflow on CPU, with a trial that does no work.

On a machine without a GPU everything is sized down to a smoke test; its figures are not quoted
as results. Writes ``<out>/bench.json``, ``BENCHMARKS.md`` and the efficiency plot it links.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from results.files import read_json, write_json
from results.plots import plot_efficiency
from results.provenance import git_commit, versions
from search.bench.notebook_loop import notebook_train
from search.collect import collect_trials
from search.options import SearchOptions
from search.search import run_search
from search.tracking import EPOCH_METRICS
from spaces import get_space
from trainables.data import Splits, get_data, scale_down
from trainables.errors import OptionError
from trainables.pair import Pair, Resolved
from trainables.recipe import amp_dtype, evaluate_test, pick_device, to_device, train

GALSPECNET = Pair("galspecnet", "ztf_spectra")


@dataclass(frozen=True)
class Size:
    """How big each part is. ``gpu`` follows the issue; ``cpu`` is a smoke test."""

    points: int | None
    train_per_class: int | None
    timing_epochs: int
    configs: int
    config_epochs: int
    seeds: int
    search_trials: int
    search_epochs: int
    noop_trials: tuple[int, int]
    cpu_ratio_points: int = 1024
    cpu_ratio_pairs: int = 3


GPU = Size(points=None, train_per_class=None, timing_epochs=8, configs=32, config_epochs=30, seeds=3,
           search_trials=32, search_epochs=40, noop_trials=(4, 64))
CPU = Size(points=256, train_per_class=12, timing_epochs=3, configs=4, config_epochs=3, seeds=3,
           search_trials=4, search_epochs=3, noop_trials=(4, 36))


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


def efficiency_curve(histories: dict[str, Any]) -> list[tuple[int, float]]:
    """(cumulative epochs trained, best val macro-F1 so far) after every epoch of every trial,
    epochs taken in the order they were reported across the concurrent trials."""
    epochs = sorted((float(t), trial, int(e), float(f)) for trial, frame in histories.items()
                    for t, e, f in zip(frame["reported_at"], frame["epoch"], frame["val_macro_f1"]))
    curve, best = [], 0.0
    for done, (_, _, _, f1) in enumerate(epochs, start=1):
        best = max(best, f1)
        curve.append((done, best))
    return curve


RANDOM_SEED_OFFSET = 100


def bench_efficiency(data: Splits, device: torch.device, size: Size, data_dir: Path,
                     work: Path) -> dict[str, Any]:
    # Optuna's TPE draws its start-up trials with RandomSampler(seed): random search gets other
    # seeds, or both methods would share their first configs and the comparison would be paired.
    methods = {"tpe+asha": ("tpe", "asha", 0), "random+fifo": ("random", "fifo", RANDOM_SEED_OFFSET)}
    curves: dict[str, list[list[tuple[int, float]]]] = {m: [] for m in methods}
    best_configs: dict[str, tuple[float, dict[str, Any]]] = {}
    for seed in range(size.seeds):
        for method, (sampler, scheduler, offset) in methods.items():
            name = f"eff-{method.replace('+', '-')}-s{seed + offset}"
            outcome = run_search(_options(work, data_dir, size, name=name, trials=size.search_trials,
                                          max_epochs=size.search_epochs, sampler=sampler, scheduler=scheduler,
                                          seed=seed + offset))
            _, _, histories = collect_trials(work / "ray" / name, [])
            curves[method].append(efficiency_curve({k: v for k, v in histories.items() if len(v)}))
            score = outcome.best["best_val_macro_f1"]
            if score > best_configs.get(method, (-1.0, {}))[0]:
                best_configs[method] = (score, outcome.best["config"])
    reach = []
    for tpe_curve, rnd_curve in zip(curves["tpe+asha"], curves["random+fifo"]):
        target, total = rnd_curve[-1][1], rnd_curve[-1][0]
        hit = next((e for e, b in tpe_curve if b >= target), None)
        reach.append(None if hit is None else hit / total)
    # A seed that never reached random's best counts as infinitely many epochs, so the median is
    # "not reached" only when most seeds did not reach it.
    median = float(np.median([np.inf if r is None else r for r in reach]))
    tests = {m: _test_f1(data_dir, size, cfg, device) for m, (_, cfg) in best_configs.items()}
    # The notebook's final_config with its own 100 epochs and patience; cut to the smoke budget on CPU.
    default = _resolve({}).to_dict() if size is GPU else {**_resolve({}).to_dict(), "epochs": size.search_epochs}
    tests["notebook default"] = _test_f1(data_dir, size, default, device)
    return {"seeds": size.seeds, "trials": size.search_trials, "max_epochs": size.search_epochs,
            "curves": curves, "fraction_of_random_epochs_to_reach_its_best": reach,
            "median_fraction": None if np.isinf(median) else median,
            "test_macro_f1": tests}


def _test_f1(data_dir: Path, size: Size, config: dict[str, Any], device: torch.device) -> float:
    """Retrain ``config`` once as ``spectune train --test`` would (its seed picks the training
    subset when the data is scaled down) and evaluate the test split once."""
    resolved = _resolve(config)
    data = load_ztf(data_dir, size, test=True, seed=resolved.recipe.seed)
    result = train(GALSPECNET.model_fn(data.spec, resolved), data, resolved.recipe, device)
    return evaluate_test(result.model, data, resolved.recipe, device).macro_f1


def noop_trial(config: dict[str, Any], data: Any, settings: Any) -> None:
    """A trial that does no work: what is left of its wall time is the toolkit's overhead."""
    from ray import tune

    tune.report({"epoch": 1, **{k: 0.0 for k in EPOCH_METRICS}, "best_val_macro_f1": 0.0, "finished": True})


def bench_overhead(size: Size, data_dir: Path, work: Path, repeats: int = 3) -> dict[str, Any]:
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
    small, big = size.noop_trials
    per_trial = (walls[big] - walls[small]) / (big - small)
    return {"wall_s": walls, "repeats": repeats, "per_trial_s": per_trial, "fixed_s": walls[small] - small * per_trial}


# --parts name -> key of its figures in bench.json
PARTS = {"epoch": "epoch_time", "cpu_epoch": "cpu_epoch", "throughput": "throughput", "efficiency": "efficiency",
         "overhead": "overhead"}


def _parse_parts(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        raise OptionError(f"--parts: unknown part(s) {unknown or [text]}; choose from {','.join(PARTS)}.")
    return parts


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
    parser.add_argument("--plot", type=Path, default=Path("results/benchmark_efficiency.png"),
                        help="part 3's plot, linked from the markdown")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other parts' figures from <out>/bench.json (same device and size): "
                             "for machines that cannot run every part in one session")
    args = parser.parse_args(argv)
    try:
        parts = _parse_parts(args.parts)
        device = pick_device("auto")
        size = {"gpu": GPU, "cpu": CPU}.get(args.size) or (GPU if device.type == "cuda" else CPU)
        size_name = "gpu" if size is GPU else "cpu smoke"
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
               "efficiency": lambda: bench_efficiency(data, device, size, args.data, work),
               "overhead": lambda: bench_overhead(size, args.data, work)}
    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "search.bench.benchmark", *(argv or sys.argv[1:])])
    figures, provenance = dict(earlier.get("figures", {})), dict(earlier.get("parts", {}))
    try:
        for part in parts:
            figures[PARTS[part]] = runners[part]()
            provenance[part] = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                "command": command, "git_commit": git_commit()}
            print(f"{part}:", {k: v for k, v in figures[PARTS[part]].items() if k != "curves"})
    finally:
        if started:
            ray.shutdown()
    record = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command,
              "device": device_name, "cpu_count": os.cpu_count(), "platform": platform.platform(),
              "size": asdict(size), "size_name": size_name, "data": data.describe(),
              "versions": versions(), "git_commit": git_commit(), "parts": provenance, "figures": figures}
    if "efficiency" in figures:
        png = plot_efficiency(figures["efficiency"]["curves"], args.plot)
        record["efficiency_png"] = os.path.relpath(png.resolve(), args.markdown.resolve().parent)
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
        lines += ["**CPU smoke run.** Sizes are cut down so that the benchmark runs anywhere; parts 1-3",
                  "show that the benchmark works and are not the toolkit's performance: their targets are",
                  "judged only from a GPU run (`make bench` on a machine with a CUDA GPU). Parts 1b and 4",
                  "are CPU measurements by design (1b at full size).", ""]
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
        e = f["efficiency"]
        reach = ", ".join("not reached" if r is None else f"{100 * r:.0f} %"
                          for r in e["fraction_of_random_epochs_to_reach_its_best"])
        median = "not reached" if e["median_fraction"] is None else f"{100 * e['median_fraction']:.0f} %"
        lines += [f"## 3. Search efficiency: TPE + ASHA vs random + FIFO ({e['seeds']} seeds, {e['trials']} trials "
                  f"x up to {e['max_epochs']} epochs)", "(target: TPE + ASHA reaches random's final best with <= 25 % "
                  "of its epochs, median of seeds)", "",
                  f"TPE + ASHA runs with seeds 0-{e['seeds'] - 1}, random search with seeds {RANDOM_SEED_OFFSET}-"
                  f"{RANDOM_SEED_OFFSET + e['seeds'] - 1}, so that its draws are independent of TPE's random start-up "
                  "draws. Neither method is given the notebook's config as a starting point; epochs are counted in the "
                  "order they were reported across concurrent trials. Each method's best config over the seeds, "
                  "and the notebook's final_config, are retrained once and evaluated on test once.", "",
                  f"![efficiency]({record['efficiency_png']})", "",
                  "| seeds (TPE / random) | random: epochs, final best | TPE + ASHA: epochs, final best |",
                  "|---|---|---|"]
        for i, (t, r) in enumerate(zip(e["curves"]["tpe+asha"], e["curves"]["random+fifo"])):
            lines.append(f"| {i} / {i + RANDOM_SEED_OFFSET} | {r[-1][0]}, {r[-1][1]:.4f} | {t[-1][0]}, {t[-1][1]:.4f} |")
        lines += ["", f"Epochs TPE + ASHA needed to reach random search's final best, as a share of random's: "
                  f"{reach} (median {median}).", "", "| config | test macro-F1 (retrained once) |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in e["test_macro_f1"].items()] + [""]
    if "overhead" in f:
        o = f["overhead"]
        lines += ["## 4. Toolkit overhead per trial on CPU (a trial that does no work, actor reuse, MLflow)", "",
                  f"- per trial: {o['per_trial_s']:.2f} s (target < 1 s)", f"- fixed per search: {o['fixed_s']:.1f} s",
                  "- wall (median of " + str(o.get("repeats", 1)) + " searches each): "
                  + ", ".join(f"{n} trials {w:.2f} s" for n, w in o["wall_s"].items()), ""]
    return "\n".join(lines)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


if __name__ == "__main__":
    sys.exit(main())
