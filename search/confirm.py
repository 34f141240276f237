"""``spectune confirm``: re-run a search's top configs over new seeds before declaring a winner.

A search ranks each config by one noisy run. Here the top ``k`` configs (by the space's metric)
are each trained again with ``n`` new seeds (weight init and batch order; the data and its split
unchanged), through Ray with the search's placement and tracked in MLflow as a ``confirm`` run
nested under the search's parent run, one child per (config, seed). Per config: the mean,
standard deviation and 95 % t-interval of the best validation value, and the rank by mean; the
leader is compared with the runner-up by a paired t-test over the shared seeds (the same seed gives
both configs the same batch order and initial stream). ``confirm.csv``, ``confirm.png`` and an
updated ``best.json`` (the confirmed winner, with the search's own pick kept beside it) are written
under ``results/<space>/<name>/``. The test split is not read.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from results.export import latest_search, results_dir
from results.files import read_json, write_csv, write_json
from results.best_file import DataOptions, confirmed_record, search_pick
from search.collect import collect_trials
from search.options import CONFIRM_OPTIONS, ConfirmOptions, check
from search.progress import ProgressPrinter, console
from search.resources import gpu_share, plan_placement
from search.session import ray_session
from search.tracking import MLflowTracker, default_tracking_uri
from search.trial import confirm_trial
from search.tune_run import fit
from spaces import get_space
from trainables.discovery import ENV
from results.errors import OptionError, SearchError
from trainables.pair import load_data
from trainables.pretrained import check_same_base
from trainables.settings import TrialSettings

SEED_OFFSET = 1000    # confirmation seeds start here, away from the search's own seed


def summarise(runs: pd.DataFrame, column: str, mode: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per candidate: mean, std, 95 % t-interval and rank by mean; the leader against the runner-up
    by a paired t-test on the seeds both ran."""
    from scipy import stats

    rows = []
    for candidate, part in runs.groupby("candidate", sort=False):
        values = part[column].to_numpy(dtype=float)
        n, mean = len(values), float(values.mean())
        std = float(values.std(ddof=1)) if n > 1 else float("nan")
        half = float(stats.t.ppf(0.975, n - 1) * std / np.sqrt(n)) if n > 1 else float("nan")
        rows.append({"candidate": candidate, "seeds": n, "mean": mean, "std": std, "ci95_low": mean - half,
                     "ci95_high": mean + half, "min": float(values.min()), "max": float(values.max())})
    table = pd.DataFrame(rows).sort_values("mean", ascending=mode == "min").reset_index(drop=True)
    table.insert(1, "rank", np.arange(1, len(table) + 1))
    evidence: dict[str, Any] = {"test": "paired t-test (scipy.stats.ttest_rel) on the shared seeds"}
    if len(table) > 1:
        leader, second = table["candidate"].iloc[:2]
        pivot = runs.pivot_table(index="seed", columns="candidate", values=column).dropna(subset=[leader, second])
        diff = pivot[leader] - pivot[second]
        p = float(stats.ttest_rel(pivot[leader], pivot[second]).pvalue) if len(pivot) > 1 and diff.std() > 0 \
            else float("nan")
        evidence.update(leader=leader, runner_up=second, shared_seeds=int(len(pivot)),
                        mean_difference=float(diff.mean()), p_value=p,
                        separated=bool(np.isfinite(p) and p < 0.05))
    return table, evidence


def run_confirm(o: ConfirmOptions) -> dict[str, Any]:
    """Re-run the top configs over seeds; write ``confirm.csv``, ``confirm.png`` and update ``best.json``."""
    from results.plots import plot_confirmation

    check(CONFIRM_OPTIONS, o)
    space = get_space(o.space)
    name = o.name or latest_search(space.name, o.results_root)
    out_dir = results_dir(space.name, name, o.results_root)
    best = read_json(out_dir / "best.json", "best.json of the search")
    if best.get("pareto") is not None:
        # Re-ranking by the primary metric alone would replace the point --choose picked from the front.
        raise OptionError(f"search {name} has several objectives; confirm re-ranks configs by one metric, which "
                          "would undo the point chosen from its Pareto front. Retrain front points with `spectune "
                          "train --config best.json --point TRIAL_ID`.")
    frame = pd.read_csv(out_dir / "trials.csv")
    metric, mode = best.get("metric", space.metric), best.get("mode", space.mode)
    column = f"best_{metric}"
    ok = frame[frame["outcome"] != "failed"].dropna(subset=[column]).head(o.top)
    if len(ok) < 2:
        raise OptionError(f"search {name} has {len(ok)} finished trial(s); confirmation needs at least 2.")
    pick = search_pick(best)
    searched = list(pick["searched"])
    candidates = {row["trial_id"]: {k: _plain(row[k]) for k in searched if k in row and not pd.isna(row[k])}
                  for _, row in ok.iterrows()}
    recorded = DataOptions.from_record(best)
    pair = space.pair
    data = load_data(pair, o.data or recorded.folder(), recorded.classes, test=False, seed=pick["config"]["seed"],
                     **recorded.scaling())
    if recorded.mismatch(data.fingerprint):
        raise OptionError(f"search {name}: {recorded.mismatch(data.fingerprint)}. Pass --data with the search's "
                          "folder.")
    base = pair.load_base((best.get("base") or {}).get("path"))
    if base is not None:
        check_same_base(base, best.get("base"), f"search {name}")
    seeds = [SEED_OFFSET + i for i in range(o.seeds)]
    epochs = int(pick["config"].get("epochs", space.max_epochs))
    confirm_name = f"{name}-confirm-{time.strftime('%Y%m%d-%H%M%S')}"
    uri = o.tracking_uri or (best.get("mlflow") or {}).get("tracking_uri") or default_tracking_uri()
    parent = (best.get("mlflow") or {}).get("parent_run_id")
    tracker = MLflowTracker(uri, experiment=f"spectune-{space.name}", search_id=confirm_name, role="confirm",
                            tags={"space": space.name, "model": pair.model, "data": pair.data,
                                  "data_fingerprint": data.fingerprint, **({"mlflow.parentRunId": parent}
                                                                           if parent else {})},
                            params={"top": o.top, "seeds": o.seeds, "of_search": name, "metric": metric})
    tracker.connect()
    storage = o.storage.resolve()
    with ray_session(storage, confirm_name, o.address) as resources:
        place = plan_placement(resources.get("CPU", 1), resources.get("GPU", 0),
                               gpu_share(o.gpus_per_trial, space.gpus_per_trial, resources.get("GPU", 0)),
                               None, o.concurrency)
        console.print(f"confirming search {name}: top {len(candidates)} configs x {o.seeds} seeds {seeds} = "
                      f"{len(candidates) * o.seeds} runs of up to {epochs} epochs, no early stopping by ASHA; "
                      f"{place.describe(resources.get('CPU', 0), resources.get('GPU', 0))}")
        # The search's resolved patience, whatever the space or the search's options said.
        settings = TrialSettings(model=pair.model, data=pair.data, max_epochs=epochs, seed=seeds[0],
                                 fixed=dict(space.fixed), overrides={"patience": pick["config"].get("patience")},
                                 metric=metric, mode=mode, device=place.device, threads=place.threads,
                                 user_path=os.environ.get(ENV, ""), searched=tuple(searched))
        from ray import tune

        fit(confirm_trial, {"data": data, "settings": settings, "candidates": candidates,
                            **({"base": base} if base is not None else {})}, place,
            name=confirm_name, storage=storage,
            callbacks=[tracker, ProgressPrinter(len(candidates) * o.seeds, metric, mode)],
            param_space={"candidate": tune.grid_search(list(candidates)), "seed": tune.grid_search(seeds)},
            tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=place.concurrency))

    runs, _, _ = collect_trials(storage / confirm_name, ["candidate", "seed"], metric, mode)
    failed = runs[runs["outcome"] == "failed"]
    if len(failed):
        raise SearchError(f"{len(failed)} confirmation runs failed; see {o.storage / confirm_name}.")
    table, evidence = summarise(runs, column, mode)
    search_values = ok.set_index("trial_id")[column]
    table.insert(2, "search_value", [float(search_values[c]) for c in table["candidate"]])
    table.insert(3, "search_rank", [int(list(candidates).index(c)) + 1 for c in table["candidate"]])
    for key in searched:
        table[key] = [candidates[c].get(key) for c in table["candidate"]]
    winner = table["candidate"].iloc[0]
    csv_path = write_csv(out_dir / "confirm.csv", table)
    figure = plot_confirmation(table, metric, out_dir / "confirm.png", f"{space.name}: {name}, {o.seeds} seeds each")
    per_seed = runs.pivot_table(index="candidate", columns="seed", values=column)
    confirmation = {"seeds": seeds, "top": len(candidates), "metric": metric, "winner": winner,
                    "search_pick": pick["trial_id"], "pick_stayed_first": bool(winner == pick["trial_id"]),
                    "evidence": evidence,
                    "table": table[["candidate", "rank", "search_rank", "mean", "std", "ci95_low", "ci95_high"]]
                    .to_dict("records"),
                    "per_seed": {c: {str(s): float(v) for s, v in per_seed.loc[c].items()} for c in per_seed.index},
                    "mlflow_run_id": tracker.parent_run_id, "runs": str(o.storage / confirm_name)}
    winner_record = None
    if winner != pick["trial_id"]:
        # With the search's seed, so that train --config best.json repeats the winner's search trial.
        search_seed = replace(settings, seed=pick["config"]["seed"])
        winner_record = {"trial_id": winner, "config": search_seed.resolve(candidates[winner]).to_dict(),
                         "searched": candidates[winner], "best_value": float(search_values[winner])}
    best = confirmed_record(best, confirmation, winner_record)
    write_json(out_dir / "best.json", best)
    tracker.finish(None, {f"confirmed_mean_{metric}": float(table["mean"].iloc[0])}, [], [csv_path, figure])
    return {"table": table, "evidence": evidence, "winner": winner, "search_pick": pick["trial_id"], "csv": csv_path,
            "figure": figure}


def _plain(value: Any) -> Any:
    """A trials.csv cell as the JSON value it was (numpy scalars to Python)."""
    return value.item() if hasattr(value, "item") else value
