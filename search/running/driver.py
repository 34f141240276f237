"""The one driver of every command that trains configs through Tune (search, record, confirm):
prepare -> run trials -> collect.

As scikit-learn's ``BaseSearchCV.fit`` does what every search shares and ``GridSearchCV`` adds only
``_run_search``, :meth:`TrialCommand.run` does what the three commands share, in this order:

1. prepare: the command checks its options and returns a :class:`Plan` (nothing read yet); the driver
   checks that a cluster to join answers and takes this machine's token (:mod:`search.running.cluster`), checks
   the run's name (not held, or taken without ``--resume``) and where its results go (writable, not
   another run's), reads the data once, loads the base, and passes one config through the model (the
   dry run), so that a pair that fails every trial fails here, in one line, before Ray starts; the
   command builds its trial settings. Nothing is written so far; now the driver claims the run's name
   (:func:`search.running.claim.claim_run`: one process per name, held to the end), makes its results folder
   (:func:`results.export.results_folder`: never another run's) and opens the MLflow parent run.
2. run trials: the driver starts (or joins) Ray, places the trials, puts device and threads in the
   settings, prints the command's lines, and runs Tune with the tracker and the progress lines.
3. collect: the driver reads the trials back and refuses to go on when some never ended (the run can
   be resumed); the command writes what it is for.

A command subclasses :class:`TrialCommand` and fills in only what differs:

- :meth:`~TrialCommand.prepare` (required): its options checked, the :class:`Plan`;
- :meth:`~TrialCommand.settings` (required): the :class:`TrialSettings` its trials share;
- :meth:`~TrialCommand.describe` (required): its lines before the trials start;
- :meth:`~TrialCommand.trials` (required): what Tune runs (a searcher and scheduler, or a grid);
- :meth:`~TrialCommand.collect` (required): what it writes from the trials;
- optional hooks: :meth:`~TrialCommand.loaded` (what needs the data), :meth:`~TrialCommand.tracking`
  (its MLflow tags and params), :meth:`~TrialCommand.starting` (files written just before Ray starts),
  :meth:`~TrialCommand.placed` (a placement of its own, fused groups say), :meth:`~TrialCommand.ended`
  (what an unfinished run means).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from results.best_file import DataOptions
from results.export import check_results_dir, results_folder
from results.errors import SearchInterrupted
from results.provenance import git_commit
from search.running.claim import check_free, claim_run
from search.running.cluster import check_cluster
from search.running.collect import collect_trials
from search.strategy.epoch_cap import EpochCap
from search.running.failures import FailureGuard
from search.options import SEARCH_OPTIONS
from search.running.progress import ProgressPrinter, console
from search.running.resources import Placement, gpu_share, plan_placement
from search.running.session import ray_session
from search.running.tracking import MLflowTracker, default_tracking_uri
from search.running.tune_run import fit
from spaces import Space
from trainables.pair import dry_run, load_data
from trainables.pretrained import Base
from trainables.settings import TrialSettings


@dataclass(frozen=True)
class Plan:
    """What a command decided before anything is read: the space, the Tune run ``name`` under
    ``storage`` (``resume``: continue it), the data (``data``; ``seed`` for its subsampling) and the base
    to read, the config to dry-run (``dry_config``, named by ``dry_source``), the folder of its own that it
    writes its results into (``results``: checked before the data is read, made once the name is claimed;
    none for a command that writes into another's), the ``total`` trials the run must end, the config
    keys kept per trial (``params``) and the metric, where to track it (``tracking_uri``, ``role``), and
    where to run it (``address`` and the placement requests)."""

    space: Space
    name: str
    storage: Path
    data: DataOptions
    seed: int
    total: int
    params: list[str]
    metric: str
    mode: str
    dry_config: dict[str, Any]
    dry_source: str
    results: Path | None = None
    role: str = "search"
    base: str | None = None
    resume: bool = False
    tracking_uri: str | None = None
    address: str | None = None
    gpus_per_trial: float | None = None
    cpus_per_trial: float | None = None
    concurrency: int | None = None

    @property
    def experiment(self) -> Path:
        """Tune's folder of this run."""
        return self.storage / self.name


@dataclass
class Run:
    """What the driver holds for a command: the plan, the data and base read once, the shared trial
    settings (device and threads filled in once Ray is up), the MLflow tracker, and, once trials ran,
    the placement and the cluster's resources."""

    plan: Plan
    data: Any
    base: Base | None
    settings: TrialSettings
    tracker: MLflowTracker
    place: Placement | None = None
    resources: dict[str, float] = field(default_factory=dict)

    @property
    def space(self) -> Space:
        return self.plan.space

    @property
    def shipped(self) -> dict[str, Any]:
        """What every trial receives through the object store, once."""
        return {"data": self.data, "settings": self.settings, **({"base": self.base} if self.base is not None else {})}


@dataclass(frozen=True)
class Trials:
    """What Tune runs: ``trial_fn`` with the shipped objects (unless ``ships_data`` is off: a fused member
    gets them from its group) and ``extra`` ones, under ``tune_config`` (a searcher and scheduler, or a
    concurrency limit) or over ``param_space`` (a grid), with ``callbacks`` of its own beside the tracker and
    the progress lines; ``guard``, ``infra_retries`` and ``cap`` as :func:`search.running.tune_run.fit` takes
    them."""

    trial_fn: Callable[..., None]
    tune_config: Any = None
    param_space: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    ships_data: bool = True
    callbacks: tuple[Any, ...] = ()
    guard: FailureGuard | None = None
    infra_retries: int = SEARCH_OPTIONS["infra_retries"].default
    cap: EpochCap | None = None


@dataclass(frozen=True)
class Collected:
    """The trials as Tune left them: one row per trial (:func:`search.running.collect.collect_trials`), the Trial
    objects and the epoch histories by trial id."""

    frame: pd.DataFrame
    trials: dict[str, Any]
    histories: dict[str, pd.DataFrame]


class TrialCommand(ABC):
    """A command that trains configs through Tune; :meth:`run` is the driver (see the module)."""

    # --- what a command adds ------------------------------------------------------------------
    @abstractmethod
    def prepare(self) -> Plan:
        """Check the command's options and decide its plan; read no data and start nothing."""

    def loaded(self, plan: Plan, data: Any, base: Base | None) -> None:
        """What the command checks or plans from the data it runs on (a fingerprint, a warm start)."""

    @abstractmethod
    def settings(self, plan: Plan, data: Any, base: Base | None) -> TrialSettings:
        """The run settings every trial shares (device and threads are the driver's)."""

    def tracking(self, plan: Plan, data: Any, base: Base | None) -> tuple[dict[str, str], dict[str, Any]]:
        """The MLflow parent run's own tags and params, beside the ones every run has."""
        return {}, {}

    def starting(self, run: Run) -> None:
        """Files the command writes once everything is checked, just before Ray starts."""

    def placed(self, run: Run, place: Placement) -> Placement:
        """The placement the trials run with, given the cluster's (``place``) once Ray is up."""
        return place

    @abstractmethod
    def describe(self, run: Run) -> list[str]:
        """The lines printed once trials are placed, before the first starts."""

    @abstractmethod
    def trials(self, run: Run) -> Trials:
        """What Tune runs."""

    def ended(self, run: Run, collected: Collected) -> None:
        """Refuse to collect a run with trials that never ended: it was interrupted and can be resumed."""
        frame = collected.frame
        unfinished = int((~frame["status"].isin(["TERMINATED", "ERROR"])).sum()) + max(0, run.plan.total - len(frame))
        if unfinished:
            run.tracker.client.set_terminated(run.tracker.parent_run_id, status="KILLED")
            raise SearchInterrupted(self.interrupted(run, unfinished))

    def interrupted(self, run: Run, unfinished: int) -> str:
        """The message of an interrupted run: what was left and how to continue it."""
        return (f"{run.plan.role} {run.plan.name} was interrupted with {unfinished} of {run.plan.total} trials "
                "unfinished; nothing was written to results/.")

    @abstractmethod
    def collect(self, run: Run, collected: Collected) -> Any:
        """Write what the command is for from the trials; its return value is :meth:`run`'s."""

    # --- the driver -----------------------------------------------------------------------------
    def run(self) -> Any:
        """prepare -> run trials -> collect, holding the run's name from its first write to its end."""
        run = self._prepare()
        plan = run.plan
        results = nullcontext() if plan.results is None else results_folder(plan.results, plan.resume)
        with claim_run(plan.storage, plan.name, plan.role, plan.resume), results:
            run.tracker.connect()
            self._run_trials(run)
            collected = Collected(*collect_trials(plan.experiment, plan.params, plan.metric, plan.mode))
            self.ended(run, collected)
            return self.collect(run, collected)

    def _prepare(self) -> Run:
        plan = self.prepare()
        # A cluster that cannot be joined is known in a second: before the data is read.
        check_cluster(plan.address)
        # Refused before the data is read; claim_run (once nothing is left to read) checks the name again.
        check_free(plan.storage, plan.name, plan.role, plan.resume)
        if plan.results is not None:
            check_results_dir(plan.results, plan.resume)
        pair = plan.space.pair
        data = load_data(pair, plan.data.folder(), plan.data.classes, test=False, seed=plan.seed,
                         **plan.data.scaling())
        base = pair.load_base(plan.base)
        self.loaded(plan, data, base)
        dry_run(pair, data, plan.dry_config, plan.dry_source, base)
        settings = self.settings(plan, data, base)
        tags, params = self.tracking(plan, data, base)
        tracker = MLflowTracker(plan.tracking_uri or default_tracking_uri(), experiment=f"spectune-{plan.space.name}",
                                search_id=plan.name, role=plan.role,
                                tags={"space": plan.space.name, "model": pair.model, "data": pair.data,
                                      "data_fingerprint": data.fingerprint, "git_commit": git_commit(), **tags},
                                params=params)
        return Run(plan, data, base, settings, tracker)

    def _run_trials(self, run: Run) -> None:
        plan = run.plan
        self.starting(run)
        with ray_session(plan.storage, plan.name, plan.address) as resources:
            gpus = resources.get("GPU", 0)
            run.resources = resources
            run.place = self.placed(run, plan_placement(resources.get("CPU", 1), gpus,
                                                        gpu_share(plan.gpus_per_trial, plan.space.gpus_per_trial,
                                                                  gpus),
                                                        plan.cpus_per_trial, plan.concurrency))
            run.settings = replace(run.settings, device=run.place.device, threads=run.place.threads)
            for line in self.describe(run):
                console.print(line, soft_wrap=True)
            trials = self.trials(run)
            progress = ProgressPrinter(plan.total, plan.metric, plan.mode, max_epochs=run.settings.max_epochs)
            shipped = {**(run.shipped if trials.ships_data else {}), **trials.extra}
            fit(trials.trial_fn, shipped, run.place, name=plan.name, storage=plan.storage,
                callbacks=[run.tracker, progress, *trials.callbacks], restore=plan.resume,
                tune_config=trials.tune_config, param_space=trials.param_space, infra_retries=trials.infra_retries,
                guard=trials.guard, cap=trials.cap)


def candidate_grid(candidates: dict[str, dict[str, Any]], seeds: list[int], run: Run) -> Trials:
    """Every candidate config with every seed, each to its budget (``spectune record`` and ``confirm``)."""
    from ray import tune

    from search.running.trial import confirm_trial

    return Trials(confirm_trial, extra={"candidates": candidates},
                  param_space={"candidate": tune.grid_search(list(candidates)), "seed": tune.grid_search(seeds)},
                  tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=run.place.concurrency))

