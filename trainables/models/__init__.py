"""Models, one file each: a file here (or in ``models/`` of a folder on ``SPECTUNE_PATH``) that
decorates a builder with :func:`register_model` adds a model. See ``_base.py`` for the contract."""

from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from trainables.data._base import InputSpec
from trainables.discovery import import_all, unknown_hint
from trainables.hparams import ConfigError, resolve
from trainables.models._base import ModelEntry, model_registry, register_model
from trainables.pretrained import Base

__all__ = ["build_model", "get_model", "list_models", "register_model"]


def list_models() -> list[str]:
    import_all(__name__, "models")
    return sorted(model_registry())


def get_model(name: str) -> ModelEntry:
    available = list_models()
    if name not in available:
        raise ConfigError(f"unknown model {name!r}; registered models: {', '.join(available)}."
                          + unknown_hint("models"))
    return model_registry()[name]


def build_model(name: str, spec: InputSpec, hparams: Mapping[str, Any] | None = None,
                source: str = "model config", base: Base | None = None) -> nn.Module:
    """Build a registered model for ``spec``: its declared defaults overridden by ``hparams``
    (``base``: the pretrained weights of a model that starts from them)."""
    entry = get_model(name)
    return entry.build(spec, resolve(entry.hparams, dict(hparams or {}), source), base)
