from optuna.trial import TrialState
from ray import tune

from search.searcher import PrunedAwareOptunaSearch, make_searcher, startup_trials


def _searcher(**kw):
    s = PrunedAwareOptunaSearch(metric="best_val_macro_f1", mode="max", **kw)
    s.set_search_properties("best_val_macro_f1", "max", {"lr": tune.loguniform(1e-4, 1e-2)})
    return s


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


def test_seeded_searchers_propose_the_same_configs():
    def proposals(seed):
        s = make_searcher("tpe", seed, trials=12, concurrency=1, metric="m", mode="max", start=[])
        s.set_search_properties("m", "max", {"lr": tune.loguniform(1e-4, 1e-2), "bs": tune.choice([1, 2])})
        out = []
        for i in range(6):
            config = s.suggest(str(i))
            out.append(config)
            s.on_trial_complete(str(i), {"m": config["lr"], "finished": True})
        return out
    assert proposals(3) == proposals(3)
    assert proposals(3) != proposals(4)


def test_starting_points_come_first():
    s = make_searcher("random", 0, trials=4, concurrency=1, metric="m", mode="max", start=[{"lr": 1e-3}])
    s.set_search_properties("m", "max", {"lr": tune.loguniform(1e-4, 1e-2)})
    assert s.suggest("0") == {"lr": 1e-3}


def test_startup_trials_shrink_for_small_budgets():
    assert startup_trials(100) == 10 and startup_trials(12) == 4 and startup_trials(3) == 2
