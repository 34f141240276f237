import re
import textwrap
from pathlib import Path

import pytest

from spaces import Budget, DomainError, Space, SpaceError, choice, describe_domain, domain_from_json, get_space, integers, \
    list_spaces, loguniform, powers_of_two, uniform, when
from spaces._space import validate_space

GOOD = dict(model="galspecnet", data="ztf_spectra",
            params={"lr": loguniform(1e-4, 1e-2), "batch_size": choice([64, 128])},
            start=[{"lr": 1e-3, "batch_size": 64}], max_epochs=20, grace_period=5)


@pytest.mark.parametrize("name", list_spaces())
def test_every_registered_space_loads_and_starts_inside_its_ranges(name):
    space = get_space(name)
    assert space.name == name and space.params and space.start
    assert space.grace_period <= space.max_epochs
    for key in space.params:
        assert describe_domain(space.params[key])
    resolved = space.pair.resolve(space.first_config())
    assert set(resolved.to_dict()) >= set(space.start[0])
    assert space.to_json()["params"].keys() == space.params.keys()


@pytest.mark.parametrize("name", list_spaces())
def test_a_space_carries_the_figure_that_chose_its_search_settings(name):
    """Where a space's search settings were checked live (live searches beside one of its recordings) or
    replayed, ``measured`` says so with its date; it claims a live check only where those searches are."""
    space = get_space(name)
    curves = Path(__file__).resolve().parents[1] / "results" / name / "curves"
    live = list(curves.glob("*/live.csv"))
    if live or list(curves.glob("*/replays")):
        assert space.measured
    if space.measured:
        assert re.search(r"\b20\d\d-\d\d-\d\d\b", space.measured), space.measured
        assert space.measured.startswith("live") == bool(live), (space.measured, live)
        # Only a panel whose design was committed before its runs is confirmatory (docs/replay.md).
        assert re.search(r"\b(confirmatory|exploratory)\b", space.measured), space.measured


def test_the_shipped_spaces_are_listed():
    assert {"galspecnet", "baseline_cnn", "waveform_cnn", "fashion_norm_cnn", "wine_mlp", "tabular_widedeep",
            "tabular_dcn"} <= set(list_spaces())


def test_galspecnet_starts_from_the_notebook_config():
    space = get_space("galspecnet")
    assert space.start[0] == {"lr": 8e-5, "weight_decay": 1e-5, "warmup_epochs": 10, "T_0": 5, "dropout": 0.3,
                              "gamma": 2.0, "batch_size": 128}
    assert space.pair.resolve(space.first_config()).to_dict() == space.pair.resolve({}).to_dict()


def test_unknown_space_names_the_available_ones():
    with pytest.raises(SpaceError, match=r"unknown space 'galspec'; available spaces: .*galspecnet"):
        get_space("galspec")


@pytest.mark.parametrize("change, match", [
    ({"model": "nope"}, r"spaces/bad\.py: model/data: unknown model 'nope'; registered models:"),
    ({"data": "nope"}, r"spaces/bad\.py: model/data: unknown data module 'nope'; registered data modules:"),
    ({"data": "wine"}, r"model 'galspecnet' takes sequence inputs, but data 'wine' gives tabular inputs"),
    ({"params": {"lr": loguniform(1e-4, 1e-2), "momentum_x": uniform(0, 1)}, "start": []},
     r"params\['momentum_x'\]: unknown hyperparameter for model 'galspecnet', data 'ztf_spectra' and the recipe"),
    ({"params": {"lr": uniform(0.0, 1e-3)}, "start": []}, r"params\['lr'\] lower bound: the 'lr' hyperparameter"),
    ({"params": {"dropout": uniform(0.2, 1.5)}, "start": []}, r"params\['dropout'\] upper bound: the 'dropout' hyperparameter must be"),
    ({"params": {"lr": loguniform(1e-6, 1e-3)}, "start": []},
     r"params\['lr'\] lower bound: 'eta_min' must not exceed 'lr'"),
    ({"params": {"batch_size": choice([0, 64])}, "start": []}, r"'batch_size' hyperparameter must be an int in the range \[1, inf\); got 0"),
    ({"params": {"batch_size": uniform(16, 64)}, "start": []}, r"params\['batch_size'\]: 'batch_size' is an int .*integers\(a, b\)"),
    ({"params": {"batch_size": choice([True, False])}, "start": []}, r"'batch_size' hyperparameter must be an int .*got True"),
    ({"params": {"optimizer": choice(["adamw", "sgd"]), "momentum": uniform(0.0, 0.9)}, "start": []},
     r"params\['momentum'\]: 'momentum' applies only when 'optimizer' is one of \['sgd', 'rmsprop'\], and 'optimizer' is "
     r"searched: declare it as when\('optimizer', \['sgd', 'rmsprop'\], \.\.\.\)"),
    ({"params": {"momentum": uniform(0.0, 0.9)}, "start": []},
     r"'momentum' applies only when 'optimizer' is one of \['sgd', 'rmsprop'\]; got optimizer='adamw'"),
    ({"params": {"lr": loguniform(1e-4, 1e-2), "T_0": when("warmup", [1], integers(2, 5))}, "start": []},
     r"params\['T_0'\]: when\('warmup', \.\.\.\) needs 'warmup' searched before 'T_0'"),
    ({"start": [{"lr": 1e-3}]}, r"start\[0\]: a starting point must give exactly the searched keys that apply to it; "
                                r"missing \['batch_size'\]"),
    ({"start": [{"lr": 0.5, "batch_size": 64}]}, r"start\[0\]\['lr'\]: 0.5 lies outside the searched range"),
    ({"start": [{"lr": 1e-3, "batch_size": 100}]}, r"start\[0\]\['batch_size'\]: 100 is not one of \[64, 128\]"),
    ({"fixed": {"lr": 1e-3}}, r"fixed\['lr'\]: 'lr' is also searched"),
    ({"fixed": {"scheduler": "step", "T_0": 3}, "params": {"lr": loguniform(1e-4, 1e-2)}, "start": []},
     None),
    ({"fixed": {"loss": "ce", "gamma": 1.0}}, None),
    ({"metric": "f1"}, r"metric: must be one of"),
    ({"grace_period": 30}, r"grace_period: must not exceed max_epochs \(20\)"),
    ({"trials_factor": 0}, r"trials_factor: must be an int >= 1; got 0"),
    ({"params": {"lr": [1e-3, 1e-2]}, "start": []}, r"params\['lr'\]: must be a spectune domain"),
])
def test_malformed_spaces_name_the_module_and_the_key(change, match):
    space = Space(**{**GOOD, **change})
    if match is None:
        # Fixed values apply only where their condition holds (a soft T_0 or gamma drops out).
        validate_space(space, "bad")
        return
    with pytest.raises(SpaceError, match=match):
        validate_space(space, "bad")


def test_a_conditional_space_validates_its_start_points():
    params = {"lr": loguniform(1e-4, 1e-2), "loss": choice(["ce", "focal"]),
              "gamma": when("loss", ["focal"], uniform(0.5, 3.0))}
    ok = Space(model="galspecnet", data="ztf_spectra", params=params,
               start=[{"lr": 1e-3, "loss": "ce"}, {"lr": 1e-3, "loss": "focal", "gamma": 2.0}], grace_period=5)
    validate_space(ok, "cond")
    with pytest.raises(SpaceError, match=r"start\[0\]: .*not searched \['gamma'\]"):
        validate_space(Space(**{**ok.__dict__, "start": [{"lr": 1e-3, "loss": "ce", "gamma": 2.0}]}), "cond")
    with pytest.raises(SpaceError, match=r"start\[0\]: .*missing \['gamma'\]"):
        validate_space(Space(**{**ok.__dict__, "start": [{"lr": 1e-3, "loss": "focal"}]}), "cond")


def test_adding_a_file_adds_a_space_and_a_broken_file_is_reported(tmp_path, monkeypatch):
    (tmp_path / "spaces").mkdir()
    monkeypatch.setenv("SPECTUNE_PATH", str(tmp_path))
    (tmp_path / "spaces" / "tiny.py").write_text(textwrap.dedent("""
        from spaces import Space, uniform
        SPACE = Space(model="baseline_cnn", data="ztf_spectra", params={"dropout": uniform(0.0, 0.5)},
                      start=[{"dropout": 0.1}])
    """))
    (tmp_path / "spaces" / "broken.py").write_text("SPACE = {'lr': 1}\n")
    (tmp_path / "spaces" / "galspecnet.py").write_text("")
    with pytest.raises(ValueError, match=r"galspecnet\.py: the name 'galspecnet' is already taken by spaces\.galspecnet"):
        list_spaces()
    (tmp_path / "spaces" / "galspecnet.py").unlink()
    assert {"tiny", "broken", "galspecnet"} <= set(list_spaces())
    assert get_space("tiny").model == "baseline_cnn"
    with pytest.raises(SpaceError, match=r"broken\.py: SPACE: the module must define SPACE = Space"):
        get_space("broken")


def test_a_missing_search_path_folder_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("SPECTUNE_PATH", str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match=r"SPECTUNE_PATH names folder\(s\) that do not exist"):
        list_spaces()


@pytest.mark.parametrize("make, match", [
    (lambda: loguniform(1e-2, 1e-4), r"loguniform: low < high must hold, but got \(low=0.01, high=0.0001\)"),
    (lambda: loguniform(0.0, 1e-2), r"loguniform: a log range needs low > 0; got low=0.0"),
    (lambda: uniform(0.5, 0.5), r"uniform: low < high must hold"),
    (lambda: uniform(0.0, float("nan")), r"uniform: bounds must be a finite number"),
    (lambda: uniform(0.0, 1.0, step=2.0), r"uniform: step must be in \(0, high - low\]"),
    (lambda: integers(1.5, 4), r"integers: bounds must be an int"),
    (lambda: integers(8, 2), r"integers: low < high must hold"),
    (lambda: powers_of_two(3, 16), r"powers_of_two: bounds must be powers of two"),
    (lambda: powers_of_two(16, 4), r"powers_of_two: low < high must hold"),
    (lambda: choice([]), r"choice: needs at least one value"),
    (lambda: choice([1, 1]), r"choice: values must differ"),
])
def test_a_domain_refuses_bad_bounds_when_it_is_written(make, match):
    # Before, loguniform(1e-2, 1e-4) built and failed only when the space was validated or sampled.
    with pytest.raises(DomainError, match=match):
        make()


def test_domains_round_trip_through_the_json_a_search_saves():
    for name in list_spaces():
        space = get_space(name)
        for key, domain in space.params.items():
            assert domain_from_json(space.to_json()["params"][key]) == domain, (name, key)
    with pytest.raises(DomainError, match=r"must have type float, int, power_of_two or choice; got 'beta'"):
        domain_from_json({"type": "beta", "a": 1})


def test_a_space_file_with_a_bad_range_is_one_line_naming_its_line(tmp_path, monkeypatch):
    (tmp_path / "spaces").mkdir()
    monkeypatch.setenv("SPECTUNE_PATH", str(tmp_path))
    (tmp_path / "spaces" / "backwards.py").write_text(
        "from spaces import Space, loguniform\n\nSPACE = Space(model='baseline_cnn', data='ztf_spectra',\n"
        "              params={'lr': loguniform(1e-2, 1e-4)})\n")
    with pytest.raises(SpaceError, match=r"space 'backwards' could not be loaded: .*backwards\.py:4: DomainError: "
                                         r"loguniform: low < high must hold"):
        get_space("backwards")


@pytest.mark.parametrize("budget, match", [
    (Budget(trials=4, max_epochs=-5), r"cpu\.max_epochs: must be an int in the range \[1, 20\] or null \(at most the "
                                      r"space's max_epochs\); got -5\."),
    (Budget(trials=4, max_epochs=10**9), r"cpu\.max_epochs: .*got 1000000000\."),
    (Budget(trials=4, train_fraction=7), r"cpu\.train_fraction: must be a float in the range \(0\.0, 1\.0\] or null; "
                                         r"got 7\."),
    (Budget(trials=True), r"cpu\.trials: must be an int in the range \[1, inf\); got True\."),
    (Budget(trials=0), r"cpu\.trials: must be an int in the range \[1, inf\); got 0\."),
    (Budget(trials=4, points=1), r"cpu\.points: must be an int in the range \[2, inf\) or null; got 1\."),
    (Budget(trials=4, tokens="64"), r"cpu\.tokens: .*got '64'\."),
    (Budget(trials=4, train_per_class=0.5), r"cpu\.train_per_class: .*got 0\.5\."),
])
def test_a_budget_is_checked_field_by_field_when_the_space_loads(budget, match):
    # Before: these loaded, and a search refused some later in the words of flags never given
    # (--train-fraction, "trial config 'epochs'").
    with pytest.raises(SpaceError, match=r"^spaces/bad\.py: " + match):
        validate_space(Space(**{**GOOD, "cpu": budget}), "bad")
    validate_space(Space(**{**GOOD, "gpu": Budget(trials=4, max_epochs=20, train_fraction=1.0)}), "bad")


@pytest.mark.parametrize("key, text, shown", [("measured", "live 2026-12-01\n\x1b[31mfake line", r"'\\n' at character 15"),
                                              ("measured", "ok \x1b[2J", r"'\\x1b' at character 3"),
                                              ("description", "two\rlines", r"'\\r' at character 3")])
def test_printed_texts_of_a_space_are_one_printable_line(key, text, shown):
    with pytest.raises(SpaceError, match=rf"^spaces/bad\.py: {key}: must be one line of printable text; it holds "
                                         rf"{shown}"):
        validate_space(Space(**{**GOOD, key: text}), "bad")
    validate_space(Space(**{**GOOD, key: "ASHA rf 3, 12 % better (2026-12-01)\u202f"}), "bad")


USER_SPACE = '''
from spaces import Budget, Space, choice, loguniform

SPACE = Space(model="mlp", data="wine", params={"lr": loguniform(1e-4, 1e-2)}, start=[{"lr": 1e-3}], max_epochs=10,
              grace_period=2, cpu=Budget(trials=4, max_epochs=CPU_EPOCHS))
'''


def test_a_users_space_is_named_by_its_real_file_and_a_name_it_cannot_have_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "my pairs" / "spaces"
    folder.mkdir(parents=True)
    monkeypatch.setenv("SPECTUNE_PATH", str(folder.parent))
    (folder / "mine.py").write_text(USER_SPACE.replace("CPU_EPOCHS", "4"))
    assert get_space("mine").where == str(folder / "mine.py")
    (folder / "wrong.py").write_text(USER_SPACE.replace("CPU_EPOCHS", "-5"))
    with pytest.raises(SpaceError, match=rf"^{re.escape(str(folder / 'wrong.py'))}: cpu\.max_epochs: must be"):
        get_space("wrong")
    (folder / "wine --trials 999;touch PWNED.py").write_text(USER_SPACE.replace("CPU_EPOCHS", "4"))
    with pytest.raises(SpaceError, match=rf"^{re.escape(str(folder))}/wine --trials 999;touch PWNED\.py: a space's "
                                         r"file name must be letters, digits, .* Rename the file\.$"):
        get_space("wine --trials 999;touch PWNED")


def test_each_domain_knows_its_unit_coordinates_its_optuna_name_and_its_neps_form():
    """The replay's curve model, NePS's peer and the searcher ask a domain for its forms, not for its type."""
    from spaces import choice, integers, loguniform, powers_of_two, uniform, when

    lr, rank, width = loguniform(1e-4, 1e-2), powers_of_two(2, 32), integers(1, 5)
    pick, drop = choice(["a", "b"]), uniform(0.0, 0.5, step=0.1)
    assert lr.unit(1e-3) == pytest.approx([0.5]) and rank.unit(8) == pytest.approx([0.5]) and width.unit(3) == [0.5]
    assert pick.unit("b") == [0.0, 1.0] and pick.unit(None) == [0.0, 0.0] and lr.unit(None) == [0.5]
    sgd_only = when("optimizer", ["sgd"], drop)
    assert sgd_only.unit(None) == [0.0, 0.5] and sgd_only.unit(0.2) == pytest.approx([1.0, 0.4])
    assert rank.neps("r", {"r_log2": 3}) == {"name": "r_log2", "kind": "int", "low": 1, "high": 5, "log": False,
                                              "prior": 3}
    assert pick.neps("p", {"p": "b"})["prior"] == 1 and pick.neps("p", {})["prior"] is None
    assert (lr.neps("lr", {})["kind"], lr.neps("lr", {})["log"], width.neps("w", {})["kind"]) == ("float", True, "int")
    assert rank.from_neps("r", {"r_log2": 2.6}) == {"r_log2": 3} and pick.from_neps("p", {"p": 1}) == {"p": "b"}
    assert drop.from_neps("d", {"d": 0.27}) == {"d": pytest.approx(0.3)} and drop.from_neps("d", {"d": 0.9}) == \
        {"d": pytest.approx(0.5)}
    assert sgd_only.from_neps("d", {"d": 0.27}) == {"d": pytest.approx(0.3)}
    assert rank.encode("r", 16) == {"r_log2": 4} and width.encode("w", 3) == {"w": 3} and sgd_only.encode("d", 0.1) \
        == {"d": 0.1}
