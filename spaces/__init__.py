"""Search spaces, one module each: ``spaces/<name>.py`` (or ``spaces/<name>.py`` in a folder on
``SPECTUNE_PATH``) that defines ``SPACE = Space(...)`` registers the space ``<name>``. Modules whose
names start with ``_`` are not spaces."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from spaces._domains import (Categorical, DomainError, FloatRange, IntRange, PowerOfTwoRange, When, choice,
                             domain_from_json, integers, loguniform, powers_of_two, uniform, when)
from spaces._diff import Change, diff_spaces
from spaces._space import Budget, Space, SpaceError, active_keys, describe_domain, validate_space
from results.errors import OptionError
from results.export import check_name
from trainables.discovery import describe_failure, entries, import_entry
from trainables.recipe import METRICS

__all__ = ["METRICS", "Budget", "Categorical", "Change", "DomainError", "FloatRange", "IntRange", "PowerOfTwoRange", "Space",
           "SpaceError", "When", "active_keys", "choice", "describe_domain", "diff_spaces", "domain_from_json", "get_space",
           "integers", "list_spaces", "loguniform", "powers_of_two", "saved_ranges", "uniform", "when"]


def module_file(origin: str) -> str:
    """The file of a space: a user's path as it is, a toolkit module's file."""
    if origin.endswith(".py"):
        return origin
    import importlib.util

    return importlib.util.find_spec(origin).origin


def saved_ranges(space_json: Path) -> dict[str, str]:
    """Each searched key's range, described, as a search saved its space (``space.json``); empty when
    the file is missing (a search written before it was kept)."""
    if not space_json.exists():
        return {}
    return {k: domain_from_json(d).describe() for k, d in json.loads(space_json.read_text())["params"].items()}


def list_spaces() -> list[str]:
    """Names of the space modules: the toolkit's and those on ``SPECTUNE_PATH``."""
    return sorted(entries(__name__, "spaces"))


def get_space(name: str) -> Space:
    """Import the space module ``name`` and return its validated ``SPACE``."""
    found = entries(__name__, "spaces")
    if name not in found:
        raise SpaceError(f"unknown space {name!r}; available spaces: {', '.join(sorted(found))}. "
                         "Add one by creating spaces/<name>.py with SPACE = Space(...) (in the toolkit or in "
                         "a folder on SPECTUNE_PATH).")
    user_file = found[name].endswith(".py")
    where = found[name] if user_file else f"spaces/{name}.py"
    try:
        check_name(name, "a space's file name")
    except OptionError as exc:
        # The name becomes a folder (results/<space>/) and a word of printed commands.
        raise SpaceError(f"{where}: {exc.args[0]} Rename the file.") from None
    try:
        module = import_entry("spaces", found[name])
    except Exception as exc:  # noqa: BLE001 - a space file that fails is one line naming it, the line and the error
        if not user_file and not isinstance(exc, (ImportError, ValueError)):
            raise
        raise SpaceError(f"space {name!r} could not be loaded: "
                         f"{describe_failure(module_file(found[name]), exc)}") from None
    space = getattr(module, "SPACE", None)
    if not isinstance(space, Space):
        raise SpaceError(f"{where}: SPACE: the module must define SPACE = Space(...); got {type(space).__name__}.")
    validate_space(space, name, where)
    return replace(space, name=name, file=where)
