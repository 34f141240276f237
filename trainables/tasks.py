"""The two tasks a pair can have, and what each allows: its validation metrics, their direction, its losses.

A data module declares its task (``classification``: int class labels; ``regression``: float targets).
Everything that only makes sense for one task (focal loss, ``--classes``, macro-F1 as the metric)
is checked against this table at the boundary, before any training or Ray starts. Nothing here
imports torch, so the CLI and the records can read it cheaply.
"""

from __future__ import annotations

from results.errors import ConfigError

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)

# What the recipe reports every epoch that a space may select and search on, per task.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    CLASSIFICATION: ("val_macro_f1", "val_acc", "val_top3_acc", "val_loss"),
    REGRESSION: ("val_rmse", "val_mae", "val_r2", "val_loss"),
}
# The direction in which each metric improves: a space that asks for the other one is a mistake.
METRIC_MODES = {"val_macro_f1": "max", "val_acc": "max", "val_top3_acc": "max", "val_loss": "min",
                "val_rmse": "min", "val_mae": "min", "val_r2": "max"}
# What a record reports of the best epoch besides the selection metric is best.json's schema:
# results.best_file.HEADLINE, keyed by these tasks (tests/test_records.py checks it names each).
TASK_LOSSES: dict[str, tuple[str, ...]] = {CLASSIFICATION: ("focal", "weighted_ce", "ce"),
                                           REGRESSION: ("mse", "huber", "l1")}
# The recipe's loss when a config names none: the ZTF notebook's focal loss, or mean squared error.
DEFAULT_LOSS = {CLASSIFICATION: "focal", REGRESSION: "mse"}


def other(task: str) -> str:
    """The task that is not ``task``."""
    return REGRESSION if task == CLASSIFICATION else CLASSIFICATION


def check_metric(task: str, metric: str, mode: str, where: str, data: str) -> None:
    """:class:`ConfigError` when ``metric`` is not one the task reports or ``mode`` runs against it."""
    if metric not in TASK_METRICS[task]:
        kind = f"a {other(task)} metric" if metric in TASK_METRICS[other(task)] else "not a metric the recipe reports"
        example = "metric='val_rmse', mode='min'" if task == REGRESSION else "metric='val_macro_f1', mode='max'"
        raise ConfigError(f"{where}: metric {metric!r} is {kind}, but data {data!r} is a {task} task; use one of "
                          f"{list(TASK_METRICS[task])} (e.g. {example}).")
    if mode != METRIC_MODES[metric]:
        raise ConfigError(f"{where}: mode {mode!r} would select the worst {metric}; {metric} improves as it "
                          f"{'falls' if METRIC_MODES[metric] == 'min' else 'rises'}: use mode={METRIC_MODES[metric]!r}.")


def check_loss(task: str, loss: str, where: str, data: str) -> None:
    """:class:`ConfigError` when ``loss`` belongs to the other task."""
    if loss not in TASK_LOSSES[task]:
        raise ConfigError(f"{where}: loss {loss!r} is a {other(task)} loss, but data {data!r} is a {task} task; "
                          f"use one of {list(TASK_LOSSES[task])}.")
