"""``spectune search``: validate everything, run the trials through Tune, write the results.

Order matters for "bad input loses nothing": the space, the options, the data and the MLflow
store are all checked before Ray starts, and results are written only after Tune returns.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from optuna.trial import TrialState

from results.best_file import best_record
from results.errors import AllTrialsFailed, OptionError, SearchError, SearchStopped
from results.export import check_name, copy_checkpoint, read_confusion, read_predictions, results_dir, write_results
from results.files import read_json, write_json
from results.pareto import (Constraint, Objective, choose, columns, front, front_record, hypervolume, no_front,
                            parse_choose, reference_point)
from results.plots import plot_confusion, plot_learning_curves, plot_predictions
from results.provenance import git_commit, versions
from results.report import study_report
from results.sqlite_files import remove_database
from search.running.driver import Collected, Plan, Run, TrialCommand, Trials
from search.strategy.epoch_cap import EpochCap
from search.running.failures import FailureGuard, stop_reason, stopped_search
from search.options import SearchOptions, check_configs, fuse_members
from search.running.fused_member import namespace_of, run_member
from search.running.fused_trials import GroupReleaser, start_broker
from search.strategy.fusion import check_fusable, decide_fusion, may_fuse, model_refusal
from search.running.resources import Placement
from search.strategy.own_state import check_resumable
from search.running.progress import console, print_top
from search.resolve import resolve, search_objectives
from search.strategy.schedulers import make_scheduler
from search.strategy.searcher import fail_lost_trials, make_searcher, startup_trials
from search.running.tracking import server_url
from search.running.trial import run_trial
from search.strategy.warm_start import load_earlier, plan_warm_start
from spaces import Space, saved_ranges
from trainables.settings import TrialSettings


@dataclass(frozen=True)
class SearchOutcome:
    name: str
    results_dir: Path
    best: dict[str, Any]
    trials: Any


def _check_options(o: SearchOptions, space: Space) -> None:
    """What only a search checks, beside :func:`search.resolve.resolve`'s checks of every command's options."""
    check_configs(space, o.start, "start config")
    if o.name:
        check_name(o.name)
    elif o.resume:
        raise OptionError("--resume needs --name: the name of the search to continue (see ray_results/).")
    if (o.warm_start_clip or o.warm_start_any_data) and not o.warm_start:
        raise OptionError("--warm-start-clip and --warm-start-any-data need --warm-start NAME; add it or drop them.")
    if o.sampler == "prior" and not (o.start or (o.space_start and space.start)):
        # The sampler would refuse it too, but only once Ray has started.
        raise OptionError(f"--sampler prior draws around the first starting config, and space {space.name!r} has "
                          "none; add start=[{...}] to the space, pass --start JSON, or choose another --sampler.")


def _check_objectives(o: SearchOptions, objectives: list[Objective]) -> tuple[Constraint, ...]:
    """The options that only make sense with one or with several objectives, checked against the search's
    objectives (a resumed search's as it began); the ``--choose`` constraints."""
    if len(objectives) > 1 and o.warm_start:
        raise OptionError("--warm-start carries single-objective trials; a search with several objectives "
                          f"({', '.join(map(str, objectives))}) starts cold. Drop --warm-start or the extra objectives.")
    if o.sampler in ("prior", "gp") and len(objectives) > 1:
        raise OptionError(f"--sampler {o.sampler} ranks trials by one metric; a search with several objectives "
                          f"({', '.join(map(str, objectives))}) needs --sampler tpe, nsga2 or random.")
    if o.scheduler == "asha-curve" and len(objectives) > 1:
        raise OptionError("--scheduler asha-curve extrapolates one metric's curve; a search with several objectives "
                          f"({', '.join(map(str, objectives))}) needs --scheduler moasha.")
    if o.scheduler == "moasha" and len(objectives) == 1:
        raise OptionError("--scheduler moasha ranks trials by Pareto front over several objectives; this search has "
                          "one. Add one with --objective trainable_params:min, or use --scheduler asha.")
    if o.choose and len(objectives) == 1:
        raise OptionError("--choose picks a point of a Pareto front; this search has one objective. Add one with "
                          "--objective trainable_params:min, say.")
    return parse_choose(o.choose, objectives)


def _resumed_objectives(o: SearchOptions, saved: Path) -> SearchOptions:
    """A resumed search keeps the ``--objective``, ``--choose``, ``--time-budget`` and fusion it started with
    (Tune restores its time budget and its groups' callback with it); other ones are refused."""
    if not saved.exists():
        return o
    first = read_json(saved, "the search's objectives")
    began = (tuple(first.get("objectives", ())), tuple(first.get("choose", ())))
    if (o.objectives or o.choose) and (o.objectives, o.choose) != began:
        raise OptionError(f"--resume: search {o.name} began with --objective {list(began[0])} and --choose "
                          f"{list(began[1])}; resume it with those (or with neither: they are kept).")
    budget = first.get("time_budget")
    if o.time_budget is not None and o.time_budget != budget:
        raise OptionError(f"--resume: search {o.name} began with "
                          + (f"--time-budget {budget:g}" if budget else "no --time-budget")
                          + "; a resumed search keeps it (and gets it whole again), so drop --time-budget.")
    fused = first.get("fuse")
    if fused is not None and fuse_members(o.fuse) not in (None, fused):
        raise OptionError(f"--resume: search {o.name} began with --fuse {fused}; a resumed search keeps it, so drop "
                          "--fuse.")
    return replace(o, objectives=began[0], choose=began[1], time_budget=budget,
                   fuse=str(fused) if fused is not None else o.fuse)


def describe_patience(space: Space, o: SearchOptions, resolved_patience: int | None) -> str:
    """Where the trials' patience comes from, for the budget line."""
    source = ("--no-patience" if o.no_patience else "--patience" if o.patience is not None
              else "the space's fixed value" if "patience" in space.fixed else "the recipe's default")
    return f"in-trial patience {resolved_patience if resolved_patience is not None else 'off'} ({source})"


def run_search(o: SearchOptions, trial_fn: Callable[..., None] | None = None) -> SearchOutcome:
    """Run (or resume) a search and write ``results/<space>/<name>/{best.json, trials.csv}``.
    ``trial_fn`` is the Ray function trainable (default :func:`search.running.trial.run_trial`, or
    :func:`search.running.fused_member.run_member` when fused; tests wrap them to inject failures)."""
    return SearchCommand(o, trial_fn).run()


class SearchCommand(TrialCommand):
    """``spectune search`` on the shared driver (:mod:`search.running.driver`): what it adds is the objectives,
    the warm start, the searcher and scheduler, the failure guard, and best.json with its report."""

    def __init__(self, o: SearchOptions, trial_fn: Callable[..., None] | None = None) -> None:
        self.o, self.trial_fn = o, trial_fn
        self.broker: Any = None   # a fused run's broker, held while its trials run (search.running.fused_trials)

    def prepare(self) -> Plan:
        given = self.o
        self.resolved = resolve(given)
        o, space = self.resolved.options, self.resolved.space
        _check_options(o, space)
        storage = o.storage.resolve()
        if o.resume:
            _check_restorable(storage / str(o.name))
            o = _resumed_objectives(o, storage / f"{o.name}.objectives.json")
            check_resumable(storage, str(o.name))
        self.objectives = search_objectives(space, o)
        self.constraints = _check_objectives(o, self.objectives)
        self.several = len(self.objectives) > 1
        self.earlier = load_earlier(o.warm_start, space, o.results_root, o.resume) if o.warm_start else []
        # A space's trials_factor multiplies the budget's trials unless the user gave --trials: said in the plan.
        self.factored = given.trials is None and space.trials_factor > 1
        self.capped_by_default = given.max_total_epochs is None
        # With several objectives, ASHA on the primary metric alone stops the small models the front is for
        # (docs/multi_objective.md measures it); MO-ASHA ranks each rung by Pareto front instead.
        o = self.o = replace(o, scheduler=o.scheduler or ("moasha" if self.several else "asha"))
        self.max_epochs = self.resolved.max_epochs
        self.grace = o.grace_period or space.grace_for(self.max_epochs)
        if self.grace > self.max_epochs:
            raise OptionError(f"--grace-period {self.grace} is beyond the {self.max_epochs}-epoch budget; pass at most "
                              f"{self.max_epochs}.")
        self.reduction = o.reduction_factor or space.reduction_factor
        self.startup = o.startup_trials or (space.startup_trials if space.startup_trials is not None
                                            else startup_trials(o.trials))
        name = o.name or f"{space.name}-{o.sampler}-{o.scheduler}-s{o.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
        self.study_file = storage / f"{name}.study.db"
        self.options = self.resolved.data
        return Plan(space=space, name=name, storage=storage, data=self.options, seed=o.seed, total=o.trials,
                    params=list(space.params), metric=space.metric, mode=space.mode,
                    dry_config=space.first_config(), dry_source=f"{space.where}: first config",
                    results=results_dir(space.name, name, o.results_root),
                    base=o.base, resume=o.resume, tracking_uri=o.tracking_uri, address=o.address,
                    gpus_per_trial=o.gpus_per_trial, cpus_per_trial=o.cpus_per_trial, concurrency=o.concurrency)

    def loaded(self, plan: Plan, data: Any, base: Any) -> None:
        o = self.o
        self.warm = plan_warm_start(self.earlier, plan.space, fingerprint=data.fingerprint,
                                    scaling=self.options.scaling(), max_epochs=self.max_epochs,
                                    clip=o.warm_start_clip, any_data=o.warm_start_any_data) if self.earlier else None
        # Whether the model fuses, at the dry run's config: an explicit --fuse K on one that does not is
        # refused now, before Ray starts.
        pair = plan.space.pair
        self.refusal = model_refusal(pair, self.resolved.settings.resolve(plan.dry_config), data.spec, base) \
            if may_fuse(o.fuse, pair.model) else None
        check_fusable(o.fuse, plan.space, self.refusal)

    def settings(self, plan: Plan, data: Any, base: Any) -> TrialSettings:
        self.patience = self.resolved.patience
        return self.resolved.settings

    def tracking(self, plan: Plan, data: Any, base: Any) -> tuple[dict[str, str], dict[str, Any]]:
        o, space, warm = self.o, plan.space, self.warm
        tags = {"sampler": o.sampler, "scheduler": o.scheduler, "seed": str(o.seed),
                **({"base_sha256": base.sha256} if base else {})}
        params = {"trials": o.trials, "max_epochs": self.max_epochs, "max_total_epochs": o.max_total_epochs,
                  "time_budget_min": o.time_budget, "grace_period": self.grace,
                  "metric": space.metric, "mode": space.mode, "train_examples": len(data.train),
                  "patience": self.patience, "inputs": data.spec.describe(), **({"base": base.path} if base else {}),
                  **({"objectives": ", ".join(map(str, self.objectives)),
                      "choose": " and ".join(map(str, self.constraints)) or "best primary"} if self.several else {}),
                  **(warm.params() if warm else {})}
        return tags, params

    def starting(self, run: Run) -> None:
        storage, name = run.plan.storage, run.plan.name
        if not self.o.resume:
            # A study file without its experiment folder belongs to no search: start the study afresh.
            remove_database(self.study_file)
            (storage / f"{name}.asha.pkl").unlink(missing_ok=True)
            # What --resume needs to finish the search as it began (Tune keeps the searcher, not these);
            # placed() adds the fusion once the device is known.
            self.began_with = {"objectives": list(self.o.objectives), "choose": list(self.o.choose),
                               "time_budget": self.o.time_budget}
            write_json(storage / f"{name}.objectives.json", self.began_with)

    def placed(self, run: Run, place: Placement) -> Placement:
        """Fused groups on ``place``'s slots where the search fuses (decided now that the device is known)."""
        self.fusion = decide_fusion(self.o.fuse, run.space.pair.model, place.device, self.refusal)
        if not self.o.resume:
            write_json(run.plan.storage / f"{run.plan.name}.objectives.json",
                       {**self.began_with, "fuse": self.fusion.members})
        return place.fused(self.fusion.members) if self.fusion.members > 1 else place

    def describe(self, run: Run) -> list[str]:
        o, space, data, base, warm = self.o, run.space, run.data, run.base, self.warm
        pair, place, objectives = space.pair, run.place, self.objectives
        lines = [f"space {space.name}: {len(space.params)} hyperparameters, model {pair.model}, data {pair.data}; "
                 f"optimising {space.metric} ({space.mode})"]
        if self.several:
            lines.append(f"objectives: {', '.join(map(str, objectives))} (a Pareto front, {objectives[0].name} the "
                         f"primary); the front is taken over trials that ran their budget, and best.json's config "
                         f"is the best {objectives[0].name} on it"
                         + (f" with {' and '.join(map(str, self.constraints))}" if self.constraints else ""))
        lines.append(f"data: {data.describe()}, fingerprint {data.fingerprint}")
        if base is not None:
            lines.append(f"base: {base.path} (sha256 {base.sha256[:12]}..., {base.record()['parameters']:,} "
                         "parameters), sent to every trial once")
        lines.append(self.budget_line(space, self.patience))
        if warm:
            lines += warm.describe(self.startup if o.sampler == "tpe" else None)
        lines.append(f"placement: {place.describe(run.resources.get('CPU', 0), run.resources.get('GPU', 0))}")
        lines.append(self.fusion.line)
        lines.append(f"failures: a trial whose worker, node, memory or disk failed is retried up to {o.infra_retries} "
                     "times from its last checkpoint (outside the trial budget), a config that raises is not; "
                     + (f"the search stops if its first {o.stop_after_failures} trials all fail on their "
                        f"configuration or {o.stop_after_failures} in a row fail on the machine after their retries"
                        if o.stop_after_failures else "the search never stops on failures"))
        lines.append(f"tracking: MLflow at {run.tracker.tracking_uri}, experiment spectune-{space.name}, "
                     f"run {run.plan.name}")
        if place.concurrency > 1 and o.sampler == "tpe":
            lines.append(f"note: {place.concurrency} trials run at once, so TPE's later suggestions depend on "
                         "the order trials finish; only --concurrency 1 repeats a search exactly.")
        return lines

    def budget_line(self, space: Space, patience: int | None) -> str:
        """The plan's line on trials, epochs (and their cap), ``patience``, sampler and scheduler, once prepared."""
        o = self.o
        factored = f"{space.trials_factor} x the budget's {o.trials // space.trials_factor}"
        cap = (f"random search's most, the budget's {o.trials // space.trials_factor} trials x {self.max_epochs}"
               if self.factored and self.capped_by_default else "--max-total-epochs")
        return (f"budget: {o.trials} trials"
                + (f" ({factored}, the space's trials_factor: cheap trials, most stopped by ASHA)" if self.factored
                   else "")
                + f" x up to {self.max_epochs} epochs ({'--max-epochs or the budget' if o.max_epochs else 'the space'}), "
                + (f"at most {o.max_total_epochs} epochs in all ({cap}), " if o.max_total_epochs else "")
                + (f"ending after {o.time_budget:g} min of trials (--time-budget; a resumed search gets it whole "
                   "again), " if o.time_budget else "")
                + f"{describe_patience(space, o, patience)}; sampler {o.sampler}"
                + (f" ({self.startup} random start-up trials, then TPE)" if o.sampler == "tpe" else
                   " (Ray Tune's OptunaSearch with Optuna's default TPE: 10 random start-up trials)"
                   if o.sampler == "tune-tpe" else "")
                + f", scheduler {o.scheduler}"
                + (f" (grace {self.grace}, reduction {self.reduction}"
                   + ("; rungs in training seconds, an epoch counting the seconds of the first epoch reported"
                      if o.scheduler == "asha-time" else "") + ")" if o.scheduler != "fifo" else "")
                + f", seed {o.seed}")

    def trials(self, run: Run) -> Trials:
        from ray import tune

        o, space, warm, objectives = self.o, run.space, self.warm, self.objectives
        name, storage, search_metric = run.plan.name, run.plan.storage, space.search_metric
        # A starting point an earlier search already ran is carried, not run again.
        start = [*o.start, *(space.start if o.space_start else [])]
        # A resumed search keeps its pickled searcher and scheduler: building new ones would enqueue the
        # starting points into the kept study a second time.
        tune_config = None if o.resume else tune.TuneConfig(
            metric=search_metric, mode=space.mode, num_samples=o.trials, reuse_actors=True,
            time_budget_s=60 * o.time_budget if o.time_budget else None,
            search_alg=make_searcher(o.sampler, o.seed, o.trials, run.place.concurrency,
                                     [search_metric, *(x.name for x in objectives[1:])] if self.several
                                     else search_metric,
                                     [x.mode for x in objectives] if self.several else space.mode,
                                     warm.not_run(start) if warm else start, space.params,
                                     study=(name, self.study_file), startup=self.startup,
                                     carried=warm.frozen_trials(space.params) if warm else ()),
            scheduler=make_scheduler(o.scheduler, self.max_epochs, self.grace, self.reduction,
                                     state=storage / f"{name}.asha.pkl",
                                     objectives=[(x.name, x.mode) for x in objectives[1:]]))
        fused = {}
        if self.fusion.members > 1:
            spec, self.broker = start_broker(self.fusion.members, namespace_of(run.plan.experiment), run.shipped)
            fused = {"extra": {"fuse": spec}, "ships_data": False, "callbacks": (GroupReleaser(spec.namespace),)}
        # Tune's time budget counts from its first step, a moment after this: ended() judges by this clock.
        self.began = time.monotonic()
        return Trials(self.trial_fn or (run_member if fused else run_trial), tune_config=tune_config,
                      infra_retries=o.infra_retries, **fused,
                      guard=FailureGuard(o.stop_after_failures, run.plan.experiment),
                      cap=EpochCap(o.max_total_epochs) if o.max_total_epochs else None)

    def ended(self, run: Run, collected: Collected) -> None:
        frame, tracker, name = collected.frame, run.tracker, run.plan.name
        self.stopped = stopped_search(run.plan.experiment)
        self.ok = winners(frame, run.space.metric, self.stopped)
        if self.stopped:
            tracker.close_lost(set(), outcome="stopped",
                               note=f"the failure guard stopped the search: {stop_reason(self.stopped)}")
            fail_lost_trials(self.study_file, name)
            try:
                note = judge_stop(name, self.stopped, self.ok, self.o.trials, len(frame), run.plan.experiment)
            except SearchStopped:
                tracker.client.set_terminated(tracker.parent_run_id, status="FAILED")
                raise
            console.print(note, soft_wrap=True)
            # A stopped search left trials unrun on purpose: it is over, not interrupted.
            return
        limit = self._limit_reached(frame, tracker)
        if limit:
            # The epoch cap or the time budget ended it: the trials it did not start are not missing (those it cut
            # short ended as ASHA's stopped trials do, TERMINATED with their best epoch so far).
            console.print(f"the search reached {limit} after {len(frame)} of {self.o.trials} trials; the trials "
                          "still running were stopped there.", soft_wrap=True)
            fail_lost_trials(self.study_file, name, state=TrialState.PRUNED)
            if self.ok.empty and (frame["outcome"] != "failed").any():
                tracker.client.set_terminated(tracker.parent_run_id, status="FAILED")
                raise SearchError(f"search {name} reached {limit} before any trial finished an epoch; nothing was "
                                  "written to results/. Give it more time (--time-budget) and start a new search.")
            run = replace(run, plan=replace(run.plan, total=len(frame)))
        super().ended(run, collected)

    def _limit_reached(self, frame: pd.DataFrame, tracker: Any) -> str | None:
        """The limit that ended the search before its trials had all run (its epoch cap or its time budget),
        with the trials it cut closed in MLflow as stopped ones; ``None`` if none did."""
        cap, budget = self.o.max_total_epochs, self.o.time_budget
        capped = bool(cap) and int(frame["epochs"].sum()) >= cap
        # Tune stopped every trial once its budget ran out; trials left unended mean an interruption instead.
        timed_out = (bool(budget) and time.monotonic() - self.began >= 60 * budget
                     and bool(frame["status"].isin(["TERMINATED", "ERROR"]).all()))
        if not (capped or timed_out):
            return None
        limit = f"its cap of {cap} epochs in all" if capped else f"its time budget of {budget:g} min"
        cut = tracker.close_lost(set(), outcome="stopped", status="FINISHED",
                                 note=f"running when the search reached {limit}: stopped there, as ASHA stops a trial")
        # A search that ran all its trials to their end just as its time ran out was not ended by it.
        return limit if capped or cut or len(frame) < self.o.trials else None

    def interrupted(self, run: Run, unfinished: int) -> str:
        return (f"search {run.plan.name} was interrupted with {unfinished} of {self.o.trials} trials unfinished; "
                "nothing was written to results/. Continue it with: "
                f"{shlex.join(['spectune', 'search', '--space', run.space.name, '--name', run.plan.name, '--resume'])} "
                "(same data options).")

    def collect(self, run: Run, collected: Collected) -> SearchOutcome:
        space, tracker, name = run.space, run.tracker, run.plan.name
        frame, trials, histories, ok = collected.frame, collected.trials, collected.histories, self.ok
        params, objectives, settings = list(space.params), self.objectives, run.settings
        lost = fail_lost_trials(self.study_file, name)
        if lost:
            console.print(f"{len(lost)} trial(s) that the killed driver had started but Tune had not saved were "
                          f"replaced by new suggestions; the Optuna study marks them FAIL (numbers {lost}).")
        out_dir = run.plan.results
        if ok.empty:
            raise AllTrialsFailed(f"all {len(frame)} trials of search {name} failed; see the 'spectune.error' "
                                  f"tags in MLflow or the error files under {run.plan.experiment}.")
        best_col = f"best_{space.metric}"
        chosen, pareto = ok.iloc[0], None
        if self.several:
            chosen, pareto = _choose_from_front(frame, ok, objectives, self.constraints, params)
        best_trial = trials[chosen["trial_id"]]
        best_run = tracker.run_id(best_trial.trial_id)

        def resolved(trial: Any) -> dict[str, Any]:
            return settings.resolve({p: v for p, v in trial.config.items() if p in params}).to_dict()

        best = best_record(chosen, best_trial, trials=len(frame), space=space.name, name=name,
                           config=resolved(best_trial), searched=params, metric=space.metric, mode=space.mode,
                           mlflow={"tracking_uri": tracker.tracking_uri, "experiment_id": tracker.experiment_id,
                                   "parent_run_id": tracker.parent_run_id, "run_id": best_run},
                           data=replace(self.options, threads=run.place.threads, fingerprint=run.data.fingerprint,
                                        description=run.data.describe()),
                           versions=versions(), git_commit=git_commit())
        if run.base is not None:
            best["base"] = run.base.record()
        if self.warm is not None:
            best["warm_start"] = self.warm.record()
        if pareto is not None:
            for point in pareto["pareto"]:
                # Each point's full config, so that `spectune train --config best.json --point ID` retrains it.
                point["config"] = resolved(trials[point["trial_id"]])
            best.update(pareto)
        frame["mlflow_run_id"] = [tracker.run_id(t) for t in frame["trial_id"]]
        history = histories.get(best_trial.trial_id)
        artifacts = _best_artifacts(out_dir, best_trial, [] if history is None else history.to_dict("records"),
                                    run.data.classes, name)
        best["checkpoint"] = str(artifacts[0]) if artifacts else best["checkpoint"]
        space_path = write_json(out_dir / "space.json", space.to_json())
        csv_path, best_path = write_results(out_dir, frame, best)
        report = study_report(out_dir, best, frame, self.study_file, saved_ranges(space_path))
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
            uri = tracker.tracking_uri
            where = ("" if server_url(uri) else
                     f" (serve it first: spectune ui --tracking-uri {shlex.quote(uri)}, or make mlflow-ui)")
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
        # No trial ran its budget (ASHA stopped every one), or none that did reported every objective.
        chosen, rule = ok.iloc[0], no_front(ok, objectives)
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


def _check_restorable(experiment: Path) -> None:
    from ray import tune

    if not tune.Tuner.can_restore(str(experiment)):
        raise OptionError(f"--resume: no interrupted search at {experiment}; check --name, or start it "
                         "without --resume.")


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

