"""The data-scaling options a small machine cuts a data set with (``--points``, ``--tokens``,
``--train-per-class``, ``--train-fraction``): one declared table, the rules of both a space's
``Budget`` (checked when the space is loaded) and the search's flags (search.options)."""

from __future__ import annotations

from trainables.hparams import Float, HParam, Int

SCALING_OPTIONS: dict[str, HParam] = {
    "points": Int(None, 2, nullable=True, help="block-average sequences to this many points"),
    "tokens": Int(None, 2, nullable=True, help="cut token sequences to this many tokens"),
    "train_per_class": Int(None, 1, nullable=True, help="at most this many training examples per class"),
    "train_fraction": Float(None, 0.0, 1.0, closed="right", nullable=True,
                            help="a stratified fraction of the training examples"),
}
