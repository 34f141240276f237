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

import shlex
import time
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from results.best_file import DataOptions, confirmed_record, search_pick
from results.errors import OptionError, SearchError
from results.export import latest_search, results_dir
from results.files import read_json, write_csv, write_json
from search.running.driver import Collected, Plan, Run, TrialCommand, Trials, candidate_grid
from search.resolve import user_path
from search.options import CONFIRM_OPTIONS, ConfirmOptions, check
from search.running.tracking import own_store_run
from spaces import get_space
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
    return ConfirmCommand(o).run()


class ConfirmCommand(TrialCommand):
    """``spectune confirm`` on the shared driver (:mod:`search.running.driver`): what it adds is reading the
    search's results (its top configs, its data options, its base and patience), the grid of configs x
    new seeds, and the summary with the updated best.json. Like the other commands, it dry-runs a config
    (the search's pick) before Ray starts."""

    def __init__(self, o: ConfirmOptions) -> None:
        self.o = o

    def prepare(self) -> Plan:
        o = self.o
        check(CONFIRM_OPTIONS, o)
        space = get_space(o.space)
        name = self.search = o.name or latest_search(space.name, o.results_root)
        self.out_dir = results_dir(space.name, name, o.results_root)
        best = self.best = read_json(self.out_dir / "best.json", "best.json of the search")
        if best.get("pareto") is not None:
            # Re-ranking by the primary metric alone would replace the point --choose picked from the front.
            raise OptionError(f"search {name} has several objectives; confirm re-ranks configs by one metric, "
                              "which would undo the point chosen from its Pareto front. Retrain front points with "
                              "`spectune train --config best.json --point TRIAL_ID`.")
        frame = pd.read_csv(self.out_dir / "trials.csv")
        self.metric, self.mode = best.get("metric", space.metric), best.get("mode", space.mode)
        self.column = f"best_{self.metric}"
        ok = self.ok = frame[frame["outcome"] != "failed"].dropna(subset=[self.column]).head(o.top)
        if len(ok) < 2:
            raise OptionError(f"search {name} has {len(ok)} finished trial(s); confirmation needs at least 2.")
        pick = self.pick = search_pick(best)
        self.searched = list(pick["searched"])
        self.candidates = {row["trial_id"]: {k: _plain(row[k]) for k in self.searched
                                             if k in row and not pd.isna(row[k])} for _, row in ok.iterrows()}
        self.recorded = DataOptions.from_record(best)
        self.seeds = [SEED_OFFSET + i for i in range(o.seeds)]
        self.epochs = int(pick["config"].get("epochs", space.max_epochs))
        data = replace(self.recorded, path=str(o.data)) if o.data else self.recorded
        # The user's store, never the one a received best.json names (search.running.tracking.own_store_run).
        uri, self.parent, self.unnested = own_store_run(best.get("mlflow") or {}, o.tracking_uri)
        return Plan(space=space, name=f"{name}-confirm-{time.strftime('%Y%m%d-%H%M%S')}", storage=o.storage.resolve(),
                    data=data, seed=pick["config"]["seed"], total=len(self.candidates) * o.seeds,
                    params=["candidate", "seed"], metric=self.metric, mode=self.mode,
                    dry_config=pick["config"], dry_source=f"search {name}'s pick in best.json", role="confirm",
                    base=(best.get("base") or {}).get("path"),
                    tracking_uri=uri,
                    address=o.address, gpus_per_trial=o.gpus_per_trial, concurrency=o.concurrency)

    def loaded(self, plan: Plan, data: Any, base: Any) -> None:
        if self.recorded.mismatch(data.fingerprint):
            raise OptionError(f"search {self.search}: {self.recorded.mismatch(data.fingerprint)}. Pass --data with "
                              "the search's folder.")
        if base is not None:
            check_same_base(base, self.best.get("base"), f"search {self.search}")

    def settings(self, plan: Plan, data: Any, base: Any) -> TrialSettings:
        space = plan.space
        # The search's resolved patience, whatever the space or the search's options said.
        return TrialSettings(model=space.pair.model, data=space.pair.data, max_epochs=self.epochs,
                             seed=self.seeds[0], fixed=dict(space.fixed),
                             overrides={"patience": self.pick["config"].get("patience")}, metric=self.metric,
                             mode=self.mode, user_path=user_path(), searched=tuple(self.searched))

    def tracking(self, plan: Plan, data: Any, base: Any) -> tuple[dict[str, str], dict[str, Any]]:
        return ({"mlflow.parentRunId": self.parent} if self.parent else {},
                {"top": self.o.top, "seeds": self.o.seeds, "of_search": self.search, "metric": self.metric})

    def describe(self, run: Run) -> list[str]:
        n = len(self.candidates)
        return [f"confirming search {self.search}: top {n} configs x {self.o.seeds} seeds {self.seeds} = "
                f"{n * self.o.seeds} runs of up to {self.epochs} epochs, no early stopping by ASHA; "
                f"{run.place.describe(run.resources.get('CPU', 0), run.resources.get('GPU', 0))}"] + (
            [f"MLflow: the confirm run is not nested under the search's run: {self.unnested}"] if self.unnested
            else [])

    def trials(self, run: Run) -> Trials:
        return candidate_grid(self.candidates, self.seeds, run)

    def interrupted(self, run: Run, unfinished: int) -> str:
        return (f"the confirmation of search {self.search} was interrupted with {unfinished} of {run.plan.total} "
                f"runs unfinished; best.json is unchanged. Run "
                f"{shlex.join(['spectune', 'confirm', '--space', run.space.name, '--name', self.search])} again.")

    def collect(self, run: Run, collected: Collected) -> dict[str, Any]:
        from results.plots import plot_confirmation

        o, space, runs, column, candidates = self.o, run.space, collected.frame, self.column, self.candidates
        pick, confirm_name, out_dir = self.pick, run.plan.name, self.out_dir
        failed = runs[runs["outcome"] == "failed"]
        if len(failed):
            raise SearchError(f"{len(failed)} confirmation runs failed; see {o.storage / confirm_name}.")
        table, evidence = summarise(runs, column, self.mode)
        search_values = self.ok.set_index("trial_id")[column]
        table.insert(2, "search_value", [float(search_values[c]) for c in table["candidate"]])
        table.insert(3, "search_rank", [int(list(candidates).index(c)) + 1 for c in table["candidate"]])
        for key in self.searched:
            table[key] = [candidates[c].get(key) for c in table["candidate"]]
        winner = table["candidate"].iloc[0]
        csv_path = write_csv(out_dir / "confirm.csv", table)
        figure = plot_confirmation(table, self.metric, out_dir / "confirm.png",
                                   f"{space.name}: {self.search}, {o.seeds} seeds each")
        per_seed = runs.pivot_table(index="candidate", columns="seed", values=column)
        confirmation = {"seeds": self.seeds, "top": len(candidates), "metric": self.metric, "winner": winner,
                        "search_pick": pick["trial_id"], "pick_stayed_first": bool(winner == pick["trial_id"]),
                        "evidence": evidence,
                        "table": table[["candidate", "rank", "search_rank", "mean", "std", "ci95_low", "ci95_high"]]
                        .to_dict("records"),
                        "per_seed": {c: {str(s): float(v) for s, v in per_seed.loc[c].items()}
                                     for c in per_seed.index},
                        "mlflow_run_id": run.tracker.parent_run_id, "runs": str(o.storage / confirm_name)}
        winner_record = None
        if winner != pick["trial_id"]:
            # With the search's seed, so that train --config best.json repeats the winner's search trial.
            search_seed = replace(run.settings, seed=pick["config"]["seed"])
            winner_record = {"trial_id": winner, "config": search_seed.resolve(candidates[winner]).to_dict(),
                             "searched": candidates[winner], "best_value": float(search_values[winner])}
        write_json(out_dir / "best.json", confirmed_record(self.best, confirmation, winner_record))
        run.tracker.finish(None, {f"confirmed_mean_{self.metric}": float(table["mean"].iloc[0])}, [],
                           [csv_path, figure])
        return {"table": table, "evidence": evidence, "winner": winner, "search_pick": pick["trial_id"],
                "csv": csv_path, "figure": figure}


def _plain(value: Any) -> Any:
    """A trials.csv cell as the JSON value it was (numpy scalars to Python)."""
    return value.item() if hasattr(value, "item") else value
