"""Recorded curves read back (results/curves.py, read_curves): a damaged curves.csv.gz is refused in one line
that names the file and the fix, before any replay, instead of replaying wrong times or values or ending in a
traceback."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from results.curves import TABLE, read_curves, write_curves
from results.errors import OptionError
from spaces import get_space

SPACE = get_space("wine_mlp")
EPOCHS = 3


def _record(root: Path, changes: dict[tuple[str, int], object] | None = None) -> Path:
    """Two configs x one seed x 3 epochs, written as `spectune record` writes them; ``changes`` maps
    (column, row) to a value put in before writing."""
    table = pd.DataFrame([{"config_id": c, "seed": 0, "epoch": e, "val_macro_f1": 0.5 + 0.1 * e - 0.2 * c,
                           "val_loss": 1.0 / e, "epoch_time_s": 1.0 + c, "outcome": "completed"}
                          for c in (0, 1) for e in range(1, EPOCHS + 1)])
    for (column, row), value in (changes or {}).items():
        table[column] = table[column].astype(object)
        table.loc[row, column] = value
        table[column] = table[column].infer_objects()
    folder = root / "wine_mlp" / "curves" / "c"
    write_curves(folder, table, {c: {"searched": SPACE.start[0], "resolved": {}} for c in (0, 1)},
                 {"space": "wine_mlp", "metric": "val_macro_f1", "mode": "max", "max_epochs": EPOCHS, "seeds": [0],
                  "data_options": {"fingerprint": "f1"}}, SPACE.to_json())
    return folder / TABLE


def _refused(root: Path) -> str:
    with pytest.raises(OptionError) as caught:
        read_curves(SPACE.to_json(), "c", root)
    message = str(caught.value)
    assert "\n" not in message and str(root / "wine_mlp" / "curves" / "c") in message
    return message


def test_sound_curves_are_read(tmp_path):
    _record(tmp_path)
    curves = read_curves(SPACE.to_json(), "c", tmp_path)
    assert len(curves.runs()) == 2 and curves.max_epochs == EPOCHS


@pytest.mark.parametrize("time", [-4.0, math.nan, math.inf])
def test_an_epoch_time_that_is_negative_or_not_finite_is_refused(tmp_path, time):
    # Before: -4 s replayed with the simulated clock running backwards, and changed which trial was picked.
    _record(tmp_path, {("epoch_time_s", 4): time})
    message = _refused(tmp_path)
    assert f"epoch_time_s holds {time!r} (config 1, seed 0, epoch 2)" in message
    assert "an epoch's wall time is a finite number of seconds >= 0" in message and "record them again" in message


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_metric_that_is_not_finite_in_a_run_that_did_not_fail_is_refused(tmp_path, value):
    _record(tmp_path, {("val_macro_f1", 1): value})
    message = _refused(tmp_path)
    assert f"val_macro_f1 holds {value!r} (config 0, seed 0, epoch 2) in a run that did not fail" in message


def test_another_metric_column_that_is_nan_is_refused_too(tmp_path):
    _record(tmp_path, {("val_loss", 0): math.nan})
    assert "val_loss holds nan (config 0, seed 0, epoch 1)" in _refused(tmp_path)


def test_a_failed_run_may_hold_no_values(tmp_path):
    # What the recorder writes for a run that failed before its first epoch: one empty row.
    path = _record(tmp_path)
    table = pd.read_csv(path)
    table = pd.concat([table[table["config_id"] == 0],
                       pd.DataFrame([{"config_id": 1, "seed": 0, "epoch": 0, "outcome": "failed"}])])
    table.to_csv(path, index=False, compression="gzip")
    curves = read_curves(SPACE.to_json(), "c", tmp_path)
    assert list(curves.runs()) == [(0, 0)] and len(curves.runs(failed=True)) == 2


@pytest.mark.parametrize("column", ["epoch_time_s", "val_macro_f1", "outcome", "epoch"])
def test_a_missing_column_is_refused_naming_it(tmp_path, column):
    path = _record(tmp_path)
    pd.read_csv(path).drop(columns=[column]).to_csv(path, index=False, compression="gzip")
    message = _refused(tmp_path)
    assert f"{TABLE} lacks the column(s) ['{column}']" in message and "record them again" in message


def test_a_text_cell_in_a_number_column_is_refused(tmp_path):
    _record(tmp_path, {("epoch_time_s", 2): "1.5s"})
    assert "epoch_time_s holds text ('1.5s', config 0, seed 0, epoch 3)" in _refused(tmp_path)


def _damage_truncated(raw: bytes) -> bytes:
    return raw[:len(raw) // 2]


def _damage_checksum(raw: bytes) -> bytes:
    # The gzip trailer ends with the CRC-32 of the data and its size: flip a byte of the CRC.
    return raw[:-6] + bytes([raw[-6] ^ 0xFF]) + raw[-5:]


def _damage_not_gzip(raw: bytes) -> bytes:
    return b"config_id,seed,epoch\n0,0,1\n"


@pytest.mark.parametrize("damage, why", [(_damage_truncated, "EOFError: Compressed file ended"),
                                         (_damage_checksum, "BadGzipFile: CRC check failed"),
                                         (_damage_not_gzip, "BadGzipFile: Not a gzipped file"),
                                         (lambda raw: b"", "is empty")])
def test_a_damaged_gzip_is_one_line(tmp_path, damage, why):
    path = _record(tmp_path)
    path.write_bytes(damage(path.read_bytes()))
    message = _refused(tmp_path)
    assert message.startswith(f"curves {path.parent}: {TABLE} cannot be read") and why in message
    assert message.endswith("copy the folder again or record them again.")


def test_an_empty_config_id_is_refused(tmp_path):
    path = _record(tmp_path)
    table = pd.read_csv(path)
    table["config_id"] = table["config_id"].astype(object)
    table.loc[3, "config_id"] = None
    table.to_csv(path, index=False, compression="gzip")
    assert "config_id is empty in row 5 of the file" in _refused(tmp_path)


def test_every_committed_recording_passes_the_checks():
    root = Path(__file__).resolve().parents[1] / "results"
    found = sorted(root.glob(f"*/curves/*/{TABLE}"))
    assert found
    for path in found:
        curves = read_curves(get_space(path.parents[2].name).to_json(), path.parent.name, root)
        assert len(curves.table) > 0


def test_a_table_that_inflates_past_its_rows_is_refused_while_it_is_read(tmp_path):
    """A gzip bomb: a small curves.csv.gz that inflates to far more than its configs x seeds x epochs rows can
    take. It is refused once the bound is passed: the bomb here is cut short after 40 MiB, and a reader that
    read on to its end would fail there instead (before: all of it read, then EOFError; a real bomb of 400 MiB
    cost 800 MiB)."""
    import gzip
    import zlib

    path = _record(tmp_path)
    head = gzip.decompress(path.read_bytes())
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)   # 31: a gzip stream
    junk = b"0,0,1,0.5,1.0,1.0,completed\n" * (1 << 16)
    body = packer.compress(head) + b"".join(packer.compress(junk) for _ in range(24)) + packer.flush()
    path.write_bytes(body[:len(body) * 9 // 10])
    assert len(path.read_bytes()) < 1 << 20
    message = _refused(tmp_path)
    assert f"{TABLE} inflates to more than 1.0 MiB, more than 6 rows (its configs x seeds x epochs) can take" in message
    assert len(message) < 300


def test_a_long_text_cell_is_shown_cut_short(tmp_path):
    # Before: the whole cell went into the message (72,968 characters from a crafted table).
    _record(tmp_path, {("epoch_time_s", 2): "9s" * 5000})
    message = _refused(tmp_path)
    assert "epoch_time_s holds text ('9s9s9s" in message and len(message) < 300
