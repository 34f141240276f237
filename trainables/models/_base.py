"""The model contract: a builder registered by name with its own declared hyperparameters.

A model module is one file in ``trainables/models/`` (or ``models/`` of a folder on
``SPECTUNE_PATH``)::

    @register_model("my_cnn", inputs="sequence", hparams={"width": Int(32, 1), "residual": Bool(False)})
    def my_cnn(spec: InputSpec, width: int, residual: bool) -> nn.Module: ...

The builder receives the data's :class:`InputSpec` and its own resolved hyperparameters, nothing
else (a model registered with ``pretrained=`` also receives the loaded
:class:`~trainables.pretrained.Base` as its second argument). Its ``forward`` takes the batch's inputs as keyword arguments (``x`` for sequences and
images; ``numeric`` and ``categorical`` for tables) and returns ``spec.n_outputs`` values per example:
class logits, or one prediction of a regression target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from torch import nn

from trainables.data._base import KINDS, InputSpec
from trainables.hparams import ConfigError, Table, check_table
from trainables.pretrained import Base, Pretrained

ModelBuilder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: ModelBuilder
    inputs: tuple[str, ...]
    hparams: Table
    module: str
    pretrained: Pretrained | None = None

    def build(self, spec: InputSpec, hparams: Mapping[str, Any], base: Base | None = None) -> nn.Module:
        if spec.kind not in self.inputs:
            raise ConfigError(f"model {self.name!r} takes {' or '.join(self.inputs)} inputs, but the data gives "
                              f"{spec.describe()}; pair it with data of that kind.")
        if self.pretrained is None:
            return self.builder(spec, **hparams)
        if base is None:
            raise ConfigError(f"model {self.name!r} starts from pretrained weights; load them first "
                              "(Pair.load_base) and pass them to the builder.")
        return self.builder(spec, base, **hparams)


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, inputs: str | tuple[str, ...], hparams: Table | None = None,
                   pretrained: Pretrained | None = None) -> Callable[[ModelBuilder], ModelBuilder]:
    """Register ``builder(spec, **hparams) -> nn.Module`` under ``name`` (``builder(spec, base,
    **hparams)`` when the model starts from ``pretrained`` weights)."""
    kinds = (inputs,) if isinstance(inputs, str) else tuple(inputs)
    if not kinds or not set(kinds) <= set(KINDS):
        raise TypeError(f"model {name!r}: inputs must be among {KINDS}; got {inputs!r}")
    table = dict(hparams or {})
    check_table(table, f"model {name}")

    def deco(fn: ModelBuilder) -> ModelBuilder:
        known = _MODELS.get(name)
        if known is not None and (known.module, getattr(known.builder, "__qualname__", "")) != \
                (fn.__module__, getattr(fn, "__qualname__", "")):
            raise ValueError(f"model {name!r} is registered twice ({known.module} and {fn.__module__})")
        _MODELS[name] = ModelEntry(name, fn, kinds, table, fn.__module__, pretrained)
        return fn
    return deco


def model_registry() -> dict[str, ModelEntry]:
    return _MODELS
