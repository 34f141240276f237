"""The search driver: validate everything, start (or join) Ray, run Tune, write the results.

Order matters for "bad input loses nothing": the space, the options, the data and the MLflow
store are all checked before Ray starts, and results are written only after Tune returns.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import optuna

from results.export import best_record, check_name, copy_checkpoint, read_confusion, results_dir, write_results
from results.files import read_json, write_json
from results.plots import plot_confusion, plot_learning_curves
from results.provenance import git_commit, versions
from results.report import Report, write_report
from search.collect import collect_trials
from search.local_ray import RAY_RECORD, SearchStillRunning, clean_dead_session, start_local_ray, stop_local_ray
from search.progress import ProgressPrinter, console, print_top
from search.resources import gpu_share, plan_placement
from search.searcher import (SAMPLERS, SCHEDULERS, fail_lost_trials, make_scheduler, make_searcher, startup_trials,
                             study_storage)
from search.tracking import MLflowTracker, default_tracking_uri
from spaces import Space, active_keys, get_space
from trainables.data import Splits, scale_down
from trainables.discovery import ENV
from trainables.hparams import ConfigError
from trainables.pair import Pair
from trainables.pretrained import Base
from trainables.tune_trainable import TrialSettings, run_trial


@dataclass(frozen=True)
class SearchOptions:
    """Everything ``spectune search`` takes; ``None`` means "the budget's, the space's or the machine's
    default". ``budget`` (``cpu`` or ``gpu``) takes the space's budget for that kind of machine for
    every option left unset. ``start`` lists configs to evaluate first, then the space's own
    starting points unless ``space_start`` is off (a pure random-search baseline, say)."""

    space: str
    trials: int | None = None
    max_epochs: int | None = None
    sampler: str = "tpe"
    scheduler: str = "asha"
    gpus_per_trial: float | None = None
    cpus_per_trial: float | None = None
    concurrency: int | None = None
    seed: int = 0
    name: str | None = None
    resume: bool = False
    address: str | None = None
    tracking_uri: str | None = None
    data: Path | None = None
    classes: tuple[str, ...] | None = None
    points: int | None = None
    train_per_class: int | None = None
    train_fraction: float | None = None
    budget: str | None = None
    patience: int | None = 5
    storage: Path = Path("ray_results")
    results_root: Path = Path("results")
    start: tuple[dict[str, Any], ...] = ()
    space_start: bool = True
    base: str | None = None


class SearchError(RuntimeError):
    """A search that ran but produced no result to write."""


class SearchInterrupted(SearchError):
    """Tune stopped before every trial ended (Ctrl+C); the experiment folder can be resumed."""


class AllTrialsFailed(SearchError):
    """Every trial raised: the search has no best config."""


@dataclass(frozen=True)
class SearchOutcome:
    name: str
    results_dir: Path
    best: dict[str, Any]
    trials: Any


def read_start_configs(path: Path) -> tuple[dict[str, Any], ...]:
    """``--start``: a JSON list of configs (a single object is one config); keys are checked
    against the space with the other options, before Ray starts."""
    configs = read_json(path, "--start file")
    configs = [configs] if isinstance(configs, dict) else configs
    if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
        raise ValueError(f"--start file {path} must hold a JSON list of objects, one per config, e.g. "
                         '[{"lr": 0.0001, "batch_size": 128, ...}].')
    return tuple(configs)


DEFAULT_TRIALS = 20


def apply_budget(o: SearchOptions, space: Space) -> SearchOptions:
    """Options left unset take the space's ``cpu`` or ``gpu`` budget (``o.budget``), else the defaults."""
    if o.budget not in (None, "cpu", "gpu"):
        raise ValueError(f"--budget must be cpu or gpu; got {o.budget!r}.")
    budget = getattr(space, o.budget) if o.budget else None
    pick = (lambda mine, theirs: mine if mine is not None else theirs)
    if budget is None:
        return replace(o, trials=pick(o.trials, DEFAULT_TRIALS))
    return replace(o, trials=pick(o.trials, budget.trials), max_epochs=pick(o.max_epochs, budget.max_epochs),
                   points=pick(o.points, budget.points), train_per_class=pick(o.train_per_class, budget.train_per_class),
                   train_fraction=pick(o.train_fraction, budget.train_fraction))


def check_configs(space: Space, configs: tuple[dict[str, Any], ...] | list[dict[str, Any]], what: str) -> None:
    """Each config gives exactly the searched keys that apply to it, with valid values."""
    for i, point in enumerate(configs):
        need = active_keys(space.params, point)
        if set(point) != need:
            raise ValueError(f"{what} {i} must give exactly the searched keys {sorted(need)}; got {sorted(point)}.")
        space.pair.resolve({**space.fixed, **point}, source=f"{what} {i}", soft=tuple(space.fixed))


def load_data(pair: Pair, folder: Path | None, classes: tuple[str, ...] | list[str] | None, *, test: bool,
              points: int | None = None, train_per_class: int | None = None, train_fraction: float | None = None,
              seed: int = 0) -> Splits:
    """Read and check every split of the pair's data (test too: a broken test file is found now,
    not after the search), scale it down as asked, and keep the test split only when ``test``."""
    data = pair.data_module.load(folder, classes)
    data = scale_down(data, points, train_per_class, seed=seed, train_fraction=train_fraction)
    return data if test else replace(data, test=None)


def dry_run(pair: Pair, data: Splits, config: dict[str, Any], source: str, base: Base | None = None) -> None:
    """Build the model for ``config`` and pass two training examples through it, so that a model that
    does not fit the data fails now, in one line, rather than in every trial."""
    import torch

    resolved = pair.resolve(config, source=source)
    model = pair.model_fn(data.spec, resolved, base)()
    batch = {k: torch.from_numpy(v[:2].copy()) for k, v in data.train.inputs.items()}
    model.eval()
    try:
        with torch.no_grad():
            logits = model(**batch)
    except (RuntimeError, TypeError, ValueError, IndexError) as exc:
        raise ConfigError(f"model {pair.model!r} failed on a batch of data {pair.data!r} "
                          f"({data.spec.describe()}): {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    if tuple(logits.shape) != (2, data.n_classes):
        raise ConfigError(f"model {pair.model!r} returned shape {tuple(logits.shape)} for 2 examples; it must return "
                          f"logits of shape (2, {data.n_classes}), one per class.")


def _check_options(o: SearchOptions, space: Space) -> None:
    if o.trials < 1:
        raise ValueError(f"--trials must be >= 1; got {o.trials}.")
    if o.max_epochs is not None and o.max_epochs < 1:
        raise ValueError(f"--max-epochs must be >= 1; got {o.max_epochs}.")
    if o.sampler not in SAMPLERS:
        raise ValueError(f"--sampler must be one of {list(SAMPLERS)}; got {o.sampler!r}.")
    if o.scheduler not in SCHEDULERS:
        raise ValueError(f"--scheduler must be one of {list(SCHEDULERS)}; got {o.scheduler!r}.")
    check_configs(space, o.start, "start config")
    if o.name:
        check_name(o.name)
    elif o.resume:
        raise ValueError("--resume needs --name: the name of the search to continue (see ray_results/).")


def _quiet_ray() -> None:
    # One line per trial from our callback instead of Ray's stream of tables and warnings.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "1000")
    logging.getLogger("ray").setLevel(logging.ERROR)
    logging.getLogger("ray.tune").setLevel(logging.ERROR)
    # Failed trials get their own line from ProgressPrinter; Tune's summary would repeat them.
    logging.getLogger("ray.tune.tune").setLevel(logging.CRITICAL)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def run_config(name: str, storage: Path, callbacks: list[Any]) -> Any:
    """Tune's run settings shared by a search and its confirmation: quiet, one checkpoint kept per
    trial (the latest, which carries the best weights and the state to resume from), a failing
    trial recorded rather than retried."""
    from ray import tune

    return tune.RunConfig(name=name, storage_path=str(storage), verbose=0, callbacks=callbacks,
                          checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                          failure_config=tune.FailureConfig(max_failures=0))


def _start_ray(address: str | None, record: Path) -> bool:
    """Join ``address`` (or ``RAY_ADDRESS``), reuse a running Ray, or start a local one (recorded in
    ``record`` until it stops, see :mod:`search.local_ray`). Returns whether this call started Ray
    (and so should stop it)."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        console.print(f"joining the Ray cluster at {address}")
        # Workers on other nodes see the driver's environment only through the runtime env.
        env = {ENV: os.environ[ENV]} if os.environ.get(ENV) else {}
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR,
                 runtime_env={"env_vars": env} if env else None)
        return False
    start_local_ray(record)
    return True


def _clean_dead_searches(storage: Path, name: str) -> None:
    """Stop the Ray processes of searches in ``storage`` whose driver was killed; refuse to go on
    when the driver of search ``name`` itself is still alive."""
    for record in sorted(storage.glob(f"*{RAY_RECORD}")):
        other = record.name[:-len(RAY_RECORD)]
        try:
            stopped = clean_dead_session(record, other)
        except SearchStillRunning:
            if other == name:
                raise
            continue
        if stopped:
            console.print(f"stopped {len(stopped)} Ray processes left by the killed driver of search {other}: "
                          + ", ".join(stopped), soft_wrap=True)


def run_search(o: SearchOptions, trial_fn: Callable[..., None] = run_trial) -> SearchOutcome:
    """Run (or resume) a search and write ``results/<space>/<name>/{best.json, trials.csv}``.
    ``trial_fn`` is the Ray function trainable (tests wrap it to inject failures)."""
    space = get_space(o.space)
    o = apply_budget(o, space)
    _check_options(o, space)
    pair = space.pair
    max_epochs = o.max_epochs or space.max_epochs
    # ASHA's first rung must leave room for later rungs when the budget is cut down.
    grace = min(space.grace_period, max(1, max_epochs // space.reduction_factor))
    name = o.name or f"{space.name}-{o.sampler}-{o.scheduler}-s{o.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    storage = o.storage.resolve()
    experiment = storage / name
    _check_experiment_folder(experiment, o)
    study_file = storage / f"{name}.study.db"
    ray_record = storage / f"{name}{RAY_RECORD}"
    _clean_dead_searches(storage, name)
    if not o.resume:
        # A study file without its experiment folder belongs to no search: start the study afresh.
        study_file.unlink(missing_ok=True)
        (storage / f"{name}.asha.pkl").unlink(missing_ok=True)

    data = load_data(pair, o.data, o.classes, test=False, points=o.points, train_per_class=o.train_per_class,
                     train_fraction=o.train_fraction, seed=o.seed)
    base = pair.load_base(o.base)
    dry_run(pair, data, space.first_config(), f"spaces/{space.name}.py: first config", base)
    tracking_uri = o.tracking_uri or default_tracking_uri()
    search_metric, params = space.search_metric, list(space.params)
    tracker = MLflowTracker(
        tracking_uri, experiment=f"spectune-{space.name}", search_id=name,
        tags={"space": space.name, "model": pair.model, "data": pair.data, "sampler": o.sampler,
              "scheduler": o.scheduler, "seed": str(o.seed), "git_commit": git_commit(),
              "data_fingerprint": data.fingerprint, **({"base_sha256": base.sha256} if base else {})},
        params={"trials": o.trials, "max_epochs": max_epochs, "grace_period": grace, "metric": space.metric,
                "mode": space.mode, "train_examples": len(data.train), "patience": o.patience,
                "inputs": data.spec.describe(), **({"base": base.path} if base else {})})
    _quiet_ray()
    tracker.connect()

    import ray
    from ray import tune

    started = _start_ray(o.address, ray_record)
    try:
        resources = ray.cluster_resources()
        gpus_per_trial = gpu_share(o.gpus_per_trial, space.gpus_per_trial, resources.get("GPU", 0))
        place = plan_placement(resources.get("CPU", 1), resources.get("GPU", 0), gpus_per_trial,
                               o.cpus_per_trial, o.concurrency)
        console.print(f"space {space.name}: {len(params)} hyperparameters, model {pair.model}, data {pair.data}; "
                      f"optimising {space.metric} ({space.mode})")
        console.print(f"data: {data.describe()}, fingerprint {data.fingerprint}")
        if base is not None:
            console.print(f"base: {base.path} (sha256 {base.sha256[:12]}..., {base.record()['parameters']:,} "
                          "parameters), sent to every trial once")
        console.print(f"budget: {o.trials} trials x up to {max_epochs} epochs; sampler {o.sampler}"
                      + (f" ({startup_trials(o.trials)} random start-up trials, then TPE)" if o.sampler == "tpe" else "")
                      + f", scheduler {o.scheduler}" + (f" (grace {grace}, reduction {space.reduction_factor})"
                                                        if o.scheduler == "asha" else "") + f", seed {o.seed}")
        console.print(f"placement: {place.describe(resources.get('CPU', 0), resources.get('GPU', 0))}")
        console.print(f"tracking: MLflow at {tracking_uri}, experiment spectune-{space.name}, run {name}")
        if place.concurrency > 1 and o.sampler == "tpe":
            console.print(f"note: {place.concurrency} trials run at once, so TPE's later suggestions depend on "
                          "the order trials finish; only --concurrency 1 repeats a search exactly.")
        settings = TrialSettings(model=pair.model, data=pair.data, max_epochs=max_epochs, seed=o.seed,
                                 fixed=dict(space.fixed), patience=o.patience, metric=space.metric, mode=space.mode,
                                 device=place.device, threads=place.threads, user_path=os.environ.get(ENV, ""),
                                 searched=tuple(params))
        shipped = {"data": data, "settings": settings, **({"base": base} if base is not None else {})}
        trainable = tune.with_resources(tune.with_parameters(trial_fn, **shipped),
                                        {"cpu": place.cpus_per_trial, "gpu": place.gpus_per_trial})
        progress = ProgressPrinter(o.trials, space.metric, space.mode)
        if o.resume:
            tuner = tune.Tuner.restore(str(experiment), trainable, resume_unfinished=True, resume_errored=False)
        else:
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    metric=search_metric, mode=space.mode, num_samples=o.trials, reuse_actors=True,
                    search_alg=make_searcher(o.sampler, o.seed, o.trials, place.concurrency, search_metric,
                                             space.mode, [*o.start, *(space.start if o.space_start else [])],
                                             space.params, study=(name, study_file)),
                    scheduler=make_scheduler(o.scheduler, max_epochs, grace, space.reduction_factor,
                                             state=storage / f"{name}.asha.pkl")),
                run_config=run_config(name, storage, [tracker, progress]))
        tuner.fit()
    finally:
        if started:
            stop_local_ray(ray_record)

    frame, trials, histories = collect_trials(experiment, params, space.metric, space.mode)
    unfinished = int((~frame["status"].isin(["TERMINATED", "ERROR"])).sum()) + max(0, o.trials - len(frame))
    if unfinished:
        tracker.client.set_terminated(tracker.parent_run_id, status="KILLED")
        raise SearchInterrupted(f"search {name} was interrupted with {unfinished} of {o.trials} trials unfinished; "
                                f"nothing was written to results/. Continue it with: spectune search --space "
                                f"{space.name} --name {name} --resume (same data options).")
    lost = fail_lost_trials(study_file, name)
    if lost:
        console.print(f"{len(lost)} trial(s) that the killed driver had started but Tune had not saved were "
                      f"replaced by new suggestions; the Optuna study marks them FAIL (numbers {lost}).")
    out_dir = results_dir(space.name, name, o.results_root)
    best_col = f"best_{space.metric}"
    # A trial that failed (a diverging loss, say) is no winner, whatever it scored before failing.
    ok = frame[frame["outcome"] != "failed"].dropna(subset=[best_col])
    if ok.empty:
        raise AllTrialsFailed(f"all {len(frame)} trials of search {name} failed; see the 'spectune.error' "
                              f"tags in MLflow or the error files under {experiment}.")
    best_trial = trials[ok.iloc[0]["trial_id"]]
    best_run = tracker.run_id(best_trial.trial_id)
    config = settings.resolve({p: best_trial.config[p] for p in params if p in best_trial.config}).to_dict()
    best = best_record(ok, best_trial, space=space.name, name=name, config=config, searched=params,
                       metric=space.metric, mode=space.mode,
                       mlflow={"tracking_uri": tracking_uri, "experiment_id": tracker.experiment_id,
                               "parent_run_id": tracker.parent_run_id, "run_id": best_run},
                       data={"fingerprint": data.fingerprint, "description": data.describe(),
                             "points": o.points, "train_per_class": o.train_per_class,
                             "train_fraction": o.train_fraction, "classes": list(o.classes) if o.classes else None,
                             "path": str(o.data or pair.data_module.default_dir or ""), "threads": place.threads},
                       versions=versions(), git_commit=git_commit())
    if base is not None:
        best["base"] = base.record()
    frame["mlflow_run_id"] = [tracker.run_id(t) for t in frame["trial_id"]]
    history = histories.get(best_trial.trial_id)
    artifacts = _best_artifacts(out_dir, best_trial, [] if history is None else history.to_dict("records"),
                                data.classes, name)
    best["checkpoint"] = str(artifacts[0]) if artifacts else best["checkpoint"]
    space_path = write_json(out_dir / "space.json", space.to_json())
    csv_path, best_path = write_results(out_dir, frame, best)
    report = study_report(out_dir, space, best, frame, study_file)
    tracker.finish(best_run, {best_col: best["best_value"], "trials": len(frame),
                              "failed_trials": int((frame["outcome"] == "failed").sum()),
                              **{f"importance.{k}": v for k, v in report.importances.items()}},
                   [best_path, *artifacts], [space_path, report.html])
    print_top(frame, params, space.metric)
    console.print(f"best: trial {best['trial_id']} {space.metric} {best['best_value']:.4f} at epoch "
                  f"{best['best_epoch']}; {best_path} and {csv_path}")
    console.print(f"report: {report.html.resolve().as_uri()}"
                  + (f" (importances: {', '.join(f'{k} {v:.2f}' for k, v in report.importances.items())})"
                     if report.importances else ""), soft_wrap=True)
    top = [r for r in frame["mlflow_run_id"].head(5) if isinstance(r, str)]
    if top:
        # soft_wrap: a link cut over two lines cannot be clicked or copied.
        console.print(f"compare the top {len(top)} trials in the MLflow UI (make mlflow-ui): {tracker.compare_link(top)}",
                      soft_wrap=True)
    return SearchOutcome(name=name, results_dir=out_dir, best=best, trials=frame)


def study_report(out_dir: Path, space: Space, best: dict[str, Any], frame: Any, study_file: Path) -> Report:
    """Keep the search's Optuna study as ``study.db`` beside its results and write ``report.html``."""
    import shutil

    kept = out_dir / "study.db"
    if Path(study_file).resolve() != kept.resolve() and Path(study_file).exists():
        shutil.copyfile(study_file, kept)
    study = None
    if kept.exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna.load_study(study_name=best["search_name"], storage=study_storage(kept))
    checkpoint = out_dir / "checkpoint"
    confusion = read_confusion(checkpoint) if checkpoint.is_dir() else None
    extra = {k: out_dir / f for k, f in (("learning_curves", "learning_curves.png"), ("confusion", "val_confusion.png"))
             if (out_dir / f).exists()}
    return write_report(out_dir, space=space.name, name=best["search_name"], metric=space.metric, mode=space.mode,
                        trials=frame, study=study, best=best, classes=confusion["classes"] if confusion else (),
                        confusion=np.asarray(confusion["matrix"]) if confusion else None, extra_figures=extra)


def _check_experiment_folder(experiment: Path, o: SearchOptions) -> None:
    from ray import tune

    if o.resume and not tune.Tuner.can_restore(str(experiment)):
        raise ValueError(f"--resume: no interrupted search at {experiment}; check --name, or start it "
                         "without --resume.")
    if not o.resume and experiment.exists():
        raise ValueError(f"a search named {experiment.name!r} already exists at {experiment}; pass --resume to "
                         "continue it, or --name NEW for a new search (nothing was overwritten).")


def _best_artifacts(out_dir: Path, trial: Any, history: list[dict[str, float]], classes: tuple[str, ...],
                    name: str) -> list[Path]:
    """The best trial's checkpoint folder, confusion matrix and learning curves, kept under results/."""
    checkpoint = copy_checkpoint(trial.checkpoint.path if trial.checkpoint else None, out_dir)
    out = [checkpoint] if checkpoint else []
    confusion = read_confusion(checkpoint) if checkpoint else None
    if confusion:
        out.append(plot_confusion(np.asarray(confusion["matrix"]), classes, out_dir / "val_confusion.png",
                                  f"{name}: best trial, validation, epoch {confusion['epoch']}"))
    if history:
        out.append(plot_learning_curves(history, out_dir / "learning_curves.png", f"{name}: best trial"))
    return out

