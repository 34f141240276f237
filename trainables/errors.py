"""The toolkit's error types: a :class:`UserError` is a mistake the user can fix, reported by the CLI
as one line naming the thing and the fix; any other exception is a bug and keeps its traceback."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input (a path, a file, an option, a key, a bound): the message names it and the fix."""


class ConfigError(UserError):
    """A hyperparameter that is unknown, of the wrong type, out of range or without its condition."""


class DataError(UserError):
    """A data folder or file that cannot be used as it is; the message says how to fix it."""


class OptionError(UserError):
    """A run option (a CLI flag, a search or results name, a record file) that cannot be used."""
