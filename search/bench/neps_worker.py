"""NePS's PriorBand behind a line protocol, run in NePS's own Python (``make neps-env``): NePS pins other
versions of spectune's dependencies, so it cannot share spectune's environment. This file imports only
NePS, NumPy, PyTorch and the standard library; :mod:`search.bench.neps_peer` starts it and speaks to it.

Each line in is a JSON object, each line out its answer:

- ``{"op": "start", "params": [...], "max_epochs": E, "min_epochs": g, "eta": 3, "seed": s}`` makes a
  new PriorBand (Hyperband brackets; its first config is the prior), seeding NumPy, PyTorch and
  ``random``, which NePS draws from; answer ``{"ok": true}``;
- ``{"op": "ask"}``: ``{"id", "previous", "config", "epochs"}`` (``previous``: the trial this one continues
  to a higher fidelity, or null);
- ``{"op": "tell", "id": ..., "loss": x}`` (or ``"crashed": true``): ``{"ok": true}``.

A param is ``{"name", "kind": "float"|"int"|"index", "low", "high", "log", "prior"}``; ``index`` is a
categorical's position among its choices (spectune maps it back), so NePS never sees a choice's value.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import traceback
from typing import Any


def _space(params: list[dict[str, Any]], min_epochs: int, max_epochs: int) -> Any:
    from neps.space import SearchSpace
    from neps.space.parameters import HPOCategorical, HPOFloat, HPOInteger

    elements: dict[str, Any] = {}
    for p in params:
        prior = {"prior": p["prior"], "prior_confidence": "medium"} if p.get("prior") is not None else {}
        if p["kind"] == "float":
            elements[p["name"]] = HPOFloat(p["low"], p["high"], log=p["log"], **prior)
        elif p["kind"] == "int":
            elements[p["name"]] = HPOInteger(p["low"], p["high"], log=p["log"], **prior)
        else:
            elements[p["name"]] = HPOCategorical(list(range(p["high"] + 1)), **prior)
    elements["epochs"] = HPOInteger(min_epochs, max_epochs, is_fidelity=True)
    return SearchSpace(elements)


def main() -> None:
    import neps
    import numpy as np
    import torch

    logging.disable(logging.WARNING)
    out = sys.stdout
    sys.stdout = sys.stderr   # anything NePS prints must not break the protocol
    optimizer = None
    for line in sys.stdin:
        message = json.loads(line)
        try:
            if message["op"] == "start":
                seed = int(message["seed"])
                random.seed(seed)
                np.random.seed(seed)
                torch.manual_seed(seed)
                space = _space(message["params"], int(message["min_epochs"]), int(message["max_epochs"]))
                optimizer = neps.AskAndTell(optimizer=neps.algorithms.priorband(
                    space, eta=int(message["eta"]), sample_prior_first=True))
                answer: dict[str, Any] = {"ok": True}
            elif message["op"] == "ask":
                trial = optimizer.ask()
                config = dict(trial.config)
                answer = {"id": trial.metadata.id, "previous": trial.metadata.previous_trial_id,
                          "epochs": int(config.pop("epochs")), "config": config}
            elif message["op"] == "tell":
                result = RuntimeError("the trial failed") if message.get("crashed") else float(message["loss"])
                optimizer.tell(message["id"], result)
                answer = {"ok": True}
            else:
                answer = {"error": f"unknown op {message['op']!r}"}
        except Exception:  # noqa: BLE001 - the traceback goes to spectune, which raises it
            answer = {"error": traceback.format_exc()}
        out.write(json.dumps(answer, default=float) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
