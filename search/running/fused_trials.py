"""Fused trials through Ray Tune (issue 37, items 5 and 6): K configs of one architecture and batch size
trained as one fused model (:class:`trainables.fused.FusedTrainer`), each config still its own Tune trial.

Design: thin Tune trials served by shared group actors.

* With ``--fuse K`` each Tune trial is :func:`search.running.fused_member.run_member`, a thin function
  trainable in a module that imports Ray Tune and nothing that trains (a member process starts in about the
  time ``ray.tune`` takes to import, not the 5.9 s of torch and the trainables). It asks the run's
  :class:`GroupBroker` (started by the driver, :func:`start_broker`) for a place: the broker resolves the
  config, computes its group key (:func:`trainables.fused.group_key`: what must be equal inside a group) and
  joins it to the first :class:`FusedGroup` of that key on the member's node with room, creating one if none
  has, with the folder of the checkpoint Tune restored the trial from, if any. Then the member loops: ask the
  group for its next epoch, ``tune.report`` the metrics with the checkpoint folder the group wrote.
* The group owns a FusedTrainer. It gathers: it runs an epoch once every active member has asked for
  its next one, writes each member's checkpoint exactly as an unfused trial does
  (:func:`search.running.trial.write_checkpoint` and :func:`~search.running.trial.epoch_metrics`, shared),
  hands each member its metrics and folder (or the exception that ended it: a NaN loss fails that member
  alone, and its thin trial raises it, so :mod:`search.running.failures` classes it as it would an unfused
  trial's), and a member that joins takes a free slot at the next epoch boundary.

Why thin trials rather than one grouped trainable reporting for its members: every part of the search
that is per trial stays as it is and cannot tell a member from an unfused trial. ASHA, MO-ASHA and curve
ASHA decide per member, Optuna is told per member, and the MLflow child run, the progress line, the
trials.csv row, the checkpoint and ``--resume`` (each member continues from its own checkpoint) all come
from Tune's ordinary trial machinery. A stopped member's slot is refilled by the next trial Tune starts.

Resources: each member reserves an even part of one unfused trial's share
(:attr:`search.running.resources.Placement.trial_resources`), and the group actor reserves none. Tune's accounting
then counts K members as one trial's share and runs groups x K trials at once (the searcher's
concurrency limit too). A group that reserved its share itself could not be placed when the running
members draw more group keys than there are slots, and would wait forever; with zero, an extra group
only shares the cores. The group is pinned to the node of its
members (their reservations are on that node: the group key includes the node), and it trains on the GPU of
the member that created it: Ray 2.60 no longer hides GPUs from an actor that asks for none
(ray/_private/accelerators/accelerator.py, ray issue 54868). The broker owns the groups and the driver owns
the broker, so a killed driver takes them with it; :class:`GroupReleaser` ends them (their scratch folders
removed) when the experiment ends.

Stops, as Ray Tune 2.60 runs a function trainable: ``tune.report`` puts the result on a queue and blocks
the training thread until the controller asks for the next result (ray/train/_internal/session.py,
``_report_training_result``: ``continue_lock.acquire()``, line 414; function trainables report
synchronously, ray/tune/trainable/function_trainable.py line 55). A trial that ASHA stops after a report
is released only when its actor stops (``session.finish`` sets the stop event and releases the lock,
line 254; the thread then raises ``SystemExit`` from ``sys.exit(0)``, line 422). With ``reuse_actors``
the stopped trial's actor is cached instead (ray/tune/execution/tune_controller.py,
``_schedule_trial_stop`` -> ``_maybe_cache_trial_actor``, line 1101), its thread left blocked in
``tune.report`` until the actor serves another trial (``reset_config``: ``finish(timeout=2)``) or is
removed. So a member's own ``finally`` cannot tell its group in time; the driver does. Tune calls
``on_trial_complete`` for a scheduler's stop, a stopper's, the time budget's and a normal end
(``stop_trial``, tune_controller.py line 1436) and ``on_trial_error`` for a trial that raised and is not
retried (``_process_trial_failure``, line 1363); :class:`GroupReleaser` takes the member out of its group
on both. As a safety net the gather waits at most
:data:`search.running.fused_member.GATHER_TIMEOUT_S` for a member that has not asked, then drops it with a
warning (it fails if it ever asks again).

What fusion gave and where a fused search's time goes (exploratory figures with their commands, and a profile of
the driver) is in docs/index.md: on 2 CPU cores it pays where epochs outweigh a member process's start
(California housing), not where they do not (wine).

Whether a search fuses, and with how many members, is :mod:`search.strategy.fusion`'s decision.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune
from ray.exceptions import RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from search.running.fused_member import BROKER, FuseSpec
from search.running.trial import epoch_metrics, load_state, write_checkpoint
from search.strategy.fusion import model_refusal
from trainables.config import Recipe
from trainables.data import InputSpec, Splits
from trainables.discovery import ENV
from trainables.fused import FusedTrainer, group_key
from trainables.models._finetune import parameter_counts
from trainables.pair import Resolved
from trainables.pretrained import Base
from trainables.recipe import EarlyStop, pick_device
from trainables.settings import TrialSettings

log = logging.getLogger(__name__)


def _cpu(value: Any) -> Any:
    """``value`` with every tensor moved to the CPU (the checkpoint is read without a GPU)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu(v) for v in value)
    return value


class FusedGroup:
    """A Ray actor (threaded: each member's call waits in its own thread) holding one FusedTrainer and
    its members; see the module for the gather. It writes each member's checkpoint folder every epoch
    (under a scratch folder of its own, removed by :meth:`close`)."""

    def __init__(self, data: Splits, settings: TrialSettings, base: Base | None, spec: FuseSpec,
                 gpu_ids: list[str]) -> None:
        if gpu_ids:
            # The GPU of the member that created the group (set before CUDA starts in this process).
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpu_ids))
        os.environ[ENV] = settings.user_path
        torch.set_num_threads(settings.threads)
        self.data, self.settings, self.base, self.spec = data, settings, base, spec
        self.trainer = FusedTrainer(data, pick_device(settings.device), metric=settings.metric, mode=settings.mode,
                                    capacity=spec.members)
        self.scratch = Path(tempfile.mkdtemp(prefix="spectune-group-"))
        self.cond = threading.Condition()
        self.active: set[str] = set()
        self.asked: set[str] = set()
        self.ready: dict[str, tuple[str, Any]] = {}
        self.resolved: dict[str, Resolved] = {}
        self.sizes: dict[str, dict[str, float]] = {}
        self.dropped: dict[str, str] = {}

    def join(self, member: str, config: dict[str, Any], checkpoint: str | None = None) -> str:
        """Add ``member`` (its searched ``config``, continuing from the state in its ``checkpoint`` folder if
        resumed) for the next epoch: ``"joined"``; ``"full"`` if the group is; ``"alone"`` if the checkpoint
        is of a run that had ended (a driver killed before it heard), which the member finishes unfused."""
        with self.cond:
            if len(self.active) >= self.spec.members:
                return "full"   # before reading the checkpoint: the broker tries the next group
        resume = load_state(checkpoint) if checkpoint else None
        resolved = self.settings.resolve(config)
        if resume is not None and _ended(resume, resolved.recipe):
            return "alone"
        with self.cond:
            if len(self.active) >= self.spec.members:   # filled while the checkpoint was read
                return "full"
            model_fn = self.settings.pair.model_fn(self.data.spec, resolved, self.base)
            sizes = self.sizes.setdefault(member, {})

            def build() -> torch.nn.Module:
                model = model_fn()
                sizes.update(parameter_counts(model))
                return model

            self.trainer.add(member, build, resolved.recipe, resume=resume)
            self.resolved[member] = resolved
            self.active.add(member)
            return "joined"

    def leave(self, member: str) -> None:
        """Take ``member`` out (its trial ended, was stopped or failed); the gather no longer waits for it."""
        with self.cond:
            self._drop(member)
            self.cond.notify_all()

    def next_epoch(self, member: str) -> tuple[str, Any]:
        """Wait until every active member has asked, run the epoch, and return ``member``'s part:
        ``("epoch", (epoch, metrics, checkpoint folder, last))``, ``("error", exception)`` or ``("gone", why)``."""
        with self.cond:
            self.asked.add(member)
            deadline = time.monotonic() + self.spec.timeout_s
            while member not in self.ready:
                if member not in self.active:
                    return "gone", self.dropped.get(member, "it left its group")
                if self.active <= self.asked:
                    self._run_epoch()
                    continue
                if time.monotonic() >= deadline:
                    self._drop_laggards()
                    continue
                self.cond.wait(deadline - time.monotonic())
            return self.ready.pop(member)

    def close(self) -> None:
        """Remove the group's scratch folder (the run ended)."""
        shutil.rmtree(self.scratch, ignore_errors=True)

    def _run_epoch(self) -> None:
        try:
            out: dict[str, Any] = self.trainer.run_epoch()
        except Exception as exc:   # noqa: BLE001 - the fused step itself failed: every member fails with it
            out = dict.fromkeys(self.active, exc)
        self.asked -= set(out)
        for member, report in out.items():
            if isinstance(report, Exception):
                self.ready[member] = ("error", report)
                self._forget(member)
                continue
            state = _cpu(report.state())
            folder = Path(tempfile.mkdtemp(prefix=f"{member}-", dir=self.scratch))
            write_checkpoint(folder, state, self.data, self.settings, self.resolved[member], self.base)
            self.ready[member] = ("epoch", (report.epoch, epoch_metrics(report, state, self.sizes.get(member, {})),
                                            str(folder), report.last))
            if report.last:
                self._forget(member)
        self.cond.notify_all()

    def _drop_laggards(self) -> None:
        for member in sorted(self.active - self.asked):
            why = (f"its group waited {self.spec.timeout_s:g} s for it to ask for its next epoch (its trial was "
                   "stopped or lost without word from the driver) and dropped it")
            log.warning("fused group: member %s dropped: %s", member, why)
            self.dropped[member] = why
            self._drop(member)
        self.cond.notify_all()

    def _drop(self, member: str) -> None:
        if member in self.active:
            self.trainer.remove(member)
        self._forget(member)

    def _forget(self, member: str) -> None:
        self.active.discard(member)
        self.asked.discard(member)
        self.sizes.pop(member, None)
        self.resolved.pop(member, None)


def _ended(state: dict[str, Any], recipe: Recipe) -> bool:
    """Whether a saved training state is of a run that had ended: its epochs done, or stopped early."""
    rule = EarlyStop(recipe.patience, recipe.warmup_epochs, since_best=state["since_best"])
    return state["epoch"] >= recipe.epochs or rule.stopped


class GroupBroker:
    """A Ray actor, one per fused run (named :data:`search.running.fused_member.BROKER` in the run's
    namespace): it places each member in a group of its key on its node, creating groups as needed, and
    forwards the driver's word that a member left. The groups are its own actors, so they end with it."""

    def __init__(self, spec: FuseSpec, inputs: InputSpec) -> None:
        self.spec, self.inputs = spec, inputs
        self.settings: TrialSettings = ray.get(spec.shipped["settings"])
        os.environ[ENV] = self.settings.user_path
        self.base: Base | None = ray.get(spec.shipped["base"]) if "base" in spec.shipped else None
        self.group_class = ray.remote(FusedGroup)
        self.lock = threading.Lock()
        self.groups: dict[tuple, list[Any]] = {}
        self.member_group: dict[str, Any] = {}

    def place(self, member: str, config: dict[str, Any], node: str, gpu_ids: list[str],
              checkpoint: str | None) -> tuple[str, Any]:
        """``("group", handle)`` of the group ``member`` joined, or ``("alone", None)`` where it runs unfused."""
        resolved = self.settings.resolve(config)
        if model_refusal(self.settings.pair, resolved, self.inputs, self.base) is not None:
            return "alone", None
        key = (node, group_key(resolved.recipe, resolved.model))
        index = 0
        while True:
            with self.lock:
                known = self.groups.setdefault(key, [])
                if index == len(known):
                    known.append(self.group_class.options(
                        num_cpus=0, num_gpus=0, max_concurrency=2 * self.spec.members + 8,
                        scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(
                        self.spec.shipped["data"], self.spec.shipped["settings"], self.spec.shipped.get("base"),
                        replace(self.spec, shipped={}), gpu_ids))
                group = known[index]
            answer = ray.get(group.join.remote(member, config, checkpoint))
            if answer == "alone":
                return "alone", None
            if answer == "joined":
                self.member_group[member] = group
                return "group", group
            index += 1

    def leave(self, member: str) -> None:
        """The driver's word: ``member``'s trial ended, was stopped or failed."""
        group = self.member_group.pop(member, None)
        if group is not None:
            group.leave.remote(member)

    def close(self) -> None:
        """Remove every group's scratch folder (the run ended)."""
        ray.get([g.close.remote() for known in self.groups.values() for g in known])


def start_broker(members: int, namespace: str, shipped: dict[str, Any]) -> tuple[FuseSpec, Any]:
    """Put the run's ``shipped`` objects (data, settings, base) in the object store and start the run's
    broker; returns the spec each member receives and the broker's handle, which the driver keeps for the
    run (Ray ends a named actor once no handle to it is left)."""
    stop_broker(namespace)   # a broker left by an earlier driver of this run in a Ray that lives on
    spec = FuseSpec(members, namespace, shipped={k: ray.put(v) for k, v in shipped.items()})
    broker = ray.remote(GroupBroker).options(name=BROKER, namespace=namespace, num_cpus=0,
                                             max_concurrency=4 * members + 8).remote(spec, shipped["data"].spec)
    return spec, broker


def _broker(namespace: str) -> Any | None:
    try:
        return ray.get_actor(BROKER, namespace=namespace)
    except ValueError:   # none, or ended meanwhile
        return None


def stop_broker(namespace: str) -> None:
    """End a run's broker and with it its groups, their scratch folders removed first."""
    broker = _broker(namespace)
    if broker is None:
        return
    try:
        ray.get(broker.close.remote(), timeout=60)
    except RayError as exc:   # a group that died took its folder with it or left it in the temp folder
        log.warning("fused groups: scratch folders not all removed: %s", exc)
    ray.kill(broker)


class GroupReleaser(tune.Callback):
    """The driver's word to the groups: a member whose trial completed, was stopped or failed leaves its
    group at once (see the module on why the member cannot say so itself); the run's broker and groups end
    with the experiment."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._release(trial.trial_id)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._release(trial.trial_id)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        stop_broker(self.namespace)

    def _release(self, member: str) -> None:
        broker = _broker(self.namespace)
        if broker is not None:
            broker.leave.remote(member)
