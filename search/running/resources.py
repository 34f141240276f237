"""How trials are placed: fractional GPUs when there are GPUs, CPU trials otherwise."""

from __future__ import annotations

import math
from dataclasses import dataclass

from results.errors import OptionError

# GalSpecNet-sized trials leave most of a GPU idle; four per GPU was measured to give about
# 1.6x one trial's throughput on an H100, and eight gave no more.
DEFAULT_TRIALS_PER_GPU = 4


@dataclass(frozen=True)
class Placement:
    cpus_per_trial: float
    gpus_per_trial: float
    concurrency: int
    device: str

    @property
    def threads(self) -> int:
        return max(1, math.floor(self.cpus_per_trial))

    def describe(self, cpus: float, gpus: float) -> str:
        where = (f"{self.gpus_per_trial:g} GPU + {self.cpus_per_trial:g} CPU per trial"
                 if self.gpus_per_trial else f"{self.cpus_per_trial:g} CPU per trial, no GPU")
        return f"cluster {cpus:g} CPUs, {gpus:g} GPUs -> {where}, up to {self.concurrency} trials at once"


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
