"""Data modules, one file each: a file here (or in ``data/`` of a folder on ``SPECTUNE_PATH``)
that registers a :class:`DataModule` adds a dataset. See ``_base.py`` for the contract."""

from __future__ import annotations

from trainables.data._base import (DataError, DataModule, InputSpec, Split, Splits, data_registry, register_data,
                                   scale_down)
from trainables.discovery import import_all, unknown_hint

__all__ = ["DataError", "DataModule", "InputSpec", "Split", "Splits", "get_data", "list_data", "register_data",
           "scale_down"]


def list_data() -> list[str]:
    import_all(__name__, "data")
    return sorted(data_registry())


def get_data(name: str) -> DataModule:
    """The registered data module ``name``; an unknown name lists the registered ones."""
    available = list_data()
    if name not in available:
        raise DataError(f"unknown data module {name!r}; registered data modules: {', '.join(available)}."
                        + unknown_hint("data"))
    return data_registry()[name]
