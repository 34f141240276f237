"""ASHA that keeps its rungs across ``--resume`` (:class:`PersistentASHA`), and MO-ASHA over several
objectives (:class:`ParetoASHA`); the curve and time variants subclass the first
(:mod:`search.strategy.curve_asha`, :mod:`search.strategy.time_asha`) and :func:`search.strategy.schedulers.make_scheduler` builds them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.schedulers.async_hyperband import _Bracket

from results.files import replace_whole
from results.pareto import pareto_ranks
from search.strategy.own_state import check_own_file


class PersistentASHA(ASHAScheduler):
    """ASHA whose rung records survive ``--resume``.

    Ray Tune 2.60 never calls a scheduler's ``save``/``restore``: a restored search gets ASHA as it
    was created, with empty rungs, so a resumed trial would be judged against no one. This one
    writes its state to ``path`` after every decision and reads it back before the first trial is
    added to a restored search, so promotions and stops continue from the recorded rungs.
    """

    def __init__(self, path: str | Path | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._path = str(path) if path is not None else None   # None: nothing kept (a replay)
        self._loaded = False

    def _persist(self) -> None:
        if self._path is None:
            return
        replace_whole(self._path, lambda tmp: self.save(str(tmp)))

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        if not self._loaded:
            self._loaded = True
            if self._path is not None and os.path.exists(self._path):
                check_own_file(self._path)   # a pickle: search.strategy.own_state
                self.restore(self._path)
        super().on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        self._persist()
        return decision

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        super().on_trial_complete(tune_controller, trial, result)
        self._persist()


class ParetoBracket(_Bracket):
    """An ASHA bracket whose rungs record vectors (each objective signed so that larger is better) and
    rank them as NSGA-II does, the MO-ASHA rule (Schmucker et al. 2021; Syne Tune's ``MOASHA``): a trial
    reaching a rung continues when fewer than 1/reduction_factor of the trials recorded there come
    before it, by (non-dominated front, primary value). A small model with a lower macro-F1 is on the
    first front, so it is not stopped for being small while that front holds fewer than 1/reduction_factor
    of the rung; within a crowded first front the primary value decides, as ASHA would."""

    def cutoff(self, recorded: dict) -> None:
        """No scalar cutoff: the rung ranks vectors (Ray's percentile would mean nothing here)."""
        return None

    def on_result(self, trial: Any, cur_iter: int, cur_rew: Any) -> str:
        action = TrialScheduler.CONTINUE
        for milestone, recorded in self._rungs:
            if cur_iter < milestone or trial.trial_id in recorded:
                continue
            if recorded and _position(np.asarray(cur_rew, dtype=float), list(recorded.values())) > \
                    len(recorded) / self.rf:
                action = TrialScheduler.STOP
            recorded[trial.trial_id] = np.asarray(cur_rew, dtype=float)
            break
        return action


def _position(new: np.ndarray, recorded: list[np.ndarray]) -> int:
    """How many recorded vectors come before ``new`` by (front, primary value), larger being better."""
    values = np.vstack([*recorded, new])
    ranks = pareto_ranks(values, ["max"] * values.shape[1])
    key = list(zip(ranks, -values[:, 0]))
    return sum(k < key[-1] for k in key[:-1])


class ParetoASHA(PersistentASHA):
    """ASHA over several objectives (``--scheduler moasha``): :class:`ParetoBracket` rungs over the primary
    metric (Tune's) and ``objectives`` ((name, mode) pairs read from each result), kept for ``--resume``."""

    def __init__(self, path: str | Path | None, objectives: Sequence[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self._objectives = [(name, 1.0 if mode == "max" else -1.0) for name, mode in objectives]
        self._brackets = [ParetoBracket(kwargs["grace_period"], kwargs["max_t"], kwargs["reduction_factor"], 0)]

    def _vector(self, result: dict) -> list[float] | None:
        if self._metric not in result or any(name not in result for name, _ in self._objectives):
            return None
        return [self._metric_op * result[self._metric], *(op * result[name] for name, op in self._objectives)]

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        vector = self._vector(result)
        if vector is None or self._time_attr not in result:
            return TrialScheduler.CONTINUE
        if result[self._time_attr] >= self._max_t:
            decision = TrialScheduler.STOP
        else:
            decision = self._trial_info[trial.trial_id].on_result(trial, result[self._time_attr], vector)
        self._num_stopped += decision == TrialScheduler.STOP
        self._persist()
        return decision

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        vector = self._vector(result)
        if vector is not None and self._time_attr in result:
            self._trial_info[trial.trial_id].on_result(trial, result[self._time_attr], vector)
        self._trial_info.pop(trial.trial_id, None)
        self._persist()
