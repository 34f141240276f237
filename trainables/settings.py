"""A trial's run settings: what every trial of a search (or confirmation) shares besides its config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trainables.pair import Pair, Resolved


@dataclass(frozen=True)
class TrialSettings:
    """Run settings shared by every trial of a search (never logged as hyperparameters).

    A trial's recipe takes, in rising order: the pair's defaults, the space's ``fixed`` values, the
    searched ``config``, then ``max_epochs`` and ``seed`` (run options), then ``overrides``: recipe
    knobs the user set explicitly for this run (``--patience``, ``--no-patience``). A knob the user
    did not set keeps the space's fixed value. ``user_path`` is the driver's ``SPECTUNE_PATH``, so
    trials find the same user pairs."""

    model: str
    data: str
    max_epochs: int
    seed: int
    fixed: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    metric: str = "val_macro_f1"
    mode: str = "max"
    device: str = "auto"
    threads: int = 1
    user_path: str = ""
    searched: tuple[str, ...] = ()

    @property
    def pair(self) -> Pair:
        return Pair(self.model, self.data)

    def resolve(self, config: dict[str, Any]) -> Resolved:
        # A trial's config also holds the searcher's encodings (lora_rank_log2 beside lora_rank).
        config = {k: v for k, v in config.items() if k in self.searched} if self.searched else config
        values = {**self.fixed, **config, "epochs": self.max_epochs, "seed": self.seed, **self.overrides}
        return self.pair.resolve(values, source="trial config", soft=tuple(self.fixed))


def config_sizes(pair: Any, spec: Any, settings: TrialSettings, configs: dict[int, dict[str, Any]],
                 base: Any = None) -> dict[int, dict[str, float]]:
    """Per config id, the sizes a trial reports (trainable and total parameters), from its model built
    but not trained: what a multi-objective replay needs of a recording."""
    from trainables.models._finetune import parameter_counts

    return {i: parameter_counts(pair.model_fn(spec, settings.resolve(c), base)()) for i, c in configs.items()}
