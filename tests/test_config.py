import pytest

from trainables.config import RECIPE_TABLE, ConfigError, Recipe
from trainables.hparams import Bool, Choice, Float, Int, check_table, resolve
from trainables.pair import Pair


def test_defaults_are_the_notebook_final_config():
    r = Recipe.from_dict({})
    assert (r.optimizer, r.scheduler, r.loss) == ("adamw", "cosine_restarts", "focal")
    assert (r.batch_size, r.lr, r.weight_decay, r.gamma, r.warmup_epochs, r.T_0, r.T_mult, r.eta_min,
            r.start_factor, r.epochs, r.patience, r.seed) == (128, 8e-5, 1e-5, 2.0, 10, 5, 1, 1e-5, 1e-6,
                                                              100, 5, 42)
    assert Pair("galspecnet", "ztf_spectra").resolve({}).model == {"dropout": 0.3}


@pytest.mark.parametrize("values, match", [
    ({"lr": -1.0}, r"'lr' hyperparameter must be a float in the range \(0.0, 1.0\]; got -1.0"),
    ({"batch_size": 0}, r"'batch_size' hyperparameter must be an int in the range \[1, inf\); got 0"),
    ({"batch_size": 12.5}, r"'batch_size' hyperparameter must be an int"),
    ({"batch_size": True}, r"'batch_size' hyperparameter must be an int in the range \[1, inf\); got True"),
    ({"dropout": 1.0}, r"'dropout' hyperparameter must be a float in the range \[0.0, 1.0\)"),
    ({"learning_rate": 1e-3}, r"unknown hyperparameter\(s\) \['learning_rate'\] for model 'galspecnet', data "
                              r"'ztf_spectra' and the recipe; valid names are \['optimizer', 'lr'"),
    ({"gamma": "2"}, r"'gamma' hyperparameter must be a float"),
    ({"lr": float("nan")}, r"'lr' hyperparameter must be a float"),
    ({"lr": 5e-6}, r"'eta_min' must not exceed 'lr'"),
    ({"optimizer": "lion"}, r"'optimizer' hyperparameter must be one of \['adamw', 'adam', 'sgd', 'rmsprop'\]; got 'lion'"),
    ({"momentum": 0.9}, r"'momentum' applies only when 'optimizer' is one of \['sgd', 'rmsprop'\]; got optimizer='adamw'"),
    ({"scheduler": "step", "T_0": 4}, r"'T_0' applies only when 'scheduler' is 'cosine_restarts'; got scheduler='step'"),
    ({"optimizer": "sgd", "momentum": 0.0, "nesterov": True}, r"'nesterov' needs a momentum above 0"),
])
def test_bad_values_name_the_key_the_rule_and_the_value(values, match):
    with pytest.raises(ConfigError, match=match):
        Pair("galspecnet", "ztf_spectra").resolve(values, source="best.json")


def test_none_means_unset_except_nullable_knobs():
    r = Recipe.from_dict({"lr": None, "patience": None, "batch_size": 64.0, "max_grad_norm": None})
    assert r.lr == 8e-5 and r.patience is None and r.batch_size == 64 and r.max_grad_norm is None


def test_only_the_knobs_that_apply_are_kept():
    step = Recipe.from_dict({"scheduler": "step", "optimizer": "sgd"}).to_dict()
    assert "T_0" not in step and "eta_min" not in step and step["step_size"] == 10 and step["momentum"] == 0.9
    # Values a space holds fixed for every trial are "soft": they drop out where they do not apply.
    assert "T_0" not in Recipe.from_dict({"scheduler": "step", "T_0": 4}, soft=("T_0",)).to_dict()


def test_bools_and_strings_are_declared_types():
    table = {"flag": Bool(False), "norm": Choice("none", ["none", "batch"]),
             "groups": Int(2, 1, when=("norm", ("batch",))), "p": Float(0.5, 0.0, 1.0)}
    check_table(table, "test")
    assert resolve(table, {"flag": True, "norm": "batch"}) == {"flag": True, "norm": "batch", "groups": 2, "p": 0.5}
    with pytest.raises(ConfigError, match=r"'flag' hyperparameter must be a bool \(true or false\); got 1"):
        resolve(table, {"flag": 1})
    with pytest.raises(ConfigError, match=r"'norm' hyperparameter must be one of \['none', 'batch'\]; got 'layer'"):
        resolve(table, {"norm": "layer"})


def test_a_declared_table_is_checked():
    with pytest.raises(ValueError, match=r"'groups' applies when 'norm', which the table does not declare"):
        check_table({"groups": Int(2, 1, when=("norm", ("group",)))}, "model x")
    with pytest.raises(ConfigError, match=r"model x: default of 'width'"):
        check_table({"width": Int(0, 1)}, "model x")
    check_table(RECIPE_TABLE, "recipe")


def test_tables_of_a_pair_must_not_overlap(monkeypatch):
    from trainables.models import get_model

    entry = get_model("mlp")
    monkeypatch.setitem(entry.hparams, "lr", Float(1e-3, 0.0, 1.0))
    with pytest.raises(ConfigError, match=r"recipe and model mlp both declare 'lr'"):
        Pair("mlp", "wine").table()
