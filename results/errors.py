"""The toolkit's error types, on the bottom floor so that every folder can raise them: a
:class:`UserError` is a mistake the user can fix, reported by the CLI as one line naming the thing and
the fix; a :class:`SearchError` is a run that went through but has nothing to write (exit 1, 130 when
interrupted); any other exception is a bug and keeps its traceback."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input (a path, a file, an option, a key, a bound): the message names it and the fix."""


class ConfigError(UserError):
    """A hyperparameter that is unknown, of the wrong type, out of range or without its condition."""


class DataError(UserError):
    """A data folder or file that cannot be used as it is; the message says how to fix it."""


class OptionError(UserError):
    """A run option (a CLI flag, a search or results name, a record file) that cannot be used."""


class SearchError(RuntimeError):
    """A search (or recording, or confirmation) that ran but produced no result to write."""


class SearchInterrupted(SearchError):
    """Tune stopped before every trial ended (Ctrl+C); the experiment folder can be resumed."""


class AllTrialsFailed(SearchError):
    """Every trial raised: the search has no best config."""


class SearchStopped(AllTrialsFailed):
    """The first trials all failed on their configuration, or trials in a row failed on the machine
    (``--stop-after-failures``): the search stopped instead of running the rest."""
