"""A pair: one registered model and one registered data module, with the recipe around them.

The pair's table is the union of the recipe's, the model's and the data module's; a config (a
space's fixed values and starting points, a trial, a JSON file) is resolved against it in one go
and split back into the three parts. No two tables may declare the same knob. The data module's
task decides what the config may ask for: a regression pair's loss defaults to mean squared error,
and a loss of the other task is refused here, wherever the config came from.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from torch import nn

from trainables.config import RECIPE_TABLE, Recipe
from trainables.data import DataError, DataModule, InputSpec, Splits, get_data, scale_down
from trainables.hparams import ConfigError, HParam, resolve
from trainables.models import get_model
from trainables.models._base import ModelEntry
from trainables.pretrained import Base
from trainables.tasks import CLASSIFICATION, DEFAULT_LOSS, check_loss


@dataclass(frozen=True)
class Resolved:
    """A config split into the recipe, the model's and the data module's knobs."""

    recipe: Recipe
    model: dict[str, Any]
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Every knob that applies, recipe first: what ``best.json`` and checkpoints record."""
        return {**self.recipe.to_dict(), **self.model, **self.data}


@dataclass(frozen=True)
class Pair:
    model: str
    data: str

    @property
    def model_entry(self) -> ModelEntry:
        return get_model(self.model)

    @property
    def data_module(self) -> DataModule:
        return get_data(self.data)

    @property
    def task(self) -> str:
        """The data module's task: ``classification`` or ``regression``."""
        return self.data_module.task

    def tables(self) -> dict[str, Mapping[str, HParam]]:
        """Owner -> table, checked to be disjoint."""
        tables = {"recipe": RECIPE_TABLE, f"model {self.model}": self.model_entry.hparams,
                  f"data {self.data}": self.data_module.hparams}
        seen: dict[str, str] = {}
        for owner, table in tables.items():
            for key in table:
                if key in seen:
                    raise ConfigError(f"{seen[key]} and {owner} both declare {key!r}; rename one of them.")
                seen[key] = owner
        return tables

    def table(self) -> dict[str, HParam]:
        """The union of the three tables."""
        return {k: p for table in self.tables().values() for k, p in table.items()}

    def resolve(self, values: Mapping[str, Any], source: str = "config", soft: tuple[str, ...] = ()) -> Resolved:
        """Defaults overridden by ``values``, checked against the pair's table."""
        tables = self.tables()
        unknown = sorted(set(values) - {k for t in tables.values() for k in t})
        if unknown:
            raise ConfigError(f"{source}: unknown hyperparameter(s) {unknown} for model {self.model!r}, data "
                              f"{self.data!r} and the recipe; valid names are {list(self.table())}.")
        parts = [{k: v for k, v in values.items() if k in t} for t in tables.values()]
        model_table, data_table = list(tables.values())[1:]
        task = self.task
        if task != CLASSIFICATION:
            parts[0] = {"loss": DEFAULT_LOSS[task], **parts[0]}
        recipe = Recipe.from_dict(parts[0], source, soft)
        check_loss(task, recipe.loss, source, self.data)
        return Resolved(recipe=recipe, model=resolve(model_table, parts[1], source, soft),
                        data=resolve(data_table, parts[2], source, soft))

    def load_base(self, source: str | None = None) -> Base | None:
        """The model's pretrained weights from ``source`` (default: the model's own), or ``None`` for a
        model trained from scratch; :class:`~trainables.pretrained.BaseError` when they cannot be had."""
        pretrained = self.model_entry.pretrained
        if pretrained is None:
            if source:
                raise ConfigError(f"--base {source}: model {self.model!r} starts from random weights and takes no "
                                  "base; drop --base.")
            return None
        return pretrained.load(source or pretrained.default)

    def model_fn(self, spec: InputSpec, resolved: Resolved, base: Base | None = None) -> Callable[[], nn.Module]:
        """A builder of this pair's model for ``spec`` (called by the loop after seeding)."""
        entry = self.model_entry
        return lambda: entry.build(spec, resolved.model, base)

    def augment(self, resolved: Resolved) -> Callable[[dict, Any], dict] | None:
        """The data module's per-batch change for this config, or ``None`` when it has no knobs."""
        if not resolved.data:
            return None
        module, hparams = self.data_module, resolved.data
        return lambda batch, generator: module.augment(batch, hparams, generator)


def load_data(pair: Pair, folder: Path | None, classes: Sequence[str] | None, *, test: bool,
              points: int | None = None, tokens: int | None = None, train_per_class: int | None = None,
              train_fraction: float | None = None, seed: int = 0) -> Splits:
    """Read and check every split of the pair's data (test too: a broken test file is found now,
    not after the search), scale it down as asked, and keep the test split only when ``test``."""
    if classes and pair.task != CLASSIFICATION:
        raise DataError(f"--classes orders a classifier's classes, and data {pair.data!r} is a {pair.task} task "
                        "with no classes; drop --classes.")
    data = pair.data_module.load(folder, list(classes) if classes else None)
    data = scale_down(data, points, train_per_class, seed=seed, train_fraction=train_fraction, tokens=tokens)
    return data if test else replace(data, test=None)


def dry_run(pair: Pair, data: Splits, config: dict[str, Any], source: str, base: Base | None = None) -> None:
    """Build the model for ``config`` and pass two training examples through it, so that a model that
    does not fit the data fails now, in one line, rather than in every trial."""
    import torch

    resolved = pair.resolve(config, source=source)
    model = pair.model_fn(data.spec, resolved, base)()
    batch = {k: torch.from_numpy(v[:2].copy()) for k, v in data.train.inputs.items()}
    model.eval()
    try:
        with torch.no_grad():
            logits = model(**batch)
    except (RuntimeError, TypeError, ValueError, IndexError) as exc:
        raise ConfigError(f"model {pair.model!r} failed on a batch of data {pair.data!r} "
                          f"({data.spec.describe()}): {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}") from None
    expected = (2, data.spec.n_outputs)
    if tuple(logits.shape) != expected:
        what = "one logit per class" if pair.task == CLASSIFICATION else "one prediction of the target"
        raise ConfigError(f"model {pair.model!r} returned shape {tuple(logits.shape)} for 2 examples; it must return "
                          f"shape {expected}, {what} (InputSpec.n_outputs).")
