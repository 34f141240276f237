"""Kept only for the modules another change is moving (``results/curves.py``, ``search/bench/``): the
``best.json`` and checkpoint ``config.json`` schema is :mod:`results.best_file`. Import it from there."""

from results.best_file import DataOptions

__all__ = ["DataOptions"]
