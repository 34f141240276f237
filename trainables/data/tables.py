"""Multi-class tables with numeric and categorical columns, for the Wide&Deep and Deep&Cross pairs.

A table folder holds ``table.npz`` (read with ``allow_pickle=False``): ``numeric`` float (N, d),
``categorical`` int (N, k) codes in ``[0, vocabulary)``, ``labels`` int (N,), and the str arrays
``numeric_names``, ``categorical_names``, ``classes``, plus int ``vocabulary`` (k,). Splits are
drawn 70/15/15 per class with a fixed seed; numeric columns are standardised with training
statistics only; categorical codes are shifted by one so that index 0 stands for a value never
seen in training.

``spectune data --space tabular_widedeep --source S`` writes the folder from:

- ``covertype`` (default): scikit-learn's ``fetch_covtype`` (581,012 rows, 7 forest cover types;
  10 numeric columns, wilderness area and soil type as categoricals). It needs the network once;
  without it, place the UCI file ``covtype.data.gz`` in the folder and run the same command.
- ``shuttle`` / ``satellite``: the Statlog tables of Debian's ``r-cran-mlbench`` (58,000 x 9 with 7
  imbalanced classes; 6,435 x 36 with 6 classes), read with the ``rdata`` package, no R needed.
  Both are numeric only: each numeric column is also given as a categorical of its training
  decile (the bucketised columns of the Wide&Deep paper), so the wide part has something to cross.
- ``synthetic``: a generated table with Covertype's schema (for trying the pairs offline, and tests).
"""

from __future__ import annotations

import gzip
import shlex
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from trainables.data._base import DataError, DataModule, InputSpec, Split, Splits, fingerprint, register_data, \
    standardise, stratified_split

FILE = "table.npz"
FRACTIONS = (0.7, 0.15, 0.15)
SEED = 0
COVER_TYPES = ("Spruce/Fir", "Lodgepole Pine", "Ponderosa Pine", "Cottonwood/Willow", "Aspen", "Douglas-fir",
               "Krummholz")
COVER_NUMERIC = ("elevation", "aspect", "slope", "horizontal_distance_to_hydrology",
                 "vertical_distance_to_hydrology", "horizontal_distance_to_roadways", "hillshade_9am",
                 "hillshade_noon", "hillshade_3pm", "horizontal_distance_to_fire_points")
MLBENCH = Path("/usr/lib/R/site-library/mlbench/data")
SOURCES = ("covertype", "shuttle", "satellite", "synthetic")


def write_table(out: Path, numeric: np.ndarray, categorical: np.ndarray, labels: np.ndarray, *,
                numeric_names: Sequence[str], categorical_names: Sequence[str], vocabulary: Sequence[int],
                classes: Sequence[str]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{FILE}.tmp.npz"
    np.savez_compressed(tmp, numeric=numeric.astype(np.float32), categorical=categorical.astype(np.int64),
                        labels=labels.astype(np.int64), numeric_names=np.array(numeric_names, dtype=str),
                        categorical_names=np.array(categorical_names, dtype=str),
                        vocabulary=np.array(vocabulary, dtype=np.int64), classes=np.array(classes, dtype=str))
    tmp.replace(out / FILE)
    return out / FILE


def covertype_arrays(raw: np.ndarray) -> dict[str, Any]:
    """The 55 columns of covtype.data (10 numeric, 4 + 40 one-hot, label 1-7) as the table schema."""
    if raw.ndim != 2 or raw.shape[1] != 55:
        raise DataError(f"covtype data must have 55 columns (54 features + cover type); got shape {raw.shape}.")
    return dict(numeric=raw[:, :10], categorical=np.stack([raw[:, 10:14].argmax(1), raw[:, 14:54].argmax(1)], 1),
                labels=raw[:, 54].astype(np.int64) - 1, numeric_names=COVER_NUMERIC,
                categorical_names=("wilderness_area", "soil_type"), vocabulary=(4, 40), classes=COVER_TYPES)


def synthetic_covertype(n: int, seed: int) -> dict[str, Any]:
    """A table with Covertype's schema whose classes depend on numeric and categorical columns."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(COVER_TYPES), n)
    numeric = rng.normal(0, 1, (n, 10)) + 0.8 * np.eye(10)[labels % 10] * rng.uniform(0.5, 1.5, (n, 1))
    wilderness = np.where(rng.random(n) < 0.7, labels % 4, rng.integers(0, 4, n))
    soil = np.where(rng.random(n) < 0.5, (labels * 5 + rng.integers(0, 5, n)) % 40, rng.integers(0, 40, n))
    return dict(numeric=numeric * 100 + 1000, categorical=np.stack([wilderness, soil], 1), labels=labels,
                numeric_names=COVER_NUMERIC, categorical_names=("wilderness_area", "soil_type"),
                vocabulary=(4, 40), classes=COVER_TYPES)


def mlbench_arrays(name: str) -> dict[str, Any]:
    """Shuttle or Satellite from Debian's r-cran-mlbench, read with ``rdata``."""
    path = MLBENCH / f"{name.capitalize()}.rda"
    if not path.is_file():
        raise DataError(f"{path} is missing: install Debian's package (`apt-get install r-cran-mlbench`), or unpack "
                        "its data without R: `apt-get download r-cran-mlbench && dpkg -x r-cran-mlbench_*.deb /`.")
    try:
        import rdata
    except ImportError:
        raise DataError("reading mlbench tables needs the rdata package: `pip install rdata` "
                        "(or `pip install -e '.[tables]'`).") from None
    with warnings.catch_warnings():
        # R's .rda files in mlbench carry no encoding mark; their names are plain ASCII.
        warnings.filterwarnings("ignore", message="Unknown encoding")
        frame = next(iter(rdata.read_rda(str(path)).values()))
    target = "Class" if "Class" in frame.columns else "classes"
    codes = frame[target].astype("category")
    numeric = frame.drop(columns=[target]).to_numpy(dtype=np.float64)
    return dict(numeric=numeric, categorical=np.zeros((len(frame), 0), np.int64),
                labels=codes.cat.codes.to_numpy().astype(np.int64),
                numeric_names=[str(c) for c in frame.columns if c != target], categorical_names=(), vocabulary=(),
                classes=[str(c) for c in codes.cat.categories])


def deciles(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Each numeric column as the index of its training decile (0-9)."""
    edges = np.quantile(train, np.linspace(0.1, 0.9, 9), axis=0)
    return [np.stack([np.searchsorted(edges[:, j], a[:, j], side="right") for j in range(a.shape[1])], 1)
            for a in (train, *others)]


@register_data
class Table(DataModule):
    name = "tables"
    kind = "tabular"
    # A name for the kind, not one table: every --source writes here unless --out names the table (the
    # recorded Shuttle table lives in data/shuttle).
    default_dir = Path("data/tables")

    def load(self, folder: Path | None, classes: Sequence[str] | None = None) -> Splits:
        folder = self.folder(folder)
        path = folder / FILE
        if not path.is_file():
            raise DataError(f"{path} is missing. Write it with "
                            f"`spectune data --space tabular_widedeep --out {shlex.quote(str(folder))}` "
                            f"(--source one of {list(SOURCES)}; see trainables/data/tables.py).")
        if classes is not None:
            raise DataError(f"{path} names its own classes; drop --classes.")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as exc:  # noqa: BLE001 - numpy raises several types for a bad archive
            raise DataError(f"{path}: not a readable .npz table ({type(exc).__name__}: {exc}).") from None
        return self._splits(path, arrays)

    def _splits(self, path: Path, a: dict[str, np.ndarray]) -> Splits:
        needed = ("numeric", "categorical", "labels", "numeric_names", "categorical_names", "vocabulary", "classes")
        missing = [k for k in needed if k not in a]
        if missing:
            raise DataError(f"{path}: missing array(s) {missing}; see trainables/data/tables.py for the format.")
        numeric, categorical, labels = a["numeric"].astype(np.float64), a["categorical"], a["labels"]
        classes, vocab = tuple(str(c) for c in a["classes"]), [int(v) for v in a["vocabulary"]]
        n = labels.shape[0]
        if numeric.ndim != 2 or categorical.ndim != 2 or numeric.shape[0] != n or categorical.shape[0] != n:
            raise DataError(f"{path}: numeric {numeric.shape}, categorical {categorical.shape} and labels "
                            f"{labels.shape} must be (N, d), (N, k) and (N,) with one N.")
        if categorical.shape[1] != len(vocab) or len(a["categorical_names"]) != len(vocab) \
                or len(a["numeric_names"]) != numeric.shape[1]:
            raise DataError(f"{path}: column names and vocabulary must match the arrays' column counts.")
        if categorical.size and (categorical.min() < 0 or (categorical >= np.array(vocab)).any()):
            raise DataError(f"{path}: categorical codes must lie in [0, vocabulary) per column {vocab}.")
        if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
            raise DataError(f"{path}: labels must lie in [0, {len(classes) - 1}] for classes {list(classes)}.")
        if not np.isfinite(numeric).all():
            raise DataError(f"{path}: numeric columns contain NaN or inf; impute or drop those rows first.")
        parts = stratified_split(labels, FRACTIONS, SEED)
        nums = standardise(*(numeric[p] for p in parts))
        cats = [categorical[p] + 1 for p in parts]
        names, vocab = [str(c) for c in a["categorical_names"]], [v + 1 for v in vocab]
        if not vocab:
            cats = [np.asarray(c) + 1 for c in deciles(*(numeric[p] for p in parts))]
            names, vocab = [f"{c}_decile" for c in a["numeric_names"]], [11] * numeric.shape[1]
        seen = [np.unique(cats[0][:, j]) for j in range(len(vocab))]
        # A code never seen in training has no trained embedding: map it to 0, "unseen".
        cats = [np.stack([np.where(np.isin(c[:, j], seen[j]), c[:, j], 0) for j in range(len(vocab))], 1)
                if len(vocab) else c for c in cats]
        splits = [Split({"numeric": x, "categorical": c.astype(np.int64)}, labels[p])
                  for x, c, p in zip(nums, cats, parts)]
        spec = InputSpec(kind="tabular", shapes={"numeric": (numeric.shape[1],), "categorical": (len(vocab),)},
                         classes=classes, numeric=tuple(str(c) for c in a["numeric_names"]),
                         categorical=dict(zip(names, vocab)))
        # The arrays, not the file's bytes: the .npz zip stamps its write time, and the same table
        # written again (on another machine, say) must keep its fingerprint.
        contents = [f"{k}|{a[k].dtype.str}|{a[k].shape}".encode() + np.ascontiguousarray(a[k]).tobytes()
                    for k in sorted(a)]
        return Splits(*splits, spec=spec, fingerprint=fingerprint(*contents, f"{FRACTIONS}|{SEED}"))

    def prepare(self, out: Path | None, seed: int, force: bool, source: str = "covertype",
                rows: int = 20000) -> str:
        out = self.folder(out)
        if (out / FILE).exists() and not force:
            raise DataError(f"{out / FILE} exists; pass --force to overwrite, or choose another --out.")
        if source == "covertype":
            arrays = covertype_arrays(self._covertype(out))
        elif source in ("shuttle", "satellite"):
            arrays = mlbench_arrays(source)
        elif source == "synthetic":
            arrays = synthetic_covertype(rows, seed)
        else:
            raise DataError(f"--source must be one of {list(SOURCES)}; got {source!r}.")
        path = write_table(out, **arrays)
        return (f"wrote {path}: {len(arrays['labels'])} rows, {arrays['numeric'].shape[1]} numeric and "
                f"{len(arrays['vocabulary'])} categorical columns, {len(arrays['classes'])} classes ({source})")

    @staticmethod
    def _covertype(out: Path) -> np.ndarray:
        local = out / "covtype.data.gz"
        if local.is_file():
            with gzip.open(local, "rt") as handle:
                return np.loadtxt(handle, delimiter=",", dtype=np.float64)
        from sklearn.datasets import fetch_covtype

        try:
            bunch = fetch_covtype(data_home=str(out / "sklearn"), download_if_missing=True)
        except Exception as exc:  # noqa: BLE001 - urllib, socket and OS errors alike mean "not fetched"
            raise DataError(f"Covertype could not be fetched ({type(exc).__name__}: {exc}). Place the UCI file "
                            f"covtype.data.gz in {out} and run the same command again, or use --source "
                            "shuttle / satellite (Debian r-cran-mlbench) or synthetic.") from None
        return np.column_stack([bunch.data, bunch.target])
