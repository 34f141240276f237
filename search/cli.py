"""``spectune``: data, spaces, train, search, export.

Heavy imports (torch, Ray, MLflow) happen inside each command, so ``spectune --help`` is quick
and a mistake in the arguments is reported before any of them load.
"""

from __future__ import annotations

import argparse
import inspect
import shlex
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

from search.options import CONFIRM_OPTIONS, SEARCH_OPTIONS


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; got {value}")
    return value


def replay_args(p: argparse.ArgumentParser) -> None:
    """``spectune replay``'s options (the lab, :mod:`search.bench.lab`, adds its own to them)."""
    p.add_argument("--space", required=True)
    p.add_argument("--curves", required=True, help="the recording's name (spectune record --name)")
    p.add_argument("--repeats", type=_positive_int, default=20, help="replays per strategy (default 20)")
    _table_args(p, SEARCH_OPTIONS, ("budget", "max_epochs", "patience"))
    p.add_argument("--trials", type=int, help="random search's trials, the baseline (default: the budget's); the "
                                              "space's default runs them times its trials_factor")
    p.add_argument("--concurrency", type=int, help="trials at once on the simulated clock (default 1: exact "
                                                   "epoch counts, the order a seeded live search repeats)")
    p.add_argument("--no-patience", action="store_true", help="replay trials without in-trial early stopping")
    p.add_argument("--no-optuna", action="store_true", help="leave out the Optuna-alone peers")
    p.add_argument("--jobs", type=_positive_int, help="processes replaying at once (default: the CPUs this process "
                                                     "may use; the figures do not depend on it)")
    p.add_argument("--objective", dest="objectives", action="append", metavar="NAME:MODE",
                   help="replay multi-objective searches (e.g. trainable_params:min): how much of the front "
                        "each strategy finds, with and without ASHA")
    p.add_argument("--base", help="pretrained weights of a model that starts from them (to count its parameters)")
    p.add_argument("--tracking-uri", help="MLflow store for the study's run (default MLFLOW_TRACKING_URI or "
                                          "sqlite:///mlflow.db)")
    _data_args(p, typed=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spectune", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", help="write, fetch or check a space's data (default: the synthetic ZTF spectra)")
    p.add_argument("--space", default="galspecnet", help="the space whose data to prepare (default galspecnet)")
    p.add_argument("--out", type=Path, help="folder to write (default: the data module's own)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-class", type=_positive_int, nargs=3, metavar=("TRAIN", "VAL", "TEST"),
                   help="generated examples per class in each split (ZTF default 560 120 120)")
    p.add_argument("--points", type=_positive_int, help="points per generated sequence (ZTF default 4096)")
    p.add_argument("--source", help="where a table comes from (tables: covertype, shuttle, satellite, synthetic)")
    p.add_argument("--rows", type=_positive_int, help="rows of a synthetic table")
    p.add_argument("--max-tokens", type=_positive_int, help="tokens per text (text data; default 256)")
    p.add_argument("--tokenizer", help="tokenizer.json, or package:NAME of a weights package (text data)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument("--if-missing", action="store_true", help="do nothing when the data already loads")

    sub.add_parser("spaces", help="list the search spaces with their parameters and ranges")

    p = sub.add_parser("train", help="train one config (defaults or a JSON file); --test evaluates test once")
    p.add_argument("--space", help="space whose pair to train, from its first starting point (default: the "
                   "one in --config, else galspecnet)")
    p.add_argument("--config", type=Path, help="JSON of hyperparameters, or a best.json from a search")
    p.add_argument("--point", metavar="TRIAL_ID",
                   help="with a multi-objective best.json: train this point of its Pareto front instead of the "
                        "chosen one")
    p.add_argument("--epochs", type=_positive_int)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--test", action="store_true", help="evaluate the final model on test.pt, once")
    p.add_argument("--json-out", type=Path, default=Path("runs/train.json"))
    p.add_argument("--threads", type=_positive_int, help="CPU threads for torch")
    p.add_argument("--save", type=Path, metavar="DIR", help="write the best epoch's model to DIR (model.pt, config.json)")
    p.add_argument("--base", help="pretrained weights to start from (default: the config file's, else the model's)")
    _data_args(p)

    p = sub.add_parser("search", help="run a hyperparameter search (Ray Tune + Optuna + ASHA, tracked in MLflow)")
    p.add_argument("--space", required=True)
    # Values are checked once, against search.options.SEARCH_OPTIONS, before anything is read.
    _table_args(p, SEARCH_OPTIONS, ("trials", "budget", "max_epochs", "max_total_epochs", "time_budget", "sampler",
                                    "scheduler", "grace_period", "reduction_factor", "startup_trials",
                                    "gpus_per_trial", "cpus_per_trial", "concurrency", "seed"))
    p.add_argument("--name", help="search name (default <space>-<sampler>-<scheduler>-s<seed>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted search of this name")
    p.add_argument("--address", help="join this Ray cluster (or set RAY_ADDRESS)")
    p.add_argument("--tracking-uri", help="MLflow store (default MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    _table_args(p, SEARCH_OPTIONS, ("patience",))
    p.add_argument("--no-patience", action="store_true", help="train every trial for its full budget")
    p.add_argument("--base", help="pretrained weights to start from, for models that take them (default: the model's)")
    p.add_argument("--start", type=Path, metavar="JSON",
                   help="configs to evaluate first: a JSON list of objects over the searched keys")
    p.add_argument("--no-space-start", action="store_true",
                   help="leave out the space's starting configs (a baseline as plain Ray Tune runs it)")
    _table_args(p, SEARCH_OPTIONS, ("fuse", "infra_retries", "stop_after_failures", "warm_start"))
    for key in ("warm_start_clip", "warm_start_any_data"):
        p.add_argument(f"--{key.replace('_', '-')}", action="store_true", help=SEARCH_OPTIONS[key].help)
    p.add_argument("--objective", dest="objectives", action="append", metavar="NAME:MODE",
                   help="a further objective beside the space's metric (repeatable), e.g. trainable_params:min; "
                        "the search then returns a Pareto front")
    p.add_argument("--choose", action="append", metavar="NAME<=VALUE",
                   help="the rule that picks best.json's config from the front (repeatable): the best primary "
                        "value among points with, e.g., trainable_params<=50000")
    _data_args(p, typed=False)

    p = sub.add_parser("record", help="record learning curves of a space (configs x seeds, full budget) for replays")
    p.add_argument("--space", required=True)
    p.add_argument("--configs", type=_positive_int, default=24,
                   help="configs in all: the space's starting points, then random draws (default 24)")
    p.add_argument("--seeds", type=_positive_int, default=3, help="seeds per config (default 3)")
    _table_args(p, SEARCH_OPTIONS, ("budget", "max_epochs", "gpus_per_trial", "cpus_per_trial", "concurrency",
                                    "seed"))
    p.add_argument("--name", help="name of the recording (default <space>-c<configs>x<seeds>-e<epochs>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted recording of this name")
    p.add_argument("--extend", metavar="OLD", help="record only the configs after those of recording OLD (same seed, "
                                                 "seeds, epochs and data) and keep OLD's runs beside them")
    p.add_argument("--address", help="join this Ray cluster (or set RAY_ADDRESS)")
    p.add_argument("--tracking-uri", help="MLflow store (default MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--base", help="pretrained weights to start from, for models that take them")
    _data_args(p, typed=False)

    replay_args(sub.add_parser("replay", help="replay search strategies on recorded curves (seconds, no training)"))

    p = sub.add_parser("ui", help="serve the MLflow UI for the search store (127.0.0.1 unless told otherwise)")
    p.add_argument("--tracking-uri", help="MLflow store (default MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_positive_int, default=5000)

    p = sub.add_parser("confirm", help="re-run a search's top configs over new seeds and confirm its winner")
    p.add_argument("--space", required=True)
    p.add_argument("--name", help="search name (default: the latest search of the space)")
    _table_args(p, CONFIRM_OPTIONS, ("top", "seeds"))
    p.add_argument("--data", type=Path, help="the data folder (default: the one the search recorded)")
    p.add_argument("--tracking-uri", help="MLflow store (default MLFLOW_TRACKING_URI or sqlite:///mlflow.db; never "
                                          "the store a best.json names)")
    _table_args(p, CONFIRM_OPTIONS, ("concurrency", "gpus_per_trial"))
    p.add_argument("--address", help="join this Ray cluster (or set RAY_ADDRESS)")

    p = sub.add_parser("report", help="(re)write report.html of a finished search and log it to its MLflow run")
    p.add_argument("--space", required=True)
    p.add_argument("--name", help="search name (default: the latest search of the space)")
    p.add_argument("--tracking-uri", help="MLflow store holding the search's run (default MLFLOW_TRACKING_URI or "
                                          "sqlite:///mlflow.db; never the store a best.json names)")

    p = sub.add_parser("export", help="write the best config of a finished search to a JSON file, or a saved "
                                      "model as ONNX (--onnx DIR)")
    p.add_argument("--space", help="the search's space (required without --onnx)")
    p.add_argument("--name", help="search name (default: the latest search of the space)")
    p.add_argument("--out", type=Path, help="best.json (default), or the .onnx file (default DIR/model.onnx)")
    p.add_argument("--onnx", type=Path, metavar="DIR",
                   help="a model folder from `spectune train --save DIR`: export it as ONNX and check it")
    p.add_argument("--data", type=Path, help="with --onnx: the data folder, if it moved since training")
    return parser


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1]; got {value}")
    return value


def _table_args(p: argparse.ArgumentParser, table: dict[str, Any], keys: tuple[str, ...]) -> None:
    """Flags for run options declared in ``table``: their type, choices and help come from it; their
    values are checked against it later, in one place, with the other options."""
    for key in keys:
        rule = table[key]
        p.add_argument(f"--{key.replace('_', '-')}", type=rule.kind, choices=rule.choices,
                       default=None if rule.nullable else rule.default, help=rule.help)


def _data_args(p: argparse.ArgumentParser, typed: bool = True) -> None:
    """``typed``: argparse checks the scaling flags (``spectune train``); a search checks them
    against its option table instead."""
    p.add_argument("--data", type=Path, help="the data folder (default: the data module's own, e.g. data/ztf-synthetic)")
    p.add_argument("--classes", help="comma-separated class order (overrides classes.json)")
    count, share = (_positive_int, _fraction) if typed else (int, float)
    p.add_argument("--points", type=count, help="block-average sequences to this many points (CPU budgets)")
    p.add_argument("--tokens", type=count, help="cut token sequences to this many tokens (CPU budgets)")
    p.add_argument("--train-per-class", type=count, help="use at most this many training examples per class")
    p.add_argument("--train-fraction", type=share, help="use this stratified fraction of the training examples")


def _classes(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",")] if text else None


def cmd_data(args: argparse.Namespace) -> None:
    from spaces import get_space
    from trainables.data import DataError

    space = get_space(args.space)
    module = space.pair.data_module
    if args.if_missing:
        try:
            module.load(args.out)
            print(f"data {module.name!r} for {space.name} is present and readable: nothing to do")
            return
        except DataError:
            pass
    options = {k: v for k, v in (("per_class", args.per_class), ("points", args.points), ("source", args.source),
                                 ("rows", args.rows),
                                 ("max_tokens", args.max_tokens), ("tokenizer", args.tokenizer)) if v is not None}
    # Each module's prepare() names the options it takes; any other is refused, never ignored.
    taken = set(inspect.signature(module.prepare).parameters) - {"out", "seed", "force"}
    unknown = sorted(set(options) - taken)
    if unknown:
        raise DataError(f"data {module.name!r} does not take {unknown}; it takes {sorted(taken) or 'no options'}.")
    message = module.prepare(args.out, seed=args.seed, force=args.force, **options)
    print(message)


NOT_MEASURED = ("not measured on this pair; spectune record, then python -m search.bench.lab replay --live 10, "
                "measures them (docs/replay.md)")


def cmd_spaces(args: argparse.Namespace) -> None:
    from search.strategy.fusion import space_fusion
    from spaces import SpaceError, describe_domain, get_space, list_spaces
    from trainables.data import list_data
    from trainables.discovery import broken
    from trainables.models import list_models

    list_models(), list_data()   # imports every model and data file, recording the user files that fail
    for name in list_spaces():
        try:
            space = get_space(name)
        except SpaceError as exc:
            print(f"{name}: BROKEN: {exc}")
            continue
        print(f"{name}: {space.description} (model {space.model}, data {space.data}; {space.metric} {space.mode}; "
              f"ASHA rf {space.reduction_factor}"
              + (f", TPE start-up {space.startup_trials}" if space.startup_trials else "") + ")")
        for key, domain in space.params.items():
            print(f"    {key:<16} {describe_domain(domain)}")
        for key, value in space.fixed.items():
            print(f"    {key:<16} fixed {value}")
        # Each budget with the epochs and first rung it really runs: a CPU budget's cut-down epochs lower
        # the grace (Space.grace_for), and that is what a user without a GPU gets.
        for label, budget in (("CPU", space.cpu), ("GPU", space.gpu)):
            epochs = budget.max_epochs or space.max_epochs
            print(f"    {label} budget: {space.search_trials(budget)} trials"
                  + (f" ({space.trials_factor} x the budget's {budget.trials}, most stopped early)"
                     if space.trials_factor > 1 else "")
                  + f" x up to {epochs} epochs"
                  + (f", at most {budget.trials * epochs} in all" if space.trials_factor > 1 else "")
                  + f", ASHA grace {space.grace_for(epochs)}"
                  + "".join(f", {part}" for part in budget.describe_data()))
        print(f"    search settings: {space.measured or NOT_MEASURED}")
        print(f"    fuses: {space_fusion(space)}")
        pretrained = space.pair.model_entry.pretrained
        if pretrained is not None:
            print(f"    starts from: {pretrained.about} (default {pretrained.default}; --base to change)")
    for kind in ("models", "data"):
        for reason in broken(kind):
            print(f"BROKEN {kind} file: {reason}")


def cmd_train(args: argparse.Namespace) -> None:
    from results.best_file import DataOptions
    from search.commands.train import TrainRequest, run_train

    run_train(TrainRequest(space=args.space, config=args.config, point=args.point, epochs=args.epochs,
                           device=args.device, test=args.test, json_out=args.json_out, save=args.save, base=args.base,
                           data=DataOptions(path=str(args.data) if args.data else None, classes=_classes(args.classes),
                                            points=args.points, tokens=args.tokens, train_per_class=args.train_per_class,
                                            train_fraction=args.train_fraction, threads=args.threads)))


def cmd_search(args: argparse.Namespace) -> None:
    from search.options import read_start_configs
    from search.commands.search import run_search

    run_search(_search_options(args, start=read_start_configs(args.start) if args.start else ()))


def _search_options(args: argparse.Namespace, **fixed: Any) -> Any:
    """The search options a command's flags give (flags a command lacks are left unset): every field of
    :class:`SearchOptions` a flag of the same name sets, but those a flag gives in another form."""
    from dataclasses import fields

    from search.options import SearchOptions

    classes = _classes(args.classes)
    converted = {"space", "classes", "start", "objectives", "choose"}
    keys = [f.name for f in fields(SearchOptions) if f.name not in converted]
    given = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    given.update({k: tuple(getattr(args, k)) for k in ("objectives", "choose") if getattr(args, k, None)})
    if getattr(args, "no_space_start", False):
        given["space_start"] = False
    return SearchOptions(space=args.space, classes=tuple(classes) if classes else None, **{**given, **fixed})


def cmd_record(args: argparse.Namespace) -> None:
    from search.commands.record import RecordOptions, run_record

    run_record(RecordOptions(search=_search_options(args), configs=args.configs, seeds=args.seeds,
                               extend=args.extend))


def cmd_replay(args: argparse.Namespace) -> None:
    from search.replay.study import run_replay

    run_replay(replay_options(args))


def replay_options(args: argparse.Namespace) -> Any:
    """The :class:`~search.replay.study.ReplayOptions` of ``spectune replay``'s arguments."""
    from search.replay.study import ReplayOptions

    return ReplayOptions(search=_search_options(args), curves=args.curves, repeats=args.repeats,
                         optuna=not args.no_optuna, jobs=args.jobs)


def cmd_export(args: argparse.Namespace) -> None:
    if args.onnx:
        from trainables.onnx_export import describe, export_onnx

        print(describe(export_onnx(args.onnx, args.out, args.data)))
        return
    from results.export import export_best
    from results.errors import OptionError

    if not args.space:
        raise OptionError("export needs --space (the search's space), or --onnx DIR for a saved model.")
    args.out = args.out or Path("best.json")
    best = export_best(args.space, args.name, args.out)
    # Records from before best_value was written hold their macro-F1 only.
    value = best["best_value"] if "best_value" in best else best["best_val_macro_f1"]
    print(f"exported {best['search_name']}: trial {best['trial_id']}, {best.get('metric', 'val_macro_f1')} "
          f"{value:.4f} -> {args.out}")
    print(f"retrain and evaluate on test once: spectune train --config {shlex.quote(str(args.out))} --test")


def cmd_confirm(args: argparse.Namespace) -> None:
    from search.commands.confirm import run_confirm
    from search.options import ConfirmOptions

    out = run_confirm(ConfirmOptions(space=args.space, name=args.name, top=args.top, seeds=args.seeds, data=args.data,
                                     tracking_uri=args.tracking_uri, concurrency=args.concurrency,
                                     gpus_per_trial=args.gpus_per_trial, address=args.address))
    table, ev = out["table"], out["evidence"]
    print(table[["rank", "candidate", "search_rank", "search_value", "mean", "std", "ci95_low", "ci95_high"]]
          .to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if "p_value" in ev:
        print(f"leader {ev['leader']} vs runner-up {ev['runner_up']} over {ev['shared_seeds']} shared seeds: mean "
              f"difference {ev['mean_difference']:+.4f}, {ev['test']} p = {ev['p_value']:.3g} -> "
              + ("larger than the seed noise" if ev["separated"] else "not separated from the seed noise"))
    print(f"search's pick {out['search_pick']} " + ("stayed first" if out["winner"] == out["search_pick"]
                                                   else f"was overtaken by {out['winner']}")
          + f"; {out['csv']}, {out['figure']}, best.json updated")


def cmd_report(args: argparse.Namespace) -> None:
    import pandas as pd
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from results.export import latest_search, results_dir
    from results.files import read_json
    from results.report import study_report
    from search.running.tracking import own_store_run
    from spaces import saved_ranges

    # From what the search saved (best.json, space.json, trials.csv, study.db), not today's space file.
    name = args.name or latest_search(args.space)
    out_dir = results_dir(args.space, name)
    best = read_json(out_dir / "best.json", "best.json of the search")
    report = study_report(out_dir, best, pd.read_csv(out_dir / "trials.csv"), out_dir / "study.db",
                          saved_ranges(out_dir / "space.json"))
    print(f"report: {report.html.resolve().as_uri()}")
    print(report.note)
    for key, value in report.importances.items():
        print(f"    importance {key:<20} {value:.3f}")
    uri, run, why = own_store_run(best.get("mlflow") or {}, args.tracking_uri)
    if why:
        print(f"not logged to MLflow: {why}")
    if run:
        client = MlflowClient(uri)
        client.log_batch(run, metrics=[Metric(f"importance.{k}", v, 0, 0) for k, v in report.importances.items()])
        client.log_artifact(run, str(report.html))
        print(f"logged to MLflow run {run} in {uri}")


def cmd_ui(args: argparse.Namespace) -> None:
    import subprocess

    from mlflow.tracking import MlflowClient

    from search.running.tracking import default_tracking_uri

    uri = args.tracking_uri or default_tracking_uri()
    base = f"http://{args.host}:{args.port}"
    experiments = [e for e in MlflowClient(uri).search_experiments() if e.name.startswith("spectune-")]
    print(f"MLflow UI for {uri} at {base}")
    for e in experiments:
        # MLflow 3 opens in its GenAI view, where training runs do not show; link the runs table.
        print(f"  {e.name}: {base}/#/experiments/{e.experiment_id}/runs?workflowType=machine_learning")
    if not experiments:
        print("  no searches yet: run `make search` first")
    subprocess.run([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                    "--host", args.host, "--port", str(args.port)], check=False)


COMMANDS = {"data": cmd_data, "spaces": cmd_spaces, "train": cmd_train, "search": cmd_search,
            "record": cmd_record, "replay": cmd_replay, "export": cmd_export, "confirm": cmd_confirm,
            "report": cmd_report, "ui": cmd_ui}


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None,
         commands: dict[str, Any] | None = None) -> int:
    """Entry point. A mistake the user can fix (the toolkit's :class:`UserError`) prints one ``error:``
    line and exits 2; a search that ran but has nothing to write exits 1 (130 when interrupted); any
    other exception is a bug and keeps its traceback. ``parser`` and ``commands``: another entry point's
    (the lab's), handled alike."""
    args = (parser or build_parser()).parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from results.errors import UserError

    try:
        (commands or COMMANDS)[args.command](args)
    except UserError as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = (f"; continue the {args.command} with the same --name and --resume"
                if args.command in ("search", "record") else "")
        print(f"interrupted{hint}", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        from results.errors import SearchError, SearchInterrupted
        if not isinstance(exc, SearchError):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 130 if isinstance(exc, SearchInterrupted) else 1
    return 0


def run() -> int:
    """The ``spectune`` script: :func:`main`, with a bug's traceback followed by where to report it."""
    try:
        return main()
    except Exception:
        traceback.print_exc()
        print("error: this is a bug in spectune, not a mistake in your input; please report it with the "
              "traceback above.", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(run())
