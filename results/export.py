"""A search's results under ``results/<space>/<name>/``: ``trials.csv``, ``best.json``, the best checkpoint.

``best`` is the trial with the best value of the space's metric at any epoch (its best-epoch
checkpoint is what was kept), not the last epoch's value that Ray ranks by default.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import uuid
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from results.files import read_json, write_csv, write_json
from results.errors import OptionError

RESULTS_DIR = Path("results")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_name(name: str, flag: str = "--name") -> str:
    if not _NAME.fullmatch(name):
        raise OptionError(f"{flag} must be letters, digits, '.', '_' or '-' (at most 100, not starting "
                         f"with a symbol); got {name!r}.")
    return name


def trial_outcome(last_result: dict[str, Any] | None, errored: bool) -> str:
    """``failed``, ``completed`` (ran its budget or its own early stopping) or ``stopped early``
    (by the scheduler). The recipe flags its last epoch with ``finished``."""
    if errored:
        return "failed"
    if last_result and last_result.get("finished"):
        return "completed"
    return "stopped early"


def results_dir(space: str, name: str, root: Path = RESULTS_DIR) -> Path:
    """``root/space/name``; a space or name that would lead outside ``root`` is refused."""
    return root / check_name(space, "--space") / check_name(name)


def check_results_dir(out_dir: Path, resume: bool) -> None:
    """Refuse, before anything runs, a results folder that cannot be written (a link to nothing or a file
    in its way, a folder not writable) or, for a new run, one already there: its files would be
    replaced. A resumed run writes into its own."""
    where = next(p for p in (out_dir, *out_dir.parents) if os.path.lexists(p))
    if not where.is_dir():
        what = f"a link to {os.readlink(where)}, which does not exist" if where.is_symlink() and not where.exists() \
            else "a file"
        raise OptionError(f"results go to {out_dir}, but {where} is {what}, not a folder; remove it or pass "
                          "--name NEW (nothing was run).")
    if where == out_dir and not resume:
        raise OptionError(f"{out_dir} already holds earlier results; pass --name NEW, or move that folder away "
                          "(nothing was run or overwritten).")
    if not os.access(where, os.W_OK | os.X_OK):
        raise OptionError(f"results go to {out_dir}, but {where} is not writable; fix its permissions or pass "
                          "--name NEW (nothing was run).")


@contextmanager
def results_folder(out_dir: Path, resume: bool) -> Iterator[Path]:
    """The run's results folder for the block: a new run makes its own (an exclusive ``mkdir``: of two
    runs that would share one, the second is refused), a resumed one may find its own. A folder made
    here that is still empty when the block fails (interrupted, every trial failed) is removed, so that
    it never refuses the next run of its name."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        out_dir.mkdir()
        made = True
    except FileExistsError:
        if not (resume and out_dir.is_dir()):
            raise OptionError(f"{out_dir} appeared while this run was being prepared (another run of this "
                              "name?); pass --name NEW (nothing was overwritten).") from None
        made = False
    try:
        yield out_dir
    except BaseException:
        if made:
            with suppress(OSError):     # not empty: what was written stays
                out_dir.rmdir()
        raise


def write_results(out_dir: Path, frame: pd.DataFrame, best: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``trials.csv`` and ``best.json`` (each atomically)."""
    return write_csv(out_dir / "trials.csv", frame), write_json(out_dir / "best.json", best)


def latest_search(space: str, root: Path = RESULTS_DIR) -> str:
    """The most recently written search of ``space``."""
    folder = root / check_name(space, "--space")
    # A folder whose name no --name could give is nobody's search (nor a safe path to pass on).
    found = sorted((p.stat().st_mtime, p.parent.name) for p in folder.glob("*/best.json")
                   if _NAME.fullmatch(p.parent.name))
    if not found:
        raise OptionError(f"no finished search of space {space!r} under {folder}; run "
                         f"`spectune search --space {shlex.quote(space)}` first (or `--resume` an interrupted one).")
    return found[-1][1]


def export_best(space: str, name: str | None, out: Path, root: Path = RESULTS_DIR) -> dict[str, Any]:
    """Copy a finished search's ``best.json`` to ``out``; ``spectune train --config out`` retrains it."""
    name = check_name(name) if name else latest_search(space, root)
    src = results_dir(space, name, root) / "best.json"
    best = read_json(src, "best config") if src.exists() else None
    if best is None:
        raise OptionError(f"search {name!r} of space {space!r} has no {src}; was it interrupted? "
                         f"Continue it with `{shlex.join(['spectune', 'search', '--space', space, '--name', name])} "
                         "--resume`.")
    if Path(out).resolve() != src.resolve():
        write_json(out, best)
    return best


def copy_checkpoint(checkpoint_dir: str | None, out_dir: Path) -> Path | None:
    """Keep the best checkpoint next to ``best.json``, so results survive cleaning Ray's folder."""
    if not checkpoint_dir or not Path(checkpoint_dir).is_dir():
        return None
    dest = out_dir / "checkpoint"
    # A name of this call's own: two exports of one search never copy into, or rename away, each other's.
    tmp = out_dir / f".checkpoint.{uuid.uuid4().hex}.tmp"
    # The training state (state.pt) is for resuming the trial; the results keep the model only.
    shutil.copytree(checkpoint_dir, tmp, ignore=shutil.ignore_patterns("state.pt"))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def read_confusion(checkpoint_dir: Path) -> dict[str, Any] | None:
    path = checkpoint_dir / "val_confusion.json"
    return json.loads(path.read_text()) if path.exists() else None


# A regressor's checkpoint keeps its best epoch's validation predictions (numbers, not a pickle).
PREDICTIONS_FILE = "val_predictions.npz"


def write_predictions(folder: Path, epoch: int, target: Any, prediction: Any, name: str) -> Path:
    """The best epoch's validation targets and predictions, in the target's unit, beside a checkpoint."""
    import numpy as np

    path = Path(folder) / PREDICTIONS_FILE
    np.savez(path, epoch=np.int64(epoch), target=np.asarray(target), prediction=np.asarray(prediction),
             name=np.array(name, dtype=str))
    return path


def read_predictions(checkpoint_dir: Path) -> dict[str, Any] | None:
    """What :func:`write_predictions` wrote, or ``None`` (a classifier's checkpoint)."""
    import numpy as np

    path = Path(checkpoint_dir) / PREDICTIONS_FILE
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        return {"epoch": int(z["epoch"]), "target": z["target"], "prediction": z["prediction"], "name": str(z["name"])}
