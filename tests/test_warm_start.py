"""Warm-starting a search from earlier ones (search/strategy/warm_start.py, spaces/_diff.py): the space diff, which
earlier trials are carried and why the others are not (pure functions, no Ray), the refusals, and one
small search warm-started from another whose space changed."""

from __future__ import annotations

import json
import math
import os
import textwrap
from collections import Counter
from pathlib import Path

import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from results.errors import OptionError
from search.cli import main
from search.options import SearchOptions
from search.strategy.searcher import DefineByRun, make_searcher
from search.commands.search import run_search
from search.strategy.warm_start import (Carried, EarlierSearch, Side, WarmStartError, WarmStartPlan, carry_trial, carry_trials,
                               find_search, load_earlier, optuna_params, parse_names, plan_warm_start,
                               space_defaults)
from spaces import choice, diff_spaces, get_space, integers, loguniform, powers_of_two, uniform, when
from spaces._space import Space

NAN = float("nan")


def _json(params, fixed=None, **settings):
    return {"model": "mlp", "data": "wine", "metric": "val_macro_f1", "mode": "max", "max_epochs": 10,
            "params": {k: d.to_json() for k, d in params.items()}, "fixed": fixed or {}, **settings}


def _kinds(changes):
    return {(c.key, c.kind) for c in changes}


# --- the space diff ----------------------------------------------------------------------------------------

def test_diff_names_narrowed_widened_moved_and_scale_changes():
    old = _json({"lr": loguniform(1e-4, 1e-2), "dropout": uniform(0.0, 0.5), "depth": integers(1, 4),
                 "wd": loguniform(1e-6, 1e-3)})
    new = _json({"lr": loguniform(3e-4, 3e-3), "dropout": uniform(0.0, 0.8), "depth": integers(2, 6),
                 "wd": uniform(1e-6, 1e-3)})
    changes = diff_spaces(old, new)
    assert _kinds(changes) == {("lr", "narrowed"), ("dropout", "widened"), ("depth", "moved"), ("wd", "scale")}
    assert "lr: narrowed, [0.0001, 0.01] -> [0.0003, 0.003]" in [c.describe() for c in changes]


def test_diff_names_choices_added_and_removed_and_type_changes():
    old = _json({"width": choice([16, 32, 64]), "act": choice(["relu", "gelu"]), "bs": choice([8, 16])})
    new = _json({"width": choice([32, 64, 128]), "act": choice(["relu", "gelu"]), "bs": integers(8, 16)})
    changes = diff_spaces(old, new)
    assert _kinds(changes) == {("width", "choices added"), ("width", "choices removed"), ("bs", "type")}
    assert "width: choices added [128]" in [c.describe() for c in changes]
    assert "width: choices removed [16]" in [c.describe() for c in changes]


def test_diff_names_added_and_dropped_keys_fixed_values_conditions_and_settings():
    old = _json({"lr": loguniform(1e-4, 1e-2), "act": choice(["relu", "tanh"]), "sched": choice(["a", "b"]),
                 "warm": when("sched", ["a"], integers(0, 3))}, fixed={"depth": 2, "loss": "ce"})
    new = _json({"lr": loguniform(1e-4, 1e-2), "depth": integers(1, 3), "sched": choice(["a", "b"]),
                 "warm": when("sched", ["a", "b"], integers(0, 3))}, fixed={"act": "relu", "loss": "focal"},
                max_epochs=20)
    changes = diff_spaces(old, new)
    assert _kinds(changes) == {("max_epochs", "setting"), ("depth", "added"), ("act", "dropped"),
                               ("warm", "condition"), ("loss", "fixed")}
    lines = [c.describe() for c in changes]
    assert "depth: added, int [1, 3] (earlier: fixed at 2)" in lines
    assert "act: dropped, was choice ['relu', 'tanh'] (now: fixed at 'relu')" in lines
    assert "loss: fixed, fixed at 'ce' -> fixed at 'focal'" in lines
    assert diff_spaces(old, old) == []


# --- what is carried, and why not -------------------------------------------------------------------------

OLD = Side({"lr": loguniform(1e-4, 1e-2), "width": choice([16, 32, 64]), "act": choice(["relu", "tanh"]),
            "sched": choice(["cosine", "step"]), "step": when("sched", ["step"], integers(2, 8))},
           {"depth": 2, "act": "relu", "step": 5, "loss": "ce", "epochs": 10})
NEW = Side({"lr": loguniform(1e-3, 1e-2), "width": choice([32, 64, 128]), "depth": integers(1, 3),
            "sched": choice(["cosine", "step"]), "step": when("sched", ["step"], integers(2, 8))},
           {"depth": 2, "act": "relu", "step": 5, "loss": "ce", "epochs": 20})


def _row(**kw):
    row = {"trial_id": "t", "outcome": "completed", "epochs": 10, "best_val_macro_f1": 0.9, "lr": 3e-3,
           "width": 32, "act": "relu", "sched": "cosine", "step": NAN}
    return {**row, **kw}


def test_a_trial_inside_the_new_space_is_carried_with_new_keys_filled():
    point, reason, clipped = carry_trial(_row(), OLD, NEW)
    # depth was fixed at 2 before; the new space searches it from 1 to 3, so 2 fills it. An inactive
    # conditional key stays out, and epochs (a run setting) differing is no reason.
    assert reason is None and clipped == ()
    assert point == {"lr": 3e-3, "width": 32, "depth": 2, "sched": "cosine"}


def test_csv_types_are_read_back_as_the_domains_types():
    point, reason, _ = carry_trial(_row(width=64.0, sched="step", step=4.0), OLD, NEW)
    assert reason is None and point["width"] == 64 and type(point["width"]) is int and point["step"] == 4
    flags = Side({"bn": choice([False, True])}, {})
    assert carry_trial({"bn": "True"}, flags, flags)[0] == {"bn": True}


def test_values_outside_a_narrowed_range_are_left_out_or_clipped():
    assert carry_trial(_row(lr=2e-4), OLD, NEW)[1] == "lr outside the new range [0.001, 0.01]"
    point, reason, clipped = carry_trial(_row(lr=2e-4), OLD, NEW, clip=True)
    assert reason is None and point["lr"] == 1e-3 and clipped == ("lr",)


def test_a_removed_choice_is_left_out_even_with_clip():
    assert carry_trial(_row(width=16), OLD, NEW, clip=True)[1] == "width = 16 is no longer a choice"


def test_a_value_off_a_float_ranges_new_step_is_left_out_and_the_rest_reach_the_study():
    old = Side({"dropout": uniform(0.0, 0.5)}, {})
    new = Side({"dropout": uniform(0.0, 0.5, step=0.1)}, {})
    # 0.1 * 3 read back from a CSV as 0.30000000000000004 lies on the grid; 0.13 does not, clip or not.
    assert carry_trial({"dropout": 0.1 * 3}, old, new) == ({"dropout": 0.1 * 3}, None, ())
    for clip in (False, True):
        reason = carry_trial({"dropout": 0.13}, old, new, clip)[1]
        assert reason == "dropout = 0.13 does not fit uniform [0, 0.5] step 0.1"
    rows = [{"trial_id": str(i), "outcome": "completed", "epochs": 3, "best_m": i / 10, "dropout": v}
            for i, v in enumerate([0.13, 0.2, 0.1 * 3, 0.47])]
    carried, why = carry_trials("first", rows, old, new, "m")
    assert [c.params["dropout"] for c in carried] == [0.2, 0.1 * 3] and sum(why.values()) == 2
    plan = WarmStartPlan(("first",), {"first": []}, tuple(carried), {"first": why}, {"first": len(rows)})
    # Optuna's create_trial accepts every carried trial (an off-grid one raised ValueError here).
    assert [t.params for t in plan.frozen_trials(new.params)] == [{"dropout": 0.2}, {"dropout": 0.1 * 3}]


def test_clip_moves_a_value_beyond_a_stepped_range_to_its_last_step():
    old, new = Side({"dropout": uniform(0.0, 1.5)}, {}), Side({"dropout": uniform(0.0, 1.0, step=0.3)}, {})
    with pytest.warns(UserWarning, match="replaced with \\[0.0, 0.9\\]"):     # Optuna ends the range at 0.9
        assert carry_trial({"dropout": 1.2}, old, new, clip=True) == ({"dropout": 0.9}, None, ("dropout",))


def test_clip_moves_only_values_beyond_the_bounds_and_an_off_grid_value_does_not_fit():
    old = Side({"width": integers(8, 128)}, {})
    new = Side({"width": powers_of_two(8, 64)}, {})
    domain = "powers of two [8, 64] (searched as the integer log2)"
    for clip in (False, True):
        # 24 lies inside [8, 64]: not outside the range, and not to be carried as 64 with the score 24 earned.
        assert carry_trial({"width": 24}, old, new, clip) == ({}, f"width = 24 does not fit {domain}", ())
    assert carry_trial({"width": 32}, old, new) == ({"width": 32}, None, ())
    assert carry_trial({"width": 128}, old, new)[1] == "width outside the new range [8, 64]"
    assert carry_trial({"width": 128}, old, new, clip=True) == ({"width": 64}, None, ("width",))


def test_a_dropped_key_keeps_the_trials_at_its_new_fixed_value():
    assert carry_trial(_row(act="relu"), OLD, NEW)[1] is None
    assert carry_trial(_row(act="tanh"), OLD, NEW)[1] == "dropped key act not at the new value 'relu'"


def test_a_new_key_whose_earlier_value_lies_outside_its_range_is_left_out():
    new = Side({**NEW.params, "depth": integers(3, 5)}, NEW.constants)
    assert carry_trial(_row(), OLD, new)[1] == "new key depth outside the new range [3, 5]"


def test_a_changed_fixed_value_leaves_every_trial_out():
    new = Side(NEW.params, {**NEW.constants, "loss": "focal"})
    assert carry_trial(_row(), OLD, new)[1] == "loss ran at another value than the new 'focal'"


def test_a_narrowed_condition_leaves_out_trials_that_searched_the_key_where_it_is_now_fixed():
    new = Side({**NEW.params, "sched": choice(["cosine", "step", "plateau"]),
                "step": when("sched", ["plateau"], integers(2, 8))}, NEW.constants)
    assert carry_trial(_row(sched="step", step=5), OLD, new)[1] is None     # ran at the new fixed 5
    assert carry_trial(_row(sched="step", step=3), OLD, new)[1] == "step ran at another value than the new 5"


def test_failed_and_empty_trials_are_left_out_and_stopped_ones_carried_as_pruned():
    rows = [_row(trial_id="a"), _row(trial_id="b", outcome="stopped early", epochs=3, best_val_macro_f1=0.5),
            _row(trial_id="c", outcome="failed"), _row(trial_id="d", best_val_macro_f1=NAN),
            _row(trial_id="e", lr=5e-4), _row(trial_id="f", lr=6e-4)]
    carried, why = carry_trials("first", rows, OLD, NEW, "val_macro_f1")
    assert [(c.trial_id, c.pruned, c.epochs, c.value) for c in carried] == [("a", False, 10, 0.9),
                                                                           ("b", True, 3, 0.5)]
    assert why == {"failed": 1, "reported no epoch": 1, "lr outside the new range [0.001, 0.01]": 2}


def test_carried_params_use_the_new_distributions_as_the_searcher_samples_them():
    params = {"lr": loguniform(1e-3, 1e-2), "rank": powers_of_two(2, 16), "width": choice([32, 64]),
              "sched": choice(["a", "b"]), "step": when("sched", ["b"], integers(2, 8))}
    study = optuna.create_study()
    trial = study.ask()
    DefineByRun(params)(trial)
    point = {"lr": trial.params["lr"], "rank": 2 ** trial.params["rank_log2"], "width": trial.params["width"],
             "sched": trial.params["sched"], **({"step": trial.params["step"]} if "step" in trial.params else {})}
    values, dists = optuna_params(params, point)
    assert values == trial.params and dists == trial.distributions


def test_a_changed_categorical_reaches_the_study_and_counts_toward_tpe_start_up():
    # The earlier search offered width 16 too (Optuna alone refuses such a study, optuna#2328): its trials
    # reach the study under the new choices.
    params = {"lr": loguniform(1e-3, 1e-2), "width": choice([32, 64, 128])}
    carried = tuple(Carried("first", str(i), {"lr": 1e-3 * (i + 1), "width": 32}, i / 10, i == 3, 4)
                    for i in range(4))
    plan = WarmStartPlan(("first",), {"first": []}, carried, {"first": Counter()},
                         {"first": 6})
    searcher = make_searcher("tpe", 0, 10, 1, "m", "max", [], params, startup=4,
                             carried=plan.frozen_trials(params)).searcher
    trials = searcher._ot_study.trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3 + ["PRUNED"]
    assert trials[3].intermediate_values == {4: 0.3} and trials[0].user_attrs["warm_start"] == "first"
    assert "models the space from the first new trial" in plan.describe(4)[-1]
    assert "2 random trials remain" in plan.describe(6)[-1]
    assert searcher.suggest("new")["width"] in (32, 64, 128)


# --- refusals ------------------------------------------------------------------------------------------------

def _earlier(root: Path, space: Space, name: str, rows, fingerprint="abc", **best):
    folder = root / space.name / name
    folder.mkdir(parents=True)
    (folder / "space.json").write_text(json.dumps(space.to_json()))
    config = {**space_defaults(space), **{k: v for k, v in rows[0].items() if k in space.params}}
    (folder / "best.json").write_text(json.dumps({"metric": space.metric, "mode": space.mode, "config": config,
                                                  "data_options": {"fingerprint": fingerprint}, **best}))
    pd.DataFrame(rows).to_csv(folder / "trials.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def wine():
    return get_space("wine_mlp")


def _wine_row(space, **kw):
    return {"trial_id": "t0", "outcome": "completed", "epochs": 60, "best_val_macro_f1": 0.95,
            **space.start[0], **kw}


def test_an_unknown_name_lists_the_searches_found(tmp_path, wine):
    _earlier(tmp_path, wine, "first", [_wine_row(wine)])
    with pytest.raises(WarmStartError, match=r"--warm-start nope: no finished search .*\(found: first\)"):
        find_search("nope", "wine_mlp", tmp_path)
    assert find_search("first", "wine_mlp", tmp_path) == find_search("wine_mlp/first", "other", tmp_path)
    with pytest.raises(WarmStartError, match="names a search twice"):
        parse_names("a,b,a")


@pytest.mark.parametrize("ref", ["../wine_mlp/outside", "wine_mlp/../../wine_mlp/outside"])
def test_a_name_that_leads_outside_the_results_folder_is_refused(tmp_path, wine, ref):
    # A finished search beside the results folder: reachable by "..", never to be read.
    _earlier(tmp_path, wine, "outside", [_wine_row(wine)])
    (tmp_path / "results").mkdir()
    with pytest.raises(OptionError, match=r"--warm-start must be letters, digits"):
        load_earlier(ref, wine, tmp_path / "results")


def test_another_metric_or_mode_is_refused(tmp_path, wine):
    _earlier(tmp_path, wine, "loss", [_wine_row(wine)], metric="val_loss", mode="min")
    with pytest.raises(WarmStartError, match=r"it optimised val_loss \(min\) and space wine_mlp optimises "
                                             r"val_macro_f1 \(max\)"):
        load_earlier("loss", wine, tmp_path)


def test_a_space_sharing_no_key_is_refused(tmp_path, wine):
    other = Space(model="mlp", data="wine", params={"shrink": uniform(0.2, 1.0)}, name="other")
    _earlier(tmp_path, other, "far", [{"trial_id": "t", "outcome": "completed", "shrink": 0.5}])
    with pytest.raises(WarmStartError, match=r"space other searched \['shrink'\], which shares no key"):
        load_earlier("far", wine, tmp_path)


def test_other_data_is_refused_unless_told_and_resume_is_refused(tmp_path, wine):
    _earlier(tmp_path, wine, "first", [_wine_row(wine), _wine_row(wine, trial_id="t1", lr=5e-2)])
    earlier = load_earlier("first", wine, tmp_path)
    kw = {"scaling": {"train_per_class": 20}, "max_epochs": 60}
    with pytest.raises(WarmStartError, match=r"ran on other data \(data fingerprint abc -> xyz \(scaling: "
                                             r"train_per_class None -> 20\)\); .*--warm-start-any-data"):
        plan_warm_start(earlier, wine, fingerprint="xyz", **kw)
    plan = plan_warm_start(earlier, wine, fingerprint="xyz", any_data=True, **kw)
    assert len(plan.carried) == 1 and plan.left_out["first"] == {"lr outside the new range [0.0001, 0.03]": 1}
    assert plan.changes["first"][-1].startswith("data fingerprint abc -> xyz")
    with pytest.raises(WarmStartError, match="drop --warm-start"):
        load_earlier("first", wine, tmp_path, resume=True)


def test_a_plan_over_an_unchanged_space_carries_every_finished_trial(tmp_path, wine):
    """The constants read back from best.json match the space's: nothing is left out spuriously."""
    rows = [_wine_row(wine, trial_id=f"t{i}", batch_norm=str(bool(i % 2)), width=float(64)) for i in range(3)]
    _earlier(tmp_path, wine, "first", rows)
    earlier = load_earlier("first", wine, tmp_path)
    plan = plan_warm_start(earlier, wine, fingerprint="abc", scaling={}, max_epochs=60)
    assert len(plan.carried) == 3 and plan.changes["first"] == []
    assert plan.not_run(wine.start) == [] and plan.record()["per_search"]["first"]["carried"] == 3


def test_the_cli_refuses_in_one_line_before_ray_starts(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["search", "--space", "wine_mlp", "--warm-start", "nothing-here"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --warm-start nothing-here: no finished search") and "\n" not in err
    assert main(["search", "--space", "wine_mlp", "--warm-start-clip"]) == 2
    assert "need --warm-start NAME" in capsys.readouterr().err


# --- end to end: a narrowed, changed space warm-started from a finished search ------------------------------

FIRST = """
from spaces import Space, choice, loguniform

SPACE = Space(
    model="mlp", data="wine",
    params={"lr": loguniform(1e-3, 3e-2), "width": choice([16, 32, 64]), "activation": choice(["relu", "tanh"])},
    fixed={"loss": "ce", "scheduler": "cosine", "warmup_epochs": 0, "eta_min": 0.0, "batch_size": 32, "epochs": 3},
    start=[{"lr": 1e-2, "width": 32, "activation": "relu"}],
    max_epochs=3, grace_period=1, reduction_factor=2, startup_trials=2,
)
"""
# lr narrowed, width 16 removed and 128 added, activation dropped (fixed at relu), depth added (was 2).
SECOND = """
from spaces import Space, choice, integers, loguniform

SPACE = Space(
    model="mlp", data="wine",
    params={"lr": loguniform(3e-3, 3e-2), "width": choice([32, 64, 128]), "depth": integers(1, 3)},
    fixed={"loss": "ce", "scheduler": "cosine", "warmup_epochs": 0, "eta_min": 0.0, "batch_size": 32, "epochs": 3,
           "activation": "relu"},
    start=[{"lr": 1e-2, "width": 32, "depth": 2}],
    max_epochs=3, grace_period=1, reduction_factor=2, startup_trials=2,
)
"""


@pytest.fixture()
def ws_spaces(tmp_path, monkeypatch):
    (tmp_path / "pairs" / "spaces").mkdir(parents=True)
    for name, text in (("ws_first", FIRST), ("ws_second", SECOND)):
        (tmp_path / "pairs" / "spaces" / f"{name}.py").write_text(textwrap.dedent(text))
    monkeypatch.setenv("SPECTUNE_PATH", str(tmp_path / "pairs"))
    return tmp_path


def test_a_changed_space_is_warm_started_from_a_finished_search(ray_session, ws_spaces, capsys):
    root = ws_spaces
    common = dict(storage=root / "ray", results_root=root / "results", tracking_uri=f"sqlite:///{root / 'ml.db'}",
                  seed=0, concurrency=1)
    run_search(SearchOptions(space="ws_first", trials=4, name="first", **common))
    first = pd.read_csv(root / "results" / "ws_first" / "first" / "trials.csv")
    fits = first[(first["outcome"] != "failed") & (first["lr"] >= 3e-3) & (first["width"] != 16)
                 & (first["activation"] == "relu")]
    capsys.readouterr()

    outcome = run_search(SearchOptions(space="ws_second", trials=3, name="second", warm_start="first", **common))
    printed = capsys.readouterr().out
    carried = outcome.best["warm_start"]
    assert carried["searches"] == ["first"] and carried["carried"] == len(fits) >= 1   # the start point fits
    assert carried["per_search"]["first"]["offered"] == 4
    assert sum(carried["per_search"]["first"]["not_carried"].values()) == 4 - len(fits)
    assert f"carried {len(fits)} of 4 trials" in printed and "lr: narrowed, [0.001, 0.03] -> [0.003, 0.03]" in printed
    # The Optuna study held the carried trials, in the new space's terms, before its first new suggestion.
    study = optuna.load_study(study_name="second", storage=f"sqlite:///{outcome.results_dir / 'study.db'}")
    old = [t for t in study.trials if t.user_attrs.get("warm_start") == "first"]
    new = [t for t in study.trials if "warm_start" not in t.user_attrs]
    assert len(old) == len(fits) and len(new) == 3
    assert all(set(t.params) == {"lr", "width", "depth"} and t.params["depth"] == 2 for t in old)
    assert max(t.datetime_complete for t in old) <= min(t.datetime_start for t in new)
    # The start point ran in the first search: carried, not run again.
    assert not any(math.isclose(r, 1e-2) for r in outcome.trials["lr"])
    run = MlflowClient(common["tracking_uri"]).get_run(outcome.best["mlflow"]["parent_run_id"])
    assert run.data.params["warm_start"] == "first" and run.data.params["warm_start_carried"] == str(len(fits))
    assert os.environ["SPECTUNE_PATH"] == str(root / "pairs")


# --- issue 28: damaged files and values ----------------------------------------------------------------------

def _plan(root: Path, space: Space, clip: bool = False) -> WarmStartPlan:
    return plan_warm_start(load_earlier("first", space, root), space, fingerprint="abc", scaling={}, max_epochs=60,
                           clip=clip)


def test_a_trials_csv_whose_last_row_was_cut_does_not_carry_default_values(tmp_path, wine):
    rows = [_wine_row(wine, trial_id="t0", width=64, dropout=0.1, best_val_macro_f1=0.80),
            _wine_row(wine, trial_id="t1", width=128, dropout=0.3, best_val_macro_f1=0.91)]
    folder = _earlier(tmp_path, wine, "first", rows)
    text = (folder / "trials.csv").read_text()
    # The copy stopped after t1's score: width and dropout, which came later in the line, never arrived.
    (folder / "trials.csv").write_text(text[:text.index(",0.91,") + len(",0.91,")])
    plan = _plan(tmp_path, wine)
    # Before: t1 carried with width 64 / dropout 0.1 (the defaults) and the 0.91 that 128 / 0.3 earned.
    assert [c.trial_id for c in plan.carried] == ["t0"]
    (reason,) = plan.left_out["first"]
    assert reason.startswith("the last row is cut short")


def test_a_row_missing_a_searched_value_is_left_out_saying_why(tmp_path, wine):
    rows = [_wine_row(wine, trial_id="t0"), _wine_row(wine, trial_id="t1", width=NAN)]
    _earlier(tmp_path, wine, "first", rows)
    plan = _plan(tmp_path, wine)
    assert [c.trial_id for c in plan.carried] == ["t0"]
    assert plan.left_out["first"] == {"width has no recorded value": 1}
    # A conditional key that did not apply is no missing value.
    old = Side({"sched": choice(["cosine", "step"]), "step": when("sched", ["step"], integers(2, 8))}, {"step": 5})
    assert carry_trial({"sched": "cosine", "step": NAN}, old, old)[1] is None
    assert carry_trial({"sched": "step", "step": NAN}, old, old)[1] == "step has no recorded value"


def test_a_search_of_another_model_or_data_is_refused_without_a_fingerprint(tmp_path, wine):
    other = Space(model="waveform_cnn", data="waveforms", params={"lr": loguniform(1e-4, 3e-2)}, name="wine_mlp")
    folder = _earlier(tmp_path, other, "first", [{"trial_id": "t", "outcome": "completed", "epochs": 5,
                                                  "best_val_macro_f1": 0.9, "lr": 1e-3}])
    best = json.loads((folder / "best.json").read_text())
    del best["data_options"]
    (folder / "best.json").write_text(json.dumps(best))
    with pytest.raises(WarmStartError) as caught:
        load_earlier("first", wine, tmp_path)
    assert str(caught.value) == ("--warm-start first: it searched model waveform_cnn on data waveforms and space "
                                 "wine_mlp trains model mlp on data wine; warm-start only from a search of the same "
                                 "model and data.")


@pytest.mark.parametrize("damage, match", [
    (lambda f: (f / "trials.csv").write_text(""), r"trials\.csv .* is empty"),
    (lambda f: (f / "trials.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe"), r"trials\.csv .* is not a CSV"),
    (lambda f: (f / "best.json").write_bytes(b"\x1f\x8b\x08\x00\xff\xfe\x00"), r"best\.json .* is not a text JSON"),
    (lambda f: (f / "best.json").write_text("[1, 2]"), r"best\.json .* holds a list, not the object"),
    (lambda f: (f / "best.json").write_text('{"metric": "val_macro_f1", "mode": "max", "config": "lr=0.1"}'),
     r"best\.json .*: 'config' is str, not an object"),
    (lambda f: (f / "space.json").write_text('"wine"'), r"space\.json .* holds a str, not the object"),
])
def test_a_damaged_earlier_search_is_one_line(tmp_path, wine, damage, match):
    damage(_earlier(tmp_path, wine, "first", [_wine_row(wine)]))
    with pytest.raises(WarmStartError, match=r"^--warm-start first: " + match) as caught:
        load_earlier("first", wine, tmp_path)
    assert "\n" not in str(caught.value) and "warm-start from another search" in str(caught.value)


def test_one_text_cell_leaves_out_only_its_row(tmp_path, wine):
    rows = [_wine_row(wine, trial_id=f"t{i}", lr=1e-3 * (i + 1)) for i in range(3)]
    rows[1]["lr"] = "about 2e-3"
    _earlier(tmp_path, wine, "first", rows)
    plan = _plan(tmp_path, wine)
    assert [c.trial_id for c in plan.carried] == ["t0", "t2"] and plan.carried[1].params["lr"] == 3e-3
    assert plan.left_out["first"] == {"lr = 'about 2e-3' is not a number": 1}


@pytest.mark.parametrize("column, text, reason", [
    ("best_val_macro_f1", "oops", "best_val_macro_f1 = 'oops' is not a number"),
    ("epochs", "oops", "epochs = 'oops' is not a number"),
    ("depth", "two", "depth = 'two' is not a number"),
])
def test_a_text_cell_in_a_score_or_epoch_column_is_a_reason_not_a_traceback(tmp_path, wine, column, text, reason):
    rows = [_wine_row(wine, trial_id=f"t{i}") for i in range(2)]
    rows[1][column] = text
    _earlier(tmp_path, wine, "first", rows)
    plan = _plan(tmp_path, wine)
    assert [c.trial_id for c in plan.carried] == ["t0"] and plan.left_out["first"] == {reason: 1}


@pytest.mark.parametrize("clip", [False, True])
def test_non_finite_and_absurd_values_never_reach_tpe(tmp_path, wine, clip):
    rows = [_wine_row(wine, trial_id="ok"), _wine_row(wine, trial_id="inf-lr", lr=math.inf),
            _wine_row(wine, trial_id="huge-lr", lr=1e9),
            _wine_row(wine, trial_id="inf-score", best_val_macro_f1=math.inf),
            _wine_row(wine, trial_id="nan-epochs", epochs=math.inf)]
    _earlier(tmp_path, wine, "first", rows)
    plan = _plan(tmp_path, wine, clip=clip)
    assert [c.trial_id for c in plan.carried] == ["ok"]
    why = plan.left_out["first"]
    assert why["lr = inf is not a finite number"] == 1 and why["best_val_macro_f1 = inf is not a finite number"] == 1
    assert why["epochs = inf is not a finite number"] == 1
    huge = "lr = 1e+09 lies outside the earlier search's own range [0.0001, 0.03] too" if clip \
        else "lr outside the new range [0.0001, 0.03]"
    assert why[huge] == 1
    assert all(math.isfinite(t.value) for t in plan.frozen_trials(wine.params))


def test_clip_still_moves_a_value_the_earlier_range_offered(tmp_path, wine):
    narrow = Space(model="mlp", data="wine", name="wine_mlp",
                   params={**wine.params, "lr": loguniform(1e-3, 3e-2)}, fixed=wine.fixed)
    _earlier(tmp_path, wine, "first", [_wine_row(wine, lr=2e-4)])
    plan = _plan(tmp_path, narrow, clip=True)
    assert [c.params["lr"] for c in plan.carried] == [1e-3]
