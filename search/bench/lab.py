"""The research instrument: ``python -m search.bench.lab replay ...``, the replay with what a user of the toolkit
never needs.

``spectune replay`` (:mod:`search.replay.study`) replays what a recording can judge. The lab adds, with the
same options and the same tables:

- ``--neps``: NePS's PriorBand, the peer to beat (:mod:`search.bench.neps_peer`, in NePS's own Python);
- ``--sweep``: TPE + ASHA variants over grace, reduction factor and start-up count, to choose a space's
  defaults by measurement;
- ``--serve nearest``: model-based samplers served the nearest recorded config (biased against TPE; for
  comparison with the curve model);
- where the curve model's check fails, how its error falls with the table's size
  (:mod:`search.bench.size_curve`);
- ``--live N``: after the replay, N live searches per strategy with every proposal trained
  (:mod:`search.bench.live`), set beside the replay's prediction and kept beside the recording (its
  ``live.csv``, which ``spectune replay`` reads to withhold advice where they disagree).

The lab imports the replay, never the reverse.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from results.curves import curves_dir
from results.errors import OptionError
from results.files import write_csv
from search.running.progress import console
from search.replay.simulate import Strategy
from search.replay.stats import inside, within
from search.replay.study import (BASELINE, LIVE_FILE, RECORDED_SEEDS, REFERENCE, Prepared, ReplayOptions, panel,
                                 plan, prepare, replay_study, run_replay)
from spaces import Space

NEPS_PEER = "NePS PriorBand"
SERVE = ("model", "nearest")
# The strategies checked live besides the space's default and those with many cheap trials: random search,
# random + ASHA, Optuna's peer and the candidates to beat random search.
LIVE_PANEL = (BASELINE, "random + ASHA", REFERENCE, "prior + ASHA", "QMC-TPE + ASHA", "GP + ASHA",
              "TPE + curve ASHA", NEPS_PEER)


@dataclass(frozen=True)
class LabOptions:
    """A replay's options (``replay``) and the lab's: ``sweep``, ``serve``, ``live`` searches per strategy
    (0: none), ``live_only`` (with ``live``: only these strategies, and random search, are searched live) and
    ``neps``."""

    replay: ReplayOptions
    sweep: bool = False
    serve: str = "model"
    live: int = 0
    live_only: tuple[str, ...] = ()
    neps: bool = False


def lab_panel(space: Space, trials: int, concurrency: int, patience: int | None, max_epochs: int, sweep: bool,
              optuna: bool, configs: int | None = None, neps: bool = False) -> list[Strategy]:
    """The replay's panel (:func:`search.replay.study.panel`), then with ``neps`` NePS's PriorBand (Hyperband
    from one epoch, eta 3, random search's epoch budget) and with ``sweep`` the TPE + ASHA variants."""
    out = panel(space, trials, concurrency, patience, max_epochs, optuna, configs)
    base = out[0]
    if neps:
        out.append(replace(base, name=NEPS_PEER, runner="neps", sampler="priorband", scheduler="asha", grace=1,
                           reduction=3))
    if sweep:
        grace = space.grace_for(max_epochs)
        graces = sorted({1, max(1, max_epochs // 9), max(1, max_epochs // 6), max(1, max_epochs // 3), grace})
        for g, rf, startup in itertools.product(graces, (2, 3, 4), (4, 10)):
            if g * rf <= max_epochs and (g, rf, startup) != (grace, space.reduction_factor, space.startup_trials):
                out.append(replace(base, name=f"TPE + ASHA g{g} rf{rf} startup {startup}", sampler="tpe",
                                   scheduler="asha", grace=g, reduction=rf, startup=startup))
    return out


def run_lab(lab: LabOptions) -> dict[str, Any]:
    """The replay study with the lab's strategies and serving, then its live check where asked for."""
    r = lab.replay
    if r.search.objectives:
        if lab.sweep:
            raise OptionError("--sweep varies single-objective ASHA settings; a front replay (--objective) compares "
                              "samplers with and without ASHA. Drop one of the two.")
        return run_replay(r)
    if lab.neps:
        from search.bench.neps_peer import NEPS_ENV, neps_python

        if neps_python() is None:
            raise OptionError(f"--neps replays NePS PriorBand in NePS's own Python, and there is none ({NEPS_ENV}): "
                              "make neps-env, or set SPECTUNE_NEPS_PYTHON.")
    if lab.live < 0:
        raise OptionError(f"--live must be >= 0 (live searches per strategy; 0: none); got {lab.live}.")
    if lab.serve not in SERVE:
        raise OptionError(f"--serve must be one of {', '.join(SERVE)}; got {lab.serve!r}.")
    p = prepare(r)
    o = p.options
    strategies = lab_panel(p.space, o.trials, o.concurrency or 1, p.patience, p.max_epochs, lab.sweep, r.optuna,
                           len(p.curves.configs), neps=lab.neps)
    unknown = sorted(set(lab.live_only) - {s.name for s in strategies})
    if unknown:
        raise OptionError(f"--live-only {unknown[0]!r} is not a strategy of this replay's panel; its strategies: "
                          + "; ".join(s.name for s in strategies) + ".")
    if lab.live_only and not lab.live:
        raise OptionError("--live-only chooses strategies for --live N; pass --live N too (10 searches each, say).")
    planned = plan(r, p, strategies, lab.serve)
    asked = [name for name in lab.live_only if name in planned.left_out]
    if asked:
        raise OptionError(f"--live-only {asked[0]!r} is left out of this replay: {planned.too_few}; record more "
                          "configs, or check random search's strategies only.")
    from search.bench.neps_peer import NepsDriver
    from search.bench.size_curve import size_curve

    result = replay_study(r, p, planned, lab.serve, by_size=size_curve, peer=NepsDriver)
    if lab.live:
        chosen = ([s for s in planned.strategies if s.name in lab.live_only or s.name == BASELINE] if lab.live_only
                  else [s for s in planned.strategies
                        if s.name in LIVE_PANEL or s is planned.default or s.trials > o.trials])
        result["live"] = live_check(p, chosen, lab.live, result["study"], result["out"],
                                    tuple(int(s) for s in planned.table.recording_seeds), planned.kept,
                                    result["jobs"])
    return result


def live_check(p: Prepared, strategies: list[Strategy], repeats: int, study: Any, out: Any,
               seeds: tuple[int, ...], kept: pd.DataFrame | None, jobs: int = 1) -> pd.DataFrame:
    """``repeats`` live searches of each strategy (:mod:`search.bench.live`), their picks confirmed over 3
    new seeds and judged on the recording's seeds, set beside the replay's prediction: the live median pick
    (on the recording's seeds, as the replay judges) inside the replay's interquartile range, and the live
    median epochs within 15 % of the replay's, or not. The searches are kept beside the recording (its
    ``live.csv``, with every kept search they do not replace); a later check runs only the strategies that
    have fewer than ``repeats`` there. ``seeds``: the recording's (:attr:`Table.recording_seeds`); ``kept``: its
    kept live searches (:func:`read_live`); ``jobs``: processes training at once."""
    from search.bench.live import Trainer, live_panel, with_kept

    space = p.space
    beside = curves_dir(space.name, p.curves.name, p.options.results_root) / LIVE_FILE
    console.print(f"live check: {repeats} live searches of {len(strategies)} strategies, every proposal trained "
                  f"(data {p.data.describe()}), picks confirmed over 3 new seeds; {jobs} process"
                  f"{'es' if jobs > 1 else ''} training at once", soft_wrap=True)
    started = time.perf_counter()

    def keep(rows: pd.DataFrame) -> None:
        # After each strategy, beside the study and beside the recording (with every kept search these rows do
        # not replace): an interrupted check loses no finished strategy, and no check loses a kept search.
        write_csv(out / LIVE_FILE, rows)
        write_csv(beside, with_kept(rows, kept))

    live = live_panel(Trainer(p.data, p.settings, space.pair.load_base(p.options.base)), space.params,
                      list(space.start), strategies, repeats, BASELINE, save=keep, kept=kept, recorded_seeds=seeds,
                      jobs=jobs)
    keep(live)
    rows = []
    for name, part in live.groupby("strategy", sort=False):
        predicted = study.table.set_index("strategy").loc[name]
        q = float(part[RECORDED_SEEDS].median())
        e = float(part["epochs"].median())
        rows.append({"strategy": name, "live searches": len(part),
                     "live pick on new seeds, median (IQR)": _quartiles(part["final_quality"]),
                     f"on the recording's seeds {', '.join(map(str, seeds))}": _quartiles(part[RECORDED_SEEDS]),
                     "replay pick, median (IQR)": f"{predicted['quality_median']:.4f} "
                                                  f"({predicted['quality_q25']:.4f}-{predicted['quality_q75']:.4f})",
                     "pick inside replay IQR": inside(q, predicted["quality_q25"], predicted["quality_q75"]),
                     "live epochs, median": e, "replay epochs, median": float(predicted["epochs_median"]),
                     "epochs within 15 %": within(e, predicted["epochs_median"])})
    table = pd.DataFrame(rows)
    text = table.to_markdown(index=False)
    (out / "live.md").write_text(text + "\n")
    console.print(text, soft_wrap=True)
    console.print(f"live check -> {out / 'live.csv'}, {out / 'live.md'}; {time.perf_counter() - started:.0f} s",
                  soft_wrap=True)
    return live


def _quartiles(values: pd.Series) -> str:
    return f"{values.median():.4f} ({values.quantile(0.25):.4f}-{values.quantile(0.75):.4f})"




def build_parser() -> argparse.ArgumentParser:
    """``spectune replay``'s options with the lab's."""
    from search.cli import replay_args

    parser = argparse.ArgumentParser(prog="python -m search.bench.lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("replay", help="replay search strategies on recorded curves, with the lab's strategies")
    replay_args(p)
    p.add_argument("--sweep", action="store_true",
                   help="add TPE + ASHA variants over grace, reduction factor and start-up trials")
    p.add_argument("--neps", action="store_true",
                   help="add NePS's PriorBand, the peer to beat (runs in NePS's own Python: make neps-env)")
    p.add_argument("--serve", choices=SERVE, default="model",
                   help="how a model-based sampler's unrecorded proposals are served: a model of the curves fitted "
                        "on the recording, checked on configs it was not fitted on (default), or the nearest recorded "
                        "config (biased against TPE; for comparison). Random search is always served exactly.")
    p.add_argument("--live", type=int, default=0, metavar="N",
                   help="after the replay, N live searches of the default, random search, random + ASHA, Optuna "
                        "TPE + HyperbandPruner, the candidates (prior, QMC-TPE, GP, curve ASHA, 4x trials) and "
                        "with --neps NePS PriorBand (every proposal trained, picks confirmed over 3 new seeds, --jobs "
                        "processes training at once), set beside the replay's prediction (minutes to hours: a check "
                        "of the replay, not a search)")
    p.add_argument("--live-only", action="append", metavar="STRATEGY",
                   help="with --live, check only this strategy of the panel (its name as the table prints it; "
                        "repeat the flag for several); random search is always checked, the others are measured "
                        "against its epochs")
    return parser


def cmd_lab_replay(args: argparse.Namespace) -> None:
    from search.cli import replay_options

    run_lab(LabOptions(replay_options(args), sweep=args.sweep, serve=args.serve, live=args.live,
                       live_only=tuple(args.live_only or ()), neps=args.neps))


def main(argv: list[str] | None = None) -> int:
    """The lab's entry point, with ``spectune``'s handling of errors (one ``error:`` line, exit 2)."""
    from search.cli import main as cli_main

    return cli_main(argv, build_parser(), {"replay": cmd_lab_replay})


if __name__ == "__main__":
    sys.exit(main())
