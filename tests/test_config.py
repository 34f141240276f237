import pytest

from trainables.config import ConfigError, Recipe


def test_defaults_are_the_notebook_final_config():
    r = Recipe()
    assert (r.batch_size, r.lr, r.weight_decay, r.gamma, r.warmup_epochs, r.T_0, r.T_mult, r.eta_min,
            r.start_factor, r.epochs, r.patience, r.seed) == (128, 8e-5, 1e-5, 2.0, 10, 5, 1, 1e-5, 1e-6,
                                                              100, 5, 42)


@pytest.mark.parametrize("values, match", [
    ({"lr": -1.0}, r"'lr' hyperparameter must be a float in the range \(0.0, 1.0\]; got -1.0"),
    ({"batch_size": 0}, r"'batch_size' hyperparameter must be an int in the range \[1, inf\); got 0"),
    ({"batch_size": 12.5}, r"'batch_size' hyperparameter must be an int"),
    ({"dropout": 1.0}, r"'dropout' hyperparameter must be a float in the range \[0.0, 1.0\)"),
    ({"learning_rate": 1e-3}, r"unknown hyperparameter\(s\) \['learning_rate'\]; valid names are"),
    ({"gamma": "2"}, r"'gamma' hyperparameter must be a float"),
    ({"lr": float("nan")}, r"'lr' hyperparameter must be a float"),
    ({"lr": 5e-6}, r"'eta_min' must not exceed 'lr'"),
])
def test_bad_values_name_the_key_the_rule_and_the_value(values, match):
    with pytest.raises(ConfigError, match=match):
        Recipe.from_dict(values, source="best.json")


def test_none_means_unset_except_patience():
    r = Recipe.from_dict({"lr": None, "patience": None, "batch_size": 64.0})
    assert r.lr == 8e-5 and r.patience is None and r.batch_size == 64
