"""Trainer throughput, fused against separate: K members of one model trained as one
(:class:`trainables.fused.FusedTrainer`) against the same K configs trained one after another by
``recipe.train``, in members x training samples per second.

Each model runs at its space's start config; member i takes seed i and the start rate times
``2 ** (i / K - 0.5)``, so members differ as a search's trials do. One torch thread; the separate and
fused runs of each K alternate (interleaved) and the median of the repeats is kept, since the machine
may be shared: only the ratios count. Both sides time whole runs (model building, every epoch's
training and validation), after one untimed warm-up run of each.

    python -m search.bench.fused_throughput [--repeats 3] [--models wine_mlp,california_mlp,galspecnet]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spaces import get_space
from trainables.data import DataError, Splits, get_data, scale_down
from trainables.fused import FusedTrainer
from trainables.pair import Pair, Resolved
from trainables.recipe import train


@dataclass(frozen=True)
class Case:
    """One model's measurement: its space, the K to try, the epochs per run and how the data is cut."""

    space: str
    ks: tuple[int, ...]
    epochs: int
    note: str


CASES = (Case("wine_mlp", (1, 4, 8, 16, 32), 10, "wine, all 124 training rows"),
         Case("california_mlp", (1, 4, 8, 16, 32), 2, "California housing, a fifth of the training rows"),
         # Compute-bound on a CPU core already: expected not to pay there (issue 37), so only small K.
         Case("galspecnet", (1, 4, 8), 1, "synthetic ZTF spectra, 256 points, 24 training spectra per class"))


def load(case: Case, scratch: Path) -> Splits:
    """The case's data: wine as shipped; California housing from ``data/`` or, when it is not there, the
    data module's synthetic table of the same size; synthetic ZTF spectra for GalSpecNet."""
    module = get_data(get_space(case.space).data)
    if case.space == "galspecnet":
        from trainables.data.ztf_synthetic import write_synthetic

        write_synthetic(scratch / "ztf", seed=0, n_train=24, n_val=8, n_test=1, n_points=256)
        return replace(module.load(scratch / "ztf"), test=None)
    if case.space == "california_mlp":
        try:
            data = module.load(None)
        except DataError:
            module.prepare(scratch / "housing", seed=0, force=True, source="synthetic", rows=20640)
            data = module.load(scratch / "housing")
        return replace(scale_down(data, train_fraction=0.2, seed=0), test=None)
    return replace(module.load(None), test=None)


def member_configs(case: Case, k: int) -> list[Resolved]:
    space = get_space(case.space)
    pair = Pair(space.model, space.data)
    start = {**space.start[0], **space.fixed, "epochs": case.epochs, "patience": None}
    return [pair.resolve({**start, "seed": i, "lr": start["lr"] * 2 ** (i / k - 0.5)}) for i in range(k)]


def _separate(case: Case, data: Splits, configs: list[Resolved]) -> float:
    space = get_space(case.space)
    pair = Pair(space.model, space.data)
    pair.model_entry       # the registry's first scan happens here, not in the timed part
    started = time.perf_counter()
    for resolved in configs:
        train(pair.model_fn(data.spec, resolved), data, resolved.recipe, metric=space.metric, mode=space.mode)
    return time.perf_counter() - started


def _fused(case: Case, data: Splits, configs: list[Resolved]) -> float:
    space = get_space(case.space)
    pair = Pair(space.model, space.data)
    pair.model_entry
    started = time.perf_counter()
    trainer = FusedTrainer(data, "cpu", metric=space.metric, mode=space.mode, capacity=len(configs))
    for i, resolved in enumerate(configs):
        trainer.add(str(i), pair.model_fn(data.spec, resolved), resolved.recipe)
    while trainer.members:
        trainer.run_epoch()
    return time.perf_counter() - started


def bench_fused(cases: tuple[Case, ...] = CASES, repeats: int = 3) -> dict[str, Any]:
    """Per model and K: median seconds of K separate runs and of one fused run, and the throughputs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for case in cases:
                data = load(case, Path(scratch))
                samples = len(data.train) * case.epochs
                warm = member_configs(case, 1)
                _separate(case, data, warm), _fused(case, data, warm)
                for k in case.ks:
                    configs = member_configs(case, k)
                    times = [(_separate(case, data, configs), _fused(case, data, configs)) for _ in range(repeats)]
                    separate, fused = (float(np.median(column)) for column in zip(*times))
                    rows.append({"space": case.space, "note": case.note, "k": k, "epochs": case.epochs,
                                 "train_samples": len(data.train), "separate_s": separate, "fused_s": fused,
                                 "separate_rate": k * samples / separate, "fused_rate": k * samples / fused,
                                 "ratio": separate / fused, "runs": times})
                    print(render_row(rows[-1]), flush=True)
    finally:
        torch.set_num_threads(threads)
    return {"rows": rows, "repeats": repeats, "threads": 1}


def render_row(row: dict[str, Any]) -> str:
    return (f"| {row['space']} | {row['k']} | {row['separate_rate']:,.0f} | {row['fused_rate']:,.0f} | "
            f"{row['ratio']:.2f}x |")


def render_fused(figures: dict[str, Any]) -> list[str]:
    """The table: members x training samples per second, K separate runs against one fused run."""
    notes = dict.fromkeys(f"{r['space']}: {r['note']}, {r['epochs']} epoch(s) per run" for r in figures["rows"])
    return ["## 5. Fused trainer throughput (issue 37; target >= 4x at K >= 16 on the MLPs)", "",
            f"Members x training samples per second, {figures['threads']} torch thread, interleaved, median of "
            f"{figures['repeats']}; each model at its space's start config, member i with seed i and the start rate "
            "times 2^(i/K - 0.5). " + "; ".join(notes) + ".", "",
            "| model | K | separate (samples/s) | fused (samples/s) | fused / separate |", "|---|---|---|---|---|",
            *(render_row(r) for r in figures["rows"]), ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.bench.fused_throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default=",".join(c.space for c in CASES),
                        help=f"comma-separated subset of {','.join(c.space for c in CASES)}")
    args = parser.parse_args(argv)
    chosen = [c for c in CASES if c.space in args.models.split(",")]
    print("\n".join(render_fused(bench_fused(tuple(chosen), args.repeats))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
