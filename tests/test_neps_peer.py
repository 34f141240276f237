"""NePS's PriorBand as the replay's peer: its space in NePS's terms and back, its promotions continuing
the runs they promote (in a replay and live), its budget in epochs, and its seeds. ``make test`` makes
NePS's environment (``make neps-env``) first."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from results.curves import read_curves
from results.errors import OptionError
from search.bench.neps_peer import NepsDriver, decode, describe, neps_python
from search.replay.simulate import Strategy, replay
from search.strategy.searcher import DefineByRun
from spaces import get_space

needs_neps = pytest.mark.skipif(neps_python() is None, reason="no NePS environment: make neps-env")
PEER = Strategy("NePS PriorBand", trials=4, runner="neps", sampler="priorband", grace=1, reduction=3)


def test_the_space_reaches_neps_with_its_prior_and_comes_back_as_a_trial_config():
    lora = get_space("galspecnet_lora")
    described = {p["name"]: p for p in describe(lora.params, DefineByRun(lora.params).encode(lora.start[0]))}
    # A rank is searched as its log2 (rank 8 -> 3), a choice as its index, a range with its scale.
    assert described["lora_rank_log2"] == {"name": "lora_rank_log2", "kind": "int", "low": 0, "high": 5,
                                           "log": False, "prior": 3}
    assert described["lora_targets"]["kind"] == "index" and described["lora_targets"]["prior"] == 0
    assert described["lr"]["log"] and described["lr"]["prior"] == 1e-3
    config = decode(lora.params, {"lora_rank_log2": 5.0, "lora_alpha_ratio": 2.0, "lora_dropout": 0.1,
                                  "lora_targets": 1, "lr": 1e-3, "weight_decay": 1e-4, "dropout": 0.2})
    assert config["lora_rank"] == 32 and config["lora_targets"] == "linear"

    cal = get_space("california_mlp")
    described = {p["name"]: p for p in describe(cal.params, DefineByRun(cal.params).encode(cal.start[0]))}
    # momentum is searched only with SGD: the start config (Adam) sets no prior for it.
    assert described["momentum"]["prior"] is None and described["batch_norm"]["prior"] == 0
    sampled = {p["name"]: p["low"] for p in described.values()}
    assert "momentum" not in decode(cal.params, {**sampled, "optimizer": 0})
    assert decode(cal.params, {**sampled, "optimizer": 2})["momentum"] == 0.8


def test_a_missing_neps_environment_is_named_with_its_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTUNE_NEPS_PYTHON", str(tmp_path / "nothing" / "python"))
    with pytest.raises(OptionError, match="SPECTUNE_NEPS_PYTHON=.*nothing.*make neps-env"):
        neps_python()


@needs_neps
def test_priorband_starts_at_the_prior_and_its_promotions_continue_their_runs():
    space = get_space("wine_mlp")
    curves = read_curves(space.to_json(), "cpu-c32x3", Path(__file__).resolve().parents[1] / "results")
    log = replay(curves, space.params, list(space.start), PEER, seed=0, peer=NepsDriver)
    first = log.trials[0].config
    assert {k: first[k] for k in space.start[0]} == pytest.approx(space.start[0])
    budget = PEER.trials * curves.max_epochs
    # It asks until it has asked for random search's epochs (the last ask may cross them).
    assert budget <= log.epochs < budget + curves.max_epochs and len(log.events) == log.epochs
    promoted = [t for t in log.trials if t.first_epoch > 0]
    assert promoted
    for t in promoted:
        earlier = [e for e in log.trials if e.outcome == "promoted" and e.config == t.config
                   and e.first_epoch + e.epochs == t.first_epoch]
        assert len(earlier) == 1 and earlier[0].ended_at <= t.started_at
        assert (earlier[0].config_id, earlier[0].seed) == (t.config_id, t.seed)
    again = replay(curves, space.params, list(space.start), PEER, seed=0, peer=NepsDriver)
    other = replay(curves, space.params, list(space.start), PEER, seed=1, peer=NepsDriver)
    key = [(t.config_id, t.first_epoch, t.epochs) for t in log.trials]
    assert key == [(t.config_id, t.first_epoch, t.epochs) for t in again.trials]
    assert key != [(t.config_id, t.first_epoch, t.epochs) for t in other.trials]


@needs_neps
def test_a_promotion_of_a_run_its_patience_ended_trains_nothing():
    from dataclasses import replace

    space = get_space("wine_mlp")
    curves = read_curves(space.to_json(), "cpu-c32x3", Path(__file__).resolve().parents[1] / "results")
    log = replay(curves, space.params, list(space.start), replace(PEER, trials=6, patience=2), seed=0,
                 peer=NepsDriver)
    empty = [t for t in log.trials if t.first_epoch > 0 and t.epochs == 0]
    assert empty and all(t.outcome in ("completed", "promoted") and not math.isnan(t.best) for t in empty)
    # Each epoch trained is one event, and no run goes past its budget.
    assert len(log.events) == log.epochs and all(t.first_epoch + t.epochs <= curves.max_epochs for t in log.trials)


@needs_neps
def test_a_live_priorband_search_trains_only_the_epochs_a_promotion_adds():
    from search.bench.live import Trainer, live_search
    from trainables.pair import load_data
    from trainables.settings import TrialSettings

    space = get_space("wine_mlp")
    pair = space.pair
    settings = TrialSettings(model=pair.model, data=pair.data, max_epochs=6, seed=0, fixed=dict(space.fixed),
                             searched=tuple(space.params), metric=space.metric, mode=space.mode)
    trainer = Trainer(load_data(pair, None, None, test=False, seed=0), settings)
    log, configs = live_search(trainer, space.params, list(space.start), PEER, repeat=0)
    assert any(t.first_epoch > 0 for t in log.trials)
    # A promotion resumes the run it continues: every epoch trained was an epoch of the search.
    assert trainer.trained_epochs == log.epochs and len(configs) == len(log.trials)
    assert not math.isnan(log.pick(space.mode).best)


def test_replay_with_neps_but_no_neps_environment_is_refused_before_any_data_is_read(tmp_path, monkeypatch, capsys):
    from search.bench.lab import main

    monkeypatch.chdir(tmp_path)   # no .venv-neps here
    monkeypatch.delenv("SPECTUNE_NEPS_PYTHON", raising=False)
    assert main(["replay", "--space", "wine_mlp", "--curves", "nothing", "--neps"]) == 2
    err = capsys.readouterr().err
    assert "--neps" in err and "make neps-env" in err and "curves" not in err
