"""``spectune search``: validate everything, run the trials through Tune, write the results.

Order matters for "bad input loses nothing": the space, the options, the data and the MLflow
store are all checked before Ray starts, and results are written only after Tune returns.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from rich.markup import escape

from results.export import check_name, copy_checkpoint, read_confusion, read_predictions, results_dir, write_results
from results.files import read_json, write_json
from results.pareto import (Constraint, Objective, choose, columns, front, front_record, hypervolume, parse_choose,
                            parse_objective, reference_point)
from results.plots import plot_confusion, plot_learning_curves, plot_predictions
from results.provenance import git_commit, versions
from results.records import best_record
from results.report import study_report
from search.collect import collect_trials
from search.failures import FailureGuard, stop_reason, stopped_search
from search.options import SEARCH_OPTIONS, SearchOptions, check, check_configs
from search.progress import ProgressPrinter, console, print_top
from search.resources import gpu_share, plan_placement
from search.searcher import fail_lost_trials, make_scheduler, make_searcher, startup_trials
from search.session import ray_session
from search.tracking import MLflowTracker, default_tracking_uri, server_url
from search.trial import run_trial
from search.warm_start import load_earlier, plan_warm_start
from search.tune_run import fit
from spaces import Space, get_space
from trainables.discovery import ENV
from trainables.errors import OptionError
from trainables.pair import dry_run, load_data
from trainables.settings import TrialSettings


class SearchError(RuntimeError):
    """A search that ran but produced no result to write."""


class SearchInterrupted(SearchError):
    """Tune stopped before every trial ended (Ctrl+C); the experiment folder can be resumed."""


class AllTrialsFailed(SearchError):
    """Every trial raised: the search has no best config."""


class SearchStopped(AllTrialsFailed):
    """The first trials all failed on their configuration, or trials in a row failed on the machine
    (``--stop-after-failures``): the search stopped instead of running the rest."""


@dataclass(frozen=True)
class SearchOutcome:
    name: str
    results_dir: Path
    best: dict[str, Any]
    trials: Any


def _check_options(o: SearchOptions, space: Space) -> None:
    check(SEARCH_OPTIONS, o)
    check_configs(space, o.start, "start config")
    if o.name:
        check_name(o.name)
    elif o.resume:
        raise OptionError("--resume needs --name: the name of the search to continue (see ray_results/).")
    if o.no_patience and o.patience is not None:
        raise OptionError(f"--no-patience and --patience {o.patience} contradict each other; pass one of them.")
    if (o.warm_start_clip or o.warm_start_any_data) and not o.warm_start:
        raise OptionError("--warm-start-clip and --warm-start-any-data need --warm-start NAME; add it or drop them.")


def _check_objectives(o: SearchOptions, objectives: list[Objective]) -> tuple[Constraint, ...]:
    """The options that only make sense with one or with several objectives, checked against the search's
    objectives (a resumed search's as it began); the ``--choose`` constraints."""
    if len(objectives) > 1 and o.warm_start:
        raise OptionError("--warm-start carries single-objective trials; a search with several objectives "
                          f"({', '.join(map(str, objectives))}) starts cold. Drop --warm-start or the extra objectives.")
    if o.scheduler == "moasha" and len(objectives) == 1:
        raise OptionError("--scheduler moasha ranks trials by Pareto front over several objectives; this search has "
                          "one. Add one with --objective trainable_params:min, or use --scheduler asha.")
    if o.choose and len(objectives) == 1:
        raise OptionError("--choose picks a point of a Pareto front; this search has one objective. Add one with "
                          "--objective trainable_params:min, say.")
    return parse_choose(o.choose, objectives)


def _resumed_objectives(o: SearchOptions, saved: Path) -> SearchOptions:
    """A resumed search keeps the ``--objective`` and ``--choose`` it started with; other ones are refused."""
    if not saved.exists():
        return o
    first = read_json(saved, "the search's objectives")
    began = (tuple(first.get("objectives", ())), tuple(first.get("choose", ())))
    if (o.objectives or o.choose) and (o.objectives, o.choose) != began:
        raise OptionError(f"--resume: search {o.name} began with --objective {list(began[0])} and --choose "
                          f"{list(began[1])}; resume it with those (or with neither: they are kept).")
    return replace(o, objectives=began[0], choose=began[1])


def search_objectives(space: Space, o: SearchOptions) -> list[Objective]:
    """The space's metric (the primary objective), its further objectives, then ``--objective``'s."""
    out = [Objective(space.metric, space.mode), *(Objective(n, m) for n, m in space.objectives)]
    for text in o.objectives:
        objective = parse_objective(text, space.metric)
        if objective.name in [x.name for x in out]:
            raise OptionError(f"--objective {text}: {objective.name!r} is already an objective of space "
                              f"{space.name!r} ({', '.join(map(str, out))}).")
        out.append(objective)
    return out


def describe_patience(space: Space, o: SearchOptions, resolved_patience: int | None) -> str:
    """Where the trials' patience comes from, for the budget line."""
    source = ("--no-patience" if o.no_patience else "--patience" if o.patience is not None
              else "the space's fixed value" if "patience" in space.fixed else "the recipe's default")
    return f"in-trial patience {resolved_patience if resolved_patience is not None else 'off'} ({source})"


def run_search(o: SearchOptions, trial_fn: Callable[..., None] = run_trial) -> SearchOutcome:
    """Run (or resume) a search and write ``results/<space>/<name>/{best.json, trials.csv}``.
    ``trial_fn`` is the Ray function trainable (tests wrap it to inject failures)."""
    space = get_space(o.space)
    _check_options(o, space)
    storage = o.storage.resolve()
    if o.resume:
        _check_experiment_folder(storage / str(o.name), o)
        o = _resumed_objectives(o, storage / f"{o.name}.objectives.json")
    objectives = search_objectives(space, o)
    constraints = _check_objectives(o, objectives)
    several = len(objectives) > 1
    earlier = load_earlier(o.warm_start, space, o.results_root, o.resume) if o.warm_start else []
    o = o.with_budget(space)
    # With several objectives, ASHA on the primary metric alone stops the small models the front is for
    # (docs/multi_objective.md measures it); MO-ASHA ranks each rung by Pareto front instead.
    o = replace(o, scheduler=o.scheduler or ("moasha" if several else "asha"))
    pair = space.pair
    max_epochs = o.max_epochs or space.max_epochs
    grace = space.grace_for(max_epochs)
    startup = space.startup_trials if space.startup_trials is not None else startup_trials(o.trials)
    name = o.name or f"{space.name}-{o.sampler}-{o.scheduler}-s{o.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    experiment = storage / name
    if not o.resume:
        _check_experiment_folder(experiment, o)
    study_file = storage / f"{name}.study.db"

    options = o.data_options(pair.data_module.default_dir)
    data = load_data(pair, o.data, o.classes, test=False, seed=o.seed, **options.scaling())
    warm = plan_warm_start(earlier, space, fingerprint=data.fingerprint, scaling=options.scaling(),
                           max_epochs=max_epochs, clip=o.warm_start_clip,
                           any_data=o.warm_start_any_data) if earlier else None
    base = pair.load_base(o.base)
    dry_run(pair, data, space.first_config(), f"spaces/{space.name}.py: first config", base)
    settings = TrialSettings(model=pair.model, data=pair.data, max_epochs=max_epochs, seed=o.seed,
                             fixed=dict(space.fixed), overrides=o.recipe_overrides(), metric=space.metric,
                             mode=space.mode, user_path=os.environ.get(ENV, ""), searched=tuple(space.params))
    patience = settings.resolve(space.start[0] if space.start else {}).recipe.patience
    tracking_uri = o.tracking_uri or default_tracking_uri()
    search_metric, params = space.search_metric, list(space.params)
    tracker = MLflowTracker(
        tracking_uri, experiment=f"spectune-{space.name}", search_id=name,
        tags={"space": space.name, "model": pair.model, "data": pair.data, "sampler": o.sampler,
              "scheduler": o.scheduler, "seed": str(o.seed), "git_commit": git_commit(),
              "data_fingerprint": data.fingerprint, **({"base_sha256": base.sha256} if base else {})},
        params={"trials": o.trials, "max_epochs": max_epochs, "grace_period": grace, "metric": space.metric,
                "mode": space.mode, "train_examples": len(data.train), "patience": patience,
                "inputs": data.spec.describe(), **({"base": base.path} if base else {}),
                **({"objectives": ", ".join(map(str, objectives)),
                    "choose": " and ".join(map(str, constraints)) or "best primary"} if several else {}),
                **(warm.params() if warm else {})})
    tracker.connect()
    if not o.resume:
        # A study file without its experiment folder belongs to no search: start the study afresh.
        study_file.unlink(missing_ok=True)
        (storage / f"{name}.asha.pkl").unlink(missing_ok=True)
        # What --resume needs to finish the search as it began (Tune keeps the searcher, not these).
        write_json(storage / f"{name}.objectives.json", {"objectives": list(o.objectives), "choose": list(o.choose)})

    with ray_session(storage, name, o.address) as resources:
        gpus_per_trial = gpu_share(o.gpus_per_trial, space.gpus_per_trial, resources.get("GPU", 0))
        place = plan_placement(resources.get("CPU", 1), resources.get("GPU", 0), gpus_per_trial,
                               o.cpus_per_trial, o.concurrency)
        settings = replace(settings, device=place.device, threads=place.threads)
        console.print(f"space {space.name}: {len(params)} hyperparameters, model {pair.model}, data {pair.data}; "
                      f"optimising {space.metric} ({space.mode})")
        if several:
            console.print(f"objectives: {', '.join(map(str, objectives))} (a Pareto front, {objectives[0].name} the "
                          f"primary); the front is taken over trials that ran their budget, and best.json's config "
                          f"is the best {objectives[0].name} on it"
                          + (f" with {' and '.join(map(str, constraints))}" if constraints else ""), soft_wrap=True)
        console.print(f"data: {data.describe()}, fingerprint {data.fingerprint}")
        if base is not None:
            console.print(f"base: {base.path} (sha256 {base.sha256[:12]}..., {base.record()['parameters']:,} "
                          "parameters), sent to every trial once")
        console.print(f"budget: {o.trials} trials x up to {max_epochs} epochs "
                      f"({'--max-epochs or the budget' if o.max_epochs else 'the space'}), "
                      f"{describe_patience(space, o, patience)}; sampler {o.sampler}"
                      + (f" ({startup} random start-up trials, then TPE)" if o.sampler == "tpe" else "")
                      + f", scheduler {o.scheduler}" + (f" (grace {grace}, reduction {space.reduction_factor})"
                                                        if o.scheduler != "fifo" else "") + f", seed {o.seed}",
                      soft_wrap=True)
        for line in warm.describe(startup if o.sampler == "tpe" else None) if warm else []:
            console.print(escape(line), soft_wrap=True)
        console.print(f"placement: {place.describe(resources.get('CPU', 0), resources.get('GPU', 0))}")
        console.print(f"failures: a trial whose worker, node, memory or disk failed is retried up to {o.infra_retries} "
                      "times from its last checkpoint (outside the trial budget), a config that raises is not; "
                      + (f"the search stops if its first {o.stop_after_failures} trials all fail on their "
                         f"configuration or {o.stop_after_failures} in a row fail on the machine after their retries"
                         if o.stop_after_failures else "the search never stops on failures"),
                      soft_wrap=True)
        console.print(f"tracking: MLflow at {tracking_uri}, experiment spectune-{space.name}, run {name}")
        if place.concurrency > 1 and o.sampler == "tpe":
            console.print(f"note: {place.concurrency} trials run at once, so TPE's later suggestions depend on "
                          "the order trials finish; only --concurrency 1 repeats a search exactly.")
        from ray import tune

        progress = ProgressPrinter(o.trials, space.metric, space.mode)
        # A starting point an earlier search already ran is carried, not run again.
        start = [*o.start, *(space.start if o.space_start else [])]
        # A resumed search keeps its pickled searcher and scheduler: building new ones would enqueue the
        # starting points into the kept study a second time.
        tune_config = None if o.resume else tune.TuneConfig(
            metric=search_metric, mode=space.mode, num_samples=o.trials, reuse_actors=True,
            search_alg=make_searcher(o.sampler, o.seed, o.trials, place.concurrency,
                                     [search_metric, *(x.name for x in objectives[1:])] if several else search_metric,
                                     [x.mode for x in objectives] if several else space.mode,
                                     warm.not_run(start) if warm else start, space.params,
                                     study=(name, study_file), startup=startup,
                                     carried=warm.frozen_trials(space.params) if warm else ()),
            scheduler=make_scheduler(o.scheduler, max_epochs, grace, space.reduction_factor,
                                     state=storage / f"{name}.asha.pkl",
                                     objectives=[(x.name, x.mode) for x in objectives[1:]]))
        fit(trial_fn, {"data": data, "settings": settings, **({"base": base} if base is not None else {})}, place,
            name=name, storage=storage, callbacks=[tracker, progress], restore=o.resume, tune_config=tune_config,
            infra_retries=o.infra_retries, guard=FailureGuard(o.stop_after_failures, experiment))

    frame, trials, histories = collect_trials(experiment, params, space.metric, space.mode)
    stopped = stopped_search(experiment)
    ok = winners(frame, space.metric, stopped)
    if stopped:
        tracker.close_lost(set(), outcome="stopped",
                           note=f"the failure guard stopped the search: {stop_reason(stopped)}")
        fail_lost_trials(study_file, name)
        try:
            note = judge_stop(name, stopped, ok, o.trials, len(frame), experiment)
        except SearchStopped:
            tracker.client.set_terminated(tracker.parent_run_id, status="FAILED")
            raise
        console.print(escape(note), soft_wrap=True)
    # A stopped search left trials unrun on purpose: it is over, not interrupted.
    unfinished = 0 if stopped else (int((~frame["status"].isin(["TERMINATED", "ERROR"])).sum())
                                    + max(0, o.trials - len(frame)))
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
    if ok.empty:
        raise AllTrialsFailed(f"all {len(frame)} trials of search {name} failed; see the 'spectune.error' "
                              f"tags in MLflow or the error files under {experiment}.")
    best_col = f"best_{space.metric}"
    chosen, pareto = ok.iloc[0], None
    if several:
        chosen, pareto = _choose_from_front(frame, ok, objectives, constraints, params)
    best_trial = trials[chosen["trial_id"]]
    best_run = tracker.run_id(best_trial.trial_id)

    def resolved(trial: Any) -> dict[str, Any]:
        return settings.resolve({p: v for p, v in trial.config.items() if p in params}).to_dict()

    config = resolved(best_trial)
    best = best_record(chosen, best_trial, trials=len(frame), space=space.name, name=name, config=config,
                       searched=params, metric=space.metric, mode=space.mode,
                       mlflow={"tracking_uri": tracking_uri, "experiment_id": tracker.experiment_id,
                               "parent_run_id": tracker.parent_run_id, "run_id": best_run},
                       data=replace(options, threads=place.threads, fingerprint=data.fingerprint,
                                    description=data.describe()),
                       versions=versions(), git_commit=git_commit())
    if base is not None:
        best["base"] = base.record()
    if warm is not None:
        best["warm_start"] = warm.record()
    if pareto is not None:
        for point in pareto["pareto"]:
            # Each point's full config, so that `spectune train --config best.json --point ID` retrains it.
            point["config"] = resolved(trials[point["trial_id"]])
        best.update(pareto)
    frame["mlflow_run_id"] = [tracker.run_id(t) for t in frame["trial_id"]]
    history = histories.get(best_trial.trial_id)
    artifacts = _best_artifacts(out_dir, best_trial, [] if history is None else history.to_dict("records"),
                                data.classes, name)
    best["checkpoint"] = str(artifacts[0]) if artifacts else best["checkpoint"]
    space_path = write_json(out_dir / "space.json", space.to_json())
    csv_path, best_path = write_results(out_dir, frame, best)
    report = study_report(out_dir, best, frame, study_file)
    tracker.finish(best_run, {best_col: best["best_value"], "trials": len(frame),
                              "failed_trials": int((frame["outcome"] == "failed").sum()),
                              **{f"importance.{k}": v for k, v in report.importances.items()}},
                   [best_path, *artifacts], [space_path, report.html])
    print_top(frame, params, space.metric)
    if pareto is not None:
        _print_front(pareto, objectives)
    console.print(f"best: trial {best['trial_id']} {space.metric} {best['best_value']:.4f} at epoch "
                  f"{best['best_epoch']}; {best_path} and {csv_path}")
    console.print(f"report: {report.html.resolve().as_uri()}"
                  + (f" (importances: {', '.join(f'{k} {v:.2f}' for k, v in report.importances.items())})"
                     if report.importances else ""), soft_wrap=True)
    top = [r for r in frame["mlflow_run_id"].head(5) if isinstance(r, str)]
    if top:
        # soft_wrap: a link cut over two lines cannot be clicked or copied.
        where = ("" if server_url(tracking_uri) else
                 f" (serve it first: spectune ui --tracking-uri {tracking_uri}, or make mlflow-ui)")
        console.print(f"compare the top {len(top)} trials in the MLflow UI{where}: {tracker.compare_link(top)}",
                      soft_wrap=True)
    return SearchOutcome(name=name, results_dir=out_dir, best=best, trials=frame)


def _choose_from_front(frame: pd.DataFrame, ok: pd.DataFrame, objectives: list[Objective],
                       constraints: tuple[Constraint, ...], params: list[str]) -> tuple[pd.Series, dict[str, Any]]:
    """The chosen trial and what ``best.json`` records of the front: its points, the rule and what it chose,
    and the front's hypervolume against a corner just beyond the worst value each objective took."""
    points = front(ok, objectives)
    names = columns(objectives)
    frame["pareto"] = frame["trial_id"].isin(points["trial_id"])
    if points.empty:
        # Only when no trial ran its budget (every one stopped by ASHA or its patience never came).
        chosen, rule = ok.iloc[0], "no trial ran its whole budget, so there is no front; chose the best primary value"
    else:
        chosen, rule = choose(points, objectives, constraints)
    reference = reference_point(ok[names].to_numpy(dtype=float), [o.mode for o in objectives])
    return chosen, {"objectives": [{"name": o.name, "mode": o.mode} for o in objectives],
                    "choose": [str(c) for c in constraints], "chosen_by": rule,
                    "pareto": front_record(points, objectives, params),
                    "hypervolume": {"value": hypervolume(points[names].to_numpy(dtype=float),
                                                         [o.mode for o in objectives], reference),
                                    "reference": reference,
                                    "reference_is": "each objective's worst value among this search's trials, "
                                                    "10 % of its range further"}}


def _print_front(pareto: dict[str, Any], objectives: list[Objective]) -> None:
    console.print(f"Pareto front ({len(pareto['pareto'])} of the trials that ran their budget; hypervolume "
                  f"{pareto['hypervolume']['value']:.4g} against a corner just beyond the search's worst values):")
    for point in pareto["pareto"]:
        console.print("  " + point["trial_id"] + ": " + ", ".join(f"{o.name} {point['objectives'][o.name]:.4g}"
                                                                  for o in objectives))
    console.print(f"chosen: {pareto['chosen_by']}", soft_wrap=True)


def winners(frame: pd.DataFrame, metric: str, stopped: dict[str, Any] | None) -> pd.DataFrame:
    """The trials that can be the best, best first: scored, and neither failed (a diverging loss, say,
    whatever it scored before) nor cut short when the failure guard stopped the search."""
    cut = stopped.get("cut", []) if stopped else []
    return frame[(frame["outcome"] != "failed") & ~frame["trial_id"].isin(cut)].dropna(subset=[f"best_{metric}"])


def judge_stop(name: str, stopped: dict[str, Any], completed: pd.DataFrame, total: int, ran: int,
               experiment: Path) -> str:
    """The line to print for a search the failure guard stopped (``stopped``: what it wrote) whose
    ``completed`` trials are still worth writing; :class:`SearchStopped` when none completed."""
    not_run = max(0, total - ran)
    if completed.empty:
        raise SearchStopped(f"search {name} stopped: {stop_reason(stopped)}; {not_run} of {total} trials were not "
                            f"run. See the 'spectune.error' tags in MLflow or the error files under {experiment}, "
                            "fix it, and start a new search.")
    # Trials completed before the machine failed, or before a guard that lost its count (a search
    # started before the count was saved with Tune's state, then resumed) stopped the search.
    return (f"the failure guard stopped the search: {stop_reason(stopped)}; {not_run} of {total} trials were not "
            f"run. The results are those of the {len(completed)} trial(s) that did not fail.")


def _check_experiment_folder(experiment: Path, o: SearchOptions) -> None:
    from ray import tune

    if o.resume and not tune.Tuner.can_restore(str(experiment)):
        raise OptionError(f"--resume: no interrupted search at {experiment}; check --name, or start it "
                         "without --resume.")
    if not o.resume and experiment.exists():
        raise OptionError(f"a search named {experiment.name!r} already exists at {experiment}; pass --resume to "
                         "continue it, or --name NEW for a new search (nothing was overwritten).")


def _best_artifacts(out_dir: Path, trial: Any, history: list[dict[str, float]], classes: tuple[str, ...],
                    name: str) -> list[Path]:
    """The best trial's checkpoint folder, confusion matrix (a regressor's predicted-vs-true and residual
    plots instead) and learning curves, kept under results/."""
    checkpoint = copy_checkpoint(trial.checkpoint.path if trial.checkpoint else None, out_dir)
    out = [checkpoint] if checkpoint else []
    confusion = read_confusion(checkpoint) if checkpoint else None
    if confusion:
        out.append(plot_confusion(np.asarray(confusion["matrix"]), classes, out_dir / "val_confusion.png",
                                  f"{name}: best trial, validation, epoch {confusion['epoch']}"))
    predictions = read_predictions(checkpoint) if checkpoint else None
    if predictions:
        out.append(plot_predictions(predictions["target"], predictions["prediction"], out_dir / "val_predictions.png",
                                    f"{name}: best trial, validation, epoch {predictions['epoch']}",
                                    predictions["name"]))
    if history:
        out.append(plot_learning_curves(history, out_dir / "learning_curves.png", f"{name}: best trial"))
    return out

