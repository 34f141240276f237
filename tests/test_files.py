"""Result files (results/files.py): a file is replaced whole through a temporary file of its own, so that
two writers of one file never share a temporary name; the failure guard's stop record is written the same
way and read back with one line when something else damaged it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from results import files
from results.files import write_csv, write_json
from results.errors import OptionError

WRITERS = {"json": (write_json, {"trial": "first"}, {"trial": "second"}),
           "csv": (write_csv, pd.DataFrame({"trial": ["first"]}), pd.DataFrame({"trial": ["second"]}))}


@pytest.mark.parametrize("kind", WRITERS)
def test_a_writer_that_starts_while_another_is_renaming_does_not_take_its_temporary_file(tmp_path, monkeypatch,
                                                                                          kind):
    """Two writers of best.json: the second writes and renames while the first is about to rename.
    Before: both wrote .best.json.tmp, the second renamed it away and the first failed (FileNotFoundError)."""
    write, first, second = WRITERS[kind]
    path, rename, interleaved = tmp_path / f"best.{kind}", os.replace, []

    def replace_after_the_other_writer(src, dst):
        if not interleaved:
            interleaved.append(src)
            write(path, second)          # the other writer runs whole, here
        rename(src, dst)

    monkeypatch.setattr(files.os, "replace", replace_after_the_other_writer)
    write(path, first)
    assert interleaved
    text = path.read_text()
    assert "first" in text and "second" not in text      # the last rename wins, whole
    assert [p.name for p in tmp_path.iterdir()] == [path.name]      # no temporary file left behind


def test_a_failed_write_leaves_neither_a_half_file_nor_its_temporary_file(tmp_path, monkeypatch):
    path = write_json(tmp_path / "best.json", {"kept": True})

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_json(path, {"kept": False})
    assert json.loads(path.read_text()) == {"kept": True} and [p.name for p in tmp_path.iterdir()] == ["best.json"]


# --- the failure guard's record of a stop --------------------------------------------------------------------

def test_the_guards_stop_record_reaches_its_name_only_whole(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from search.running.failures import CONFIGURATION, STOPPED_FILE, FailureGuard, stopped_search

    renamed: list[tuple[Path, Path]] = []
    rename = os.replace
    monkeypatch.setattr(files.os, "replace", lambda src, dst: (renamed.append((Path(src), Path(dst))),
                                                               rename(src, dst)))
    guard = FailureGuard(1, tmp_path)
    guard.on_trial_error(0, [], SimpleNamespace(trial_id="t0", spectune_failure=CONFIGURATION,
                                                spectune_error="ValueError: x"))
    # Before: written in place, so a reader (or a kill) could meet half of it.
    assert [dst for _, dst in renamed] == [tmp_path / STOPPED_FILE]
    assert renamed[0][0].parent == tmp_path and renamed[0][0] != tmp_path / STOPPED_FILE
    assert stopped_search(tmp_path) == {"failure": CONFIGURATION, "failed": 1, "infrastructure": 0,
                                        "last_error": "ValueError: x", "cut": []}


def test_a_damaged_stop_record_is_one_line_naming_it(tmp_path):
    from search.running.failures import STOPPED_FILE, stopped_search

    (tmp_path / STOPPED_FILE).write_text('{"failed": 3, "last_err')
    with pytest.raises(OptionError, match=rf"^{tmp_path / STOPPED_FILE}: not valid JSON \(.*\); .*Delete it") as err:
        stopped_search(tmp_path)
    assert "\n" not in str(err.value)
