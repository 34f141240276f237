"""Failures told apart (search/running/failures.py): a worker killed with SIGKILL, or a trainable that runs out of
memory, is retried from its last checkpoint and ends exactly as an uninterrupted run; a config that raises
is not retried and is recorded as a configuration failure; a search whose first trials all raise stops,
with one message, and a resumed search counts its failures on from where it was cut."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from ray import cloudpickle, tune
from ray.exceptions import (ActorDiedError, ActorPlacementGroupRemoved, ActorUnschedulableError, NodeDiedError,
                            ObjectStoreFullError, OutOfDiskError, OutOfMemoryError, RayActorError, RayTaskError,
                            RpcError, TaskUnschedulableError, UserCodeException, WorkerCrashedError)
from ray.tune.callback import CallbackList

from results.errors import SearchInterrupted, SearchStopped
from search.cli import main
from search.running.failures import CONFIGURATION, INFRASTRUCTURE, FailureGuard, failure_class, stopped_search
from search.options import SearchOptions
from search.running.progress import ProgressPrinter
from search.commands.search import judge_stop, run_search, winners
from search.running.trial import run_trial
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
    (OutOfDiskError("the local disk is full"), INFRASTRUCTURE),
    (ObjectStoreFullError("the object store is full"), INFRASTRUCTURE),
    (ActorUnschedulableError("no node can host the trial's actor"), INFRASTRUCTURE),
    (TaskUnschedulableError("no node can run the task"), INFRASTRUCTURE),
    (ActorPlacementGroupRemoved(), INFRASTRUCTURE),
    (RpcError("failed to connect to the GCS", rpc_code=14), INFRASTRUCTURE),
    (_task_error(torch.OutOfMemoryError("CUDA out of memory")), INFRASTRUCTURE),
    (_task_error(MemoryError()), INFRASTRUCTURE),
    (_task_error(OSError(errno.ENOSPC, "No space left on device")), INFRASTRUCTURE),   # writing a checkpoint
    (_task_error(OSError(errno.EIO, "Input/output error")), INFRASTRUCTURE),
    (_task_error(FileNotFoundError(errno.ENOENT, "No such file or directory")), CONFIGURATION),
    (_task_error(OutOfDiskError("the local disk is full")), INFRASTRUCTURE),           # a Ray error the trainable saw
    (UserCodeException("user code raised"), CONFIGURATION),              # a Ray error that wraps the user's own
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
    running = SimpleNamespace(trial_id="running", status="RUNNING")

    def ended(guard, *failures):
        for i, failure in enumerate(failures):
            trial = SimpleNamespace(trial_id=f"t{i}", status="ERROR", spectune_failure=failure,
                                    spectune_error=f"{failure} error")
            if failure:
                guard.on_trial_error(0, [running, trial], trial)
            else:
                guard.on_trial_complete(0, [], trial)
        return guard.stop_all()

    assert ended(FailureGuard(3, tmp_path), CONFIGURATION, CONFIGURATION) is False
    assert stopped_search(tmp_path) is None
    assert ended(FailureGuard(3, tmp_path), CONFIGURATION, CONFIGURATION, CONFIGURATION) is True
    # The trial still running is cut short by the stop: its partial result is no completed trial's.
    assert stopped_search(tmp_path) == {"failure": CONFIGURATION, "failed": 3, "infrastructure": 0,
                                        "last_error": "configuration error", "cut": ["running"]}
    # A trial that completed first means the pair can train; one that failed on the machine says nothing of it.
    assert ended(FailureGuard(2), "", CONFIGURATION, CONFIGURATION, CONFIGURATION) is False
    assert ended(FailureGuard(2), CONFIGURATION, INFRASTRUCTURE, CONFIGURATION) is True
    assert ended(FailureGuard(0), CONFIGURATION, CONFIGURATION, CONFIGURATION) is False


def test_the_failure_count_is_saved_with_tunes_experiment_state_and_restored(tmp_path):
    def config_failure(guard):
        guard.on_trial_error(0, [], SimpleNamespace(spectune_failure=CONFIGURATION, spectune_error="ValueError: x"))

    # Tune saves every callback's get_state beside its experiment state and hands it to the callbacks
    # that a restored run unpickled from tuner.pkl, as they were when the run started.
    before = FailureGuard(3, tmp_path)
    config_failure(before)
    config_failure(before)
    CallbackList([before, ProgressPrinter(8, "val_macro_f1")]).save_to_dir(str(tmp_path), session_str="s")
    after = FailureGuard(3, tmp_path)
    restored = CallbackList([after, ProgressPrinter(8, "val_macro_f1")])
    assert restored.can_restore(str(tmp_path))
    restored.restore_from_dir(str(tmp_path))
    assert (after.armed, after.failed_at_start, after.stopped) == (True, 2, False)
    config_failure(after)
    assert after.stop_all() and stopped_search(tmp_path)["failed"] == 3

    # A trial that completed before the cut disarms the guard for good, resumed or not.
    completed = FailureGuard(3)
    completed.on_trial_complete(0, [], SimpleNamespace())
    resumed = FailureGuard(3)
    resumed.set_state(completed.get_state())
    for _ in range(3):
        config_failure(resumed)
    assert not resumed.stop_all()


def test_a_stop_after_completed_trials_writes_their_results_instead_of_failing_the_search(tmp_path):
    # Best first, as collect_trials sorts them.
    frame = pd.DataFrame({"trial_id": ["bad1", "cut", "good", "bad2", "bad3"],
                          "outcome": ["failed", "stopped early", "completed", "failed", "failed"],
                          "best_val_macro_f1": [0.95, 0.9, 0.8, None, None]})
    stopped = {"failed": 3, "last_error": "ValueError: x", "cut": ["cut"]}
    # Neither a failed trial nor one the stop cut short can be the best, whatever it scored.
    assert winners(frame, "val_macro_f1", stopped)["trial_id"].tolist() == ["good"]
    note = judge_stop("s", stopped, winners(frame, "val_macro_f1", stopped), 8, len(frame), tmp_path)
    assert note == ("the failure guard stopped the search: its first 3 trials all failed on their configuration (the "
                    "last: ValueError: x), so the pair or its space is broken, not unlucky; 3 of 8 trials were not "
                    "run. The results are those of the 1 trial(s) that did not fail.")
    # A file written before the guard listed the trials it cut reads as none cut.
    assert winners(frame, "val_macro_f1", {"failed": 3, "last_error": ""})["trial_id"].tolist() == ["cut", "good"]
    with pytest.raises(SearchStopped, match=r"^search s stopped: its first 3 trials all failed on their "
                                            r"configuration \(the last: ValueError: x\).* 5 of 8 trials were not run"):
        judge_stop("s", stopped, winners(frame.drop(2), "val_macro_f1", stopped), 8, 3, tmp_path)


def test_a_stopped_search_is_one_line_from_the_cli(monkeypatch, capsys):
    import search.commands.search

    def stopped(options):
        raise SearchStopped("search x stopped: its first 3 trials all failed on their configuration (...)")

    monkeypatch.setattr(search.commands.search, "run_search", stopped)
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


def _fail_once(marker: Path, at_epoch: int, fail: Callable[[], None], config: dict, data, settings) -> None:
    """Run the trial, calling ``fail`` instead of reporting epoch ``at_epoch`` the first time (while there
    is no ``marker``)."""
    if tune.get_checkpoint() is not None or marker.exists():
        return run_trial(config, data, settings)
    marker.touch()
    _run_failing_at(at_epoch, fail, config, data, settings)


def _run_failing_at(at_epoch: int, fail: Callable[[], None], config: dict, data, settings) -> None:
    """Run the trial, calling ``fail`` instead of reporting epoch ``at_epoch``."""
    report = tune.report

    def report_or_fail(metrics, *args, **kwargs):
        if metrics["epoch"] == at_epoch:
            fail()
        report(metrics, *args, **kwargs)

    tune.report = report_or_fail
    try:
        run_trial(config, data, settings)
    finally:
        tune.report = report


def _kill_worker() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _run_out_of_memory() -> None:
    raise MemoryError("injected: the trainable ran out of host memory")


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
        _fail_once(marker, KILL_AT, _kill_worker, config, data, settings)

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


def test_a_trainable_that_runs_out_of_memory_once_is_retried_from_its_checkpoint(ray_session, tmp_path):
    marker = tmp_path / "out_of_memory"

    def trial(config, data, settings):
        # Tune receives the MemoryError inside a RayTaskError: classified by its cause.
        _fail_once(marker, 2, _run_out_of_memory, config, data, settings)

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        outcome = run_search(_options(tmp_path, "oom", 1, (GOOD,)), trial_fn=trial)
    (row,) = pd.read_csv(outcome.results_dir / "trials.csv").to_dict("records")
    assert (row["outcome"], row["failure"], row["retries"], row["epochs"]) == ("completed", INFRASTRUCTURE, 1, EPOCHS)
    assert (f"{row['trial_id']:<12} infrastructure failure (MemoryError: injected: the trainable ran out of host "
            "memory); retry 1 of 2 from its epoch 1 checkpoint") in out.getvalue()


def test_a_resumed_search_counts_its_failures_on_from_where_it_was_cut(ray_session, tmp_path):
    """GOOD completes; the driver gets SIGINT (Ctrl+C) while the 2nd trial runs; after --resume the 3 trials
    left all fail on their configuration. The guard had seen GOOD complete, so the search ends with results."""
    driver, marker = os.getpid(), tmp_path / "interrupted"

    def trial(config, data, settings):
        if config["lr"] == GOOD["lr"]:
            return run_trial(config, data, settings)
        if not marker.exists():
            marker.touch()
            os.kill(driver, signal.SIGINT)
            time.sleep(60)                  # until Tune, interrupted, stops this trial
        raise ValueError("injected: this config cannot train")

    options = _options(tmp_path, "cut", 4, (GOOD,))
    with pytest.raises(SearchInterrupted):
        run_search(options, trial_fn=trial)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        outcome = run_search(replace(options, resume=True), trial_fn=trial)
    assert stopped_search(tmp_path / "ray" / "cut") is None and "stopped" not in out.getvalue()
    trials = pd.read_csv(outcome.results_dir / "trials.csv")
    assert trials["outcome"].tolist() == ["completed", "failed", "failed", "failed"]
    assert outcome.best["trials"] == 4 and outcome.best["config"]["lr"] == GOOD["lr"]


# --- issue 28: the guard after any mix of failures, a full disk, an out-of-memory that follows its config ---

def _end(guard: FailureGuard, outcomes: str, running: tuple = ()) -> bool:
    """End one trial per letter (c: completed, C: configuration failure, I: infrastructure failure after its
    retries) and say whether the guard stopped the search."""
    for i, letter in enumerate(outcomes):
        failure = {"C": CONFIGURATION, "I": INFRASTRUCTURE}.get(letter, "")
        trial = SimpleNamespace(trial_id=f"t{i}", status="ERROR" if failure else "TERMINATED",
                                spectune_failure=failure, spectune_error=f"{failure or 'no'} error {i}",
                                spectune_retries=2 if letter == "I" else 0)
        if failure:
            guard.on_trial_error(0, [*running, trial], trial)
        else:
            guard.on_trial_complete(0, [*running, trial], trial)
    return guard.stop_all()


def test_an_infrastructure_failure_does_not_disarm_the_guard_for_good(tmp_path):
    # 1 infrastructure + 4 configuration failures: the first 3 outcomes the machine did not decide all failed.
    assert _end(FailureGuard(3, tmp_path), "ICCCC") is True
    record = stopped_search(tmp_path)
    assert (record["failure"], record["failed"], record["infrastructure"]) == (CONFIGURATION, 3, 1)
    assert _end(FailureGuard(3), "CICIC") is True
    assert _end(FailureGuard(3), "ICIC") is False
    # A completed trial still shows that the pair can train: configuration failures after it are the configs'.
    assert _end(FailureGuard(3), "ICcCCCC") is False


def test_trials_that_keep_failing_on_the_machine_stop_the_search(tmp_path):
    # 20 infrastructure failures (each after its retries): before, the guard never stopped.
    assert _end(FailureGuard(3, tmp_path), "I" * 20) is True
    record = stopped_search(tmp_path)
    assert (record["failure"], record["failed"], record["last_error"]) == (INFRASTRUCTURE, 3, "infrastructure error 2")
    # Also after a completed trial: the machine can break in the middle of a search. Only failures in a row count.
    assert _end(FailureGuard(3), "cIIcIIcII") is False
    assert _end(FailureGuard(3), "cIICIIcIII") is True
    assert _end(FailureGuard(0), "I" * 20) is False


def test_the_new_counts_survive_resume_and_an_old_state_still_restores():
    guard = FailureGuard(3)
    _end(guard, "cII")
    resumed = FailureGuard(3)
    resumed.set_state(guard.get_state())
    assert _end(resumed, "I") is True
    # The state saved by the guard before issue 28 had no infrastructure counts.
    old = FailureGuard(3)
    old.set_state({"armed": True, "failed_at_start": 2, "stopped": False})
    assert _end(old, "C") is True


def test_every_stop_is_one_line_that_names_the_class(tmp_path):
    frame = pd.DataFrame({"trial_id": ["a", "b"], "outcome": ["failed", "failed"], "best_val_macro_f1": [None, None]})
    guard = FailureGuard(3, tmp_path)
    _end(guard, "I" * 3)
    with pytest.raises(SearchStopped) as caught:
        judge_stop("s", stopped_search(tmp_path), frame.iloc[:0], 8, 3, tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("search s stopped: 3 trials in a row failed on the machine after 2 retries each (the "
                              "last: infrastructure error 2), so the machine, not the configs, is failing;")
    assert "5 of 8 trials were not run" in message
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    _end(FailureGuard(3, mixed), "ICCC")
    with pytest.raises(SearchStopped, match=r"^search s stopped: its first 3 trials that the machine did not fail all "
                                            r"failed on their configuration \(and 1 failed on the machine; the last: "
                                            r"configuration error 3\), so the pair or its space is broken"):
        judge_stop("s", stopped_search(mixed), frame.iloc[:0], 8, 4, mixed)
    # Trials that completed before the machine broke are still the search's results.
    done = pd.DataFrame({"trial_id": ["ok"], "outcome": ["completed"], "best_val_macro_f1": [0.8]})
    note = judge_stop("s", stopped_search(tmp_path), done, 8, 4, tmp_path)
    assert note.startswith("the failure guard stopped the search: 3 trials in a row failed on the machine")
    assert note.endswith("4 of 8 trials were not run. The results are those of the 1 trial(s) that did not fail.")


def _disk_full_error() -> BaseException:
    """What torch.save raises when the disk is full: /dev/full answers every write with ENOSPC."""
    try:
        torch.save({"w": torch.zeros(1000)}, "/dev/full")
    except BaseException as error:       # noqa: BLE001 - the error is what is tested
        return error
    pytest.fail("torch.save to /dev/full did not fail")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_torch_save_to_a_full_disk_is_an_infrastructure_failure():
    import traceback

    from ray import cloudpickle as pickle

    error = _disk_full_error()
    assert isinstance(error, RuntimeError) and "No space" not in str(error)    # the message does not say why
    # As Tune receives it: the traceback text keeps the chain, the pickled cause loses its __context__.
    wrapped = RayTaskError("ImplicitFunc.train", "".join(traceback.format_exception(error)),
                           pickle.loads(pickle.dumps(error)), proctitle="ray::ImplicitFunc", pid=1, ip="127.0.0.1")
    assert failure_class(wrapped) == INFRASTRUCTURE
    # What Tune hands to handle_error is Ray's dual RayTaskError(RuntimeError), which has no traceback_str.
    assert failure_class(wrapped.make_dual_exception_instance()) == INFRASTRUCTURE
    assert failure_class(pickle.loads(pickle.dumps(error))) == INFRASTRUCTURE


@pytest.mark.parametrize("error", [
    RuntimeError("[enforce fail at inline_container.cc:471] . PytorchStreamWriter failed writing file data/77: "
                 "file write failed"),
    RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 190007680 vs 190007572"),
    RuntimeError("write(): fd 29 failed with No space left on device"),
    OSError("[Errno 122] Disk quota exceeded"),
])
def test_the_messages_of_a_full_disk_are_infrastructure(error):
    assert failure_class(_task_error(error)) == INFRASTRUCTURE


def test_a_runtime_error_raised_from_a_full_disk_is_infrastructure():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as disk:
            raise RuntimeError("saving the checkpoint failed") from disk
    except RuntimeError as error:
        assert failure_class(error) == INFRASTRUCTURE
    assert failure_class(RuntimeError("saving the checkpoint failed")) == CONFIGURATION


def _fail(trial, error: BaseException, epoch: int) -> bool:
    """Fail ``trial`` at ``epoch`` as Tune does: handle_error, then ask whether to retry (and count the retry)."""
    trial.run_metadata.last_result = {"epoch": epoch}
    trial.handle_error(error)
    retry = trial.should_recover()
    if retry:
        FailureGuard(3).on_trial_recover(0, [], trial)
    return retry


@pytest.fixture()
def classified_trial(monkeypatch):
    from ray.tune.experiment import Trial

    from search.running.failures import ClassifiedTrial

    # A trial without a storage folder: Tune's handle_error then writes no error file.
    monkeypatch.setattr(Trial, "local_path", property(lambda self: None))

    def make(max_failures: int = 2) -> Trial:
        trial = Trial("__fake", stub=True, config={"batch_size": 1 << 20}, max_failures=max_failures)
        trial.__class__ = ClassifiedTrial
        return trial
    return make


def test_an_out_of_memory_that_follows_its_config_is_the_configs_failure(classified_trial):
    from search.running.failures import error_of, failure_of

    oom = lambda: _task_error(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 512.00 GiB"))  # noqa: E731
    trial = classified_trial()
    # Retried while it may be the machine's doing ...
    assert [_fail(trial, oom(), 0), _fail(trial, oom(), 0)] == [True, True]
    assert failure_of(trial) == INFRASTRUCTURE
    # ... and, failing the same way after its retries, reported as the config's failure.
    assert _fail(trial, oom(), 0) is False
    assert failure_of(trial) == CONFIGURATION
    assert error_of(trial).startswith("OutOfMemoryError: CUDA out of memory") and "every retry" in error_of(trial)


def test_a_failure_that_changes_or_moves_stays_the_machines(classified_trial):
    from search.running.failures import failure_of

    moved = classified_trial()
    for epoch in (1, 2, 3):          # each retry got further: a flaky worker, not the config
        _fail(moved, ActorDiedError(), epoch)
    assert failure_of(moved) == INFRASTRUCTURE
    changed = classified_trial()
    for error in (ActorDiedError(), _task_error(MemoryError()), ActorDiedError()):
        _fail(changed, error, 1)
    assert failure_of(changed) == INFRASTRUCTURE
    # With no retry there is nothing to compare with.
    once = classified_trial(max_failures=0)
    assert _fail(once, _task_error(torch.OutOfMemoryError("CUDA out of memory")), 0) is False
    assert failure_of(once) == INFRASTRUCTURE


def test_the_progress_line_of_a_config_that_failed_the_same_after_its_retries_says_so(classified_trial):
    from search.running.progress import _failure_note

    trial = classified_trial()
    for _ in range(3):
        _fail(trial, _task_error(MemoryError("injected")), 1)
    assert _failure_note(trial, errored=True) == "  configuration failure, the same after 2 retries"


def test_a_trial_out_of_memory_at_the_same_epoch_on_every_retry_ends_as_a_configuration_failure(ray_session, tmp_path):
    log = tmp_path / "calls.txt"
    oom = {**GOOD, "lr": FAILING_LR}

    def trial(config, data, settings):
        with open(log, "a") as f:
            f.write(f"{config['lr']}\n")
        if config["lr"] != FAILING_LR:
            return run_trial(config, data, settings)

        def out_of_memory():
            # As an absurd batch size would, wherever it runs.
            raise MemoryError("injected: this config runs out of memory at epoch 2")

        _run_failing_at(2, out_of_memory, config, data, settings)

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        outcome = run_search(_options(tmp_path, "oom-config", 2, (oom, GOOD)), trial_fn=trial)
    assert _calls_by_lr(log).count(FAILING_LR) == 3                     # tried, then retried twice
    (row,) = pd.read_csv(outcome.results_dir / "trials.csv").query(f"lr == {FAILING_LR}").to_dict("records")
    assert (row["outcome"], row["failure"], row["retries"]) == ("failed", CONFIGURATION, 2)
    assert any(row["trial_id"] in line and line.endswith("configuration failure, the same after 2 retries")
               for line in out.getvalue().splitlines()), out.getvalue()
