"""How trials are placed: fractional GPUs when there are GPUs, CPU trials otherwise."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from results.errors import OptionError

# GalSpecNet-sized trials leave most of a GPU idle; four per GPU was measured to give about
# 1.6x one trial's throughput on an H100, and eight gave no more.
DEFAULT_TRIALS_PER_GPU = 4


@dataclass(frozen=True)
class Placement:
    """Per-trial resources and how many trials run at once. Fused (``members`` > 1), the resources are one
    fused group's (the share one unfused trial gets), split evenly among its member trials, and
    ``concurrency`` counts member trials: groups x members."""

    cpus_per_trial: float
    gpus_per_trial: float
    concurrency: int
    device: str
    members: int = 1

    @property
    def threads(self) -> int:
        """Torch threads of one trial, or of one fused group."""
        return max(1, math.floor(self.cpus_per_trial))

    @property
    def trial_resources(self) -> dict[str, float]:
        """What Tune reserves for one trial: a member's even part of its group's share, rounded down to Ray's
        resource precision (1e-4) so that a group's members never ask for more than one trial's share."""
        return {"cpu": math.floor(1e4 * self.cpus_per_trial / self.members) / 1e4,
                "gpu": math.floor(1e4 * self.gpus_per_trial / self.members) / 1e4}

    def fused(self, members: int) -> "Placement":
        """This placement with ``members`` trials fused into each slot."""
        return replace(self, members=members, concurrency=self.concurrency * members)

    def describe(self, cpus: float, gpus: float) -> str:
        unit = "fused group" if self.members > 1 else "trial"
        where = (f"{self.gpus_per_trial:g} GPU + {self.cpus_per_trial:g} CPU per {unit}"
                 if self.gpus_per_trial else f"{self.cpus_per_trial:g} CPU per {unit}, no GPU")
        groups = (f" ({self.concurrency // self.members} groups of {self.members} fused members)"
                  if self.members > 1 else "")
        return f"cluster {cpus:g} CPUs, {gpus:g} GPUs -> {where}, up to {self.concurrency} trials at once{groups}"


def gpu_share(requested: float | None, space_share: float | None, gpus: float) -> float | None:
    """The GPU share per trial: ``--gpus-per-trial`` if given, else the space's (capped at the cluster's
    GPUs, and ignored on a cluster without any), else ``None`` for :func:`plan_placement`'s default."""
    if requested is not None or not gpus or not space_share:
        return requested
    return min(space_share, gpus)


def plan_placement(cpus: float, gpus: float, gpus_per_trial: float | None = None,
                   cpus_per_trial: float | None = None, concurrency: int | None = None) -> Placement:
    """Choose per-trial resources and concurrency from what the cluster has; overrides win (their
    ranges are checked by :mod:`search.options`; here only what depends on the cluster)."""
    if gpus_per_trial and gpus_per_trial > gpus:
        raise OptionError(f"--gpus-per-trial {gpus_per_trial} asks for more GPUs than the cluster has "
                         f"({gpus:g}); trials would wait forever. Use --gpus-per-trial 0 for CPU trials.")
    use_gpu = gpus > 0 and gpus_per_trial != 0
    if use_gpu:
        gpt = gpus_per_trial or 1.0 / DEFAULT_TRIALS_PER_GPU
        slots = int(gpus / gpt + 1e-9)
        cpt = cpus_per_trial or max(1.0, math.floor(cpus / max(slots, 1)))
    else:
        gpt = 0.0
        cpt = cpus_per_trial or 1.0
        slots = int(cpus // cpt)
    if cpt > cpus:
        raise OptionError(f"--cpus-per-trial {cpt:g} exceeds the cluster's {cpus:g} CPUs.")
    slots = max(1, min(slots, int(cpus // cpt)))
    return Placement(cpus_per_trial=cpt, gpus_per_trial=gpt, concurrency=concurrency or slots,
                     device="cuda" if use_gpu else "cpu")
