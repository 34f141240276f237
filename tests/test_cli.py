"""Bad input at the command line: one ``error:`` line naming the thing and the fix, exit 2,
nothing written, and no Ray started."""

import json
import re

import pytest
import torch

from conftest import write_split
from search.cli import main
from spaces import get_space, list_spaces
from trainables.data.ztf_synthetic import CLASS_ORDER


@pytest.mark.parametrize("argv, match", [
    (["search", "--space", "nope"], r"unknown space 'nope'; available spaces: .*galspecnet"),
    (["train", "--space", "nope"], r"unknown space 'nope'"),
    (["search", "--space", "galspecnet", "--data", "{tmp}/missing"], r"data folder .*missing does not exist.*spectune data --space galspecnet"),
    (["train", "--data", "{tmp}/missing"], r"data folder .*missing does not exist"),
    (["search", "--space", "galspecnet", "--resume"], r"--resume needs --name"),
    (["search", "--space", "galspecnet", "--name", "x y"], r"--name must be letters, digits"),
    (["train", "--config", "{tmp}/absent.json"], r"config file .*absent\.json does not exist"),
    (["train", "--config", "{tmp}/bad.json"], r"config file .*bad\.json is not valid JSON"),
    (["train", "--config", "{tmp}/unknown_key.json"], r"unknown hyperparameter\(s\) \['learning_rate'\]"),
    (["train", "--config", "{tmp}/out_of_range.json"], r"'dropout' hyperparameter must be a float in the range \[0.0, 1.0\); got 2.0"),
    (["train", "--device", "tpu"], r"--device must be cpu, cuda, cuda:N or auto"),
    (["export", "--space", "galspecnet", "--name", "never-ran"], r"has no .*best\.json.*--resume"),
    (["search", "--space", "galspecnet", "--start", "{tmp}/number.json"], r"--start file .*number\.json must hold a JSON list of objects"),
    (["search", "--space", "galspecnet", "--start", "{tmp}/unknown_key.json"], r"start config 0 must give exactly the searched keys \['T_0', 'batch_size', .*got \['learning_rate'\]"),
    (["search", "--space", "galspecnet", "--start", "{tmp}/start_out_of_range.json"], r"start config 1: the 'lr' hyperparameter must be a float in the range \(0.0, 1.0\]; got 5.0"),
    (["train", "--json-out", "{tmp}/bad.json/summary.json"], r"--json-out .*summary\.json: cannot create it under .*bad\.json \(not a writable folder\)"),
    (["search", "--space", "wine_mlp", "--data", "{tmp}"], r"data 'wine' ships with scikit-learn and reads no folder"),
    (["train", "--space", "wine_mlp", "--config", "{tmp}/bool_for_int.json"],
     r"the 'depth' hyperparameter must be an int in the range \[0, 8\]; got True"),
    (["train", "--space", "wine_mlp", "--config", "{tmp}/no_condition.json"],
     r"'momentum' applies only when 'optimizer' is one of \['sgd', 'rmsprop'\]; got optimizer='adamw'"),
    (["search", "--space", "wine_mlp", "--start", "{tmp}/no_condition.json"],
     r"start config 0 must give exactly the searched keys \['activation', 'batch_norm', .*got \['momentum'\]"),
    (["train", "--space", "fashion_norm_cnn", "--data", "{tmp}/nofashion"],
     r"Fashion-MNIST files \[.*\] are not in .*nofashion\. Install Debian's package .*Zalando's release"),
    (["search", "--space", "tabular_dcn", "--data", "{tmp}/notable"], r"notable/table\.npz is missing\. Write it with "
                                                                      r"`spectune data --space tabular_widedeep"),
    (["search", "--space", "waveform_cnn", "--data", "{tmp}/images"],
     r"images/train\.pt: 'signal' must have shape \(N, C, L\) or \(N, L\); got \(6, 1, 8, 8\)"),
    (["search", "--space", "waveform_cnn", "--data", "{tmp}/badtest"], r"badtest/test\.pt: not a readable torch\.save file"),
    (["search", "--space", "galspecnet", "--data", "{tmp}/waves"], r"galspecnet pools by 4 three times and needs at least 64 points"),
    (["data", "--space", "wine_mlp", "--per-class", "1", "1", "1"], r"data 'wine' does not take \['per_class'\]; it takes no options"),
    (["data", "--space", "galspecnet", "--source", "shuttle", "--out", "{tmp}/z"],
     r"data 'ztf_spectra' does not take \['source'\]; it takes \['per_class', 'points'\]"),
    (["data", "--space", "tabular_dcn", "--source", "excel", "--out", "{tmp}/t"], r"--source must be one of \['covertype'"),
    # Run options: one declared table (search.options) checks them, before any data is read.
    (["search", "--space", "wine_mlp", "--trials", "0"], r"^error: --trials must be an int in the range \[1, inf\); got 0\.$"),
    (["search", "--space", "wine_mlp", "--gpus-per-trial", "-0.5"],
     r"--gpus-per-trial must be a float in the range \[0.0, 8.0\]; got -0.5"),
    (["search", "--space", "wine_mlp", "--concurrency", "0"], r"--concurrency must be an int in the range \[1, inf\)"),
    (["search", "--space", "wine_mlp", "--train-fraction", "1.5"],
     r"--train-fraction must be a float in the range \(0.0, 1.0\]; got 1.5"),
    (["search", "--space", "wine_mlp", "--patience", "3", "--no-patience"], r"--no-patience and --patience 3 contradict"),
    (["search", "--space", "wine_mlp", "--time-budget", "0"],
     r"^error: --time-budget must be a float in the range \(0.0, inf\); got 0.0\.$"),
    (["search", "--space", "wine_mlp", "--time-budget", "-5"], r"--time-budget must be a float .*; got -5.0"),
    (["search", "--space", "wine_mlp", "--time-budget", "nan"], r"--time-budget must be a float .*; got nan"),
    (["confirm", "--space", "wine_mlp", "--top", "1"], r"--top must be an int in the range \[2, inf\); got 1"),
])
def test_bad_input_gives_one_clear_error(argv, match, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.json").write_text("{lr: 1}")
    (tmp_path / "unknown_key.json").write_text(json.dumps({"learning_rate": 1e-3}))
    (tmp_path / "out_of_range.json").write_text(json.dumps({"config": {"dropout": 2.0}, "space": "galspecnet"}))
    (tmp_path / "number.json").write_text("3")
    good = {"lr": 1e-4, "weight_decay": 1e-5, "warmup_epochs": 2, "T_0": 5, "dropout": 0.3, "gamma": 2.0,
            "batch_size": 128}
    (tmp_path / "start_out_of_range.json").write_text(json.dumps([good, {**good, "lr": 5.0}]))
    (tmp_path / "bool_for_int.json").write_text(json.dumps({"depth": True}))
    (tmp_path / "no_condition.json").write_text(json.dumps({"momentum": 0.9}))
    images = {"signal": torch.zeros(6, 1, 8, 8), "labels": ["sine", "triangle", "square"] * 2}
    for split in ("train", "val", "test"):
        write_split(tmp_path / "images", split, images["signal"], images["labels"], key="signal")
        write_split(tmp_path / "badtest", split, torch.randn(6, 1, 16), images["labels"], key="signal")
        write_split(tmp_path / "waves", split, torch.randn(9, 1, 32), list(CLASS_ORDER), key="flux")
    (tmp_path / "badtest" / "test.pt").write_text("not a tensor file")
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(match, lines[0]), lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_resume_of_a_search_that_never_ran(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["search", "--space", "galspecnet", "--name", "never-ran", "--resume"]) == 2
    assert "--resume: no interrupted search at" in capsys.readouterr().err


def test_spaces_lists_parameters_and_ranges(capsys):
    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    assert "galspecnet:" in out and "baseline_cnn:" in out
    assert "lr               log-uniform [2e-05, 0.003]" in out
    assert "batch_size       choice [64, 128, 256, 512]" in out
    assert "groups           choice [2, 4, 8] when norm = 'group'" in out
    assert ("CPU budget: 18 trials x up to 20 epochs, ASHA grace 10, sequences block-averaged to 1024 points, "
            "at most 280 training examples per class") in out
    # What each space's search settings were measured to do, or that they were not.
    assert "    search settings: live, 10 searches paired with random search at its epochs" in out
    assert out.count("    search settings: not measured on this pair; spectune record") \
        == sum(not get_space(n).measured for n in list_spaces()) > 0


def test_spaces_shows_each_budgets_epochs_and_first_rung(capsys):
    """A CPU user gets the CPU budget's cut-down epochs and the lower grace that follows from them
    (before, only the space's GPU-scale "60 epochs, ASHA grace 15" was listed for galspecnet)."""

    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("galspecnet: "))
    assert header.endswith("ASHA rf 2, TPE start-up 4)") and "grace" not in header
    assert "    CPU budget: 18 trials x up to 20 epochs, ASHA grace 10, sequences block-averaged" in out
    assert "    GPU budget: 64 trials x up to 60 epochs, ASHA grace 15\n" in out
    # Every listed grace is the one a search of that budget runs with.
    assert ("    CPU budget: 48 trials (4 x the budget's 12, most stopped early) x up to 20 epochs, at most 240 in "
            "all, ASHA grace 1") in out
    for name in ("galspecnet", "galspecnet_lora", "wine_mlp", "minilm_lora_text", "california_mlp"):
        space = get_space(name)
        for label, budget in (("CPU", space.cpu), ("GPU", space.gpu)):
            epochs = budget.max_epochs or space.max_epochs
            assert f"{label} budget: {space.search_trials(budget)} trials" in out
            assert f" x up to {epochs} epochs, ASHA grace " \
                   f"{space.grace_for(epochs)}" in out


def test_data_refuses_to_overwrite_without_force(tmp_path, capsys):
    (tmp_path / "train.pt").write_bytes(b"keep me")
    assert main(["data", "--out", str(tmp_path), "--per-class", "2", "1", "1", "--points", "128"]) == 2
    assert "pass --force to overwrite" in capsys.readouterr().err
    assert (tmp_path / "train.pt").read_bytes() == b"keep me"


def test_an_internal_error_keeps_its_traceback_and_says_it_is_a_bug(monkeypatch, capsys):
    from search import cli

    def broken(args):
        raise ValueError("an internal invariant broke")

    monkeypatch.setitem(cli.COMMANDS, "spaces", broken)
    # main() lets it through (before, every ValueError became a one-line "error:" and exit 2) ...
    with pytest.raises(ValueError, match="an internal invariant broke"):
        main(["spaces"])
    # ... and the spectune script prints the traceback, then says it is a bug.
    monkeypatch.setattr("sys.argv", ["spectune", "spaces"])
    assert cli.run() == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ValueError: an internal invariant broke" in err
    assert "this is a bug in spectune" in err.splitlines()[-1]


@pytest.mark.parametrize("command, hint", [("search", True), ("spaces", False)])
def test_the_resume_hint_follows_only_an_interrupted_search(command, hint, monkeypatch, capsys):
    from search import cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, command, interrupted)
    assert main([command] + (["--space", "wine_mlp"] if command == "search" else [])) == 130
    assert ("--resume" in capsys.readouterr().err) is hint


def test_the_prior_sampler_without_a_starting_config_is_refused_before_ray(tmp_path, monkeypatch, capsys):
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "no_start.py").write_text(
        "from spaces import Space, loguniform\n"
        "SPACE = Space(model='mlp', data='wine', params={'lr': loguniform(1e-4, 1e-2)}, max_epochs=2, grace_period=1)\n")
    monkeypatch.setenv("SPECTUNE_PATH", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main(["search", "--space", "no_start", "--sampler", "prior"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --sampler prior draws around the first starting config, and space 'no_start' has "
                          "none") and "\n" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spaces"]


def test_a_printed_command_runs_as_printed_whatever_the_names_hold(tmp_path, monkeypatch, capsys):
    """Each command the toolkit prints for the user to copy is shell-quoted: a path or name holding a
    space or ';' is one argument when pasted, never a second command."""
    import shlex
    from types import SimpleNamespace

    from search.commands.confirm import ConfirmCommand
    from search.options import ConfirmOptions, SearchOptions
    from search.commands.record import RecordCommand, RecordOptions
    from search.commands.search import SearchCommand

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "results" / "wine_mlp" / "s"
    out.mkdir(parents=True)
    (out / "best.json").write_text(json.dumps({"search_name": "s", "trial_id": "a", "best_value": 0.9}))
    hostile = "a b;touch PWNED.json"
    assert main(["export", "--space", "wine_mlp", "--name", "s", "--out", hostile]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert shlex.split(line.split(": ", 1)[1]) == ["spectune", "train", "--config", hostile, "--test"]

    odd = "x y;touch PWNED"
    run = SimpleNamespace(plan=SimpleNamespace(name="n", total=4), space=SimpleNamespace(name=odd))
    search = SearchCommand(SearchOptions(space="wine_mlp", trials=4)).interrupted(run, 2)
    assert f"spectune search --space {shlex.quote(odd)} --name n --resume (same" in search
    record = RecordCommand(RecordOptions(search=SearchOptions(space="wine_mlp")))
    record.name = "n"
    assert f"spectune record --space {shlex.quote(odd)} --name n --resume." in record.interrupted(run, 2)
    confirm = ConfirmCommand(ConfirmOptions(space="wine_mlp"))
    confirm.search = "n"
    assert f"spectune confirm --space {shlex.quote(odd)} --name n again." in confirm.interrupted(run, 2)
    # A data folder's fix names the folder as one argument.
    assert main(["search", "--space", "tabular_dcn", "--data", str(tmp_path / "no table")]) == 2
    assert f"--out {shlex.quote(str(tmp_path / 'no table'))}`" in capsys.readouterr().err
