"""The shared recipe's generic knobs: their table, defaults and the :class:`Recipe` the loop reads.

Defaults are the ZTF seed notebook's ``final_config`` (AdamW, warm-up then cosine warm restarts,
focal loss), so galspecnet trains exactly as the notebook did; a regression pair's loss defaults to
mean squared error instead (:data:`trainables.tasks.DEFAULT_LOSS`, applied by the pair). Model and
data knobs (dropout, depth, norm ...) live in their own modules' tables, never here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from trainables.hparams import Bool, Choice, ConfigError, Float, Int, Table, check_table, resolve
from trainables.tasks import TASK_LOSSES

OPTIMIZERS = ("adamw", "adam", "sgd", "rmsprop")
# Learning-rate schedules (the search's trial schedulers, ASHA and FIFO, live in search.options).
LR_SCHEDULES = ("cosine_restarts", "cosine", "step", "plateau", "constant")
LOSSES = tuple(loss for losses in TASK_LOSSES.values() for loss in losses)

RECIPE_TABLE: Table = {
    "optimizer": Choice("adamw", OPTIMIZERS),
    "lr": Float(8e-5, 0.0, 1.0, closed="right"),
    "weight_decay": Float(1e-5, 0.0, 1.0),
    "momentum": Float(0.9, 0.0, 1.0, closed="left", when=("optimizer", ("sgd", "rmsprop"))),
    "nesterov": Bool(False, when=("optimizer", ("sgd",))),
    "batch_size": Int(128, 1),
    "epochs": Int(100, 1),
    "warmup_epochs": Int(10, 0),
    "start_factor": Float(1e-6, 0.0, 1.0, closed="right"),
    "scheduler": Choice("cosine_restarts", LR_SCHEDULES),
    "T_0": Int(5, 1, when=("scheduler", ("cosine_restarts",))),
    "T_mult": Int(1, 1, when=("scheduler", ("cosine_restarts",))),
    "eta_min": Float(1e-5, 0.0, when=("scheduler", ("cosine_restarts", "cosine"))),
    "step_size": Int(10, 1, when=("scheduler", ("step",))),
    "decay": Float(0.1, 0.0, 1.0, closed="neither", when=("scheduler", ("step", "plateau"))),
    "plateau_patience": Int(2, 0, when=("scheduler", ("plateau",))),
    "loss": Choice("focal", LOSSES),
    "gamma": Float(2.0, 0.0, 10.0, when=("loss", ("focal",))),
    # In the standardised target's unit: errors beyond a standard deviation count linearly.
    "huber_delta": Float(1.0, 0.0, closed="neither", when=("loss", ("huber",))),
    "max_grad_norm": Float(1.0, 0.0, closed="neither", nullable=True),
    "patience": Int(5, 1, nullable=True),
    "seed": Int(42, 0),
}
check_table(RECIPE_TABLE, "recipe")


@dataclass(frozen=True)
class Recipe:
    """Resolved recipe knobs. Knobs whose condition does not hold keep their defaults here and are
    left out of :meth:`to_dict`. ``patience=None`` disables early stopping; ``max_grad_norm=None``
    disables clipping."""

    optimizer: str
    lr: float
    weight_decay: float
    momentum: float
    nesterov: bool
    batch_size: int
    epochs: int
    warmup_epochs: int
    start_factor: float
    scheduler: str
    T_0: int
    T_mult: int
    eta_min: float
    step_size: int
    decay: float
    plateau_patience: int
    loss: str
    gamma: float
    huber_delta: float
    max_grad_norm: float | None
    patience: int | None
    seed: int
    active: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config", soft: tuple[str, ...] = ()) -> "Recipe":
        """Defaults overridden by ``values`` (see :func:`trainables.hparams.resolve`)."""
        active = resolve(RECIPE_TABLE, values, source, soft)
        if "eta_min" in active and active["eta_min"] > active["lr"]:
            raise ConfigError(f"{source}: 'eta_min' must not exceed 'lr' (the cosine schedule would "
                              f"raise the rate); got eta_min={active['eta_min']}, lr={active['lr']}.")
        if active.get("nesterov") and active["momentum"] == 0:
            raise ConfigError(f"{source}: 'nesterov' needs a momentum above 0; got momentum=0.")
        return cls(**{**{k: p.default for k, p in RECIPE_TABLE.items()}, **active}, active=tuple(active))

    def to_dict(self) -> dict[str, Any]:
        """The knobs that apply to this recipe, in table order."""
        return {k: getattr(self, k) for k in self.active}
