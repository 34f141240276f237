"""``spectune record``: learning curves of a space recorded once, for replays to read in seconds.

Configs are the space's starting points first, then draws over the whole space (Optuna's random
sampler on the space's define-by-run function, so conditional keys appear only where they apply),
each trained with ``seeds`` seeds for the full epoch budget: no scheduler, no in-trial patience.
Trials run through Ray with the usual placement and are tracked in MLflow (a ``record`` run); the
table, the configs, the ranges and the data options go to ``results/<space>/curves/<name>/``. An
interrupted recording continues with ``--resume``; a run that fails is kept, marked failed.

``--extend OLD`` records a bigger table without training the old one again: the sampler's draws with
the same seed start with the same configs, so only the configs after OLD's are trained, and the new
recording holds OLD's runs beside them (its meta names OLD). OLD must agree on the draws, the seeds,
the epochs and the data.
"""

from __future__ import annotations

import shlex
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from results.curves import Curves, curves_dir, read_curves, write_curves
from results.best_file import DataOptions
from results.errors import OptionError
from results.export import check_name
from results.files import read_json, write_json
from results.provenance import git_commit, versions
from search.running.driver import Collected, Plan, Run, TrialCommand, Trials, candidate_grid
from search.options import SearchOptions
from search.strategy.own_state import check_resumable
from search.running.progress import console
from search.resolve import resolve
from search.strategy.searcher import DefineByRun
from spaces import Space
from trainables.settings import TrialSettings, config_sizes

SEED_OFFSET = 2000   # recording seeds, apart from the search's (0...) and confirmation's (1000...)


@dataclass(frozen=True)
class RecordOptions:
    """``configs`` in all (the space's starting points count), ``seeds`` per config; the data options,
    epochs and placement as for a search (``search`` holds them, its budget applied)."""

    search: SearchOptions
    configs: int = 24
    seeds: int = 3
    extend: str | None = None


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


def extension(old: Curves, configs: list[dict[str, Any]], seeds: list[int], max_epochs: int,
                sampler_seed: int) -> list[int]:
    """The config ids a recording of ``configs`` adds to the recording ``old``; :class:`OptionError` in
    one line when ``old`` is not the start of the same recording (other draws, seeds or epochs)."""
    meta, n = old.meta, len(old.configs)
    if n >= len(configs):
        raise OptionError(f"--extend {old.name}: it holds {n} configs already; pass --configs above {n}.")
    for key, mine in (("seeds", seeds), ("max_epochs", max_epochs), ("sampler_seed", sampler_seed)):
        if meta.get(key) != mine:
            raise OptionError(f"--extend {old.name}: it was recorded with {key} {meta.get(key)}, not {mine}; extend "
                              f"it with the same {key.replace('_', '-')} (seeds: --seeds {len(meta.get('seeds') or [])}).")
    drawn = [json_round_trip(c) for c in configs[:n]]
    if [old.configs[i]["searched"] for i in range(n)] != drawn:
        raise OptionError(f"--extend {old.name}: its configs are not the first {n} draws of today's space with seed "
                          f"{sampler_seed} (the space's starting points changed?); record a new table instead.")
    return list(range(n, len(configs)))


def json_round_trip(config: dict[str, Any]) -> dict[str, Any]:
    """A config as a recording's configs.json gives it back."""
    import json

    return json.loads(json.dumps(config))



def curves_table(frame: pd.DataFrame, histories: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The curves table of finished trials: ``frame`` (from :func:`search.running.collect.collect_trials`, with
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
    return RecordCommand(r).run()


class RecordCommand(TrialCommand):
    """``spectune record`` on the shared driver (:mod:`search.running.driver`): what it adds is the configs drawn
    once and kept in a plan file (a resumed recording trains the same), the grid of configs x seeds
    with neither scheduler nor patience, and the curves folder."""

    def __init__(self, r: RecordOptions) -> None:
        self.r = r

    def prepare(self) -> Plan:
        r = self.r
        self.resolved = resolve(r.search)
        o = self.o = self.resolved.options
        space = self.resolved.space
        if r.configs < 2 or r.seeds < 1:
            raise OptionError(f"--configs must be >= 2 and --seeds >= 1; got {r.configs} and {r.seeds}.")
        self.max_epochs = self.resolved.max_epochs
        self.name = check_name(o.name) if o.name else f"{space.name}-c{r.configs}x{r.seeds}-e{self.max_epochs}"
        storage = o.storage.resolve()
        run_name = f"{space.name}-record-{self.name}"
        if o.resume and not (storage / run_name).exists():
            raise OptionError(f"--resume: no interrupted recording at {storage / run_name}; check --name.")
        if o.resume:
            check_resumable(storage, run_name)
        self.options = self.resolved.data
        # A resumed recording must draw and train what the first run did.
        self.record_plan = {"configs": r.configs, "seeds": r.seeds, "max_epochs": self.max_epochs,
                            "sampler_seed": o.seed, "data_options": self.options.to_json(),
                            **({"extend": r.extend} if r.extend else {})}
        self.plan_file = storage / f"{run_name}.record.json"
        if o.resume and self.plan_file.exists():
            first = read_json(self.plan_file, "the recording's plan")
            changed = sorted(k for k in self.record_plan if first.get(k) != self.record_plan[k])
            if changed:
                raise OptionError(f"--resume: recording {self.name} was started with other {', '.join(changed)} "
                                  f"({', '.join(f'{k}={first.get(k)}' for k in changed)}); resume it with those.")
        self.configs = draw_configs(space, r.configs, o.seed)
        self.seeds = [SEED_OFFSET + i for i in range(r.seeds)]
        self.old: Curves | None = None
        ids = list(range(r.configs))
        if r.extend:
            self.old = read_curves(space.to_json(), check_name(r.extend, "--extend"), o.results_root)
            ids = extension(self.old, self.configs, self.seeds, self.max_epochs, o.seed)
        self.candidates = {str(i): self.configs[i] for i in ids}
        return Plan(space=space, name=run_name, storage=storage, data=self.options, seed=o.seed,
                    total=len(ids) * r.seeds, params=["candidate", "seed"], metric=space.metric, mode=space.mode,
                    dry_config=space.first_config(), dry_source=f"{space.where}: first config",
                    results=curves_dir(space.name, self.name, o.results_root), role="record", base=o.base,
                    resume=o.resume, tracking_uri=o.tracking_uri, address=o.address,
                    gpus_per_trial=o.gpus_per_trial, cpus_per_trial=o.cpus_per_trial, concurrency=o.concurrency)

    def loaded(self, plan: Plan, data: Any, base: Any) -> None:
        if self.old is not None:
            recorded = DataOptions.from_record(self.old.meta)
            problem = recorded.mismatch(data.fingerprint)   # the fingerprint is taken after scaling
            if problem:
                raise OptionError(f"--extend {self.old.name}: {problem}; extend it with its own data options "
                                  f"({recorded.to_json()}).")

    def settings(self, plan: Plan, data: Any, base: Any) -> TrialSettings:
        # Every run to its budget: a recording holds whole curves.
        return self.resolved.with_trials(seed=self.seeds[0], overrides={"patience": None}).settings

    def tracking(self, plan: Plan, data: Any, base: Any) -> tuple[dict[str, str], dict[str, Any]]:
        return {}, {"configs": self.r.configs, "seeds": self.r.seeds, "max_epochs": self.max_epochs,
                    "metric": plan.space.metric}

    def starting(self, run: Run) -> None:
        if not (self.o.resume and self.plan_file.exists()):
            write_json(self.plan_file, self.record_plan)

    def describe(self, run: Run) -> list[str]:
        r, space = self.r, run.space
        extending = ([f"extending {self.old.name} ({len(self.old.configs)} configs recorded): training configs "
                      f"{len(self.old.configs)}-{r.configs - 1} only"] if self.old is not None else [])
        return extending + [f"recording {space.name}: {r.configs} configs ({len(space.start[:r.configs])} starting points, the "
                f"rest drawn at random, seed {self.o.seed}) x {r.seeds} seeds = {r.configs * r.seeds} runs of "
                f"{self.max_epochs} epochs, no scheduler and no patience; data {run.data.describe()}; "
                f"{run.place.describe(run.resources.get('CPU', 0), run.resources.get('GPU', 0))}"]

    def trials(self, run: Run) -> Trials:
        return candidate_grid(self.candidates, self.seeds, run)

    def interrupted(self, run: Run, unfinished: int) -> str:
        return (f"recording {self.name} was interrupted with {unfinished} runs unfinished; continue it with "
                f"{shlex.join(['spectune', 'record', '--space', run.space.name, '--name', self.name, '--resume'])}.")

    def collect(self, run: Run, collected: Collected) -> Path:
        o, r, space, configs, settings = self.o, self.r, run.space, self.configs, run.settings
        frame = collected.frame.assign(config_id=collected.frame["candidate"].astype(int),
                                       seed=collected.frame["seed"].astype(int))
        table = curves_table(frame, collected.histories)
        if self.old is not None:
            table = pd.concat([self.old.table[table.columns.intersection(self.old.table.columns)], table],
                              ignore_index=True).sort_values(["config_id", "seed", "epoch"]).reset_index(drop=True)
        resolved = {i: settings.resolve(c).to_dict() for i, c in enumerate(configs)}
        meta = {"space": space.name, "name": self.name, "metric": space.metric, "mode": space.mode,
                "max_epochs": self.max_epochs, "seeds": self.seeds, "configs": r.configs, "sampler_seed": o.seed,
                "device": run.place.device,
                "data_options": replace(self.options, fingerprint=run.data.fingerprint,
                                        description=run.data.describe(), threads=run.place.threads).to_json(),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "versions": versions(), "git_commit": git_commit(),
                **({"extends": {"name": self.old.name, "configs": len(self.old.configs),
                                "created": self.old.meta.get("created"), "versions": self.old.meta.get("versions")}}
                   if self.old is not None else {})}
        sizes = config_sizes(space.pair, run.data.spec, settings, dict(enumerate(configs)), run.base)
        out = write_curves(run.plan.results, table,
                           {i: {"searched": configs[i], "resolved": resolved[i], "sizes": sizes[i]}
                            for i in range(len(configs))},
                           meta, space.to_json())
        failed = int((frame["outcome"] == "failed").sum())
        run.tracker.finish(None, {"runs": len(frame), "failed_runs": failed}, [], [])
        kept = f", beside the {self.old.table.groupby(['config_id', 'seed']).ngroups} of {self.old.name}" \
            if self.old is not None else ""
        console.print(f"recorded {len(frame)} runs ({failed} failed){kept} -> {out}")
        return out
