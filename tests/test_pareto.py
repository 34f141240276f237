"""Several objectives (results/pareto.py and the search): the front, its hypervolume, the choice rule, the
refusals before Ray starts, and one small search of macro-F1 against trainable parameters on the wine data."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from results.pareto import (Objective, choose, front, hypervolume, pareto_mask, parse_choose, parse_objective)
from search.cli import main
from search.options import SearchOptions
from search.commands.search import run_search
from spaces import get_space
from results.errors import OptionError, UserError

F1, SIZE = Objective("val_macro_f1", "max"), Objective("trainable_params", "min")


def _trials(rows):
    return pd.DataFrame([{"trial_id": t, "outcome": o, "best_val_macro_f1": f, "trainable_params": p, "best_epoch": 1,
                          "lr": 0.01} for t, o, f, p in rows])


def test_pareto_mask_keeps_exactly_the_points_no_other_dominates():
    values = np.array([[0.9, 100], [0.8, 50], [0.85, 200], [0.7, 50], [0.9, 100], [np.nan, 1]])
    mask = pareto_mask(values, ["max", "min"])
    # (0.85, 200) is dominated by (0.9, 100); (0.7, 50) by (0.8, 50); ties both kept; a NaN never on it.
    assert mask.tolist() == [True, True, False, False, True, False]


def test_hypervolume_is_the_area_dominated_up_to_the_reference():
    # Two points, max x and min y, reference (0, 10): 0.5 * 10 + (0.8 - 0.5) * (10 - 6) = 6.2.
    assert hypervolume(np.array([[0.5, 0.0], [0.8, 6.0]]), ["max", "min"], [0.0, 10.0]) == pytest.approx(6.2)
    assert hypervolume(np.array([[-1.0, 20.0]]), ["max", "min"], [0.0, 10.0]) == 0.0


def test_front_leaves_out_stopped_and_failed_trials_and_sorts_best_primary_first():
    frame = _trials([("a", "completed", 0.80, 50), ("b", "stopped early", 0.99, 10), ("c", "completed", 0.90, 500),
                     ("d", "completed", 0.70, 600), ("e", "failed", 0.95, 5)])
    points = front(frame, [F1, SIZE])
    assert points["trial_id"].tolist() == ["c", "a"]


def test_choose_takes_the_best_primary_within_the_constraint_or_says_none_meets_it():
    points = front(_trials([("a", "completed", 0.80, 50), ("c", "completed", 0.90, 500)]), [F1, SIZE])
    chosen, rule = choose(points, [F1, SIZE], ())
    assert chosen["trial_id"] == "c" and rule == "best val_macro_f1 on the front"
    chosen, rule = choose(points, [F1, SIZE], parse_choose(["trainable_params<=100"], [F1, SIZE]))
    assert chosen["trial_id"] == "a" and "trainable_params<=100" in rule
    chosen, rule = choose(points, [F1, SIZE], parse_choose(["trainable_params<=10"], [F1, SIZE]))
    assert chosen["trial_id"] == "a" and rule.startswith("no point of the front has trainable_params<=10")


def test_choose_never_raises_on_a_front_a_bound_cannot_rank_and_says_what_it_chose():
    from results.pareto import Constraint

    points = front(_trials([("a", "completed", 0.80, 50), ("c", "completed", 0.90, 500)]), [F1, SIZE])
    for bound in (Constraint("trainable_params", ">=", float("inf")), Constraint("trainable_params", "<=", -np.inf)):
        chosen, rule = choose(points, [F1, SIZE], (bound,))
        assert chosen["trial_id"] == "c"
        assert rule.startswith(f"no point of the front has {bound}, and none can be ranked by how far it misses it; "
                               "chose the best val_macro_f1 on the front")


def test_an_objective_no_trial_reported_gives_an_empty_front_and_says_so():
    from search.commands.search import _choose_from_front

    # Best primary first, as the search hands them over.
    frame = _trials([("c", "stopped early", 0.95, np.nan), ("b", "completed", 0.90, np.nan),
                     ("a", "completed", 0.80, np.nan)])
    chosen, record = _choose_from_front(frame, frame, [F1, SIZE], (), ["lr"])
    assert chosen["trial_id"] == "c" and record["pareto"] == [] and not frame["pareto"].any()
    assert record["hypervolume"]["value"] == 0.0
    # Before: "no trial ran its whole budget", when two did.
    assert record["chosen_by"] == ("no trial that ran its whole budget reported trainable_params, so there is no "
                                   "front; chose the best primary value")
    stopped = _trials([("a", "stopped early", 0.80, 10)])
    assert _choose_from_front(stopped, stopped, [F1, SIZE], (), ["lr"])[1]["chosen_by"].startswith(
        "no trial ran its whole budget, so there is no front")


@pytest.mark.parametrize("front_, fragment", [
    ({"t1": {}}, r"'pareto' must be a list of points; got dict"),
    (["t1"], r"'pareto' entry 0 must be an object with 'trial_id' and 'config'; got 't1'"),
    ([{"trial_id": "t0", "config": {}}, {"trial_id": "t1"}],
     r"'pareto' entry 1 \(trial t1\) must be an object with 'trial_id' and 'config'"),
], ids=["dict", "string", "no-config"])
def test_a_hand_edited_front_is_one_line_naming_the_file_and_the_entry(tmp_path, front_, fragment):
    from results.best_file import read_config_record

    path = tmp_path / "best.json"
    path.write_text(json.dumps({"config": {"lr": 0.1}, "pareto": front_}))
    with pytest.raises(OptionError, match=rf"^--point t1: config file {path}: {fragment}.*; .*\.$") as err:
        read_config_record(path, "t1")
    assert "\n" not in str(err.value)


def test_a_constraint_on_the_primary_reads_its_best_value():
    points = front(_trials([("a", "completed", 0.80, 50), ("c", "completed", 0.90, 500)]), [F1, SIZE])
    chosen, rule = choose(points, [F1, SIZE], parse_choose(["val_macro_f1<=0.85"], [F1, SIZE]))
    assert chosen["trial_id"] == "a" and "val_macro_f1<=0.85" in rule


def test_the_reference_corner_lies_beyond_the_worst_values_so_a_constant_objective_still_scores():
    from results.pareto import reference_point

    values = np.array([[0.5, 100.0], [0.9, 100.0]])
    reference = reference_point(values, ["max", "min"])
    assert reference == pytest.approx([0.46, 110.0])
    assert hypervolume(values, ["max", "min"], reference) == pytest.approx((0.9 - 0.46) * 10.0)


def test_a_resumed_search_keeps_its_objectives_and_refuses_others(tmp_path):
    from search.commands.search import _resumed_objectives

    saved = tmp_path / "s.objectives.json"
    saved.write_text(json.dumps({"objectives": ["trainable_params:min"], "choose": ["trainable_params<=10"]}))
    kept = _resumed_objectives(SearchOptions(space="wine_mlp", name="s", resume=True), saved)
    assert kept.objectives == ("trainable_params:min",) and kept.choose == ("trainable_params<=10",)
    with pytest.raises(OptionError, match=r"began with --objective \['trainable_params:min'\]"):
        _resumed_objectives(SearchOptions(space="wine_mlp", name="s", resume=True, objectives=("total_params:min",)),
                            saved)


@pytest.mark.parametrize("text, fragment", [
    ("trainable_params", "NAME:min or NAME:max"),
    ("val_macro_f1:max", "already the space's metric"),
    ("flops:min", "unknown objective 'flops'"),
])
def test_a_bad_objective_is_refused_naming_it(text, fragment):
    with pytest.raises(OptionError, match=fragment):
        parse_objective(text, "val_macro_f1")


@pytest.mark.parametrize("texts, fragment", [
    (["trainable_params<50000"], "NAME<=VALUE or NAME>=VALUE"),
    (["total_params<=10"], "'total_params' is not an objective of this search"),
    # Before: accepted, and after the whole budget choose() raised, so neither best.json nor trials.csv was written.
    (["trainable_params>=1e999"], r"^--choose 'trainable_params>=1e999': the bound must be a finite number; got "
                                  r"'1e999' \(inf\)\.$"),
    (["trainable_params<=-1e999"], r"the bound must be a finite number; got '-1e999' \(-inf\)"),
])
def test_a_bad_choice_rule_is_refused_naming_it(texts, fragment):
    with pytest.raises(OptionError, match=fragment):
        parse_choose(texts, [F1, SIZE])


@pytest.mark.parametrize("extra, fragment", [
    (dict(choose=("trainable_params<=10",)), "--choose picks a point of a Pareto front"),
    (dict(scheduler="moasha"), "--scheduler moasha ranks trials by Pareto front"),
    (dict(objectives=("trainable_params:min",), sampler="gp"), "--sampler gp ranks trials by one metric"),
    (dict(objectives=("trainable_params:min",), scheduler="asha-curve"), "asha-curve extrapolates one metric"),
    (dict(objectives=("trainable_params:min",), warm_start="earlier"), "starts cold"),
    (dict(objectives=("trainable_params:min", "trainable_params:max")), "already an objective"),
])
def test_contradicting_options_are_refused_before_anything_is_read(extra, fragment, tmp_path):
    with pytest.raises(OptionError, match=fragment):
        run_search(SearchOptions(space="wine_mlp", trials=2, storage=tmp_path / "ray", results_root=tmp_path, **extra))
    assert not (tmp_path / "ray").exists()


def test_a_space_with_a_bad_objective_is_refused_at_load(tmp_path, monkeypatch):
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "bad_objective.py").write_text(textwrap.dedent("""
        from spaces import Space, loguniform
        SPACE = Space(model="mlp", data="wine", params={"lr": loguniform(1e-3, 1e-2)},
                      objectives=(("latency", "min"),))
    """))
    monkeypatch.setenv("SPECTUNE_PATH", str(tmp_path))
    with pytest.raises(UserError, match=r"spaces/bad_objective.py: objectives: unknown objective 'latency'"):
        get_space("bad_objective")


MO_SPACE = """
from spaces import Space, choice, integers, loguniform

SPACE = Space(
    model="mlp", data="wine",
    params={"lr": loguniform(3e-3, 3e-2), "width": choice([8, 32, 128]), "depth": integers(1, 3)},
    fixed={"loss": "ce", "scheduler": "cosine", "warmup_epochs": 0, "eta_min": 0.0, "batch_size": 32, "epochs": 4},
    objectives=(("trainable_params", "min"),),
    max_epochs=4, grace_period=2, reduction_factor=2, startup_trials=3,
)
"""


def test_a_two_objective_search_writes_its_front_the_chosen_point_and_the_report(ray_session, tmp_path, monkeypatch,
                                                                               capsys):
    (tmp_path / "pairs" / "spaces").mkdir(parents=True)
    (tmp_path / "pairs" / "spaces" / "mo_wine.py").write_text(textwrap.dedent(MO_SPACE))
    monkeypatch.setenv("SPECTUNE_PATH", str(tmp_path / "pairs"))
    uri = f"sqlite:///{tmp_path / 'ml.db'}"
    outcome = run_search(SearchOptions(space="mo_wine", trials=6, seed=0, concurrency=1, name="mo",
                                       storage=tmp_path / "ray", results_root=tmp_path / "results", tracking_uri=uri,
                                       choose=("trainable_params<=1000",)))
    printed = capsys.readouterr().out
    best, frame = outcome.best, pd.read_csv(outcome.results_dir / "trials.csv")
    assert [o["name"] for o in best["objectives"]] == ["val_macro_f1", "trainable_params"]
    done = frame[frame["outcome"] == "completed"]
    values = done[["best_val_macro_f1", "trainable_params"]].to_numpy()
    on_front = set(done["trial_id"][pareto_mask(values, ["max", "min"])])
    assert {p["trial_id"] for p in best["pareto"]} == on_front == set(frame["trial_id"][frame["pareto"]])
    # The chosen point is on the front, and the best macro-F1 there within the budget when one meets it.
    fits = [p for p in best["pareto"] if p["objectives"]["trainable_params"] <= 1000]
    assert best["trial_id"] in on_front
    if fits:
        assert best["best_value"] == max(p["objectives"]["val_macro_f1"] for p in fits)
        assert best["chosen_by"] == "best val_macro_f1 on the front with trainable_params<=1000"
    else:
        assert best["chosen_by"].startswith("no point of the front")
    chosen = next(p for p in best["pareto"] if p["trial_id"] == best["trial_id"])
    assert {k: best["config"][k] for k in chosen["searched"]} == chosen["searched"]
    assert best["hypervolume"]["value"] > 0 and "Pareto front" in printed and "objectives: val_macro_f1:max" in printed
    assert "scheduler moasha (grace 2, reduction 2)" in printed   # the default with several objectives
    # Optuna's study has both objectives (and only trials that ran their budget hold values).
    study = optuna.load_study(study_name="mo", storage=f"sqlite:///{outcome.results_dir / 'study.db'}")
    assert len(study.directions) == 2
    assert {t.values[1] for t in study.trials if t.values} == set(done["trainable_params"])
    assert (outcome.results_dir / "pareto.png").exists() and (outcome.results_dir / "hypervolume.png").exists()
    assert "Pareto front:" in (outcome.results_dir / "report.html").read_text()
    # MLflow holds every objective per trial, and the search's objectives and rule.
    client = MlflowClient(uri)
    parent = client.get_run(best["mlflow"]["parent_run_id"])
    assert parent.data.params["objectives"] == "val_macro_f1:max, trainable_params:min"
    assert parent.data.params["choose"] == "trainable_params<=1000"
    child = client.get_run(best["mlflow"]["run_id"])
    assert child.data.metrics["trainable_params"] == chosen["objectives"]["trainable_params"]
    assert json.loads((outcome.results_dir / "space.json").read_text())["objectives"] == [["trainable_params", "min"]]
    # Any point of the front retrains from best.json; a point not on it is refused naming the ones that are.
    other = best["pareto"][-1]
    out = tmp_path / "point.json"
    main(["train", "--config", str(outcome.results_dir / "best.json"), "--point", other["trial_id"], "--epochs", "1",
          "--json-out", str(out)])
    trained = json.loads(out.read_text())
    assert {k: trained["config"][k] for k in other["searched"]} == other["searched"]
    assert {k: v for k, v in trained["config"].items() if k != "epochs"} == {
        k: v for k, v in other["config"].items() if k != "epochs"}
    capsys.readouterr()
    assert main(["train", "--config", str(outcome.results_dir / "best.json"), "--point", "nope",
                 "--json-out", str(out)]) == 2
    assert "--point nope: not a point of the front" in capsys.readouterr().err
    # Confirmation re-ranks by one metric: it refuses instead of undoing the choice from the front.
    from search.commands.confirm import run_confirm
    from search.options import ConfirmOptions

    with pytest.raises(OptionError, match="has several objectives; confirm re-ranks"):
        run_confirm(ConfirmOptions(space="mo_wine", name="mo", results_root=tmp_path / "results"))


# --- the front replay: does ASHA on the primary metric lose the front? ---------------------------------------

def test_a_replayed_searchs_front_is_over_the_trials_that_ran_their_budget():
    from search.replay.simulate import ReplayedTrial, ReplayLog, Strategy
    from search.replay.front import replay_front

    sizes = {0: {"trainable_params": 100.0}, 1: {"trainable_params": 10.0}, 2: {"trainable_params": 50.0},
             3: {"trainable_params": 5.0}}
    log = ReplayLog(Strategy("s", trials=5), 0, [
        ReplayedTrial("a", 0, 0, 0.0, epochs=9, best=0.9, outcome="completed"),
        ReplayedTrial("b", 1, 0, 0.0, epochs=9, best=0.6, outcome="completed"),
        ReplayedTrial("c", 2, 0, 0.0, epochs=9, best=0.5, outcome="completed"),   # dominated by b
        ReplayedTrial("d", 3, 0, 0.0, epochs=3, best=0.7, outcome="stopped early"),  # would dominate b
        ReplayedTrial("e", 2, 1, 0.0, epochs=0, best=float("nan"), outcome="failed")])
    assert replay_front(log, sizes, [F1, SIZE]) == [0, 1]
    with pytest.raises(AssertionError, match="optuna#3450"):
        Strategy("peer", trials=4, runner="optuna", objectives=(("trainable_params", "min"),))


def test_the_front_replay_of_the_wine_recording_scores_each_strategy_against_the_attainable_front(tmp_path):
    import shutil
    from pathlib import Path

    from search.replay.study import ReplayOptions, run_replay

    recorded = Path(__file__).resolve().parents[1] / "results" / "wine_mlp" / "curves" / "cpu-c32x3"
    shutil.copytree(recorded, tmp_path / "results" / "wine_mlp" / "curves" / "cpu-c32x3",
                    ignore=shutil.ignore_patterns("replays"))
    out = run_replay(ReplayOptions(SearchOptions(space="wine_mlp", trials=8, results_root=tmp_path / "results",
                                                 tracking_uri=f"sqlite:///{tmp_path / 'ml.db'}",
                                                 objectives=("trainable_params:min",)),
                                   curves="cpu-c32x3", repeats=3))
    repeats, table = out["repeats"], out["table"]
    assert len(table) == 9 and (repeats.groupby("strategy").size() == 3).all()
    # Random search's fronts are replayed exactly; MO-TPE's and NSGA-II's, served by the nearest recorded
    # config, are labelled as not judged.
    served = dict(zip(table["strategy"], table["served"]))
    assert served["random + MO-ASHA"] == "exact" and served["MO-TPE (FIFO)"] == served["NSGA-II + ASHA"] \
        == "nearest config, not judged"
    assert repeats["hv_share"].between(0.0, 1.0 + 1e-9).all() and (repeats["hv_share"] > 0).any()
    # FIFO never stops a trial.
    fifo = repeats[repeats["strategy"].str.endswith("(FIFO)")]
    assert (fifo["stopped"] == 0).all()
    ideal = out["summary"]["true_front_configs"]
    assert ideal and (repeats["ideal_found"] <= len(ideal)).all()
    assert {p.name for p in out["out"].iterdir()} == {"repeats.csv", "table.md", "front_replay.png", "study.json"}


def test_pareto_ranks_peel_fronts_in_order():
    from results.pareto import pareto_ranks

    values = np.array([[0.9, 100], [0.8, 50], [0.85, 200], [0.7, 50], [0.6, 300]])
    assert pareto_ranks(values, ["max", "min"]).tolist() == [0, 0, 1, 1, 2]


def test_moasha_keeps_a_small_model_that_asha_on_the_primary_metric_stops():
    """One rung at epoch 2, reduction factor 2, three trials recorded there (large models, F1 0.8-0.9); a
    fourth arrives with a worse F1 but a tenth of the parameters: ASHA on F1 stops it, MO-ASHA does not
    (it is on the first front), and both stop a large model that is worse on both."""
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    from search.strategy.schedulers import make_scheduler

    def run(name, objectives=()):
        scheduler = make_scheduler(name, max_epochs=8, grace_period=2, reduction_factor=2, objectives=objectives)
        scheduler.set_search_properties("best_val_macro_f1", "max")
        decisions = {}
        for trial_id, f1, size in (("a", 0.9, 1000), ("b", 0.85, 1000), ("c", 0.8, 1000), ("small", 0.7, 100),
                                   ("worse", 0.75, 2000)):
            trial = SimpleNamespace(trial_id=trial_id)
            scheduler.on_trial_add(None, trial)
            decisions[trial_id] = scheduler.on_trial_result(None, trial, {
                "training_iteration": 2, "best_val_macro_f1": f1, "trainable_params": float(size)})
        return decisions

    asha, moasha = run("asha"), run("moasha", [("trainable_params", "min")])
    assert moasha == run("moasha", [("trainable_params", "min")])   # no randomness in the rule
    assert asha["small"] == TrialScheduler.STOP and moasha["small"] == TrialScheduler.CONTINUE
    assert asha["worse"] == moasha["worse"] == TrialScheduler.STOP
    assert asha["a"] == moasha["a"] == TrialScheduler.CONTINUE


def test_moasha_rungs_survive_a_restart_through_its_state_file(tmp_path):
    """The scheduler a resumed search builds reads the rungs the first one wrote, and decides as it would have."""
    from types import SimpleNamespace

    from search.strategy.schedulers import make_scheduler

    def fresh():
        s = make_scheduler("moasha", max_epochs=8, grace_period=2, reduction_factor=2, state=tmp_path / "a.pkl",
                           objectives=[("trainable_params", "min")])
        s.set_search_properties("best_val_macro_f1", "max")
        return s

    def report(s, trial_id, f1, size):
        trial = SimpleNamespace(trial_id=trial_id)
        s.on_trial_add(None, trial)
        return s.on_trial_result(None, trial, {"training_iteration": 2, "best_val_macro_f1": f1,
                                              "trainable_params": float(size)})

    first = fresh()
    for trial_id, f1, size in (("a", 0.9, 1000), ("b", 0.85, 1000), ("c", 0.8, 1000)):
        report(first, trial_id, f1, size)
    restored = fresh()
    assert report(restored, "d", 0.82, 2000) == report(first, "d", 0.82, 2000)
    rung = dict(restored._brackets[0]._rungs)[2]
    assert set(rung) == {"a", "b", "c", "d"} and list(rung["a"]) == [0.9, -1000.0]
