import pytest
from optuna.trial import TrialState

from search.strategy.searcher import DefineByRun, PrunedAwareOptunaSearch, make_searcher, startup_trials
from spaces import choice, get_space, integers, loguniform, when


def _searcher(**kw):
    return PrunedAwareOptunaSearch(space=DefineByRun({"lr": loguniform(1e-4, 1e-2)}), metric="best_val_macro_f1",
                                   mode="max", **kw)


def test_scheduler_stopped_trials_reach_optuna_as_pruned_not_complete():
    s = _searcher()
    for tid in ("done", "stopped", "crashed"):
        assert s.suggest(tid) is not None
        s.on_trial_result(tid, {"best_val_macro_f1": 0.5, "training_iteration": 1})
    s.on_trial_complete("done", {"best_val_macro_f1": 0.7, "finished": True})
    s.on_trial_complete("stopped", {"best_val_macro_f1": 0.4, "finished": False})
    s.on_trial_complete("crashed", None, error=True)
    states = [t.state for t in s._ot_study.trials]
    assert states == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]
    assert s._ot_study.trials[1].intermediate_values == {1: 0.5}


def _proposals(seed, params, n=6, start=()):
    s = make_searcher("tpe", seed, trials=12, concurrency=1, metric="m", mode="max", start=list(start), params=params)
    out = []
    for i in range(n):
        config = s.suggest(str(i))
        out.append(config)
        s.on_trial_complete(str(i), {"m": config["lr"], "finished": True})
    return out


def test_seeded_searchers_propose_the_same_configs():
    params = {"lr": loguniform(1e-4, 1e-2), "bs": choice([1, 2])}
    assert _proposals(3, params) == _proposals(3, params)
    assert _proposals(3, params) != _proposals(4, params)


def test_galspecnet_proposes_what_it_did_with_ray_domains():
    """The pair contract moved spaces from Ray's domains to spectune's; a seed must still give the
    configs that Ray's own conversion of the old galspecnet space gave."""
    import optuna
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    space = get_space("galspecnet")
    old = {"lr": tune.loguniform(2e-5, 3e-3), "weight_decay": tune.loguniform(1e-6, 1e-2),
           "warmup_epochs": tune.randint(0, 11), "T_0": tune.randint(3, 16), "dropout": tune.uniform(0.0, 0.6),
           "gamma": tune.uniform(0.0, 3.0), "batch_size": tune.choice([64, 128, 256, 512])}
    ray_search = OptunaSearch(metric="m", mode="max", points_to_evaluate=[dict(space.start[0])],
                              sampler=optuna.samplers.TPESampler(seed=0, multivariate=True, n_startup_trials=4))
    ray_search.set_search_properties("m", "max", old)
    ours = make_searcher("tpe", 0, trials=12, concurrency=1, metric="m", mode="max", start=space.start,
                         params=space.params)
    for i in range(8):
        a, b = ray_search.suggest(str(i)), ours.suggest(str(i))
        assert a == b, i
        ray_search.on_trial_complete(str(i), {"m": a["lr"] * a["dropout"]})
        ours.on_trial_complete(str(i), {"m": b["lr"] * b["dropout"], "finished": True})


def test_a_when_key_is_searched_only_where_its_condition_holds():
    params = {"lr": loguniform(1e-4, 1e-2), "norm": choice(["batch", "group"]),
              "groups": when("norm", ["group"], integers(2, 8))}
    configs = _proposals(0, params, n=12)
    assert {c["norm"] for c in configs} == {"batch", "group"}
    for c in configs:
        assert ("groups" in c) == (c["norm"] == "group"), c


def test_starting_points_come_first():
    s = make_searcher("random", 0, trials=4, concurrency=1, metric="m", mode="max", start=[{"lr": 1e-3}],
                      params={"lr": loguniform(1e-4, 1e-2)})
    assert s.suggest("0") == {"lr": 1e-3}


def test_startup_trials_shrink_for_small_budgets():
    assert startup_trials(100) == 10 and startup_trials(12) == 4 and startup_trials(3) == 2


def test_confirmation_statistics_are_scipys_paired_test_and_t_intervals():
    import pandas as pd
    from scipy import stats

    from search.commands.confirm import summarise

    runs = pd.DataFrame({"candidate": ["a"] * 4 + ["b"] * 4, "seed": [1, 2, 3, 4] * 2,
                         "best_val_macro_f1": [0.80, 0.82, 0.81, 0.83, 0.78, 0.79, 0.80, 0.80]})
    table, evidence = summarise(runs, "best_val_macro_f1", "max")
    assert table["candidate"].tolist() == ["a", "b"] and table["rank"].tolist() == [1, 2]
    a = runs.loc[runs.candidate == "a", "best_val_macro_f1"]
    half = stats.t.ppf(0.975, 3) * a.std(ddof=1) / 2
    assert table["ci95_high"].iloc[0] == pytest.approx(a.mean() + half)
    b = runs.loc[runs.candidate == "b", "best_val_macro_f1"]
    assert evidence["p_value"] == pytest.approx(stats.ttest_rel(a.to_numpy(), b.to_numpy()).pvalue)
    assert evidence["mean_difference"] == pytest.approx(0.0225) and evidence["separated"]
    # mode min ranks the lowest mean first.
    assert summarise(runs, "best_val_macro_f1", "min")[0]["candidate"].iloc[0] == "b"


def test_asha_rungs_survive_a_resume(tmp_path):
    """Tune 2.60 never restores a scheduler's state; PersistentASHA does, so a trial judged after a
    resume is stopped (or promoted) exactly as it would have been without the interruption."""
    import pickle
    from types import SimpleNamespace

    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    from search.strategy.schedulers import make_scheduler

    def fresh(path):
        scheduler = make_scheduler("asha", max_epochs=8, grace_period=1, reduction_factor=2, state=path)
        scheduler.set_search_properties("m", "max")
        return scheduler

    def judge(scheduler, name, value):
        trial = SimpleNamespace(trial_id=name)
        scheduler.on_trial_add(None, trial)
        return scheduler.on_trial_result(None, trial, {"training_iteration": 1, "m": value})

    history = [("a", 0.9), ("b", 0.8), ("c", 0.7)]
    straight = fresh(tmp_path / "straight.pkl")
    expected = [judge(straight, n, v) for n, v in history] + [judge(straight, "d", 0.1)]
    assert expected[-1] == TrialScheduler.STOP

    # The same trials, with the driver stopped after three: Tune restores the scheduler as pickled at
    # the start (tuner.pkl), and the rungs come back from the state file.
    path = tmp_path / "cut.pkl"
    first = fresh(path)
    as_created = pickle.dumps(first)
    assert [judge(first, n, v) for n, v in history] == expected[:3]
    restored = pickle.loads(as_created)
    assert judge(restored, "d", 0.1) == expected[-1]
    # Without the state file the fourth trial would have been the first on its rung, and promoted.
    plain = ASHAScheduler(time_attr="training_iteration", max_t=8, grace_period=1, reduction_factor=2)
    plain.set_search_properties("m", "max")
    assert judge(plain, "d", 0.1) == TrialScheduler.CONTINUE


def test_tune_tpe_is_tunes_own_optuna_search_with_optunas_default_tpe():
    """The by-hand peer (issue 38): Ray's OptunaSearch, not the pruned-aware one, over a TPESampler with Optuna's
    defaults (10 start-up trials, univariate), whatever start-up the space would give TPE."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    s = make_searcher("tune-tpe", 3, trials=12, concurrency=1, metric="m", mode="max", start=[],
                      params={"lr": loguniform(1e-4, 1e-2), "depth": integers(1, 4)}, startup=4)
    inner = s.searcher
    assert type(inner) is OptunaSearch
    sampler = inner._ot_study.sampler
    assert type(sampler) is optuna.samplers.TPESampler
    assert sampler._n_startup_trials == 10 and not sampler._multivariate


def test_grace_reduction_and_startup_options_override_the_space(tmp_path):
    from results.errors import OptionError
    from search.options import SearchOptions
    from search.commands.search import SearchCommand

    peer = SearchCommand(SearchOptions(space="galspecnet", budget="cpu", sampler="tune-tpe", grace_period=1,
                                       reduction_factor=4, startup_trials=10, storage=tmp_path))
    peer.prepare()
    assert (peer.grace, peer.reduction, peer.startup) == (1, 4, 10)
    line = peer.budget_line(get_space("galspecnet"), 5)
    assert "grace 1, reduction 4" in line and "Ray Tune's OptunaSearch with Optuna's default TPE" in line
    default = SearchCommand(SearchOptions(space="galspecnet", budget="cpu", storage=tmp_path))
    default.prepare()
    assert (default.grace, default.reduction, default.startup) == (10, 2, 4)   # the space's, for 20 epochs
    with pytest.raises(OptionError, match="--grace-period 30 is beyond the 20-epoch budget"):
        SearchCommand(SearchOptions(space="galspecnet", budget="cpu", grace_period=30, storage=tmp_path)).prepare()


def test_the_peer_is_one_spectune_search_command_line():
    from search.cli import _search_options, build_parser

    args = build_parser().parse_args(["search", "--space", "wine_mlp", "--sampler", "tune-tpe", "--scheduler", "asha",
                                      "--grace-period", "1", "--reduction-factor", "4", "--startup-trials", "10",
                                      "--no-space-start"])
    o = _search_options(args)
    assert (o.sampler, o.grace_period, o.reduction_factor, o.startup_trials, o.space_start) == \
        ("tune-tpe", 1, 4, 10, False)
    assert _search_options(build_parser().parse_args(["search", "--space", "wine_mlp"])).space_start
