"""Checkpoints: a folder with ``model.pt`` (tensors) and ``config.json`` (what rebuilds the model).

As in nanoGPT, the config travels with the weights. A model that starts from pretrained weights
saves only the tensors it trains (LoRA adapters and the head, say); the rest is the base, named in
``config.json`` by its path and sha256, so a trial's checkpoint is megabytes, not a copy of the base.
Files are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from results.errors import OptionError

WEIGHTS_FILE = "model.pt"
CONFIG_FILE = "config.json"


def frozen_keys(model: nn.Module, state: dict[str, torch.Tensor] | None = None) -> set[str]:
    """The keys of ``state`` (default: the model's own) that hold the frozen base: frozen parameters,
    and what a module whose parameters are all frozen writes beside them (bitsandbytes' quantisation
    scales, which are neither parameters nor buffers)."""
    state = model.state_dict() if state is None else state
    params = dict(model.named_parameters(remove_duplicate=False))
    buffers = {name for name, _ in model.named_buffers(remove_duplicate=False)}
    modules = dict(model.named_modules(remove_duplicate=False))
    frozen_modules = {name for name, m in modules.items()
                      if (own := list(m.parameters(recurse=False))) and not any(p.requires_grad for p in own)}

    def owner(key: str) -> str:
        while "." in key:
            key = key.rpartition(".")[0]
            if key in modules:
                return key
        return ""

    return {k for k in state if (k in params and not params[k].requires_grad)
            or (k not in params and k not in buffers and owner(k) in frozen_modules)}


def trainable_state(model: nn.Module, state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """``state`` (default: the model's own) without the frozen base (:func:`frozen_keys`): what trains
    and every buffer (batch-norm statistics move even under a frozen base). A frozen base is rebuilt
    from the base, not saved again; with nothing frozen this is the whole state."""
    state = model.state_dict() if state is None else state
    frozen = frozen_keys(model, state)
    return {k: v for k, v in state.items() if k not in frozen}


def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> nn.Module:
    """Load a :func:`trainable_state` into a model rebuilt from the same base and config; every tensor
    must fit and every tensor left out must be a frozen one."""
    fix = "rebuild the model with the config saved beside it"
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:   # a tensor of another shape: another rank or width
        detail = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc))
        raise OptionError(f"{source}: the checkpoint does not fit this model ({detail}); {fix}.") from None
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    missing = sorted(set(result.missing_keys) & trained)
    if result.unexpected_keys or missing:
        raise OptionError(f"{source}: the checkpoint does not fit this model (unexpected {result.unexpected_keys[:3]}, "
                         f"missing trained tensors {missing[:3]}); {fix}.")
    return model


def save_checkpoint(folder: Path, model: nn.Module, record: dict[str, Any]) -> Path:
    """Write ``model.pt`` and ``config.json`` into ``folder`` all at once (a temporary folder renamed
    into place), so a folder that exists is always complete."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    tmp.chmod(0o755)    # mkdtemp's 0700 would keep the saved model from other users
    try:
        torch.save(trainable_state(model), tmp / WEIGHTS_FILE)
        (tmp / CONFIG_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def read_checkpoint(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and the config of a checkpoint folder (:class:`OptionError` naming what is missing)."""
    folder = Path(folder)
    weights, config = folder / WEIGHTS_FILE, folder / CONFIG_FILE
    for path in (weights, config):
        if not path.is_file():
            raise OptionError(f"checkpoint {folder}: {path.name} is missing; a checkpoint folder holds "
                             f"{WEIGHTS_FILE} and {CONFIG_FILE} (written by `spectune train --save DIR`).")
    try:
        record = json.loads(config.read_text())
    except json.JSONDecodeError as exc:
        raise OptionError(f"checkpoint {folder}: {CONFIG_FILE} is not valid JSON ({exc.msg}, line {exc.lineno}).") from None
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise OptionError(f"checkpoint {folder}: {WEIGHTS_FILE} cannot be read with torch.load(weights_only=True) "
                         f"({type(exc).__name__}); write it again with `spectune train --save`.") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise OptionError(f"checkpoint {folder}: {WEIGHTS_FILE} must hold a state dict of tensors.")
    return state, record
