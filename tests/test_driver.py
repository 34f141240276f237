"""The commands that train configs through Tune share one driver (search/running/driver.py): each adds only what
differs, none repeats the driver's steps, and each checks a config by a dry run before Ray starts."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pandas as pd
import pytest

from results.errors import ConfigError
from search.commands.confirm import ConfirmCommand
from search.running.driver import TrialCommand
from search.options import ConfirmOptions
from search.commands.record import RecordCommand
from search.commands.search import SearchCommand
from spaces import get_space

ROOT = Path(__file__).resolve().parents[1]
# The driver's own steps: a command that calls one of these copies the driver instead of using it.
DRIVER_STEPS = {"ray_session", "fit", "plan_placement", "gpu_share", "MLflowTracker", "load_data", "dry_run",
                "collect_trials", "ProgressPrinter"}


@pytest.mark.parametrize("command", [SearchCommand, RecordCommand, ConfirmCommand])
def test_each_command_adds_to_the_driver_and_repeats_none_of_its_steps(command):
    assert issubclass(command, TrialCommand)
    module = ROOT.joinpath(*command.__module__.split(".")).with_suffix(".py")
    called = {n.func.id for n in ast.walk(ast.parse(module.read_text()))
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert not called & DRIVER_STEPS


def test_confirm_dry_runs_the_searchs_pick_before_ray_starts(tmp_path, monkeypatch):
    import search.running.driver

    def started(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(search.running.driver, "ray_session", started)
    space = get_space("wine_mlp")
    out = tmp_path / "results" / "wine_mlp" / "s"
    out.mkdir(parents=True)
    searched = dict(space.start[0])
    config = {**space.first_config(), "epochs": 2, "seed": 0, "no_such_knob": 1}   # fails the dry run only
    (out / "best.json").write_text(json.dumps({
        "space": "wine_mlp", "search_name": "s", "metric": "val_macro_f1", "mode": "max", "trial_id": "a",
        "config": config, "searched": searched, "best_value": 0.9, "best_epoch": 2, "data_options": {}}))
    pd.DataFrame([{"trial_id": t, "outcome": "completed", "best_val_macro_f1": v, **searched}
                  for t, v in (("a", 0.9), ("b", 0.8))]).to_csv(out / "trials.csv", index=False)
    with pytest.raises(ConfigError, match="search s's pick in best.json"):
        ConfirmCommand(ConfirmOptions(space="wine_mlp", name="s", top=2, seeds=2, storage=tmp_path / "ray",
                                      results_root=tmp_path / "results",
                                      tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")).run()
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "ray").exists()
