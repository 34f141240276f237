"""The one way the driver (:mod:`search.running.driver`: search, record, confirm) runs trials through Tune: the
trainable with its shipped objects and resources, quiet run settings, one checkpoint kept per trial,
failures classified (:mod:`search.running.failures`): infrastructure retried from the last checkpoint,
configuration recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.stopper import CombinedStopper

from search.strategy.epoch_cap import EpochCap
from search.running.failures import FailureGuard
from search.options import SEARCH_OPTIONS
from search.running.resources import Placement


def run_config(name: str, storage: Path, callbacks: list[Any], guard: FailureGuard,
               infra_retries: int, cap: EpochCap | None = None) -> tune.RunConfig:
    """Quiet; one checkpoint kept per trial (the latest, which carries the best weights and the state
    to resume from); ``guard`` first among the callbacks and as the stopper, with ``cap`` where the
    search has one; Tune's CSV and JSON result files (what the search's collection reads), no TensorBoard
    files (:func:`search.running.session.quiet_ray`); a trial retried at most ``infra_retries`` times, and
    only after an infrastructure failure."""
    stoppers = [guard, *([cap] if cap else [])]
    return tune.RunConfig(name=name, storage_path=str(storage), verbose=0,
                          callbacks=[*stoppers, *callbacks, CSVLoggerCallback(), JsonLoggerCallback()],
                          stop=CombinedStopper(*stoppers) if cap else guard,
                          checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                          failure_config=tune.FailureConfig(max_failures=infra_retries))


def fit(trial_fn: Callable[..., None], shipped: dict[str, Any], place: Placement, *, name: str, storage: Path,
        callbacks: list[Any], tune_config: tune.TuneConfig | None = None, param_space: dict[str, Any] | None = None,
        restore: bool = False, infra_retries: int = SEARCH_OPTIONS["infra_retries"].default,
        guard: FailureGuard | None = None, cap: EpochCap | None = None) -> None:
    """Run ``trial_fn`` with ``shipped`` (the data, settings and base, put in the object store once)
    on ``place``'s resources: a new run, or the interrupted run ``name`` continued (``restore``, which
    keeps the run's own callbacks, guard and retry limit). ``guard`` (default: one that never stops
    the run) decides which failures are retried; ``cap`` (default: none) ends the run at an epoch total."""
    trainable = tune.with_resources(tune.with_parameters(trial_fn, **shipped), place.trial_resources)
    if restore:
        tuner = tune.Tuner.restore(str(storage / name), trainable, resume_unfinished=True, resume_errored=False)
    else:
        tuner = tune.Tuner(trainable, param_space=param_space, tune_config=tune_config,
                           run_config=run_config(name, storage, callbacks, guard or FailureGuard(), infra_retries, cap))
    tuner.fit()
