"""Replays on recorded curves: faithful to a live search, refused on the wrong curves, and honest about
simulated time and in-trial patience."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from results.curves import Curves, read_curves, write_curves
from results.best_file import DataOptions
from search.bench.lab import main as lab_main
from search.cli import main
from search.replay.simulate import Strategy, replay
from spaces import get_space
from results.errors import OptionError
from trainables.settings import TrialSettings


def test_a_replay_makes_the_live_searchs_decisions_and_pick(ray_session, tmp_path):
    """A tiny live search (TPE + ASHA, in-trial patience, one trial at a time), then its replay on the
    curves that search's own trials recorded: the same configs, the same stop/continue decision at
    every epoch, the same pick."""
    from search.running.collect import collect_trials
    from search.options import SearchOptions
    from search.commands.record import curves_table
    from search.commands.search import run_search

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
    # TPE's random start-up proposals, each served by the nearest of the two recorded configs.
    strategy = Strategy("fifo", trials=6, scheduler="fifo", concurrency=2, patience=2, startup=10)
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


def test_tied_trials_go_to_the_first_launched_in_the_pick_path_and_the_pick():
    """Two trials see the same best value; the one launched first ends last (concurrency 2). The pick path,
    ``ReplayLog.pick`` and a live search (stable sort after start order) all choose it."""
    from search.replay.simulate import ReplayedTrial, ReplayLog
    from search.replay.stats import pick_path

    first = ReplayedTrial("r00000", config_id=0, seed=0, distance=0.0, epochs=2, best=0.8, outcome="completed",
                          ended_at=5.0, quality_unseen=0.9)
    second = ReplayedTrial("r00001", config_id=1, seed=0, distance=0.0, epochs=2, best=0.8, outcome="completed",
                           ended_at=3.0, quality_unseen=0.5)
    # Epoch events in clock order: the second trial reaches 0.8 first, then the first trial ties it.
    log = ReplayLog(Strategy("s", trials=2, concurrency=2), seed=0, trials=[first, second],
                    events=[(1.0, 1, 0.8), (2.0, 0, 0.7), (3.0, 0, 0.8), (3.0, 1, 0.8)])
    assert pick_path(log, "max").tolist() == [0.5, 0.5, 0.9, 0.9]
    assert log.pick("max").config_id == 0


def test_a_replay_study_on_recorded_curves_writes_its_report_and_an_mlflow_run(tmp_path):
    """The committed wine recording, replayed twice per strategy: the table, figure and JSON are written
    and the same figures land on one finished MLflow run with the files attached."""
    import shutil

    from mlflow.tracking import MlflowClient

    from search.options import SearchOptions
    from search.replay.study import BASELINE, ReplayOptions, run_replay

    recorded = Path(__file__).resolve().parents[1] / "results" / "wine_mlp" / "curves" / "cpu-c32x3"
    shutil.copytree(recorded, tmp_path / "results" / "wine_mlp" / "curves" / "cpu-c32x3",
                    ignore=shutil.ignore_patterns("replays"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = run_replay(ReplayOptions(SearchOptions(space="wine_mlp", trials=8, results_root=tmp_path / "results",
                                                 tracking_uri=uri), curves="cpu-c32x3", repeats=2, optuna=False))
    table = out["study"].table
    assert BASELINE in set(table["strategy"]) and (table["repeats"] == 2).all()
    assert {p.name for p in out["out"].iterdir()} == {"trials.csv.gz", "events.csv.gz", "replay.png", "table.md",
                                                      "study.json"}
    run = MlflowClient(uri).get_run(out["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.params["repeats"] == "2"
    baseline = table.set_index("strategy").loc[BASELINE, "quality_median"]
    assert run.data.metrics["00_random_FIFO/quality_median"] == pytest.approx(baseline)
    files = {a.path for a in MlflowClient(uri).list_artifacts(run.info.run_id)}
    assert files == {"table.md", "replay.png", "study.json"}


def test_epochs_of_trials_still_running_count_when_another_trial_ends():
    """Two trials at once: a slow one (1 s per epoch) and a fast one (0.5 s). When the fast one ends at
    2 s the slow one has trained 2 of its 4 epochs: the events count 6 epochs by then, not 4."""
    curves = _synthetic([1.0, 0.5], [[0.5, 0.6, 0.7, 0.8], [0.4, 0.4, 0.4, 0.4]])
    start = [curves.configs[0]["searched"], curves.configs[1]["searched"]]
    log = replay(curves, get_space("wine_mlp").params, start,
                 Strategy("s", trials=2, concurrency=2, sampler="random", scheduler="fifo"), seed=0)
    assert [(t.config_id, t.ended_at) for t in log.trials] == [(0, 4.0), (1, 2.0)]
    clock = [c for c, _, _ in log.events]
    assert clock == sorted(clock) and len(log.events) == 8
    assert sum(1 for c, _, _ in log.events if c <= 2.0) == 6


def test_an_epoch_cap_ends_a_replayed_search_with_the_running_trials_cut_where_they_are():
    """Two trials at once (1 s and 0.5 s an epoch), capped at 5 epochs in all: by 1.5 s they have trained
    1 + 3; the 5th epoch (the slow one's 2nd, at 2 s, before the fast one's 4th) ends the search, both trials
    cut there, the third config never started."""
    curves = _synthetic([1.0, 0.5, 0.5], [[0.5, 0.6, 0.7, 0.8], [0.4, 0.4, 0.4, 0.4], [0.9, 0.9, 0.9, 0.9]])
    start = [curves.configs[i]["searched"] for i in range(3)]
    capped = Strategy("s", trials=3, concurrency=2, sampler="random", scheduler="fifo", max_total_epochs=5)
    log = replay(curves, get_space("wine_mlp").params, start, capped, seed=0)
    assert [(t.config_id, t.epochs, t.outcome, t.ended_at) for t in log.trials] == [(0, 2, "cut", 2.0),
                                                                                   (1, 3, "cut", 2.0)]
    assert log.epochs == 5 and log.pick("max").config_id == 0
    # Uncapped, the same search runs the third config, the best one, to its end.
    full = replay(curves, get_space("wine_mlp").params, start, replace(capped, max_total_epochs=None), seed=0)
    assert full.epochs == 12 and full.pick("max").config_id == 2
    assert "at most 5 epochs in all" in capped.describe() and "max_total_epochs" in capped.settings()


def test_random_search_on_a_table_is_exact_each_config_once_start_first():
    """Random search meets the recorded configs without replacement, the space's start first, each served
    its recorded run (distance 0); asking for more trials than configs is refused in one line."""
    curves = _synthetic([1.0] * 6, [[0.1 * i, 0.1 * i + 0.05] for i in range(6)])
    params, start = get_space("wine_mlp").params, [curves.configs[0]["searched"]]
    orders = set()
    for seed in range(8):
        log = replay(curves, params, start, Strategy("r", trials=6, sampler="random", scheduler="fifo"), seed=seed)
        ids = [t.config_id for t in log.trials]
        assert ids[0] == 0 and sorted(ids) == list(range(6))
        assert all(t.distance == 0.0 and not t.modelled for t in log.trials)
        assert [t.best for t in log.trials] == [0.1 * i + 0.05 for i in ids]
        orders.add(tuple(ids))
    assert len(orders) > 4   # the order is random, by seed
    with pytest.raises(ValueError, match=r"asked for more trials than the 6 recorded configs"):
        replay(curves, params, start, Strategy("r", trials=7, sampler="random", scheduler="fifo"), seed=0)


def test_p_top1_and_the_share_of_top3_trials_stopped_on_hand_made_searches():
    """P(top-1) is the share of searches whose final pick is the best recorded config; the top-3 stopped
    share counts the trials of the three best configs that the scheduler stopped, over all such trials."""
    from search.replay.report import summarise
    from search.replay.serve import Table
    from search.replay.simulate import ReplayedTrial, ReplayLog

    curves = _synthetic([1.0] * 6, [[0.1 * i, 0.1 * i + 0.05] for i in range(6)])   # config i is worth 0.1 i + 0.05
    table = Table(curves, get_space("wine_mlp").params)

    def search(trials: list[tuple[int, str, list[float]]]) -> ReplayLog:
        # (config, outcome, its values by epoch), one trial after another
        log = ReplayLog(Strategy("s", trials=len(trials)), 0, [])
        for k, (config, outcome, values) in enumerate(trials):
            q = table.quality(config)
            log.trials.append(ReplayedTrial(f"r{k:05d}", config, 0, 0.0, epochs=len(values), best=max(values),
                                            outcome=outcome, quality=q, quality_unseen=q))
            log.events += [(float(len(log.events) + 1), k, float(b)) for b in np.maximum.accumulate(values)]
        return log

    first = search([(3, "stopped early", [0.3]), (5, "completed", [0.5, 0.55]), (1, "completed", [0.1, 0.15])])
    second = search([(4, "completed", [0.4, 0.45]), (3, "completed", [0.3, 0.35]), (2, "completed", [0.2, 0.25])])
    logs = {"s": [first, second]}
    row = summarise(logs, table, "s", None).table.set_index("strategy").loc["s"]
    assert row["p_top1"] == 0.5                    # the first search picked config 5, the second config 4
    assert row["top3_stopped_share"] == 1 / 4      # configs 3, 4, 5: four trials, one stopped
    assert row["quality_median"] == pytest.approx((0.55 + 0.45) / 2)


def test_every_trial_of_a_replayed_search_sees_one_recorded_seed_the_repeats_each_in_turn():
    """As a live search gives all its trials one seed: a recording's seed shifts all its configs alike, so
    mixing seeds in one search would pick trials for their seed's luck."""
    curves = _smooth_table(n=20, seeds=3)
    params = get_space("wine_mlp").params
    for sampler in ("random", "tpe"):
        seen = []
        for repeat in range(4):
            log = replay(curves, params, [], Strategy("s", trials=8, sampler=sampler, scheduler="fifo"), seed=repeat)
            assert len({t.seed for t in log.trials}) == 1
            seen.append(log.trials[0].seed)
        assert seen == [0, 1, 2, 0]


def test_quality_is_judged_on_the_seeds_the_trial_did_not_see():
    from search.replay.serve import Table

    curves = _synthetic([1.0, 1.0], [[0.9, 0.9], [0.5, 0.5]])
    extra = pd.DataFrame([{"config_id": 0, "seed": 1, "epoch": e, "val_macro_f1": 0.7, "epoch_time_s": 1.0,
                           "outcome": "completed"} for e in (1, 2)])
    curves = Curves(curves.space, curves.name, pd.concat([curves.table, extra]), curves.configs, curves.meta,
                    curves.space_json)
    table = Table(curves, get_space("wine_mlp").params)
    runs = {s: table.recorded(0, 0.0, s) for s in (0, 1)}
    assert runs[0].seed == 0 and runs[1].seed == 1
    # Config 1 was recorded with seed 0 only: a search that sees seed 1 is served its seed 0 run.
    assert table.recorded(1, 0.0, 1).seed == 0 and table.recording_seeds == [0, 1]
    assert runs[0].quality == pytest.approx(0.8) and runs[0].quality_unseen == pytest.approx(0.7)
    assert runs[1].quality_unseen == pytest.approx(0.9)
    assert table.seed_noise() == pytest.approx(np.std([0.9, 0.7], ddof=1) / np.sqrt(1))


def _smooth_table(n: int = 40, seeds: int = 3, noise: float = 0.01, epochs: int = 5) -> Curves:
    """Curves whose value is a smooth function of lr (best near 3e-3) plus seed noise of ``noise``."""
    space = get_space("wine_mlp")
    settings = TrialSettings(model=space.model, data=space.data, max_epochs=epochs, seed=0, fixed=dict(space.fixed),
                             searched=tuple(space.params))
    rng = np.random.default_rng(1)
    configs, rows = {}, []
    for i in range(n):
        searched = {**space.start[0], "lr": float(np.exp(rng.uniform(np.log(1e-4), np.log(3e-2))))}
        configs[i] = {"searched": searched, "resolved": settings.resolve(searched).to_dict()}
        top = 0.9 - 0.05 * (np.log10(searched["lr"]) - np.log10(3e-3)) ** 2
        for s in range(seeds):
            offset = rng.normal(0, noise)
            rows += [{"config_id": i, "seed": s, "epoch": e + 1, "epoch_time_s": 1.0, "outcome": "completed",
                      "val_macro_f1": top * (e + 1) / epochs + offset} for e in range(epochs)]
    return Curves("wine_mlp", "smooth", pd.DataFrame(rows), configs,
                  {"name": "smooth", "metric": "val_macro_f1", "mode": "max", "max_epochs": epochs,
                   "seeds": list(range(seeds))}, space.to_json())


def test_the_curve_model_is_checked_on_recorded_configs_it_was_not_fitted_on():
    """On a table whose quality is a smooth function of one key, the held-out error of the chosen model is
    below one seed noise and below nearest-config serving's; on pure noise nothing is faithful below it."""
    import warnings

    from search.replay.serve import Table, check_model

    params = get_space("wine_mlp").params
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        smooth = check_model(Table(_smooth_table(noise=0.02), params), models=("forest", "gp"))
    assert smooth.seed_noise == pytest.approx(0.02, rel=0.3)
    assert smooth.faithful and smooth.errors[smooth.chosen] < smooth.nearest
    assert set(smooth.errors) == {"forest", "forest anchored", "gp", "gp anchored"}
    assert "below it" in smooth.describe()


def test_the_curve_models_error_by_table_size_says_how_many_configs_one_seed_noise_needs():
    """A power law 0.2 (n/32)^-0.5 reaches 0.05 at 512 configs; a flat one never. On a smooth table the
    chosen model's held-out error falls from a quarter of the configs to all of them."""
    import warnings

    from search.bench.size_curve import configs_needed, size_curve
    from search.replay.serve import Table, check_model

    assert configs_needed([32, 64, 128], [0.2 * (n / 32) ** -0.5 for n in (32, 64, 128)], 0.05) == pytest.approx(512)
    assert configs_needed([32, 64, 128], [0.1, 0.1, 0.1], 0.05) is None
    table = Table(_smooth_table(n=80, noise=0.002), get_space("wine_mlp").params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check = check_model(table, models=("forest",))
        curve = size_curve(table, check)
    assert curve.sizes == (20, 40, 60, 80) and curve.errors[-1] == check.errors[check.chosen]
    assert curve.errors[-1] < curve.errors[0] and curve.needed is not None
    assert f"of the order of {float(f'{curve.needed:.1g}'):,.0f} recorded configs" in curve.describe()


def test_a_modelled_server_serves_recorded_configs_exactly_and_others_from_the_model():
    import warnings

    from search.replay.serve import Modelled, Table, check_model

    curves = _smooth_table()
    table = Table(curves, get_space("wine_mlp").params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = check_model(table, models=("forest",)).fit(table)
    server = Modelled(table, model, seen=1)
    recorded = server.serve(curves.configs[3]["searched"])
    assert not recorded.modelled and recorded.config_id == 3 and recorded.distance == 0.0 and recorded.seed == 1
    near_best = {**curves.configs[3]["searched"], "lr": 3.1e-3}
    served = server.serve(near_best)
    assert served.modelled and served.distance > 0 and len(served.values) == curves.max_epochs and served.seed == 1
    # A config near the optimum is served a quality near it, not the average of the table.
    assert served.quality == pytest.approx(0.9, abs=0.03)
    low, high = curves.table["val_macro_f1"].min(), curves.table["val_macro_f1"].max()
    assert low <= served.values.min() and served.values.max() <= high


def test_a_replay_of_tpe_meets_configs_the_table_does_not_hold():
    """TPE's proposals are served by the curve model (continuous lr values no table holds), random search's
    never are."""
    import warnings

    from search.replay.serve import Table, check_model

    curves = _smooth_table()
    params = get_space("wine_mlp").params
    table = Table(curves, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = check_model(table, models=("forest",)).fit(table)
        tpe = replay(curves, params, [], Strategy("t", trials=12, scheduler="fifo", startup=4), seed=0, table=table,
                     model=model)
    assert sum(t.modelled for t in tpe.trials) >= 10
    rand = replay(curves, params, [], Strategy("r", trials=12, sampler="random", scheduler="fifo"), seed=0,
                  table=table, model=model)
    assert not any(t.modelled for t in rand.trials)


def test_live_searches_land_where_the_replay_of_their_own_recording_says():
    """A CI-sized live-vs-replay check on wine: a table recorded in-process (20 random configs x 2 seeds x
    6 epochs), 40 replays of random search and of random + ASHA on it, and 4 live searches of each, every
    proposal trained and its pick confirmed over 2 new seeds. The live median pick lies inside the
    replay's 10-90 % range, and FIFO's epochs are the same count live and replayed."""
    from dataclasses import replace

    from search.commands.record import draw_configs
    from search.replay import stats
    from search.bench.live import Trainer, live_panel
    from search.replay.study import RECORDED_SEEDS
    from trainables.pair import load_data
    from trainables.recipe import train

    space = get_space("wine_mlp")
    pair, epochs = space.pair, 6
    data = load_data(pair, None, None, test=False, seed=0)
    settings = TrialSettings(model=pair.model, data=pair.data, max_epochs=epochs, seed=0, fixed=dict(space.fixed),
                             searched=tuple(space.params), metric=space.metric, mode=space.mode)
    Trainer(data, settings)   # one thread, as trials run
    configs, rows = {}, []
    for i, config in enumerate(draw_configs(space, 20, seed=0)):
        for seed in (2000, 2001):
            resolved = replace(settings, seed=seed, overrides={"patience": None}).resolve(config)
            history = train(pair.model_fn(data.spec, resolved), data, resolved.recipe, "cpu").history
            rows += [{"config_id": i, "seed": seed, "epoch": h["epoch"], "val_macro_f1": h["val_macro_f1"],
                      "epoch_time_s": h["epoch_time_s"], "outcome": "completed"} for h in history]
        configs[i] = {"searched": config, "resolved": settings.resolve(config).to_dict()}
    curves = Curves("wine_mlp", "ci", pd.DataFrame(rows), configs,
                    {"metric": "val_macro_f1", "mode": "max", "max_epochs": epochs, "seeds": [2000, 2001]},
                    space.to_json())
    strategies = [Strategy("random (FIFO)", trials=4, sampler="random", scheduler="fifo"),
                  Strategy("random + ASHA", trials=4, sampler="random", grace=2, reduction=2)]
    live = live_panel(Trainer(data, settings), space.params, list(space.start), strategies, repeats=4,
                      baseline="random (FIFO)", confirm_seeds=2, recorded_seeds=(2000, 2001))
    # In two processes (searches, then confirmation runs, spread over them), the same rows to the last digit.
    pd.testing.assert_frame_equal(live_panel(Trainer(data, settings), space.params, list(space.start), strategies,
                                             repeats=4, baseline="random (FIFO)", confirm_seeds=2,
                                             recorded_seeds=(2000, 2001), jobs=2), live, check_exact=True)
    # Live search 0's sampler seed is the recording's: it meets the recorded configs, and its pick judged on
    # the recording's seeds is that config's recorded quality, run for run.
    first = live[live["strategy"] == "random (FIFO)"].iloc[0]
    picked = json.loads(first["final_config"])
    recorded = [i for i, c in configs.items() if json.loads(json.dumps(c["searched"])) == picked]
    assert len(recorded) == 1
    assert first[RECORDED_SEEDS] == pytest.approx(curves.true_quality().loc[recorded[0], "mean"], abs=1e-9)
    assert live[RECORDED_SEEDS].notna().all()
    for strategy in strategies:
        logs = [replay(curves, space.params, list(space.start), strategy, seed=r) for r in range(40)]
        picks = np.array([stats.at_budget(stats.pick_path(log, "max"), math.inf) for log in logs])
        part = live[live["strategy"] == strategy.name]
        low, high = np.quantile(picks, [0.1, 0.9])
        assert low <= part["final_quality"].median() <= high, (strategy.name, low, high, part["final_quality"])
        if strategy.scheduler == "fifo":
            assert set(part["epochs"]) == {log.epochs for log in logs} == {4 * epochs}
        else:
            assert part["stopped"].sum() > 0 and part["epochs"].median() < 4 * epochs


def test_a_recording_is_extended_only_where_it_is_the_start_of_the_same_draws():
    """``spectune record --extend OLD`` trains only the configs after OLD's, and only when OLD holds the
    first draws of the same seed with the same seeds and epochs."""
    from search.commands.record import draw_configs, extension, json_round_trip

    space = get_space("wine_mlp")
    drawn = [json_round_trip(c) for c in draw_configs(space, 4, 0)]
    meta = {"metric": "val_macro_f1", "mode": "max", "max_epochs": 6, "seeds": [2000, 2001], "sampler_seed": 0}
    old = Curves("wine_mlp", "old", pd.DataFrame(), dict(enumerate({"searched": c} for c in drawn)), meta,
                 space.to_json())
    bigger = draw_configs(space, 7, 0)
    assert [json_round_trip(c) for c in bigger[:4]] == drawn   # the same seed draws the same configs first
    assert extension(old, bigger, [2000, 2001], 6, 0) == [4, 5, 6]
    with pytest.raises(OptionError, match="holds 4 configs already; pass --configs above 4"):
        extension(old, draw_configs(space, 4, 0), [2000, 2001], 6, 0)
    with pytest.raises(OptionError, match="recorded with max_epochs 6, not 9"):
        extension(old, bigger, [2000, 2001], 9, 0)
    with pytest.raises(OptionError, match="recorded with seeds"):
        extension(old, bigger, [2000, 2001, 2002], 6, 0)
    with pytest.raises(OptionError, match="are not the first 4 draws of today's space with seed 1"):
        extension(_with_meta(old, sampler_seed=1), draw_configs(space, 7, 1), [2000, 2001], 6, 1)


def _with_meta(curves: Curves, **changes) -> Curves:
    from dataclasses import replace

    return replace(curves, meta={**curves.meta, **changes})


class _NoTraining:
    """A trainer that refuses to train: a live panel that reaches it searched again."""

    @property
    def settings(self):
        raise RuntimeError("searched again")

    trained_epochs = 0


def test_a_live_check_keeps_the_searches_already_beside_the_recording():
    from dataclasses import replace

    from search.bench.live import live_panel

    base = Strategy("random (FIFO)", trials=4, sampler="random", scheduler="fifo")
    asha = Strategy("random + ASHA", trials=4, sampler="random")

    def rows(name: str, epochs: int, base_epochs: float, at_1: float | None = 0.45, grace: int = 1) -> list[dict]:
        settings = {"random (FIFO)": replace(base, grace=grace), "random + ASHA": replace(asha, grace=grace)}[name]
        return [{"strategy": name, "settings": settings.settings(), "repeat": k, "epochs": epochs + k,
                 "baseline_epochs": base_epochs, "final_quality": 0.5, "quality_at_0.25": 0.4,
                 **({"quality_at_1": at_1} if at_1 is not None else {})} for k in range(3)]
    kept = pd.DataFrame(rows("random (FIFO)", 40, 41.0) + rows("random + ASHA", 20, 41.0))
    out = live_panel(_NoTraining(), {}, [], [asha, base], 3, "random (FIFO)", kept=kept)
    assert out.equals(kept)
    # Searches kept from before the pick at random search's epochs was confirmed: where a search spent no
    # more than those epochs, that pick is its final pick; a search that spent more is searched again.
    older = pd.DataFrame(rows("random (FIFO)", 40, 41.0) + rows("random + ASHA", 20, 41.0, at_1=None))
    out = live_panel(_NoTraining(), {}, [], [asha, base], 3, "random (FIFO)", kept=older)
    assert out[out["strategy"] == "random + ASHA"]["quality_at_1"].tolist() == [0.5] * 3
    with pytest.raises(RuntimeError, match="searched again"):
        live_panel(_NoTraining(), {}, [], [asha, base], 3, "random (FIFO)",
                   kept=pd.DataFrame(rows("random (FIFO)", 40, 41.0) + rows("random + ASHA", 41, 41.0, at_1=None)))
    # Two searches kept where three are asked for, or measured against other baseline epochs: searched again.
    with pytest.raises(RuntimeError, match="searched again"):
        live_panel(_NoTraining(), {}, [], [base], 4, "random (FIFO)", kept=kept)
    with pytest.raises(RuntimeError, match="searched again"):
        live_panel(_NoTraining(), {}, [], [asha, base], 3, "random (FIFO)",
                   kept=pd.DataFrame(rows("random (FIFO)", 40, 41.0) + rows("random + ASHA", 20, 99.0)))
    # The same name under other settings (a space's grace period changed): searched again; so are rows
    # written before the settings were kept.
    with pytest.raises(RuntimeError, match="searched again"):
        live_panel(_NoTraining(), {}, [], [asha, base], 3, "random (FIFO)",
                   kept=pd.DataFrame(rows("random (FIFO)", 40, 41.0) + rows("random + ASHA", 20, 41.0, grace=5)))
    with pytest.raises(RuntimeError, match="searched again"):
        live_panel(_NoTraining(), {}, [], [asha, base], 3, "random (FIFO)", kept=kept.drop(columns="settings"))


class _Judge:
    """A trainer that only judges: a config's best value is its ``x`` plus its seed's share."""

    settings = None
    trained_epochs = 0

    def __init__(self) -> None:
        self.runs: list[tuple[float, int]] = []

    def best(self, config: dict, seed: int) -> float:
        self.runs.append((config["x"], seed))
        return config["x"] + (seed - 2000) / 100


def test_kept_live_searches_are_judged_on_the_recordings_seeds_without_being_searched_again():
    """A live check judges each final pick on the recording's seeds too; kept searches without that figure
    get it (one run per config and seed, shared picks trained once), and keep every other figure."""
    from search.bench.live import live_panel
    from search.replay.study import RECORDED_SEEDS

    base = Strategy("random (FIFO)", trials=4, sampler="random", scheduler="fifo")
    kept = pd.DataFrame([{"strategy": base.name, "settings": base.settings(), "repeat": k, "epochs": 40,
                          "baseline_epochs": 40.0, "final_quality": 0.9, "quality_at_0.25": 0.4, "quality_at_1": 0.9,
                          "final_config": json.dumps({"x": [0.5, 0.5, 0.7][k]})} for k in range(3)])
    judge = _Judge()
    out = live_panel(judge, {}, [], [base], 3, base.name, kept=kept, recorded_seeds=(2000, 2001))
    assert out[RECORDED_SEEDS].tolist() == pytest.approx([0.505, 0.505, 0.705])
    assert sorted(judge.runs) == [(0.5, 2000), (0.5, 2001), (0.7, 2000), (0.7, 2001)]
    assert out.drop(columns=RECORDED_SEEDS).equals(kept)
    # Judged already: not trained again.
    again = _Judge()
    live_panel(again, {}, [], [base], 3, base.name, kept=out, recorded_seeds=(2000, 2001))
    assert again.runs == []


def test_a_resumed_recording_keeps_the_recording_it_extends(tmp_path):
    """A recording started with ``--extend OLD`` resumes only with the same OLD: the plan file records it."""
    from search.options import SearchOptions
    from search.commands.record import RecordCommand, RecordOptions

    storage = tmp_path / "ray"
    (storage / "wine_mlp-record-big").mkdir(parents=True)
    (storage / "wine_mlp-record-big.record.json").write_text(json.dumps(
        {"configs": 8, "seeds": 2, "max_epochs": 6, "sampler_seed": 0,
         "data_options": DataOptions(path="").to_json(), "extend": "small"}))
    options = SearchOptions(space="wine_mlp", max_epochs=6, seed=0, name="big", resume=True, storage=storage,
                            results_root=tmp_path / "results")
    with pytest.raises(OptionError, match="started with other extend"):
        RecordCommand(RecordOptions(search=options, configs=8, seeds=2, extend="other")).prepare()


def test_replays_in_several_processes_are_the_replays_of_one():
    """A replay depends on its seed only: the study's pool of processes gives the logs one process gives."""
    from search.replay.serve import Table
    from search.replay.study import replay_panel

    space = get_space("wine_mlp")
    curves = read_curves(space.to_json(), "cpu-c32x3", Path(__file__).resolve().parents[1] / "results")
    shared = (curves, space.params, list(space.start), Table(curves, space.params), None)
    strategies = [Strategy("random (FIFO)", trials=8, sampler="random", scheduler="fifo"),
                  Strategy("TPE + ASHA", trials=8, grace=10, reduction=2, startup=4, patience=10)]
    one, two = (replay_panel(strategies, shared, 5, jobs) for jobs in (1, 2))
    assert list(one) == list(two) == [s.name for s in strategies]
    for name in one:
        assert [log.seed for log in two[name]] == list(range(5))
        assert [[(t.config_id, t.seed, t.epochs, t.outcome) for t in log.trials] for log in one[name]] == \
               [[(t.config_id, t.seed, t.epochs, t.outcome) for t in log.trials] for log in two[name]]


def test_live_only_names_strategies_of_the_panel_before_anything_is_replayed(tmp_path, monkeypatch, capsys):
    """``--live-only`` picks strategies for ``--live`` by the names the table prints: a name the panel
    lacks, or the flag without ``--live``, is refused in one line before any replay."""
    import shutil

    recorded = Path(__file__).resolve().parents[1] / "results" / "wine_mlp" / "curves" / "cpu-c32x3"
    shutil.copytree(recorded, tmp_path / "results" / "wine_mlp" / "curves" / "cpu-c32x3",
                    ignore=shutil.ignore_patterns("replays"))
    monkeypatch.chdir(tmp_path)
    base = ["replay", "--space", "wine_mlp", "--curves", "cpu-c32x3", "--trials", "8", "--repeats", "2"]
    assert lab_main(base + ["--live", "2", "--live-only", "random + ASHA", "--live-only", "TPE + ASHA (default)"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and ("--live-only 'TPE + ASHA (default)' is not a strategy of this replay's panel; its "
                              "strategies: random (FIFO); TPE (FIFO); random + ASHA; TPE + ASHA (default: grace 10"
                              in err[0])
    assert lab_main(base + ["--live-only", "random + ASHA"]) == 2
    assert "pass --live N too" in capsys.readouterr().err
    assert not (tmp_path / "results" / "wine_mlp" / "curves" / "cpu-c32x3" / "replays").exists()


@pytest.mark.parametrize("name", ["c\n", "../c"])
def test_a_curves_name_ending_in_a_newline_or_leaving_results_is_refused_naming_curves(tmp_path, monkeypatch,
                                                                                     capsys, name):
    # Before: "c\n" passed the check (re.match with "$" allows a final newline); "../c" was refused about --name.
    monkeypatch.chdir(tmp_path)
    assert main(["replay", "--space", "wine_mlp", "--curves", name]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "--curves must be letters, digits" in err[0] and repr(name) in err[0], err


def _copy_wine(tmp_path: Path, name: str = "cpu-c32x3") -> Path:
    """A copy of a committed wine recording (its replays left out) under ``tmp_path/results``."""
    import shutil

    recorded = Path(__file__).resolve().parents[1] / "results" / "wine_mlp" / "curves" / name
    folder = tmp_path / "results" / "wine_mlp" / "curves" / name
    shutil.copytree(recorded, folder, ignore=shutil.ignore_patterns("replays"))
    return folder


def test_a_negative_live_count_is_refused_before_the_replay(tmp_path, monkeypatch, capsys):
    # Before: --live -1 replayed the whole panel, then ended in KeyError: 'strategy'.
    folder = _copy_wine(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert lab_main(["replay", "--space", "wine_mlp", "--curves", "cpu-c32x3", "--trials", "8", "--live", "-1"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == ["error: --live must be >= 0 (live searches per strategy; 0: none); got -1."]
    assert not (folder / "replays").exists()


class _Stop(Exception):
    pass


def test_jobs_are_capped_at_the_cpus_this_process_may_use(tmp_path, monkeypatch, capsys):
    # Before: --jobs 1000000 started one process per strategy x repeat chunk, whatever the CPUs.
    from search.bench.lab import LabOptions, run_lab
    from search.replay import study
    from search.options import SearchOptions

    _copy_wine(tmp_path)
    got = []

    def panel(strategies, shared, repeats, jobs, peer=None):
        got.append(jobs)
        raise _Stop

    monkeypatch.setattr(study, "available_cpus", lambda: 2)
    monkeypatch.setattr(study, "replay_panel", panel)
    options = study.ReplayOptions(SearchOptions(space="wine_mlp", trials=8, results_root=tmp_path / "results"),
                                  curves="cpu-c32x3", repeats=2, jobs=1_000_000)
    with pytest.raises(_Stop):
        run_lab(LabOptions(options, serve="nearest"))
    assert got == [2]
    assert "--jobs 1000000: this process may use 2 CPU(s), so 2 process(es) run at once" in capsys.readouterr().out
    with pytest.raises(_Stop):
        run_lab(LabOptions(replace(options, jobs=None), serve="nearest"))
    assert got == [2, 2]


def test_a_live_check_keeps_every_kept_search_it_does_not_replace(tmp_path):
    """`--live 1 --live-only "random (FIFO)"` on a copy of the wine recording with 10 kept searches per strategy:
    the check takes random search's first kept search (nothing trained) and saves live.csv with all 110 rows.
    Before, the save dropped every kept row of a strategy checked now: random search's 10 became 1."""
    from types import SimpleNamespace

    from search.bench import lab
    from search.options import SearchOptions
    from search.replay import study

    folder = _copy_wine(tmp_path, "cpu-c128x3")
    before = pd.read_csv(folder / study.LIVE_FILE)
    # 24 trials, as the kept searches were run (docs/replay.md: --budget cpu).
    r = study.ReplayOptions(SearchOptions(space="wine_mlp", trials=24, results_root=tmp_path / "results"),
                            curves="cpu-c128x3")
    p = study.prepare(r)
    baseline = study.panel(p.space, p.options.trials, 1, p.patience, p.max_epochs, True)[0]
    predicted = pd.DataFrame([{"strategy": baseline.name, "quality_median": 1.0, "quality_q25": 1.0,
                               "quality_q75": 1.0, "epochs_median": 500.0}])
    out = tmp_path / "out"
    kept = study.read_live(folder / study.LIVE_FILE, p.space)
    live = lab.live_check(p, [baseline], 1, SimpleNamespace(table=predicted), out, (2000, 2001, 2002), kept)
    assert len(live) == 1 and len(pd.read_csv(out / study.LIVE_FILE)) == 1
    after = pd.read_csv(folder / study.LIVE_FILE)
    assert len(after) == len(before) == 110
    assert (after["strategy"] == baseline.name).sum() == 10
    key = ["strategy", "settings", "repeat"]
    pd.testing.assert_frame_equal(after.sort_values(key).reset_index(drop=True),
                                  before.sort_values(key).reset_index(drop=True))


def test_a_save_keeps_kept_searches_at_other_settings_and_replaces_only_its_own():
    from search.bench.live import with_kept

    def row(settings: str, repeat: int, quality: float) -> dict:
        return {"strategy": "random (FIFO)", "settings": settings, "repeat": repeat, "final_quality": quality}

    kept = pd.DataFrame([row("a", 0, 0.1), row("a", 1, 0.2), row("b", 0, 0.3)])
    saved = with_kept(pd.DataFrame([row("a", 0, 0.9)]), kept)
    assert saved.to_dict("records") == [row("a", 0, 0.9), row("a", 1, 0.2), row("b", 0, 0.3)]
    # Rows kept from before settings were written are kept too.
    older = kept.drop(columns="settings")
    assert len(with_kept(pd.DataFrame([row("a", 0, 0.9)]), older)) == 4


def _edit_json(file: str, change) -> object:
    """A tampering of a recording's JSON file: ``change`` takes its content and returns the new one."""
    def tamper(folder: Path) -> None:
        path = folder / file
        path.write_text(json.dumps(change(json.loads(path.read_text()))))
    return tamper


def _without(key: str):
    return lambda d: {k: v for k, v in d.items() if k != key}


def _config0(change):
    def edit(configs: dict) -> dict:
        configs["0"] = change(configs["0"])
        return configs
    return edit


def _edit_table(folder: Path) -> None:
    path = folder / "curves.csv.gz"
    pd.read_csv(path).assign(outcome="failed").to_csv(path, index=False, compression="gzip")


def _edit_live(column: str, value: object):
    def tamper(folder: Path) -> None:
        source = Path(__file__).resolve().parents[1] / "results" / "wine_mlp" / "curves" / "cpu-c128x3" / "live.csv"
        live = pd.read_csv(source)
        live[column] = live[column].astype(object)
        live.loc[3, column] = value
        live.to_csv(folder / "live.csv", index=False)
    return tamper


_OUTSIDE = {"lr": 0.5, "weight_decay": 1e-4, "batch_size": 16, "depth": 2, "width": 100, "dropout": 0.1,
            "batch_norm": False, "activation": "relu"}
TAMPERED = {
    "meta.json binary": (lambda f: (f / "meta.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe"),
                         "meta.json is not valid JSON: it is not UTF-8 text"),
    "meta.json a list": (_edit_json("meta.json", lambda m: [m]), "meta.json must hold an object"),
    "max_epochs text": (_edit_json("meta.json", lambda m: {**m, "max_epochs": "60"}),
                        "meta.json: max_epochs must be a whole number >= 1"),
    "no seeds": (_edit_json("meta.json", _without("seeds")), "meta.json: seeds must be a list"),
    "mode sideways": (_edit_json("meta.json", lambda m: {**m, "mode": "sideways"}),
                      "meta.json gives mode 'sideways', but space 'wine_mlp' has mode 'max'"),
    "mode min": (_edit_json("meta.json", lambda m: {**m, "mode": "min"}),
                 "meta.json gives mode 'min', but space 'wine_mlp' has mode 'max'"),
    "another metric": (_edit_json("meta.json", lambda m: {**m, "metric": "val_loss"}),
                       "meta.json gives metric 'val_loss', but space 'wine_mlp' has metric 'val_macro_f1'"),
    "data_options text": (_edit_json("meta.json", lambda m: {**m, "data_options": "wine"}),
                          "meta.json: data_options must be an object"),
    "space.json without params": (_edit_json("space.json", _without("params")),
                                  "space.json must hold the recorded space"),
    "space.json a list": (_edit_json("space.json", lambda s: [s]), "space.json must hold the recorded space"),
    "configs.json a list": (_edit_json("configs.json", lambda c: list(c.values())),
                            "configs.json must hold an object mapping each config id"),
    "configs.json text id": (_edit_json("configs.json", lambda c: {("x" if k == "0" else k): v for k, v in c.items()}),
                             "configs.json: config 'x' must be a config id"),
    "configs.json no searched": (_edit_json("configs.json", _config0(_without("searched"))),
                                 "configs.json: config '0' must be a config id"),
    "configs.json text warm-up": (_edit_json("configs.json", _config0(
                                      lambda c: {**c, "resolved": {**c["resolved"], "warmup_epochs": "two"}})),
                                  "configs.json: config 0's resolved warmup_epochs must be a whole number"),
    "configs.json outside the space": (_edit_json("configs.json", _config0(lambda c: {**c, "searched": _OUTSIDE})),
                                       "configs.json config 0: lr=0.5 lies outside the space's log-uniform"),
    "configs.json a key missing": (_edit_json("configs.json", _config0(lambda c: {**c, "searched": {"lr": 1e-3}})),
                                   "configs.json config 0 must give exactly the searched keys"),
    "all runs failed": (_edit_table, "every recorded run failed"),
    "live.csv text score": (_edit_live("final_quality", "high"), "live.csv: final_quality holds text ('high', line 5)"),
    "live.csv text repeat": (_edit_live("repeat", "third"), "live.csv: repeat holds text"),
    "live.csv config outside the space": (_edit_live("final_config", json.dumps(_OUTSIDE)),
                                          "live.csv: final_config in line 5: lr=0.5 lies outside the space's"),
    "live.csv config not JSON": (_edit_live("final_config", "{width: 100"),
                                 "live.csv: final_config in line 5 is not a JSON object"),
}


@pytest.mark.parametrize("tampering", list(TAMPERED))
def test_a_tampered_recording_is_refused_in_one_line_before_the_replay(tmp_path, monkeypatch, capsys, tampering):
    """Before, each ended in a traceback (or, for mode min or another metric, replayed silently in the file's
    direction; for a live.csv config outside the space, trained it): now one line, exit 2, naming the file
    and the fix, before any replay or training."""
    tamper, expected = TAMPERED[tampering]
    folder = _copy_wine(tmp_path)
    tamper(folder)
    monkeypatch.chdir(tmp_path)
    assert lab_main(["replay", "--space", "wine_mlp", "--curves", "cpu-c32x3", "--trials", "8", "--repeats", "2",
                     "--serve", "nearest", "--no-optuna", "--live", "1", "--live-only", "random (FIFO)"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err
    assert "results/wine_mlp/curves/cpu-c32x3" in err[0] and ("again" in err[0] or "restore" in err[0]), err[0]
    assert not (folder / "replays").exists()


def _small_wine(tmp_path: Path, configs: int = 8, seeds: tuple[int, ...] = (2000, 2001)) -> Path:
    """The first ``configs`` configs and ``seeds`` of the committed wine recording, as a smaller recording
    (what `spectune record --configs 8 --seeds 2` writes, on the same data)."""
    folder = _copy_wine(tmp_path)
    table = pd.read_csv(folder / "curves.csv.gz")
    table = table[(table["config_id"] < configs) & table["seed"].isin(seeds)]
    table.to_csv(folder / "curves.csv.gz", index=False, compression="gzip")
    kept = {k: v for k, v in json.loads((folder / "configs.json").read_text()).items() if int(k) < configs}
    (folder / "configs.json").write_text(json.dumps(kept))
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "seeds": list(seeds), "configs": configs}))
    return folder


def test_a_recording_too_small_for_the_curve_models_check_replays_random_search_only(tmp_path, monkeypatch, capsys):
    """8 configs x 2 seeds: too few for the curve model's 5-fold check. Before: "ValueError: ... too few for a
    5-fold check ... this is a bug". Now random search's strategies (served exactly) are replayed, one line says
    why the others are left out, and the replay gives no advice on the default it could not replay."""
    folder = _small_wine(tmp_path)
    monkeypatch.chdir(tmp_path)
    base = ["replay", "--space", "wine_mlp", "--curves", "cpu-c32x3", "--repeats", "5", "--trials", "6"]
    # A strategy left out cannot be checked live: refused before the replay.
    assert lab_main(base + ["--live", "1", "--live-only", "TPE (FIFO)"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "--live-only 'TPE (FIFO)' is left out of this replay: curves cpu-c32x3 hold 8 " \
                            "complete configs, too few for a 5-fold check" in err[0], err
    assert not (folder / "replays").exists()
    assert main(base) == 0
    out = capsys.readouterr().out
    note = [line for line in out.splitlines() if line.startswith("note: curves cpu-c32x3 hold 8 complete configs")]
    assert len(note) == 1 and "replaying only random search, served exactly (random (FIFO); random + ASHA; Optuna " \
                              "random + MedianPruner), and leaving out" in note[0] and "TPE (FIFO)" in note[0]
    study = json.loads(next((folder / "replays").glob("*/study.json")).read_text())
    assert set(study["strategies_described"]) == {"random (FIFO)", "random + ASHA", "Optuna random + MedianPruner"}
    assert study["model_check"] is None and study["recommendation"]["recommended"] is None
    assert "this replay cannot judge it, because curves cpu-c32x3 hold 8 complete configs" in \
        study["recommendation"]["reason"]


def test_every_committed_recordings_configs_and_live_searches_pass_the_replays_checks():
    """What a replay refuses in a received recording (configs outside the space, a damaged live.csv) is not
    in the committed ones: each of their configs and kept live picks lies inside today's space."""
    from search.options import check_configs
    from search.replay.study import LIVE_FILE, read_live

    root = Path(__file__).resolve().parents[1] / "results"
    found = sorted(root.glob("*/curves/*/curves.csv.gz"))
    assert found
    lives = 0
    for path in found:
        space = get_space(path.parents[2].name)
        curves = read_curves(space.to_json(), path.parent.name, root)
        check_configs(space, {i: c["searched"] for i, c in curves.configs.items()}, "config", in_ranges=True)
        live = read_live(path.parent / LIVE_FILE, space)
        lives += live is not None and len(live) > 0
    assert lives >= 4
