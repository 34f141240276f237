"""``spectune record``: learning curves of a space recorded once, for replays to read in seconds.

Configs are the space's starting points first, then draws over the whole space (Optuna's random
sampler on the space's define-by-run function, so conditional keys appear only where they apply),
each trained with ``seeds`` seeds for the full epoch budget: no scheduler, no in-trial patience.
Trials run through Ray with the usual placement and are tracked in MLflow (a ``record`` run); the
table, the configs, the ranges and the data options go to ``results/<space>/curves/<name>/``. An
interrupted recording continues with ``--resume``; a run that fails is kept, marked failed.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from results.curves import curves_dir, write_curves
from results.export import check_name
from results.files import read_json, write_json
from results.provenance import git_commit, versions
from search.collect import collect_trials
from search.options import SEARCH_OPTIONS, SearchOptions, check
from search.progress import ProgressPrinter, console
from search.resources import gpu_share, plan_placement
from search.searcher import DefineByRun
from search.session import ray_session
from search.tracking import MLflowTracker, default_tracking_uri
from search.trial import confirm_trial
from search.tune_run import fit
from spaces import Space, get_space
from trainables.discovery import ENV
from results.errors import OptionError, SearchInterrupted
from trainables.pair import dry_run, load_data
from trainables.settings import TrialSettings

SEED_OFFSET = 2000   # recording seeds, apart from the search's (0...) and confirmation's (1000...)


@dataclass(frozen=True)
class RecordOptions:
    """``configs`` in all (the space's starting points count), ``seeds`` per config; the data options,
    epochs and placement as for a search (``search`` holds them, its budget applied)."""

    search: SearchOptions
    configs: int = 24
    seeds: int = 3


def draw_configs(space: Space, n: int, seed: int) -> list[dict[str, Any]]:
    """The space's starting points, then random draws over the whole space, ``n`` in all."""
    define = DefineByRun(space.params)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    configs = [dict(p) for p in space.start[:n]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while len(configs) < n:
            trial = study.ask()
            derived = define(trial) or {}
            params = {k: v for k, v in trial.params.items() if k in space.params}
            configs.append({k: {**params, **derived}[k] for k in space.params if k in {**params, **derived}})
            study.tell(trial, 0.0)
    return configs


def config_sizes(pair: Any, spec: Any, settings: TrialSettings, configs: dict[int, dict[str, Any]],
                 base: Any = None) -> dict[int, dict[str, float]]:
    """Per config id, the sizes a trial reports (trainable and total parameters), from its model built
    but not trained: what a multi-objective replay needs of a recording."""
    from trainables.models._finetune import parameter_counts

    return {i: parameter_counts(pair.model_fn(spec, settings.resolve(c), base)()) for i, c in configs.items()}


def curves_table(frame: pd.DataFrame, histories: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The curves table of finished trials: ``frame`` (from :func:`search.collect.collect_trials`, with
    ``config_id`` and ``seed`` columns) and each trial's epoch history; a failed run keeps its epochs
    (or one empty row) marked ``failed``."""
    rows = []
    for _, trial in frame.iterrows():
        history = histories.get(trial["trial_id"])
        keep = [c for c in ("epoch", "learning_rate", "train_loss", "val_loss", "val_acc", "val_top3_acc",
                            "val_macro_f1", "val_rmse", "val_mae", "val_r2", "epoch_time_s")
                if history is not None and c in history]
        part = history[keep].copy() if history is not None and len(history) else pd.DataFrame({"epoch": [0]})
        part.insert(0, "config_id", int(trial["config_id"]))
        part.insert(1, "seed", int(trial["seed"]))
        part["outcome"] = "failed" if trial["outcome"] == "failed" else "completed"
        rows.append(part)
    return pd.concat(rows, ignore_index=True).sort_values(["config_id", "seed", "epoch"]).reset_index(drop=True)


def run_record(r: RecordOptions) -> Path:
    """Record, or continue recording, and write the curves folder."""
    o = r.search
    space = get_space(o.space)
    check(SEARCH_OPTIONS, o)
    if r.configs < 2 or r.seeds < 1:
        raise OptionError(f"--configs must be >= 2 and --seeds >= 1; got {r.configs} and {r.seeds}.")
    o = o.with_budget(space)
    pair = space.pair
    max_epochs = o.max_epochs or space.max_epochs
    name = check_name(o.name) if o.name else f"{space.name}-c{r.configs}x{r.seeds}-e{max_epochs}"
    storage = o.storage.resolve()
    run_name = f"{space.name}-record-{name}"
    if o.resume and not (storage / run_name).exists():
        raise OptionError(f"--resume: no interrupted recording at {storage / run_name}; check --name.")
    if not o.resume and (storage / run_name).exists():
        raise OptionError(f"a recording named {name!r} already exists at {storage / run_name}; pass --resume to "
                          "continue it, or --name NEW.")
    options = o.data_options(pair.data_module.default_dir)
    data = load_data(pair, o.data, o.classes, test=False, seed=o.seed, **options.scaling())
    base = pair.load_base(o.base)
    dry_run(pair, data, space.first_config(), f"spaces/{space.name}.py: first config", base)
    # A resumed recording must draw and train what the first run did.
    plan = {"configs": r.configs, "seeds": r.seeds, "max_epochs": max_epochs, "sampler_seed": o.seed,
            "data_options": options.to_json()}
    plan_file = storage / f"{run_name}.record.json"
    if o.resume and plan_file.exists():
        first = read_json(plan_file, "the recording's plan")
        changed = sorted(k for k in plan if first.get(k) != plan[k])
        if changed:
            raise OptionError(f"--resume: recording {name} was started with other {', '.join(changed)} "
                              f"({', '.join(f'{k}={first.get(k)}' for k in changed)}); resume it with those.")
    else:
        write_json(plan_file, plan)
    configs = draw_configs(space, r.configs, o.seed)
    candidates = {str(i): c for i, c in enumerate(configs)}
    seeds = [SEED_OFFSET + i for i in range(r.seeds)]
    uri = o.tracking_uri or default_tracking_uri()
    tracker = MLflowTracker(uri, experiment=f"spectune-{space.name}", search_id=run_name, role="record",
                            tags={"space": space.name, "model": pair.model, "data": pair.data,
                                  "data_fingerprint": data.fingerprint, "git_commit": git_commit()},
                            params={"configs": r.configs, "seeds": r.seeds, "max_epochs": max_epochs,
                                    "metric": space.metric})
    tracker.connect()
    with ray_session(storage, run_name, o.address) as resources:
        place = plan_placement(resources.get("CPU", 1), resources.get("GPU", 0),
                               gpu_share(o.gpus_per_trial, space.gpus_per_trial, resources.get("GPU", 0)),
                               o.cpus_per_trial, o.concurrency)
        console.print(f"recording {space.name}: {r.configs} configs ({len(space.start[:r.configs])} starting "
                      f"points, the rest drawn at random, seed {o.seed}) x {r.seeds} seeds = {r.configs * r.seeds} "
                      f"runs of {max_epochs} epochs, no scheduler and no patience; data {data.describe()}; "
                      f"{place.describe(resources.get('CPU', 0), resources.get('GPU', 0))}", soft_wrap=True)
        settings = TrialSettings(model=pair.model, data=pair.data, max_epochs=max_epochs, seed=seeds[0],
                                 fixed=dict(space.fixed), overrides={"patience": None}, metric=space.metric,
                                 mode=space.mode, device=place.device, threads=place.threads,
                                 user_path=os.environ.get(ENV, ""), searched=tuple(space.params))
        from ray import tune

        fit(confirm_trial, {"data": data, "settings": settings, "candidates": candidates,
                            **({"base": base} if base is not None else {})}, place,
            name=run_name, storage=storage, restore=o.resume,
            callbacks=[tracker, ProgressPrinter(r.configs * r.seeds, space.metric, space.mode)],
            param_space={"candidate": tune.grid_search(list(candidates)), "seed": tune.grid_search(seeds)},
            tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=place.concurrency))

    frame, _, histories = collect_trials(storage / run_name, ["candidate", "seed"], space.metric, space.mode)
    unfinished = int((~frame["status"].isin(["TERMINATED", "ERROR"])).sum()) + r.configs * r.seeds - len(frame)
    if unfinished:
        raise SearchInterrupted(f"recording {name} was interrupted with {unfinished} runs unfinished; continue it with "
                          f"spectune record --space {space.name} --name {name} --resume.")
    frame = frame.assign(config_id=frame["candidate"].astype(int), seed=frame["seed"].astype(int))
    table = curves_table(frame, histories)
    resolved = {i: settings.resolve(c).to_dict() for i, c in enumerate(configs)}
    meta = {"space": space.name, "name": name, "metric": space.metric, "mode": space.mode,
            "max_epochs": max_epochs, "seeds": seeds, "configs": r.configs, "sampler_seed": o.seed,
            "device": place.device,
            "data_options": replace(options, fingerprint=data.fingerprint, description=data.describe(),
                                    threads=place.threads).to_json(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "versions": versions(), "git_commit": git_commit()}
    sizes = config_sizes(pair, data.spec, settings, dict(enumerate(configs)), base)
    out = write_curves(curves_dir(space.name, name, o.results_root), table,
                       {i: {"searched": configs[i], "resolved": resolved[i], "sizes": sizes[i]}
                        for i in range(len(configs))},
                       meta, space.to_json())
    tracker.finish(None, {"runs": len(frame), "failed_runs": int((frame["outcome"] == "failed").sum())}, [], [])
    console.print(f"recorded {len(frame)} runs ({int((frame['outcome'] == 'failed').sum())} failed) -> {out}")
    return out
