"""The replay's statistics on hand-made inputs with known answers (search/replay/stats.py)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from search.replay import stats
from search.replay.simulate import ReplayedTrial, ReplayLog, Strategy


def _log(bests_by_trial: list[list[float]], quality: list[float]) -> ReplayLog:
    """One trial after another, each epoch an event."""
    trials = [ReplayedTrial(f"r{i:05d}", i, 0, 0.0, epochs=len(b), best=max(b), quality_unseen=q, quality=q)
              for i, (b, q) in enumerate(zip(bests_by_trial, quality))]
    events, clock = [], 0.0
    for i, bests in enumerate(bests_by_trial):
        for best in np.maximum.accumulate(bests):
            clock += 1.0
            events.append((clock, i, float(best)))
    return ReplayLog(Strategy("s", trials=len(trials)), 0, trials, events)


def test_the_pick_path_and_the_pick_at_a_budget():
    # Trial 0 sees 0.5 then 0.6; trial 1 sees 0.9 at its first epoch: it becomes the pick at epoch 3.
    log = _log([[0.5, 0.6], [0.9, 0.7]], quality=[0.55, 0.8])
    path = stats.pick_path(log, "max")
    assert path.tolist() == [0.55, 0.55, 0.8, 0.8]
    assert stats.at_budget(path, 2.5) == 0.55 and stats.at_budget(path, 3) == 0.8
    assert stats.at_budget(path, 100) == 0.8 and stats.at_budget(path, math.inf) == 0.8
    assert math.isnan(stats.at_budget(path, 0.5))
    # Minimising: the lowest value seen is the pick.
    assert stats.pick_path(log, "min").tolist() == [0.55, 0.55, 0.55, 0.55]


def test_paired_win_counts_ties_one_half_and_no_pick_as_a_loss():
    p, low, high = stats.paired_win(np.array([0.9, 0.8, 0.7, math.nan]), np.array([0.8, 0.8, 0.8, 0.1]), "max")
    assert p == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    assert 0.0 <= low <= p <= high <= 1.0
    # For a minimised metric, lower wins.
    assert stats.paired_win(np.array([0.1, 0.3]), np.array([0.2, 0.2]), "min")[0] == 0.5
    # All wins: the interval collapses on 1.
    assert stats.paired_win(np.ones(10), np.zeros(10), "max") == (1.0, 1.0, 1.0)


def test_normalised_regret_and_its_area():
    r = stats.normalised_regret(np.array([1.0, 0.8, 0.6, math.nan]), best=1.0, median=0.6, mode="max")
    assert r.tolist() == pytest.approx([0.0, 0.5, 1.0, 1.0])
    assert stats.normalised_regret(np.array([0.2]), best=0.1, median=0.3, mode="min").tolist() == pytest.approx([0.5])
    with pytest.raises(ValueError, match="regret is undefined"):
        stats.normalised_regret(np.array([0.5]), best=0.5, median=0.5, mode="max")
    # A path that picks quality 0.6 (regret 1) for its first half and 1.0 (regret 0) after: area 0.5.
    path = np.array([0.6] * 50 + [1.0] * 50)
    assert stats.regret_area(path, 100, best=1.0, median=0.6, mode="max") == pytest.approx(0.5)


def test_non_inferiority_within_the_margin_and_outside_it():
    rng = np.random.default_rng(0)
    reference = rng.normal(0.8, 0.01, 100)
    # Slightly worse than the reference, well inside a margin of 0.02: non-inferior.
    assert stats.non_inferiority(reference - 0.005, reference, margin=0.02, mode="max") < 0.001
    # Worse by three margins: not.
    assert stats.non_inferiority(reference - 0.06, reference, margin=0.02, mode="max") > 0.5
    # The direction follows the mode: a larger value is worse when minimising.
    assert stats.non_inferiority(reference + 0.06, reference, margin=0.02, mode="min") > 0.5


def test_holm_adjusts_step_down_and_keeps_the_order():
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5]) == [0.5]


def _study(areas: dict[str, list[float]], p_win: dict[str, float], stopped: dict[str, float]):
    """A replay study whose strategies' pick paths give the regret areas asked for (best 1.0, median 0.0:
    a path of constant quality 1 - a has area a)."""
    from search.replay.report import ReplayStudy

    paths = {name: [np.full(10, 1.0 - a) for a in values] for name, values in areas.items()}
    table = pd.DataFrame([{"strategy": n, "p_win_0.25": p_win[n], "top3_stopped_share": stopped[n]} for n in areas])
    return ReplayStudy(table, pd.DataFrame(), paths, 1.0, 0.0, 0.01, "random", 10.0, "max")


def test_the_advice_names_a_setting_that_clearly_wins_and_how_to_apply_it():
    from search.replay.advice import advise

    rng = np.random.default_rng(0)
    default = Strategy("TPE + ASHA (default)", trials=8, grace=10, reduction=2, startup=4)
    better = Strategy("TPE + ASHA g5 rf3 startup 4", trials=8, grace=5, reduction=3, startup=4)
    worse = Strategy("random + ASHA", trials=8, sampler="random", grace=10, reduction=2)
    peer = Strategy("Optuna TPE + HyperbandPruner", trials=8, runner="optuna", pruner="hyperband")
    base = rng.uniform(0.3, 0.5, 30)
    study = _study({default.name: base, better.name: base - 0.1, worse.name: base + 0.1, peer.name: base - 0.2},
                   {default.name: 0.5, better.name: 0.6, worse.name: 0.4, peer.name: 0.9},
                   {default.name: 0.0, better.name: 0.02, worse.name: 0.0, peer.name: 0.0})
    # Where the curve model serving TPE's proposals is not faithful, the same study gives no advice.
    held_back = advise(study, [worse, default, better, peer], default, unfaithful="the model is off")
    assert held_back.strategy is None and "this replay cannot judge it, because the model is off" in held_back.reason
    advice = advise(study, [worse, default, better, peer], default)
    # Optuna alone is not a setting of spectune search: never recommended, however good.
    assert advice.strategy == better and peer.name not in advice.p
    lines = advice.lines("wine_mlp")
    assert lines[0].startswith("recommendation: TPE + ASHA g5 rf3 startup 4 instead of the default")
    assert "spectune search --space wine_mlp --sampler tpe --scheduler asha" in lines[1]
    assert "grace_period=5, reduction_factor=3, startup_trials=4, trials_factor=1" in lines[2]
    assert "(and pass" not in lines[2]
    # Four times random search's trials: the space's trials_factor carries them (and the cap at random search's
    # most epochs, where the setting was judged), no flag to pass; one search of it passes the cap.
    many = Strategy("TPE + ASHA, 32 trials, grace 1", trials=32, grace=1, reduction=3)
    lines = replace(advice, strategy=many, max_epochs=60).lines("wine_mlp")
    assert lines[1].endswith("--sampler tpe --scheduler asha --trials 32 --max-total-epochs 480")
    assert lines[2].endswith("grace_period=1, reduction_factor=3, startup_trials=None, trials_factor=4")
    # Better regret but a lower P(win) at 25 %: not recommended.
    study = _study({default.name: base, better.name: base - 0.1}, {default.name: 0.5, better.name: 0.4},
                   {default.name: 0.0, better.name: 0.0})
    assert advise(study, [default, better], default).strategy is None


def test_the_advice_keeps_the_default_when_nothing_is_told_apart():
    from search.replay.advice import advise

    rng = np.random.default_rng(1)
    default = Strategy("TPE + ASHA (default)", trials=8)
    other = Strategy("TPE (FIFO)", trials=8, scheduler="fifo")
    study = _study({default.name: rng.uniform(0.3, 0.5, 30), other.name: rng.uniform(0.3, 0.5, 30)},
                   {default.name: 0.5, other.name: 0.5}, {default.name: 0.0, other.name: 0.0})
    advice = advise(study, [default, other], default)
    assert advice.strategy is None and advice.p[other.name] > 0.05
    assert advice.lines("wine_mlp") == [f"recommendation: keep the default ({default.name}): nothing was told apart "
                                        "from it: no other setting had a lower regret area in paired repeats "
                                        "(Holm p < 0.05)"]
    assert advice.to_json()["recommended"] is None


def test_the_panel_holds_the_candidates_and_many_cheap_trials_only_where_the_table_has_room():
    from search.replay.study import BASELINE, REFERENCE, panel
    from spaces import get_space

    space = get_space("wine_mlp")
    names = {s.name: s for s in panel(space, 24, 1, None, 60, True, configs=96)}
    assert {BASELINE, REFERENCE, "GP + ASHA", "TPE + curve ASHA", "random + ASHA, 96 trials, grace 1",
            "TPE + ASHA, 96 trials, grace 1"} <= set(names)
    many = names["random + ASHA, 96 trials, grace 1"]
    assert (many.trials, many.grace, many.reduction, many.sampler) == (96, 1, 3, "random")
    # One rung: the grace epochs, then the best sixth straight to the 60-epoch budget.
    rung = names["TPE + one rung (grace 10, best 1/6 to the budget)"]
    assert rung.grace * rung.reduction >= 60 and rung.grace < 60
    # 95 recorded configs cannot serve 96 random trials without meeting one twice.
    fewer = {s.name for s in panel(space, 24, 1, None, 60, True, configs=95)}
    assert "random + ASHA, 96 trials, grace 1" not in fewer and "TPE + ASHA, 96 trials, grace 1" in fewer
    # NePS PriorBand only in the lab, when asked for (--neps): it runs in NePS's own environment.
    from search.bench.lab import NEPS_PEER, lab_panel

    assert NEPS_PEER not in names
    assert [s.settings() for s in lab_panel(space, 24, 1, None, 60, False, True, configs=96)] == \
        [s.settings() for s in names.values()]
    peer = {s.name: s for s in lab_panel(space, 24, 1, None, 60, False, True, configs=96, neps=True)}[NEPS_PEER]
    assert (peer.runner, peer.trials, peer.grace, peer.reduction) == ("neps", 24, 1, 3)


def test_a_spaces_trials_factor_gives_its_default_more_trials_than_random_search(tmp_path):
    """California's default is many cheap trials (trials_factor 4, grace 1) capped at random search's most
    epochs: the panel holds it as the default, against random search with the budget's own trials (and the
    same trials uncapped); a search takes the factored trials and the cap unless told otherwise."""
    from search.options import SearchOptions
    from search.commands.search import SearchCommand
    from search.replay.study import BASELINE, panel
    from spaces import get_space

    space = get_space("california_mlp")
    strategies = panel(space, 12, 1, None, 20, True, configs=48)
    default = strategies[3]
    assert (strategies[0].name, strategies[0].trials) == (BASELINE, 12)
    assert (default.trials, default.grace, default.reduction, default.sampler, default.scheduler) == \
        (48, 1, 3, "tpe", "asha") and default.name.endswith(", 48 trials, at most 240 epochs)")
    assert default.max_total_epochs == 12 * 20 and '"max_total_epochs": 240' in default.settings()
    uncapped = next(s for s in strategies if s.name == "TPE + ASHA, 48 trials, grace 1")
    # A strategy without a cap keeps the settings its earlier live searches were kept under.
    assert uncapped.max_total_epochs is None and "max_total_epochs" not in uncapped.settings()
    assert all(s.max_total_epochs is None for s in strategies if s is not default)

    def options(**given):
        return SearchOptions(space="california_mlp", budget="cpu", **given).with_budget(space)

    assert (options().trials, options().max_total_epochs) == (48, 240)
    assert (options(max_epochs=10).max_total_epochs, options(max_total_epochs=100).max_total_epochs) == (120, 100)
    baseline = SearchOptions(space="california_mlp", budget="cpu").with_budget(space, baseline=True)
    assert (baseline.trials, baseline.max_total_epochs) == (12, None)
    assert (options(trials=5).trials, options(trials=5).max_total_epochs) == (5, None)
    wine = get_space("wine_mlp")
    assert SearchOptions(space="wine_mlp", budget="cpu").with_budget(wine).max_total_epochs is None
    command = SearchCommand(SearchOptions(space="california_mlp", budget="cpu", storage=tmp_path))
    assert command.prepare().total == 48 and command.factored and command.grace == 1
    assert ("budget: 48 trials (4 x the budget's 12, the space's trials_factor: cheap trials, most stopped by ASHA) "
            "x up to 20 epochs (--max-epochs or the budget), at most 240 epochs in all (random search's most, the "
            "budget's 12 trials x 20), in-trial patience 8") in command.budget_line(space, 8)
    command = SearchCommand(SearchOptions(space="california_mlp", budget="cpu", trials=5, storage=tmp_path))
    assert command.prepare().total == 5 and not command.factored


def test_the_advice_is_withheld_where_the_recordings_live_searches_disagree_with_its_replay():
    """Live searches kept beside a recording whose median pick (judged on the recording's seeds where it was)
    lies outside the replay's interquartile range for random search or the default: the replay cannot judge,
    and says which; inside, or under other settings, or with no live searches: nothing to say."""
    from search.replay.study import live_disagreement

    base = Strategy("random (FIFO)", trials=4, sampler="random", scheduler="fifo")
    default = Strategy("TPE + ASHA (default)", trials=4)
    table = pd.DataFrame({"strategy": [base.name, default.name], "quality_q25": [0.40, 0.35],
                          "quality_q75": [0.50, 0.46]})
    rows = [{"strategy": base.name, "settings": base.settings(), "repeat": k, "final_quality": 0.60,
             "final_quality_recorded_seeds": [0.45, 0.47, 0.49][k]} for k in range(3)]
    rows += [{"strategy": default.name, "settings": default.settings(), "repeat": k, "final_quality": 0.55,
              "final_quality_recorded_seeds": 0.52} for k in range(3)]
    assert live_disagreement(None, table, [base, default]) is None
    live = pd.DataFrame(rows)
    reason = live_disagreement(live, table, [base, default])
    assert reason == ("the live searches beside this recording disagree with its replay (TPE + ASHA (default)'s 3 "
                      "live searches picked 0.5200 (median), outside its replay's 0.3500-0.4600)")
    # Random search judged on the recording's seeds agrees (0.47 inside 0.40-0.50), though its new seeds' 0.60 not.
    assert live_disagreement(live, table, [base]) is None
    # Searches of another setting under the default's name do not speak for it.
    assert live_disagreement(live, table, [base, replace(default, grace=5)]) is None
    # Searches kept from before the recording's seeds judged them: their new seeds' figure is used.
    older = live.drop(columns="final_quality_recorded_seeds")
    assert "random (FIFO)'s 3 live searches picked 0.6000" in live_disagreement(older, table, [base])
    from search.replay.advice import advise

    assert "this replay cannot judge it, because the live searches beside this recording disagree" in \
        advise(None, [default], default, unfaithful=reason).reason


def test_the_default_random_search_and_the_peer_stand_out_in_every_plot_and_the_rest_keep_their_style():
    from search.replay.report import LEAD_STYLES, strategy_style

    baseline, peer = "random (FIFO)", "Optuna TPE + HyperbandPruner"
    styles = {name: strategy_style(name, baseline, peer) for name in
              ("TPE + ASHA (default: grace 1, rf 3, 48 trials)", baseline, peer, "QMC-TPE + ASHA", "random + ASHA",
               "TPE (FIFO)")}
    leads = [styles[n] for n in list(styles)[:3]]
    assert [(s["color"], s["ls"]) for s in leads] == [(LEAD_STYLES[k]["color"], LEAD_STYLES[k]["ls"])
                                                      for k in ("default", "baseline", "peer")]
    muted = [styles[n] for n in list(styles)[3:]]
    assert min(s["lw"] for s in leads) > max(s["lw"] for s in muted)
    assert len({(s["color"], str(s["ls"])) for s in muted}) == len(muted)        # told apart from each other
    assert not {s["color"] for s in muted} & {s["color"] for s in LEAD_STYLES.values()}
    # A strategy's style depends on its name only, not on which others share the plot.
    assert strategy_style("QMC-TPE + ASHA", "other baseline", "other peer") == styles["QMC-TPE + ASHA"]
