"""Finding models, data modules and spaces by their files: the toolkit's own folders first, then the
``models/``, ``data/`` and ``spaces/`` subfolders of every folder on ``SPECTUNE_PATH``.

A user keeps their pairs in their own folder and points ``SPECTUNE_PATH`` at it (several folders
are separated by ``:``); nothing inside the toolkit is edited. Files whose names start with ``_``
are helpers, not entries. Ray trials import the same folders, which the driver hands them.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import pkgutil
import sys
from pathlib import Path
from types import ModuleType

ENV = "SPECTUNE_PATH"


def user_folders() -> list[Path]:
    """The folders named by ``SPECTUNE_PATH``; a folder that does not exist is an error."""
    folders = [Path(p) for p in os.environ.get(ENV, "").split(os.pathsep) if p]
    missing = [str(p) for p in folders if not p.is_dir()]
    if missing:
        raise ValueError(f"{ENV} names folder(s) that do not exist: {missing}; fix or unset {ENV}.")
    return folders


def entries(package: str, kind: str) -> dict[str, str]:
    """Entry name -> where it comes from (a module name for the toolkit's, a file path for a user's)."""
    found = {m.name: f"{package}.{m.name}" for m in pkgutil.iter_modules(importlib.import_module(package).__path__)
             if not m.name.startswith("_")}
    for folder in user_folders():
        for path in sorted((folder / kind).glob("*.py")):
            if path.stem.startswith("_"):
                continue
            if path.stem in found:
                raise ValueError(f"{path}: the name {path.stem!r} is already taken by {found[path.stem]}; "
                                 "rename the file.")
            found[path.stem] = str(path)
    return found


def import_entry(kind: str, origin: str) -> ModuleType:
    """Import a toolkit module by name, or a user's file by path (once; later calls reuse it)."""
    if not origin.endswith(".py"):
        return importlib.import_module(origin)
    path = Path(origin).resolve()
    name = f"spectune_user.{kind}.{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def import_all(package: str, kind: str) -> None:
    """Import every entry of ``kind``, so that their registration decorators run."""
    for origin in entries(package, kind).values():
        import_entry(kind, origin)
