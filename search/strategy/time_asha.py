"""ASHA whose rungs are judged by training time, not epochs (``--scheduler asha-time``).

Plain ASHA compares trials at equal epochs, so a config whose epochs are slow (a small batch, a wide model)
costs more per rung and is judged as if it cost the same. :class:`TimeASHA` compares trials at equal
training seconds instead: its resource is ``train_seconds``, which :func:`search.running.trial.run_trial` reports
each epoch (the sum of the trial's ``epoch_time_s``: training and validation, without the worker's start-up,
the data transfer or checkpoints, and carried over a ``--resume`` in the saved history), so a slow config is
judged by what it gives per second.

The rungs and the cap come from the epoch budget, so that the options mean what they mean for ``asha``:
seconds are counted in *reference epochs*, the seconds one epoch took in the first result the search hears
of (with one trial at a time, the space's first starting config, its typical one; the first epoch also
carries a process's warm-up, which makes the rungs a little later, not earlier). A trial reaches ASHA's rung
``grace x reduction^k`` when it has trained that many reference epochs' worth of seconds, and is stopped at
``max_epochs`` reference epochs: every trial gets at most the time the reference config takes for the
whole budget, and a fast config still stops at its own epoch budget. Measuring a reference instead of
guessing one keeps the rungs right on any machine; fixing it at the first result (rather than updating it)
keeps every rung's records comparable. It is kept with the rungs for ``--resume``
(:class:`~search.strategy.asha.PersistentASHA` pickles the scheduler's state). A result without
``train_seconds`` is judged by its epochs, as ``asha`` would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search.strategy.asha import PersistentASHA

SECONDS = "train_seconds"   # reported by every trial each epoch: its training seconds so far (this scheduler's clock)


class TimeASHA(PersistentASHA):
    """ASHA on ``train_seconds`` in reference epochs (see the module docstring); ``time_attr`` stays
    ``training_iteration``, the clock the rungs (``grace_period``, ``max_t``) are given in."""

    def __init__(self, path: str | Path | None, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.seconds_per_epoch: float | None = None   # the reference, set by the first timed result

    def _on_clock(self, result: dict) -> dict:
        """``result`` with its epochs replaced by its training seconds in reference epochs."""
        seconds, epochs = result.get(SECONDS), result.get(self._time_attr)
        if seconds is None or not epochs or seconds <= 0:
            return result
        if self.seconds_per_epoch is None:
            self.seconds_per_epoch = seconds / epochs
        return {**result, self._time_attr: seconds / self.seconds_per_epoch}

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        return super().on_trial_result(tune_controller, trial, self._on_clock(result))

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        super().on_trial_complete(tune_controller, trial, self._on_clock(result) if result else result)
