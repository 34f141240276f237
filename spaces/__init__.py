"""Search spaces, one module each: ``spaces/<name>.py`` (or ``spaces/<name>.py`` in a folder on
``SPECTUNE_PATH``) that defines ``SPACE = Space(...)`` registers the space ``<name>``. Modules whose
names start with ``_`` are not spaces."""

from __future__ import annotations

from dataclasses import replace

from spaces._domains import (Categorical, Float, Int, PowerOfTwo, When, choice, integers, loguniform, powers_of_two,
                             uniform, when)
from spaces._space import Budget, Space, SpaceError, active_keys, describe_domain, validate_space
from trainables.discovery import entries, import_entry
from trainables.recipe import METRICS

__all__ = ["METRICS", "Budget", "Categorical", "Float", "Int", "PowerOfTwo", "Space", "SpaceError", "When",
           "active_keys", "choice", "describe_domain", "get_space", "integers", "list_spaces", "loguniform",
           "powers_of_two", "uniform", "when"]


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
    where = found[name] if found[name].endswith(".py") else f"spaces/{name}.py"
    try:
        module = import_entry("spaces", found[name])
    except (ImportError, NameError, TypeError, ValueError, AttributeError) as exc:
        raise SpaceError(f"{where}: could not be loaded ({type(exc).__name__}: {exc}).") from None
    space = getattr(module, "SPACE", None)
    if not isinstance(space, Space):
        raise SpaceError(f"{where}: SPACE: the module must define SPACE = Space(...); got {type(space).__name__}.")
    validate_space(space, name)
    return replace(space, name=name)
