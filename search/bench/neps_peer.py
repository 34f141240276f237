"""NePS's PriorBand as a peer in replays and live checks: a driver of the replay's event loop whose
proposals come from PriorBand running in NePS's own Python (:mod:`search.bench.neps_worker`).

PriorBand draws around the space's starting config (its prior, confidence "medium"), the incumbent and
uniformly, over Hyperband brackets of epochs (from the strategy's grace, eta its reduction factor); its
first config is the prior. A promotion continues the run it promotes (the event loop resumes its
curve, as a live trial resumes from its checkpoint), so it costs only the epochs it adds. The search
stops asking once it has asked for ``trials x max_epochs`` epochs, the budget of random search with the
same trials: PriorBand counts fidelity, not trials.

Where NePS's Python is: ``SPECTUNE_NEPS_PYTHON``, else ``.venv-neps/bin/python`` (``make neps-env``).
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from optuna.trial import FixedTrial

from results.errors import OptionError
from search.replay.simulate import CONTINUE, STOP
from search.strategy.searcher import DefineByRun

NEPS_ENV = ".venv-neps/bin/python"
WORKER = Path(__file__).with_name("neps_worker.py")


def neps_python() -> Path | None:
    """NePS's Python, or ``None`` where there is none (``SPECTUNE_NEPS_PYTHON`` naming a missing file is
    an error: the user asked for it)."""
    named = os.environ.get("SPECTUNE_NEPS_PYTHON")
    if named:
        if not Path(named).is_file():
            raise OptionError(f"SPECTUNE_NEPS_PYTHON={named} is not a file; point it at a Python with "
                              "neural-pipeline-search 0.17 installed (make neps-env makes .venv-neps), or unset it.")
        return Path(named)
    return Path(NEPS_ENV) if Path(NEPS_ENV).is_file() else None


class _Worker:
    """The NePS process, started once and reused by every search (importing NePS takes seconds)."""

    process: subprocess.Popen | None = None

    @classmethod
    def request(cls, message: dict[str, Any]) -> dict[str, Any]:
        if cls.process is None or cls.process.poll() is not None:
            python = neps_python()
            if python is None:
                raise OptionError("NePS PriorBand runs in NePS's own Python, and there is none: make neps-env "
                                  f"(makes {NEPS_ENV}), or set SPECTUNE_NEPS_PYTHON.")
            # One thread in each pool: the worker runs while its replaying process waits, and a study runs one
            # replaying process per CPU.
            one = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
            cls.process = subprocess.Popen([str(python), str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           text=True, bufsize=1, env={**os.environ, **one})
            atexit.register(cls.close)
        assert cls.process.stdin is not None and cls.process.stdout is not None
        cls.process.stdin.write(json.dumps(message) + "\n")
        cls.process.stdin.flush()
        line = cls.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the NePS worker ({WORKER.name}) exited with code {cls.process.wait()}; its "
                               "error is above")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the NePS worker failed on {message['op']}:\n{answer['error']}")
        return answer

    @classmethod
    def close(cls) -> None:
        if cls.process is not None and cls.process.poll() is None:
            cls.process.stdin.close()
            cls.process.wait(timeout=10)
        cls.process = None


def describe(params: dict[str, Any], prior: dict[str, Any]) -> list[dict[str, Any]]:
    """The space's domains in the worker's terms (Optuna's names: a power of two as its log2), with the
    prior value of each key the starting config ``prior`` (in Optuna's names) sets."""
    return [domain.neps(key, prior) for key, domain in params.items()]


def decode(params: dict[str, Any], sampled: dict[str, Any]) -> dict[str, Any]:
    """A worker's config as a trial's: choices from their indices, integers and steps restored, and the
    keys of unmet conditions dropped (through the define-by-run function a search uses)."""
    values = {name: v for key, domain in params.items() for name, v in domain.from_neps(key, sampled).items()}
    trial = FixedTrial(values)
    derived = DefineByRun(params)(trial) or {}
    return {**trial.params, **derived}


class NepsDriver:
    """PriorBand called as the event loop calls a driver: ``ask`` (``None`` once the epoch budget is asked
    for), ``previous`` (the trial a promotion continues), ``tell_epoch`` (stop at the trial's fidelity) and
    ``fail``."""

    def __init__(self, curves: Any, params: dict[str, Any], start: list[dict[str, Any]], s: Any, seed: int) -> None:
        self.params, self.mode = params, curves.mode
        prior = DefineByRun(params).encode(start[0]) if start and s.space_start else {}
        _Worker.request({"op": "start", "params": describe(params, prior), "max_epochs": curves.max_epochs,
                         "min_epochs": max(1, s.grace), "eta": s.reduction, "seed": seed})
        self.budget, self.asked = s.trials * curves.max_epochs, 0
        self.trials: dict[str, dict[str, Any]] = {}
        self.ours: dict[str, str] = {}   # NePS's trial id -> the event loop's

    def ask(self, trial_id: str) -> dict[str, Any] | None:
        if self.asked >= self.budget:
            return None
        answer = _Worker.request({"op": "ask"})
        previous = self.ours.get(answer["previous"]) if answer["previous"] else None
        before = self.trials[previous]["epochs"] if previous else 0
        self.asked += answer["epochs"] - before
        self.trials[trial_id] = {"neps": answer["id"], "epochs": answer["epochs"], "previous": previous}
        self.ours[answer["id"]] = trial_id
        return decode(self.params, answer["config"])

    def previous(self, trial_id: str) -> str | None:
        return self.trials[trial_id]["previous"]

    def tell_epoch(self, trial_id: str, epoch: int, value: float, best: float, finished: bool,
                   sizes: dict[str, float]) -> str:
        trial = self.trials[trial_id]
        if epoch < trial["epochs"] and not finished:
            return CONTINUE
        _Worker.request({"op": "tell", "id": trial["neps"], "loss": -best if self.mode == "max" else best})
        return STOP

    def fail(self, trial_id: str) -> None:
        _Worker.request({"op": "tell", "id": self.trials[trial_id]["neps"], "crashed": True})
