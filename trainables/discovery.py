"""Finding models, data modules and spaces by their files: the toolkit's own folders first, then the
``models/``, ``data/`` and ``spaces/`` subfolders of every folder on ``SPECTUNE_PATH``.

A user keeps their pairs in their own folder and points ``SPECTUNE_PATH`` at it (several folders
are separated by ``:``); nothing inside the toolkit is edited. Files whose names start with ``_``
are helpers, not entries. Ray trials import the same folders, which the driver hands them.

A user's file that fails to import (a syntax error, a missing package) is recorded as broken and
skipped, so that it breaks only what needs it: the lookup of a name it would have registered
fails with one line naming the file, the line and the error (:func:`broken`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import pkgutil
import sys
import traceback
from pathlib import Path
from types import ModuleType

from results.errors import OptionError

ENV = "SPECTUNE_PATH"
_BROKEN: dict[tuple[str, str], str] = {}


def user_folders() -> list[Path]:
    """The folders named by ``SPECTUNE_PATH``; a folder that does not exist is an error."""
    folders = [Path(p) for p in os.environ.get(ENV, "").split(os.pathsep) if p]
    missing = [str(p) for p in folders if not p.is_dir()]
    if missing:
        raise OptionError(f"{ENV} names folder(s) that do not exist: {missing}; fix or unset {ENV}.")
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
                raise OptionError(f"{path}: the name {path.stem!r} is already taken by {found[path.stem]}; "
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


def describe_failure(path: str | Path, exc: BaseException) -> str:
    """``file:line: Type: message`` for an exception raised while importing the user's file ``path``."""
    path = Path(path).resolve()
    line = exc.lineno if isinstance(exc, SyntaxError) else next(
        (f.lineno for f in reversed(traceback.extract_tb(exc.__traceback__)) if Path(f.filename).resolve() == path),
        None)
    message = (exc.msg if isinstance(exc, SyntaxError) else str(exc)).strip().splitlines()
    return f"{path}{f':{line}' if line else ''}: {type(exc).__name__}: {message[0] if message else ''}".rstrip(": ")


def import_all(package: str, kind: str) -> None:
    """Import every entry of ``kind``, so that their registration decorators run. A user's file that
    fails is recorded (:func:`broken`) and skipped; the toolkit's own modules raise as usual."""
    for origin in entries(package, kind).values():
        if not origin.endswith(".py"):
            import_entry(kind, origin)
            continue
        try:
            import_entry(kind, origin)
        except Exception as exc:  # noqa: BLE001 - any failure of a user's file is reported, not raised
            _BROKEN[(kind, origin)] = describe_failure(origin, exc)
        else:
            _BROKEN.pop((kind, origin), None)


def broken(kind: str) -> list[str]:
    """One line per user file of ``kind`` that failed to import: file, line and error."""
    return [reason for (k, _), reason in sorted(_BROKEN.items()) if k == kind]


def unknown_hint(kind: str) -> str:
    """What to add to an "unknown name" error when user files of ``kind`` could not be loaded."""
    failed = broken(kind)
    return f" {len(failed)} user file(s) could not be loaded: " + "; ".join(failed) + "." if failed else ""
