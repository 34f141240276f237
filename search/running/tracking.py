"""MLflow tracking of a search, written from the driver process only.

One parent run per search and one nested child run per trial. Writing from one process avoids
SQLite "database is locked" errors and the artifact problems of workers on other nodes; the
per-epoch results reach the driver anyway, through Tune's callbacks.
"""

from __future__ import annotations

import json
import os
import shlex
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from ray import tune

from results.errors import OptionError
from results.export import trial_outcome
from results.files import locked
from results.sqlite_files import fast_commits
from search.running.failures import failure_of, retries_of

# What the recipe reports each epoch that is worth a curve in the UI (with the best_<metric> of the
# space's metric); Ray's own keys are left out.
# The rate is logged as learning_rate: a metric named like the lr param makes MLflow's compare view
# open its parallel-coordinates plot on the metric.
EPOCH_METRICS = ("learning_rate", "train_loss", "val_loss", "val_acc", "val_top3_acc", "val_macro_f1", "val_rmse",
                 "val_mae", "val_r2", "epoch_time_s")
# Logged once per trial, at its first epoch: the model's size, for the rank / accuracy / size trade-off, and
# the frozen base's memory as held and unquantised (what QLoRA's quantize saves).
SIZE_METRICS = ("trainable_params", "total_params", "trainable_fraction", "base_bytes", "base_bytes_unquantised")
TAG_SEARCH = "spectune.search"
TAG_TRIAL = "spectune.trial_id"
TAG_OUTCOME = "spectune.outcome"
TAG_ROLE = "spectune.role"
# The class of a trial's last failure (infrastructure / configuration) and its retries after
# infrastructure failures (search.running.failures).
TAG_FAILURE = "spectune.failure"
TAG_RETRIES = "spectune.retries"


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else an SQLite store in the working folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of an SQLite store, ``None`` for any other store."""
    return Path(tracking_uri[len("sqlite:///"):]) if tracking_uri.startswith("sqlite:///") else None


def artifact_root(tracking_uri: str) -> str | None:
    """Artifacts of an SQLite store go beside its database file, not into ``./mlruns`` of whatever
    folder the search ran from; a server decides for itself (``None``)."""
    db = sqlite_file(tracking_uri)
    return None if db is None else (db.parent / "mlartifacts").resolve().as_uri()


# Where `spectune ui` (and `make mlflow-ui`) serve a local store unless told otherwise.
LOCAL_UI = "http://127.0.0.1:5000"


def server_url(tracking_uri: str) -> str | None:
    """The address of a tracking server (whose UI is at the same address), or ``None`` for a local
    store (SQLite, a folder), which has no UI until ``spectune ui`` serves one."""
    return tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else None


def open_experiment(tracking_uri: str, name: str) -> tuple[MlflowClient, str]:
    """A client of the store and the id of its experiment ``name``, each created (the experiment's
    artifacts beside an SQLite store) when missing. Two processes creating one new SQLite store at once
    race on its tables and its migrations (one ends in a traceback), and two creating one experiment race
    on its name: a lock file beside the database lets one process at a time do both."""
    db = sqlite_file(tracking_uri)
    if db is not None:
        fast_commits(db)
    # A missing folder is left to MLflow, which names the store in its error.
    with locked(f"{db}.lock") if db is not None and db.parent.is_dir() else nullcontext():
        client = MlflowClient(tracking_uri)    # creates or migrates the store
        exp = client.get_experiment_by_name(name)
        return client, exp.experiment_id if exp else client.create_experiment(
            name, artifact_location=artifact_root(tracking_uri),
            tags={"mlflow.experimentKind": "custom_model_development"})


def log_study(tracking_uri: str, experiment: str, run_name: str, params: dict[str, Any],
              metrics: dict[str, float], artifacts: list[Path], role: str) -> str:
    """One finished run holding a study's figures and files (a replay study, say); its id."""
    client, experiment_id = open_experiment(tracking_uri, experiment)
    run = client.create_run(experiment_id, run_name=run_name, tags={TAG_ROLE: role})
    run_id = run.info.run_id
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()],
                     metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()])
    for path in artifacts:
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, "FINISHED")
    return run_id


class MLflowTracker(tune.Callback):
    """Parent run per search, child run per trial: params once, metrics per epoch (``step=epoch``),
    an outcome tag (completed / stopped early / failed), the failure class and retries."""

    def __init__(self, tracking_uri: str, experiment: str, search_id: str,
                 tags: dict[str, str], params: dict[str, Any], role: str = "search") -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.search_id = search_id
        self.tags = tags
        self.params = params
        self.role = role
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        self._runs: dict[str, str] = {}
        self._client: MlflowClient | None = None
        # A trial's params wait for its first result or its end, to go in that call's batch (one write less
        # per trial; a param logged again with its value is allowed).
        self._params: dict[str, list[Param]] = {}
        # Whether this tracker opened its parent run itself, so that no trial has a child run yet to look up.
        self._fresh = False
        # A resumed trial's last logged epoch: a stop can land after an epoch was logged and before Tune saved
        # its checkpoint, and the trial then trains that epoch again; its step is logged once.
        self._logged: dict[str, int] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles callbacks into its experiment state; a live client does not pickle. A tracker
        # unpickled there continues a search whose trials may have child runs already: it looks them up.
        return {**self.__dict__, "_client": None, "_params": {}, "_fresh": False, "_logged": {}}

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def connect(self) -> None:
        """Create (or find, on resume) the experiment and the parent run. Fails fast when the
        store is unreachable, before any trial starts."""
        self._client, self.experiment_id = open_experiment(self.tracking_uri, self.experiment)
        found = self.client.search_runs([self.experiment_id], f"tags.`{TAG_SEARCH}` = '{self.search_id}' "
                                        f"and tags.`{TAG_ROLE}` = '{self.role}'", max_results=1)
        if found:
            recorded = found[0].data.tags.get("data_fingerprint")
            if recorded and recorded != self.tags.get("data_fingerprint"):
                raise OptionError(f"search {self.search_id} was run on data with fingerprint {recorded}, but "
                                 f"this data has {self.tags.get('data_fingerprint')}; resume with the same "
                                 "--data, --points and --train-per-class.")
            self.parent_run_id = found[0].info.run_id
            self.client.update_run(self.parent_run_id, status="RUNNING")
            return
        run = self.client.create_run(self.experiment_id, run_name=self.search_id,
                                     tags={**self.tags, TAG_SEARCH: self.search_id, TAG_ROLE: self.role})
        self.parent_run_id = run.info.run_id
        self._fresh = True
        self.client.log_batch(self.parent_run_id, params=[Param(k, str(v)) for k, v in self.params.items()])

    def setup(self, **info: Any) -> None:
        if self.parent_run_id is None:
            self.connect()

    def run_id(self, trial_id: str) -> str | None:
        """The child run of a trial (looked up in the store after a resume)."""
        if trial_id not in self._runs and not self._fresh:
            found = self.client.search_runs(
                [self.experiment_id], f"tags.`{TAG_SEARCH}` = '{self.search_id}' and "
                f"tags.`{TAG_TRIAL}` = '{trial_id}'", order_by=["attributes.start_time DESC"], max_results=1)
            if found:
                self._runs[trial_id] = found[0].info.run_id
        return self._runs.get(trial_id)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._params[trial.trial_id] = [Param(k, str(v)) for k, v in trial.config.items()]
        previous = self.run_id(trial.trial_id)
        if previous is not None:
            # A resumed trial continues from its last checkpoint: it continues its own run too.
            history = self.client.get_metric_history(previous, "epoch_time_s")
            self._logged[trial.trial_id] = max((m.step for m in history), default=0)
            self.client.update_run(previous, status="RUNNING")
            self.client.set_tag(previous, TAG_OUTCOME, "running")
            return
        run = self.client.create_run(self.experiment_id, run_name=trial.trial_id, tags={
            MLFLOW_PARENT_RUN_ID: self.parent_run_id, TAG_SEARCH: self.search_id, TAG_ROLE: "trial",
            TAG_TRIAL: trial.trial_id, TAG_OUTCOME: "running"})
        self._runs[trial.trial_id] = run.info.run_id

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        run_id = self.run_id(trial.trial_id)
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        if step <= self._logged.get(trial.trial_id, 0):
            return
        ts = int(result.get("timestamp", 0) * 1000)
        metrics = [Metric(k, float(v), ts, step) for k, v in result.items()
                   if k in EPOCH_METRICS or (k.startswith("best_") and isinstance(v, (int, float)))
                   or (k in SIZE_METRICS and step == 1)]
        # MLflow's compare view plots the first metric a run logged: make it the selection metric.
        metrics.sort(key=lambda m: (not m.key.startswith("best_"), m.key != "val_macro_f1"))
        self.client.log_batch(run_id, metrics=metrics, params=self._params.pop(trial.trial_id, []))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._close(trial, errored=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._close(trial, errored=True)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self.run_id(trial.trial_id)
        if run_id is not None:
            self.client.log_batch(run_id, tags=self._failure_tags(trial))

    @staticmethod
    def _failure_tags(trial: Any) -> list[RunTag]:
        failure = failure_of(trial)
        return [RunTag(TAG_RETRIES, str(retries_of(trial))), *([RunTag(TAG_FAILURE, failure)] if failure else [])]

    def _close(self, trial: Any, errored: bool) -> None:
        run_id = self.run_id(trial.trial_id)
        if run_id is None:
            return
        outcome = trial_outcome(trial.last_result, errored)
        tags = [RunTag(TAG_OUTCOME, outcome), *self._failure_tags(trial)]
        if errored and trial.error_file and os.path.exists(trial.error_file):
            tags.append(RunTag("spectune.error", Path(trial.error_file).read_text()[-4000:]))
        self.client.log_batch(run_id, tags=tags, params=self._params.pop(trial.trial_id, []))
        self.client.set_terminated(run_id, status="FAILED" if errored else "FINISHED")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.close_lost({t.trial_id for t in trials})
        self.client.set_terminated(self.parent_run_id, status="FINISHED")

    def close_lost(self, known: set[str], outcome: str = "lost",
                   note: str = "started by a driver that was killed before Tune saved this trial; the resumed "
                               "search ran another trial in its place", status: str = "KILLED") -> list[str]:
        """Mark ``status`` the child runs still RUNNING whose trial is not in ``known``: by default trials a
        killed driver started after Tune last saved its experiment state (Tune resumes without them
        and the searcher suggests again), KILLED. Returns their trial ids."""
        lost = []
        for run in self.client.search_runs(
                [self.experiment_id], f"tags.`{TAG_SEARCH}` = '{self.search_id}' and tags.`{TAG_ROLE}` = 'trial' "
                "and attributes.status = 'RUNNING'", max_results=1000):
            trial_id = run.data.tags.get(TAG_TRIAL)
            if trial_id in known:
                continue
            self.client.log_batch(run.info.run_id, tags=[RunTag(TAG_OUTCOME, outcome), RunTag("spectune.note", note)])
            self.client.set_terminated(run.info.run_id, status=status)
            lost.append(trial_id)
        return lost

    def compare_link(self, run_ids: list[str]) -> str:
        """The MLflow UI's compare view of ``run_ids`` (e.g. a search's top 5 trials): on the tracking
        server itself, or, for a local store, on the UI that ``spectune ui`` serves by default."""
        from urllib.parse import quote

        base = server_url(self.tracking_uri) or LOCAL_UI
        runs = quote(json.dumps(run_ids, separators=(",", ":")))
        return f"{base}/#/compare-runs?runs={runs}&experiments={quote(json.dumps([self.experiment_id]))}"

    def finish(self, best_run_id: str | None, summary: dict[str, float], artifacts: list[Path],
               parent_artifacts: list[Path] = (), artifact_path: str = "best") -> None:
        """Log the search's summary (and ``parent_artifacts``, e.g. the searched ranges) on the
        parent, and the best trial's artifacts on its child."""
        self.client.log_batch(self.parent_run_id, metrics=[Metric(k, float(v), 0, 0) for k, v in summary.items()],
                              tags=[RunTag("spectune.best_run_id", best_run_id or "")])
        for path in parent_artifacts:
            self.client.log_artifact(self.parent_run_id, str(path))
        if best_run_id:
            self.client.set_tag(best_run_id, "spectune.best", "true")
            for path in artifacts:
                self.client.log_artifact(best_run_id, str(path), artifact_path=artifact_path)


def own_store_run(recorded: dict[str, Any], tracking_uri: str | None) -> tuple[str, str | None, str]:
    """Where to log about a finished search whose ``best.json`` holds ``recorded`` (its ``mlflow`` record):
    the user's store (``tracking_uri``, else :func:`default_tracking_uri`), the search's parent run if that
    store holds it (else ``None``), and why not, in words (empty when it does or none was recorded).

    A results folder may come from someone else: the store its ``best.json`` names is only named in those
    words, never contacted, so a received file cannot choose where data is sent."""
    from mlflow.exceptions import MlflowException

    uri = tracking_uri or default_tracking_uri()
    run, named = recorded.get("parent_run_id"), recorded.get("tracking_uri")
    if not run:
        return uri, None, ""
    elsewhere = (f"; best.json names store {named}: pass --tracking-uri {shlex.quote(str(named))} to log there"
                 if named and named != uri else "")
    db = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else None
    if db is not None and not Path(db).is_file():
        # Not created just to find it empty.
        return uri, None, f"your MLflow store {uri} does not exist{elsewhere}"
    try:
        MlflowClient(uri).get_run(str(run))
    except MlflowException:
        return uri, None, f"MLflow run {run} of best.json is not in your store {uri}{elsewhere}"
    return uri, str(run), ""
