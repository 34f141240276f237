"""A fused search's Tune trial, kept light: it imports Ray Tune and nothing that trains (no torch, no
trainables), because a fused search starts one such process per member and each import is paid per process.
Its group (:mod:`search.running.fused_trials`) trains, writes the member's checkpoint folder and hands back
the epoch's metrics; the member only reports them to Tune."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray import tune

# How long a group's gather waits for a member that has not asked for its next epoch (its trial was
# stopped and the driver's word did not arrive) before dropping it. Far above a member's turn between two
# epochs (Tune's round trip and callbacks: well under a second here), so that only a member that is gone is
# dropped.
GATHER_TIMEOUT_S = 300.0
BROKER = "broker"


class FusionError(RuntimeError):
    """A member that its group no longer holds (dropped by the gather's timeout)."""


@dataclass(frozen=True)
class FuseSpec:
    """What every member of a fused search shares: ``members`` per group, the Ray ``namespace`` of the
    run's broker and groups (one per run), the gather's timeout, and ``shipped``: the run's data, settings
    and base as object references, which only a group (or a member that runs alone) resolves."""

    members: int
    namespace: str
    timeout_s: float = GATHER_TIMEOUT_S
    shipped: dict[str, Any] = field(default_factory=dict, compare=False)


def namespace_of(experiment: Path) -> str:
    """The Ray namespace of a run's groups: one per experiment folder, so that two runs never share one."""
    return "spectune-fuse-" + hashlib.sha1(str(experiment.resolve()).encode()).hexdigest()[:16]


def run_member(config: dict[str, Any], fuse: FuseSpec) -> None:
    """A fused search's Tune trial: the run's broker places it in a group of its architecture and batch size
    on this node (with the training state of the checkpoint Tune restored, if any); then, every epoch, it
    reports what its group trained and wrote. A config whose model cannot be fused, and a restored trial
    whose run had ended, run alone here instead (:func:`search.running.trial.run_trial`)."""
    member = tune.get_context().get_trial_id()
    broker = ray.get_actor(BROKER, namespace=fuse.namespace)
    place = dict(member=member, config=config, node=ray.get_runtime_context().get_node_id(),
                 gpu_ids=[str(g) for g in ray.get_gpu_ids()])
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        kind, group = ray.get(broker.place.remote(checkpoint=None, **place))
    else:
        with checkpoint.as_directory() as folder:
            kind, group = ray.get(broker.place.remote(checkpoint=str(folder), **place))
    if kind == "alone":
        from search.running.trial import run_trial   # only here: the heavy imports this module avoids

        run_trial(config, **{k: ray.get(ref) for k, ref in fuse.shipped.items()})
        return
    try:
        while True:
            kind, part = ray.get(group.next_epoch.remote(member))
            if kind == "error":
                raise part
            if kind == "gone":
                raise FusionError(f"fused member {member} was dropped: {part}")
            _epoch, metrics, folder, last = part
            try:
                # Tune copies the folder into the trial's own before report returns.
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            if last:
                return
    finally:
        # A trial that ends here (its last epoch, an error, Tune's SystemExit once its actor stops) leaves
        # at once; the driver's GroupReleaser covers the stopped trial whose thread stays blocked in report.
        group.leave.remote(member)
