"""Atomic writes: a result file is either absent or complete, never half-written."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from results.errors import OptionError


def write_json(path: str | Path, obj: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)
    return path


def write_csv(path: str | Path, frame: pd.DataFrame) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    # The temporary name hides the suffix from pandas: say the compression (mtime 0: the same bytes each time).
    frame.to_csv(tmp, index=False, compression={"method": "gzip", "mtime": 0} if path.suffix == ".gz" else None)
    os.replace(tmp, path)
    return path


def read_json(path: str | Path, what: str) -> Any:
    """Read a JSON file, or raise :class:`OptionError` naming the file and what it should be."""
    path = Path(path)
    if not path.is_file():
        raise OptionError(f"{what} {path} does not exist.")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise OptionError(f"{what} {path} is not valid JSON: {exc}.") from None
