"""Fused trials through Ray Tune (issue 37, items 5 and 6): K configs of one architecture and batch size
trained as one fused model (:class:`trainables.fused.FusedTrainer`), each config still its own Tune trial.

Design: thin Tune trials served by a shared group actor.

* With ``--fuse K`` each Tune trial is :func:`run_member`, a thin function trainable. It resolves its
  config, computes its group key (:func:`trainables.fused.group_key`: what must be equal inside a group),
  gets or creates the named Ray actor :class:`FusedGroup` for that key on its node (``get_if_exists``; a
  full group sends it to the next index) and joins it, with the training state of its checkpoint when
  Tune restored one. Then it loops: ask the group for its next epoch, write the checkpoint and
  ``tune.report`` exactly as an unfused trial does (:func:`search.running.trial.report_epoch`, shared).
* The group owns a FusedTrainer. It gathers: it runs an epoch once every active member has asked for
  its next one, hands each member its own report (or the exception that ended it: a NaN loss fails
  that member alone, and its thin trial raises it, so :mod:`search.running.failures` classes it as it would an
  unfused trial's), and a member that joins takes a free slot at the next epoch boundary.

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
only shares the cores. The group is pinned to the node of the member that created it (its members'
reservations are on that node: the group key includes the node), and it trains on that member's GPU:
Ray 2.60 no longer hides GPUs from an actor that asks for none (ray/_private/accelerators/accelerator.py,
ray issue 54868). It is detached, so that it outlives the member that happened to create it, and
:class:`GroupReleaser` kills the run's groups when the experiment starts (a killed driver's leftovers on
a cluster that lives on) and ends.

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
on both. As a safety net the gather waits at most :data:`GATHER_TIMEOUT_S` for a member that has not
asked, then drops it with a warning (it fails if it ever asks again).

Measured (2 CPU cores shared with other jobs, load 8-14, 2026-12-07; wine MLP, 12 recipe-only configs x 10
epochs, FIFO, seed 3, ``spectune search`` end to end, two interleaved pairs): unfused (2 trials at once) 188 s and
146 s, ``--fuse 6`` (2 groups of 6) 274 s and 230 s. The members' training took 2.6 s and 1.8 s in all (their
shares of the fused epochs) against 14.6 s and 15.4 s unfused, but the trials' phase took 55 s and 48 s against
37 s and 39 s: each member is a Tune trial process, and starting 12 of them (plus 2 groups) where the unfused
search starts 2 costs more on 2 cores than fusion saves on epochs of milliseconds. So fusion pays only where
epochs outweigh a process start per member (longer epochs, or many trials reusing their actors), which is what a
rule in search/strategy/fusion_rules.json must show before ``auto`` fuses. Again, exploratory, on 2 idle cores (2026-12-07, one run each, the
12 configs of search/bench/wine_recipe_starts.json, docs/index.md has the command): unfused 37.7 s, ``--fuse 6``
85.7 s, ``--fuse 12`` 79.3 s; training 3.15 s in all against 0.75 s and 0.46 s. Importing this module takes 5.9 s
of a member process's start against 2.2 s for ``ray.tune`` alone. California housing, 48 recipe-only configs
(search/bench/california_recipe_starts.json) x 20 epochs, FIFO: unfused 354 s and 342 s, ``--fuse 12`` 252 s;
training 558 s and 544 s against 90 s. A fused round of 12 took about 6.7 s, 1.1 s of it training: the rest is
each member's state sent from its group, its checkpoint written every epoch and 24 member processes started.
A group that ran its next epoch while its members reported (tried: 269 s) did not help. A lighter member (one that only reports, the
group writing its checkpoint) would cut that cost; not built yet.

Whether a search fuses, and with how many members, is :mod:`search.strategy.fusion`'s decision.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from search.strategy.fusion import model_refusal
from search.running.trial import report_epoch, restored_state, run_trial
from trainables.config import Recipe
from trainables.data import Splits
from trainables.discovery import ENV
from trainables.fused import FusedTrainer, group_key
from trainables.models._finetune import parameter_counts
from trainables.pretrained import Base
from trainables.recipe import EarlyStop, EpochReport, pick_device
from trainables.settings import TrialSettings

log = logging.getLogger(__name__)

# How long a group's gather waits for a member that has not asked for its next epoch (its trial was
# stopped and the driver's word did not arrive) before dropping it. Far above a member's turn between two
# epochs (its checkpoint, Tune's round trip and callbacks: well under a second here), so that only a
# member that is gone is dropped.
GATHER_TIMEOUT_S = 300.0


class FusionError(RuntimeError):
    """A member that its group no longer holds (dropped by the gather's timeout)."""


@dataclass(frozen=True)
class FuseSpec:
    """What every member of a fused search shares: ``members`` per group, the Ray ``namespace`` of the
    run's groups (one per run) and the gather's timeout."""

    members: int
    namespace: str
    timeout_s: float = GATHER_TIMEOUT_S


def namespace_of(experiment: Path) -> str:
    """The Ray namespace of a run's groups: one per experiment folder, so that two runs never share one."""
    return "spectune-fuse-" + hashlib.sha1(str(experiment.resolve()).encode()).hexdigest()[:16]


def _cpu(value: Any) -> Any:
    """``value`` with every tensor moved to the CPU (a member process needs no GPU to read its state)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu(v) for v in value)
    return value


class FusedGroup:
    """A Ray actor (threaded: each member's call waits in its own thread) holding one FusedTrainer and
    its members; see the module for the gather."""

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
        self.cond = threading.Condition()
        self.active: set[str] = set()
        self.asked: set[str] = set()
        self.ready: dict[str, tuple[str, Any]] = {}
        self.sizes: dict[str, dict[str, float]] = {}
        self.dropped: dict[str, str] = {}

    def join(self, member: str, config: dict[str, Any], resume: dict[str, Any] | None) -> bool:
        """Add ``member`` (its searched ``config``, its training state if resumed) for the next epoch;
        ``False`` if the group is full."""
        with self.cond:
            if len(self.active) >= self.spec.members:
                return False
            pair = self.settings.pair
            resolved = self.settings.resolve(config)
            model_fn = pair.model_fn(self.data.spec, resolved, self.base)
            sizes = self.sizes.setdefault(member, {})

            def build() -> torch.nn.Module:
                model = model_fn()
                sizes.update(parameter_counts(model))
                return model

            self.trainer.add(member, build, resolved.recipe, resume=resume)
            self.active.add(member)
            return True

    def leave(self, member: str) -> None:
        """Take ``member`` out (its trial ended, was stopped or failed); the gather no longer waits for it."""
        with self.cond:
            self._drop(member)
            self.cond.notify_all()

    def next_epoch(self, member: str) -> tuple[str, Any]:
        """Wait until every active member has asked, run the epoch, and return ``member``'s part:
        ``("epoch", (epoch, metrics, improved, last, state, sizes))``, ``("error", exception)`` or
        ``("gone", why)``."""
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
            self.ready[member] = ("epoch", (report.epoch, report.metrics, report.improved, report.last,
                                            _cpu(report.state()), self.sizes.get(member, {})))
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


def _ended(state: dict[str, Any], recipe: Recipe) -> bool:
    """Whether a saved training state is of a run that had ended: its epochs done, or stopped early."""
    rule = EarlyStop(recipe.patience, recipe.warmup_epochs, since_best=state["since_best"])
    return state["epoch"] >= recipe.epochs or rule.stopped


def _join(spec: FuseSpec, data: Splits, settings: TrialSettings, base: Base | None, member: str,
          config: dict[str, Any], resume: dict[str, Any] | None, key: tuple) -> Any:
    """The handle of the group ``member`` joined (with its ``resume`` state): the first of its key's groups
    on this node with room."""
    node = ray.get_runtime_context().get_node_id()
    stem = f"{node[:16]}-{hashlib.sha1(repr(key).encode()).hexdigest()[:16]}"
    actor = ray.remote(FusedGroup)
    index = 0
    while True:
        group = actor.options(name=f"{stem}-{index}", namespace=spec.namespace, get_if_exists=True,
                              lifetime="detached", num_cpus=0, num_gpus=0, max_concurrency=2 * spec.members + 8,
                              scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)
                              ).remote(data, settings, base, spec, ray.get_gpu_ids())
        if ray.get(group.join.remote(member, config, resume)):
            return group
        index += 1


def run_member(config: dict[str, Any], data: Splits, settings: TrialSettings, fuse: FuseSpec,
               base: Base | None = None) -> None:
    """A fused search's Tune trial: its config trained as a member of a :class:`FusedGroup`, reported and
    checkpointed each epoch as :func:`search.running.trial.run_trial` does. A config whose model cannot be fused
    (the dry run's could), and a restored trial whose checkpoint is of a run that had ended (a driver killed
    before it heard), go through :func:`search.running.trial.run_trial` instead, alone in this trial."""
    os.environ[ENV] = settings.user_path
    resolved = settings.resolve(config)
    resume = restored_state()
    if model_refusal(settings.pair, resolved, data.spec, base) is not None or (resume is not None
                                                                               and _ended(resume, resolved.recipe)):
        run_trial(config, data, settings, base)
        return
    # This process only writes checkpoints; the group trains.
    torch.set_num_threads(1)
    member = tune.get_context().get_trial_id()
    group = _join(fuse, data, settings, base, member, config, resume,
                  (group_key(resolved.recipe, resolved.model),))
    try:
        while True:
            kind, part = ray.get(group.next_epoch.remote(member))
            if kind == "error":
                raise part
            if kind == "gone":
                raise FusionError(f"fused member {member} was dropped: {part}")
            epoch, metrics, improved, last, state, sizes = part
            report = EpochReport(epoch=epoch, metrics=metrics, improved=improved, last=last, state=lambda: state)
            report_epoch(report, state, sizes, data, settings, resolved, base)
            if last:
                return
    finally:
        # A trial that ends here (its last epoch, an error, Tune's SystemExit once its actor stops) leaves
        # at once; the driver's GroupReleaser covers the stopped trial whose thread stays blocked in report.
        group.leave.remote(member)


def _groups(namespace: str) -> list[str]:
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == namespace]


def kill_groups(namespace: str) -> None:
    """End every group of a run (they are detached: nothing else ends them on a cluster that lives on)."""
    for name in _groups(namespace):
        try:
            ray.kill(ray.get_actor(name, namespace=namespace))
        except ValueError:   # ended meanwhile
            pass


class GroupReleaser(tune.Callback):
    """The driver's word to the groups: a member whose trial completed, was stopped or failed leaves its
    group at once (see the module on why the member cannot say so itself); the run's groups end with the
    experiment."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def setup(self, **info: Any) -> None:
        kill_groups(self.namespace)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._release(trial.trial_id)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._release(trial.trial_id)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        kill_groups(self.namespace)

    def _release(self, member: str) -> None:
        for name in _groups(self.namespace):
            try:
                ray.get_actor(name, namespace=self.namespace).leave.remote(member)
            except ValueError:
                pass
