"""Search spaces, one module each: adding ``spaces/<name>.py`` that defines ``SPACE = Space(...)``
registers the space ``<name>``. Modules whose names start with ``_`` are not spaces."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import replace

from spaces._space import METRICS, Space, SpaceError, describe_domain, validate_space

__all__ = ["METRICS", "Space", "SpaceError", "describe_domain", "get_space", "list_spaces"]


def list_spaces() -> list[str]:
    """Names of the space modules in this package."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def get_space(name: str) -> Space:
    """Import ``spaces/<name>.py`` and return its validated ``SPACE``."""
    available = list_spaces()
    if name not in available:
        raise SpaceError(f"unknown space {name!r}; available spaces: {', '.join(available)}. "
                         "Add one by creating spaces/<name>.py with SPACE = Space(...).")
    module = importlib.import_module(f"spaces.{name}")
    space = getattr(module, "SPACE", None)
    if not isinstance(space, Space):
        raise SpaceError(f"spaces/{name}.py: SPACE: the module must define SPACE = Space(...); "
                         f"got {type(space).__name__}.")
    validate_space(space, name)
    return replace(space, name=name)
