"""The one way a search and a confirmation run trials through Tune: the trainable with its shipped
objects and resources, quiet run settings, one checkpoint kept per trial, failures recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ray import tune

from search.resources import Placement


def run_config(name: str, storage: Path, callbacks: list[Any]) -> tune.RunConfig:
    """Quiet; one checkpoint kept per trial (the latest, which carries the best weights and the state
    to resume from); a failing trial recorded rather than retried."""
    return tune.RunConfig(name=name, storage_path=str(storage), verbose=0, callbacks=callbacks,
                          checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                          failure_config=tune.FailureConfig(max_failures=0))


def fit(trial_fn: Callable[..., None], shipped: dict[str, Any], place: Placement, *, name: str, storage: Path,
        callbacks: list[Any], tune_config: tune.TuneConfig | None = None, param_space: dict[str, Any] | None = None,
        restore: bool = False) -> None:
    """Run ``trial_fn`` with ``shipped`` (the data, settings and base, put in the object store once)
    on ``place``'s resources: a new run, or the interrupted run ``name`` continued (``restore``)."""
    trainable = tune.with_resources(tune.with_parameters(trial_fn, **shipped),
                                    {"cpu": place.cpus_per_trial, "gpu": place.gpus_per_trial})
    if restore:
        tuner = tune.Tuner.restore(str(storage / name), trainable, resume_unfinished=True, resume_errored=False)
    else:
        tuner = tune.Tuner(trainable, param_space=param_space, tune_config=tune_config,
                           run_config=run_config(name, storage, callbacks))
    tuner.fit()
