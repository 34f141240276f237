"""Kept only for the modules another change is moving (the replay modules, ``search/warm_start.py``): the
error types live in :mod:`results.errors`, the bottom floor. Import them from there."""

from results.errors import ConfigError, DataError, OptionError, UserError

__all__ = ["ConfigError", "DataError", "OptionError", "UserError"]
