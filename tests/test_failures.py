"""Failures told apart (search/failures.py): a worker killed with SIGKILL is retried from its last
checkpoint and ends exactly as an uninterrupted run; a config that raises is not retried and is recorded
as a configuration failure; a search whose first trials all raise stops, with one message."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from ray import cloudpickle, tune
from ray.exceptions import (ActorDiedError, NodeDiedError, OutOfMemoryError, RayActorError, RayTaskError,
                            WorkerCrashedError)

from search.cli import main
from search.failures import CONFIGURATION, INFRASTRUCTURE, FailureGuard, failure_class, stopped_search
from search.options import SearchOptions
from search.search import SearchStopped, run_search
from search.trial import run_trial
from spaces import get_space
from trainables.recipe import NonFiniteLossError

EPOCHS = 4
KILL_AT = 3                      # the epoch whose report the killed worker never sends
FAILING_LR = 0.00456
GOOD = get_space("wine_mlp").start[0]
BAD = {**GOOD, "lr": FAILING_LR}

# Ray workers cannot import this test module: ship its trial functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _task_error(cause: BaseException) -> RayTaskError:
    """A trainable's exception as Tune receives it from the trial's actor."""
    return RayTaskError("ImplicitFunc.train", "Traceback ...", cause, proctitle="ray::ImplicitFunc", pid=1,
                        ip="127.0.0.1")


@pytest.mark.parametrize("error, expected", [
    (ActorDiedError(), INFRASTRUCTURE),                                  # the worker was killed (SIGKILL, OOM killer)
    (WorkerCrashedError(), INFRASTRUCTURE),
    (NodeDiedError("node lost"), INFRASTRUCTURE),
    (OutOfMemoryError("the memory monitor killed the task"), INFRASTRUCTURE),
    (_task_error(torch.OutOfMemoryError("CUDA out of memory")), INFRASTRUCTURE),
    (_task_error(MemoryError()), INFRASTRUCTURE),
    (_task_error(NonFiniteLossError("training loss became nan at epoch 2")), CONFIGURATION),
    (_task_error(RuntimeError("mat1 and mat2 shapes cannot be multiplied")), CONFIGURATION),
    (_task_error(ValueError("bad config")), CONFIGURATION),
    (RayActorError(actor_init_failed=True), CONFIGURATION),              # its constructor raised: it would again
])
def test_a_failure_is_classified_by_the_type_of_the_exception_tune_recorded(error, expected):
    assert failure_class(error) == expected


def test_the_failure_options_are_checked_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["search", "--space", "wine_mlp", "--infra-retries", "-1"]) == 2
    assert capsys.readouterr().err == "error: --infra-retries must be an int in the range [0, inf); got -1.\n"
    assert main(["search", "--space", "wine_mlp", "--stop-after-failures", "-2"]) == 2
    assert "--stop-after-failures must be an int in the range [0, inf); got -2." in capsys.readouterr().err


def test_a_search_stops_only_when_its_first_trials_all_fail_on_their_configuration(tmp_path):
    def ended(guard, *failures):
        for failure in failures:
            trial = SimpleNamespace(spectune_failure=failure, spectune_error=f"{failure} error")
            if failure:
                guard.on_trial_error(0, [], trial)
            else:
                guard.on_trial_complete(0, [], trial)
        return guard.stop_all()

    assert ended(FailureGuard(3, tmp_path), CONFIGURATION, CONFIGURATION) is False
    assert stopped_search(tmp_path) is None
    assert ended(FailureGuard(3, tmp_path), CONFIGURATION, CONFIGURATION, CONFIGURATION) is True
    assert stopped_search(tmp_path) == {"failed": 3, "last_error": "configuration error"}
    # A trial that ended otherwise first (completed, or failed on the machine) means the pair can train.
    assert ended(FailureGuard(2), "", CONFIGURATION, CONFIGURATION, CONFIGURATION) is False
    assert ended(FailureGuard(2), CONFIGURATION, INFRASTRUCTURE, CONFIGURATION, CONFIGURATION) is False
    assert ended(FailureGuard(0), CONFIGURATION, CONFIGURATION, CONFIGURATION) is False


def test_a_stopped_search_is_one_line_from_the_cli(monkeypatch, capsys):
    import search.search

    def stopped(options):
        raise SearchStopped("search x stopped: its first 3 trials all failed on their configuration (...)")

    monkeypatch.setattr(search.search, "run_search", stopped)
    assert main(["search", "--space", "wine_mlp"]) == 1
    assert capsys.readouterr().err == ("error: search x stopped: its first 3 trials all failed on their "
                                       "configuration (...)\n")


def _options(root: Path, name: str, trials: int, start: tuple[dict, ...]) -> SearchOptions:
    return SearchOptions(space="wine_mlp", trials=trials, max_epochs=EPOCHS, sampler="random", scheduler="fifo",
                         concurrency=1, seed=0, name=name, storage=root / "ray", results_root=root / "results",
                         tracking_uri=f"sqlite:///{root / 'mlflow.db'}", no_patience=True, start=start,
                         space_start=False)


def _calls_by_lr(log: Path) -> list[float]:
    return [float(line) for line in log.read_text().split()] if log.exists() else []


@pytest.fixture(scope="module")
def killed_and_raising(ray_session, tmp_path_factory):
    """Three trials one after another: GOOD, whose worker SIGKILLs itself before reporting its 3rd epoch
    the first time it runs; BAD, which raises; GOOD again, uninterrupted."""
    root = tmp_path_factory.mktemp("failures")
    log, marker = root / "calls.txt", root / "killed"

    def trial(config, data, settings):
        with open(log, "a") as f:
            f.write(f"{config['lr']}\n")
        if config["lr"] == FAILING_LR:
            raise ValueError("injected: this config cannot train")
        if tune.get_checkpoint() is not None or marker.exists():
            return run_trial(config, data, settings)
        marker.touch()
        report = tune.report

        def report_or_die(metrics, *args, **kwargs):
            if metrics["epoch"] == KILL_AT:
                os.kill(os.getpid(), signal.SIGKILL)
            report(metrics, *args, **kwargs)

        tune.report = report_or_die
        try:
            run_trial(config, data, settings)
        finally:
            tune.report = report

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        outcome = run_search(_options(root, "killed", 3, (GOOD, BAD, GOOD)), trial_fn=trial)
    return outcome, root, out.getvalue(), _calls_by_lr(log)


def test_a_killed_worker_is_retried_and_ends_as_an_uninterrupted_run(killed_and_raising):
    outcome, root, printed, calls = killed_and_raising
    trials = pd.read_csv(outcome.results_dir / "trials.csv")
    assert len(trials) == 3 and calls.count(GOOD["lr"]) == 3      # killed, retried, uninterrupted
    good = trials[trials["lr"] == GOOD["lr"]].set_index("retries")
    assert sorted(good.index) == [0, 1] and (good["outcome"] == "completed").all()
    assert good.loc[1, "failure"] == INFRASTRUCTURE and pd.isna(good.loc[0, "failure"])
    retried, plain = good.loc[1, "trial_id"], good.loc[0, "trial_id"]
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")

    def run_of(trial_id):
        (run,) = client.search_runs([client.get_experiment_by_name("spectune-wine_mlp").experiment_id],
                                    f"tags.`spectune.trial_id` = '{trial_id}'")
        return run

    def curves(run):
        return {key: [(m.step, m.value) for m in sorted(client.get_metric_history(run.info.run_id, key),
                                                        key=lambda m: m.step)]
                for key in ("train_loss", "val_loss", "val_macro_f1", "learning_rate")}

    # Retried from its epoch-2 checkpoint: each epoch logged once, every value as without the kill.
    run = run_of(retried)
    assert [step for step, _ in curves(run)["val_loss"]] == list(range(1, EPOCHS + 1))
    assert curves(run) == curves(run_of(plain))
    assert run.info.status == "FINISHED"
    assert run.data.tags["spectune.failure"] == INFRASTRUCTURE and run.data.tags["spectune.retries"] == "1"
    assert run_of(plain).data.tags["spectune.retries"] == "0" and "spectune.failure" not in run_of(plain).data.tags
    # The retry did not spend the search's trials, and the progress lines say what happened.
    assert outcome.best["trials"] == 3
    assert f"{retried:<12} infrastructure failure (ActorDiedError: " in printed
    assert f"retry 1 of 2 from its epoch {KILL_AT - 1} checkpoint" in printed
    assert any(retried in line and "completed" in line and line.endswith("after 1 retry (infrastructure)")
               for line in printed.splitlines()), printed


def test_a_config_that_raises_is_not_retried_and_is_recorded_as_a_configuration_failure(killed_and_raising):
    outcome, root, printed, calls = killed_and_raising
    assert calls.count(FAILING_LR) == 1
    (row,) = pd.read_csv(outcome.results_dir / "trials.csv").query(f"lr == {FAILING_LR}").to_dict("records")
    assert (row["outcome"], row["failure"], row["retries"]) == ("failed", CONFIGURATION, 0)
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("spectune-wine_mlp").experiment_id],
                                f"tags.`spectune.trial_id` = '{row['trial_id']}'")
    assert run.info.status == "FAILED" and run.data.tags["spectune.failure"] == CONFIGURATION
    assert run.data.tags["spectune.retries"] == "0" and "injected" in run.data.tags["spectune.error"]
    assert any(row["trial_id"] in line and line.endswith("configuration failure, not retried")
               for line in printed.splitlines()), printed


def test_a_search_whose_first_trials_all_raise_stops_with_one_message(ray_session, tmp_path):
    log = tmp_path / "calls.txt"

    def trial(config, data, settings):
        with open(log, "a") as f:
            f.write(f"{config['lr']}\n")
        raise NonFiniteLossError("training loss became nan at epoch 1 (lr=0.001); this config diverges.")

    options = _options(tmp_path, "broken", 8, ())
    assert options.stop_after_failures == 3
    with pytest.raises(SearchStopped) as caught:
        run_search(options, trial_fn=trial)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("search broken stopped: its first 3 trials all failed on their configuration (the "
                              "last: NonFiniteLossError: training loss became nan at epoch 1")
    assert "5 of 8 trials were not run" in message
    assert len(_calls_by_lr(log)) == 3
    client = MlflowClient(options.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("spectune-wine_mlp").experiment_id],
                              "tags.`spectune.search` = 'broken'")
    trials = [r for r in runs if r.data.tags["spectune.role"] == "trial"]
    assert len(trials) == 3 and {r.data.tags["spectune.failure"] for r in trials} == {CONFIGURATION}
    assert [r.info.status for r in runs if r.data.tags["spectune.role"] == "search"] == ["FAILED"]
    assert not (tmp_path / "results" / "wine_mlp" / "broken").exists()
