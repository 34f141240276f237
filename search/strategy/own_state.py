"""What ``--resume`` loads as code: Tune's experiment state under ``ray_results/<name>/`` (``tuner.pkl``,
the searcher's pickle, trial states whose JSON holds cloudpickled objects) and the scheduler's rungs in
``ray_results/<name>.asha.pkl`` are pickles, and loading a pickle runs whatever code it names.

They are loaded only when the current user owns them and no other user may write them: a file planted in
a shared folder is refused in one line before anything starts. A folder received from elsewhere (copied,
unpacked) is owned by whoever copied it, so this cannot tell it apart from one's own: resume only searches
run on one's own machine (docs/resume.md, "What a received folder may be trusted with").
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path

from results.errors import OptionError

HOW = ("pickles run code when loaded, so --resume loads only a search of your own (docs/resume.md, "
       "\"What a received folder may be trusted with\")")


def check_own_file(path: str | Path) -> None:
    """Refuse ``path`` (followed through links) unless the current user owns it and no other user may write
    it: not world-writable, and group-writable only for the user's own private group (a umask of 002)."""
    path = Path(path)
    info = path.stat()
    me = os.geteuid()
    if info.st_uid != me:
        raise OptionError(f"{path} belongs to {_user(info.st_uid)}, not to you ({_user(me)}); {HOW}.")
    if info.st_mode & stat.S_IWOTH or (info.st_mode & stat.S_IWGRP and not _private_group(info.st_gid, me)):
        raise OptionError(f"{path} may be written by other users (mode {stat.filemode(info.st_mode)}); {HOW}. "
                          f"If it is yours, chmod go-w it first.")


def check_resumable(storage: Path, name: str) -> None:
    """Every file ``--resume`` of search ``name`` loads as, or with, a pickle: the experiment folder, the
    files at its top, and the scheduler's state (each where it exists)."""
    experiment = storage / name
    paths = [experiment, *sorted(p for p in experiment.iterdir() if p.is_file())] if experiment.is_dir() else []
    paths += [p for p in (storage / f"{name}.asha.pkl",) if p.exists()]
    for path in paths:
        check_own_file(path)


def _private_group(gid: int, uid: int) -> bool:
    """Whether ``gid`` is the user's private group: named after the user, with no other member."""
    try:
        group, user = grp.getgrgid(gid), pwd.getpwuid(uid)
    except KeyError:
        return False
    return group.gr_gid == user.pw_gid and group.gr_name == user.pw_name and set(group.gr_mem) <= {user.pw_name}


def _user(uid: int) -> str:
    try:
        return f"user {pwd.getpwuid(uid).pw_name}"
    except KeyError:
        return f"uid {uid}"
