"""A search's cap on the epochs its trials train in all: the run's stopper, ending the search once its
trials have trained that many epochs together (the trials still running stop where they are, as ASHA
stops a trial, and count with their best epoch so far).

A space whose ``trials_factor`` runs many cheap trials (California's 48 for random search's 12) would
otherwise spend more epochs than random search; capped at random search's most (the budget's trials x its
epochs) it was measured live to pick better configs at the same cost (docs/replay.md)."""

from __future__ import annotations

from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.stopper import Stopper


class EpochCap(Callback, Stopper):
    """Stops the run once its trials' epochs add up to ``cap``; passed as a callback too, so that a resumed
    run counts the epochs its trials trained before the interruption (from the trials Tune restores)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.epochs: dict[str, int] = {}   # per trial, the last epoch it reported

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        for trial in trials:
            self._count(trial.trial_id, trial.last_result or {})

    def _count(self, trial_id: str, result: dict[str, Any]) -> None:
        # A trial retried from its checkpoint reports an epoch again: it counts once.
        self.epochs[trial_id] = max(self.epochs.get(trial_id, 0), int(result.get("training_iteration") or 0))

    @property
    def spent(self) -> int:
        """Epochs trained so far, all trials together."""
        return sum(self.epochs.values())

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        self._count(trial_id, result)
        return False

    def stop_all(self) -> bool:
        return self.spent >= self.cap
