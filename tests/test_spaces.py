import sys
import textwrap

import pytest
from ray import tune

import spaces
from spaces import Space, SpaceError, describe_domain, get_space, list_spaces
from spaces._space import validate_space

GOOD = dict(trainable="galspecnet_ztf", params={"lr": tune.loguniform(1e-4, 1e-2), "batch_size": tune.choice([64, 128])},
            start=[{"lr": 1e-3, "batch_size": 64}], max_epochs=20, grace_period=5)


@pytest.mark.parametrize("name", list_spaces())
def test_every_registered_space_loads_and_starts_inside_its_ranges(name):
    space = get_space(name)
    assert space.name == name and space.params and space.start
    assert space.grace_period <= space.max_epochs
    for key in space.params:
        assert describe_domain(space.params[key])


def test_the_shipped_spaces_are_listed():
    assert {"galspecnet", "baseline_cnn"} <= set(list_spaces())


def test_galspecnet_starts_from_the_notebook_config():
    start = get_space("galspecnet").start[0]
    assert start == {"lr": 8e-5, "weight_decay": 1e-5, "warmup_epochs": 10, "T_0": 5, "dropout": 0.3,
                     "gamma": 2.0, "batch_size": 128}


def test_unknown_space_names_the_available_ones():
    with pytest.raises(SpaceError, match=r"unknown space 'galspec'; available spaces: .*galspecnet"):
        get_space("galspec")


@pytest.mark.parametrize("change, match", [
    ({"trainable": "nope"}, r"spaces/bad\.py: trainable: unknown trainable 'nope'; registered trainables:"),
    ({"params": {"lr": tune.loguniform(1e-4, 1e-2), "momentum": tune.uniform(0, 1)}},
     r"params\['momentum'\]: unknown hyperparameter for this trainable"),
    ({"params": {"lr": tune.uniform(1e-2, 1e-4)}}, r"params\['lr'\]: lower < upper must hold"),
    ({"params": {"dropout": tune.uniform(0.2, 1.5)}}, r"params\['dropout'\] upper bound: the 'dropout' hyperparameter must be"),
    ({"params": {"lr": tune.loguniform(1e-6, 1e-3)}, "start": []},
     r"params\['lr'\] lower bound: 'eta_min' must not exceed 'lr'"),
    ({"params": {"batch_size": tune.choice([0, 64])}, "start": []}, r"'batch_size' hyperparameter must be an int in the range \[1, inf\); got 0"),
    ({"start": [{"lr": 1e-3}]}, r"start\[0\]: a starting point must give exactly the searched keys; missing \['batch_size'\]"),
    ({"start": [{"lr": 0.5, "batch_size": 64}]}, r"start\[0\]\['lr'\]: 0.5 lies outside the searched range"),
    ({"start": [{"lr": 1e-3, "batch_size": 100}]}, r"start\[0\]\['batch_size'\]: 100 is not one of \[64, 128\]"),
    ({"fixed": {"lr": 1e-3}}, r"fixed\['lr'\]: 'lr' is also searched"),
    ({"metric": "f1"}, r"metric: must be one of"),
    ({"grace_period": 30}, r"grace_period: must not exceed max_epochs \(20\)"),
    ({"params": {"lr": [1e-3, 1e-2]}, "start": []}, r"params\['lr'\]: must be a Ray Tune domain"),
])
def test_malformed_spaces_name_the_module_and_the_key(change, match):
    with pytest.raises(SpaceError, match=match):
        validate_space(Space(**{**GOOD, **change}), "bad")


def test_adding_a_file_adds_a_space_and_a_broken_file_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(spaces, "__path__", [*spaces.__path__, str(tmp_path)])
    (tmp_path / "tiny.py").write_text(textwrap.dedent("""
        from ray import tune
        from spaces import Space
        SPACE = Space(trainable="baseline_cnn_ztf", params={"dropout": tune.uniform(0.0, 0.5)})
    """))
    (tmp_path / "broken.py").write_text("SPACE = {'lr': 1}\n")
    try:
        assert {"tiny", "broken"} <= set(list_spaces())
        assert get_space("tiny").trainable == "baseline_cnn_ztf"
        with pytest.raises(SpaceError, match=r"spaces/broken\.py: SPACE: the module must define SPACE = Space"):
            get_space("broken")
    finally:
        sys.modules.pop("spaces.tiny", None)
        sys.modules.pop("spaces.broken", None)
