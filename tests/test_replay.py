"""Replays on recorded curves: faithful to a live search, refused on the wrong curves, and honest about
simulated time and in-trial patience."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from results.curves import Curves, read_curves, write_curves
from results.records import DataOptions
from search.cli import main
from search.replay import Strategy, replay
from spaces import get_space
from trainables.errors import OptionError
from trainables.settings import TrialSettings


def test_a_replay_makes_the_live_searchs_decisions_and_pick(ray_session, tmp_path):
    """A tiny live search (TPE + ASHA, in-trial patience, one trial at a time), then its replay on the
    curves that search's own trials recorded: the same configs, the same stop/continue decision at
    every epoch, the same pick."""
    from search.collect import collect_trials
    from search.options import SearchOptions
    from search.record import curves_table
    from search.search import run_search

    space = get_space("wine_mlp")
    o = SearchOptions(space="wine_mlp", trials=8, max_epochs=9, concurrency=1, seed=0, patience=2, name="live",
                      storage=tmp_path / "ray", results_root=tmp_path / "results",
                      tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    outcome = run_search(o)
    frame, trials, histories = collect_trials(tmp_path / "ray" / "live", list(space.params))
    frame = frame.sort_values("started_at").reset_index(drop=True)   # one at a time: start order = creation order
    frame = frame.assign(config_id=range(len(frame)), seed=0)
    settings = TrialSettings(model=space.model, data=space.data, max_epochs=9, seed=0, fixed=dict(space.fixed),
                             searched=tuple(space.params))
    configs = {i: {"searched": {k: trials[t].config[k] for k in space.params if k in trials[t].config},
                   "resolved": settings.resolve(trials[t].config).to_dict()} for i, t in enumerate(frame["trial_id"])}
    curves = Curves(space="wine_mlp", name="live", table=curves_table(frame, histories), configs=configs,
                    meta={"metric": "val_macro_f1", "mode": "max", "max_epochs": 9, "seeds": [0]},
                    space_json=space.to_json())
    grace = space.grace_for(9)
    log = replay(curves, space.params, list(space.start),
                 Strategy("live", trials=8, grace=grace, reduction=space.reduction_factor,
                          startup=space.startup_trials, patience=2), seed=0)

    assert [t.config_id for t in log.trials] == list(range(8)) and max(t.distance for t in log.trials) == 0.0
    live = {i: (int(r["epochs"]), r["outcome"]) for i, r in frame.iterrows()}
    replayed = {t.config_id: (t.epochs, t.outcome) for t in log.trials}
    assert replayed == live
    # Not a trivial search: ASHA stopped some trials and patience or the budget ended the others.
    assert {"stopped early", "completed"} <= {o for _, o in live.values()}
    pick = int(frame.index[frame["trial_id"] == outcome.best["trial_id"]][0])
    assert log.pick("max").config_id == pick


def _curves(tmp_path, space_name="wine_mlp", fingerprint="f1", points=None) -> None:
    space = get_space(space_name)
    table = pd.DataFrame([{"config_id": 0, "seed": 0, "epoch": e, "val_macro_f1": 0.5, "epoch_time_s": 1.0,
                           "outcome": "completed"} for e in (1, 2)])
    write_curves(tmp_path / "results" / space_name / "curves" / "c", table,
                 {0: {"searched": space.start[0], "resolved": {}}},
                 {"space": space_name, "metric": "val_macro_f1", "mode": "max", "max_epochs": 2, "seeds": [0],
                  "data_options": DataOptions(points=points, fingerprint=fingerprint).to_json()}, space.to_json())


def test_curves_of_other_ranges_data_or_scaling_are_refused_in_one_line(tmp_path, monkeypatch, capsys):
    _curves(tmp_path)
    space = get_space("wine_mlp").to_json()
    root = tmp_path / "results"
    assert read_curves(space, "c", root, DataOptions(fingerprint="f1")).max_epochs == 2
    with pytest.raises(OptionError, match=r"fingerprint f1; this data has f2 \(recorded with no scaling; asked for "
                                          r"points=64\)"):
        read_curves(space, "c", root, DataOptions(points=64, fingerprint="f2"))
    narrowed = json.loads(json.dumps(space))
    narrowed["params"]["lr"]["high"] = 1e-2
    with pytest.raises(OptionError, match=r"recorded over other ranges of space 'wine_mlp' \(changed: \['lr'\]\)"):
        read_curves(narrowed, "c", root)
    # Runs are recorded without patience, so another fixed patience still replays; another schedule not.
    patient = json.loads(json.dumps(space))
    patient["fixed"]["patience"] = 3
    assert read_curves(patient, "c", root).max_epochs == 2
    patient["fixed"]["scheduler"] = "plateau"
    with pytest.raises(OptionError, match=r"\(changed: \['fixed scheduler'\]\)"):
        read_curves(patient, "c", root)
    with pytest.raises(OptionError, match=r"no recorded curves 'd' for space 'wine_mlp' .*; recorded: c\. Record"):
        read_curves(space, "d", root)
    meta = root / "wine_mlp" / "curves" / "c" / "meta.json"
    meta.write_text(meta.read_text().replace('"space": "wine_mlp"', '"space": "waveform_cnn"'))
    with pytest.raises(OptionError, match=r"recorded for space 'waveform_cnn', not 'wine_mlp'"):
        read_curves(space, "c", root)
    # From the command line: the recorded fingerprint is not wine's, so the replay stops before it runs.
    _curves(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["replay", "--space", "wine_mlp", "--curves", "c", "--max-epochs", "2"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "fingerprint f1; this data has" in err[0], err


def _synthetic(epoch_times: list[float], values: list[list[float]]) -> Curves:
    space = get_space("wine_mlp")
    settings = TrialSettings(model=space.model, data=space.data, max_epochs=len(values[0]), seed=0,
                             fixed=dict(space.fixed), searched=tuple(space.params))
    rng = np.random.default_rng(0)
    configs, rows = {}, []
    for i, (dt, curve) in enumerate(zip(epoch_times, values)):
        searched = {**space.start[0], "lr": float(np.exp(rng.uniform(np.log(1e-4), np.log(3e-2))))}
        configs[i] = {"searched": searched, "resolved": settings.resolve(searched).to_dict()}
        rows += [{"config_id": i, "seed": 0, "epoch": e + 1, "val_macro_f1": v, "epoch_time_s": dt,
                  "outcome": "completed"} for e, v in enumerate(curve)]
    return Curves("wine_mlp", "s", pd.DataFrame(rows), configs,
                  {"metric": "val_macro_f1", "mode": "max", "max_epochs": len(values[0]), "seeds": [0]},
                  space.to_json())


def test_simulated_time_and_patience_follow_the_recorded_curves():
    # Two configs, one ten times slower per epoch; the fast one is flat after epoch 1.
    curves = _synthetic([10.0, 1.0], [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]])
    strategy = Strategy("fifo", trials=6, scheduler="fifo", concurrency=2, patience=2, sampler="random")
    log = replay(curves, get_space("wine_mlp").params, [], strategy, seed=0)
    for t in log.trials:
        run = curves.runs()[(t.config_id, t.seed)]
        # A trial ends when its recorded epochs add up; patience 2 (warm-up 0) ends the flat one at epoch 3.
        assert t.epochs == (3 if t.config_id == 1 else 6) and t.outcome == "completed"
        assert t.best == run["val_macro_f1"].iloc[:t.epochs].max()
    ends = sorted(t.ended_at for t in log.trials)
    assert ends == sorted(ends) and min(ends) >= 3.0
    # With two slots the simulated clock is shorter than running the same trials one after the other.
    serial = sum(t.epochs * (10.0 if t.config_id == 0 else 1.0) for t in log.trials)
    assert max(ends) < serial



def test_the_study_measures_true_quality_regret_and_stopped_top_configs():
    from results.replay_report import summarise

    # Config 0 is the best on average (0.9, 0.8 over two seeds: 0.85), config 1 next (0.7), 2 worst (0.5).
    curves = _synthetic([1.0, 1.0, 1.0], [[0.9, 0.9], [0.7, 0.7], [0.5, 0.5]])
    extra = pd.DataFrame([{"config_id": 0, "seed": 1, "epoch": e, "val_macro_f1": 0.8, "epoch_time_s": 1.0,
                           "outcome": "completed"} for e in (1, 2)])
    curves = Curves(curves.space, curves.name, pd.concat([curves.table, extra]), curves.configs, curves.meta,
                    curves.space_json)
    truth = curves.true_quality()
    assert list(truth.index) == [0, 1, 2] and truth.loc[0, "mean"] == pytest.approx(0.85)

    def trial(strategy, repeat, config_id, epochs, best, outcome, ended):
        return {"strategy": strategy, "repeat": repeat, "trial_id": f"t{ended}", "config_id": config_id, "seed": 0,
                "distance": 0.0, "epochs": epochs, "best": best, "outcome": outcome, "ended_at": ended}

    rows = [trial("random", r, 2, 2, 0.5, "completed", 1) for r in (0, 1)] + \
           [trial("random", r, 0, 2, 0.9, "completed", 2) for r in (0, 1)] + \
           [trial("asha", r, 1, 2, 0.7, "completed", 1) for r in (0, 1)] + \
           [trial("asha", r, 0, 1, 0.6, "stopped early", 2) for r in (0, 1)]
    study = summarise(pd.DataFrame(rows), curves, "random")
    table = study.table.set_index("strategy")
    # Random search picks config 0 after 4 epochs: true quality 0.85, no regret; its target is 0.85.
    assert table.loc["random", "final_quality_median"] == pytest.approx(0.85)
    assert table.loc["random", "regret_median"] == pytest.approx(0.0)
    assert table.loc["random", "share_of_baseline_epochs_to_reach_its_quality"] == pytest.approx(1.0)
    # ASHA stopped the best config's trial: its pick is config 1 (0.7), regret 0.15, never reaching 0.85.
    assert table.loc["asha", "final_quality_median"] == pytest.approx(0.7)
    assert table.loc["asha", "regret_median"] == pytest.approx(0.15)
    assert table.loc["asha", "share_of_baseline_epochs_to_reach_its_quality"] == float("inf")
    # Three configs: all are top-3; ASHA stopped 2 of its 4 trials, random none.
    assert table.loc["asha", "top3_stopped_share"] == pytest.approx(0.5)
    assert table.loc["random", "top3_stopped_share"] == 0.0
    assert table.loc["asha", "epochs_median"] == 3 and table.loc["random", "epochs_median"] == 4


def test_the_same_seed_replays_the_same_search_for_every_runner():
    # The recorded wine curves the docs' figures come from; Optuna's HyperbandPruner places trials in
    # brackets by a hash of the study's name, so an unnamed (randomly named) study broke this.
    space = get_space("wine_mlp")
    curves = read_curves(space.to_json(), "cpu-c32x3", Path(__file__).resolve().parents[1] / "results")
    for strategy in (Strategy("optuna", trials=24, runner="optuna", pruner="hyperband", patience=10),
                     Strategy("tune", trials=24, grace=10, reduction=2, startup=4, patience=10)):
        first, again = (replay(curves, space.params, list(space.start), strategy, seed=3) for _ in range(2))
        assert [(t.config_id, t.seed, t.epochs, t.outcome) for t in first.trials] == \
               [(t.config_id, t.seed, t.epochs, t.outcome) for t in again.trials]
        assert any(t.outcome == "stopped early" for t in first.trials)


def test_tied_trials_go_to_the_first_launched_in_the_trajectory_and_the_pick():
    """Two trials see the same best value; the one launched first ends last (concurrency 2). The study's
    trajectory, ``ReplayLog.pick`` and a live search (stable sort after start order) all choose it."""
    from results.replay_report import _trajectory
    from search.replay import ReplayedTrial, ReplayLog

    first = ReplayedTrial("r00000", config_id=0, seed=0, distance=0.0, epochs=5, best=0.8, outcome="completed",
                          ended_at=5.0)
    second = ReplayedTrial("r00001", config_id=1, seed=0, distance=0.0, epochs=3, best=0.8, outcome="completed",
                           ended_at=3.0)
    log = ReplayLog(Strategy("s", trials=2, concurrency=2), seed=0, trials=[first, second])
    frame = pd.DataFrame([vars(t) for t in log.trials])
    path = _trajectory(frame, pd.Series({0: 0.9, 1: 0.5}), "max")
    assert path["quality"].tolist() == [0.5, 0.9] and path["epochs"].tolist() == [3, 8]
    assert log.pick("max").config_id == 0


def test_a_replay_study_on_recorded_curves_writes_its_report_and_an_mlflow_run(tmp_path):
    """The committed wine recording, replayed twice per strategy: the table, figure and JSON are written
    and the same figures land on one finished MLflow run with the files attached."""
    import shutil

    from mlflow.tracking import MlflowClient

    from search.options import SearchOptions
    from search.replay_study import BASELINE, ReplayOptions, run_replay

    recorded = Path(__file__).resolve().parents[1] / "results" / "wine_mlp" / "curves" / "cpu-c32x3"
    shutil.copytree(recorded, tmp_path / "results" / "wine_mlp" / "curves" / "cpu-c32x3",
                    ignore=shutil.ignore_patterns("replays"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = run_replay(ReplayOptions(SearchOptions(space="wine_mlp", trials=8, results_root=tmp_path / "results",
                                                 tracking_uri=uri), curves="cpu-c32x3", repeats=2, optuna=False))
    table = out["study"].table
    assert BASELINE in set(table["strategy"]) and (table["repeats"] == 2).all()
    assert {p.name for p in out["out"].iterdir()} == {"trials.csv.gz", "replay.png", "table.md", "study.json"}
    run = MlflowClient(uri).get_run(out["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.params["repeats"] == "2"
    baseline = table.set_index("strategy").loc[BASELINE, "final_quality_median"]
    assert run.data.metrics["00_random_FIFO/final_quality_median"] == pytest.approx(baseline)
    files = {a.path for a in MlflowClient(uri).list_artifacts(run.info.run_id)}
    assert files == {"table.md", "replay.png", "study.json"}


def test_epochs_of_trials_still_running_count_when_another_trial_ends():
    """Two trials at once: a slow one (1 s per epoch) and a fast one (0.5 s). When the fast one ends at
    2 s the slow one has trained 2 of its 4 epochs, and the study counts them: 6 epochs spent, not 4."""
    from results.replay_report import summarise

    curves = _synthetic([1.0, 0.5], [[0.5, 0.6, 0.7, 0.8], [0.4, 0.4, 0.4, 0.4]])
    start = [curves.configs[0]["searched"], curves.configs[1]["searched"]]
    log = replay(curves, get_space("wine_mlp").params, start,
                 Strategy("s", trials=2, concurrency=2, sampler="random", scheduler="fifo"), seed=0)
    assert [(t.config_id, t.ended_at) for t in log.trials] == [(0, 4.0), (1, 2.0)]
    frame = pd.DataFrame([vars(t) for t in log.trials]).assign(strategy="s", repeat=0)
    study = summarise(frame, curves, "s")
    assert study.trajectories["epochs"].tolist() == [6, 8]
    assert study.trajectories["quality"].tolist() == [0.4, 0.8]


def test_the_reach_target_is_a_quality_the_baseline_attained():
    """Random search ends on config 0 (true 0.9) in one repeat and config 1 (0.7) in the other: the
    interpolated median, 0.8, belongs to no config. The target is 0.7, which both repeats reached."""
    from results.replay_report import summarise

    curves = _synthetic([1.0, 1.0], [[0.9, 0.9], [0.7, 0.7]])

    def trial(repeat, config_id, ended):
        return {"strategy": "random", "repeat": repeat, "trial_id": f"t{ended}", "config_id": config_id, "seed": 0,
                "distance": 0.0, "epochs": 2, "best": [0.9, 0.7][config_id], "outcome": "completed",
                "ended_at": ended}

    study = summarise(pd.DataFrame([trial(0, 0, 1), trial(1, 1, 1)]), curves, "random")
    row = study.table.set_index("strategy").loc["random"]
    assert row["final_quality_median"] == pytest.approx(0.8)
    assert row["share_of_baseline_epochs_to_reach_its_quality"] == pytest.approx(1.0)
