"""What a replayed trial is served with: a recorded run, or a run modelled from the recorded table.

A replay asks the searcher for a config, then needs that config's learning curve. Three servers:

- :class:`ExactRandom`: random search on a table is exact. The recorded configs are random draws from
  the space already (the space's starting points first), so a replayed random search takes them in a
  random order, **without replacement**. Nothing is approximated.
- :class:`Nearest`: the recorded config nearest the proposal (the old serving, kept for comparison).
  It answers TPE's proposals near the incumbent with configs from elsewhere, so it misjudges
  model-based samplers; :func:`check_model` measures by how much.
- :class:`Modelled`: a model of the curves, fitted on the table, serves configs the table does not
  hold (as Syne Tune and YAHPO serve unrecorded configs from surrogates). The served curve is the
  model's mean curve for the config plus the seed residual of one recorded run of the nearest
  recorded config (that run minus its config's mean over seeds), so that seed noise, its size and
  its shape over epochs come from the recording, not from an assumption. A proposal that *is* a
  recorded config is served its recorded run.

A replayed search sees **one recorded seed** (``seen``) in every trial, as a live search gives one
seed to all its trials: a recording's seeds are shared by its configs (a fixed architecture starts
from the same weights and batch order under the same seed), so a seed that suits every config
shifts them all, and a search served a different seed per trial would pick the trials that happened
to meet the luckier seed, then be judged on the other (measured on galspecnet's table: its seed
2001 was below its seed 2000 for each of its six best configs, by 0.05 macro-F1 on average).
Every served run carries what it is worth, judged as a live pick is after the search: the mean best
value over the seeds **the search did not see** (``quality_unseen``), beside the mean over every seed
(``quality``). For a modelled config the "seeds" are the mean curve plus each residual of the
nearest recorded config.

The model is chosen by :func:`check_model`: each candidate is fitted on all recorded configs but
one fold and scored on the held-out configs' true quality (mean over seeds of the best value); its
error is set against one seed noise (the pooled standard deviation over seeds of a config's best
value).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from results.curves import Curves

MODELS = ("forest", "gp", "knn")


@dataclass(frozen=True)
class ServedRun:
    """One served run: ``values`` per epoch of the curves' metric, ``times`` each epoch's seconds;
    ``config_id`` is the recorded config served (``None`` for a modelled one) or, for a modelled one,
    the nearest recorded config whose residual it carries."""

    config_id: int
    modelled: bool
    seed: int
    distance: float
    values: np.ndarray
    times: np.ndarray
    failed: bool
    warmup: int
    quality: float
    quality_unseen: float


class Server(Protocol):
    def serve(self, config: dict[str, Any]) -> ServedRun: ...


def _best(values: np.ndarray, sign: float) -> float:
    return float(sign * np.max(sign * values))


class Table:
    """The recording read once for serving: runs by config and seed, each config's coordinates in the
    space (log ranges on a log scale, categories one-hot, an inactive conditional key flagged)."""

    def __init__(self, curves: Curves, params: dict[str, Any]) -> None:
        self.curves, self.params = curves, params
        self.sign = 1.0 if curves.mode == "max" else -1.0
        self.runs = curves.runs(failed=True)
        self.ids = sorted(curves.configs)
        self.seeds = {c: sorted(s for (cc, s) in self.runs if cc == c) for c in self.ids}
        self.recording_seeds = sorted({s for _, s in self.runs})
        self.failed_runs = frozenset(k for k, run in self.runs.items() if (run["outcome"] == "failed").any())
        self.failed = {c for c, _ in self.failed_runs}
        self.points = np.array([self.encode(curves.configs[i]["searched"]) for i in self.ids])
        metric = curves.metric
        self.values = {k: run[metric].to_numpy(dtype=float) for k, run in self.runs.items()}
        self.times = {k: run["epoch_time_s"].to_numpy(dtype=float) for k, run in self.runs.items()}
        # Read by every served run: the best value of each run that did not fail, and the metric's range.
        self.best = {k: _best(v, self.sign) for k, v in self.values.items() if k not in self.failed_runs}
        self.low, self.high = float(np.nanmin(curves.table[metric])), float(np.nanmax(curves.table[metric]))
        self.warmup = {c: int(curves.configs[c]["resolved"].get("warmup_epochs", 0)) for c in self.ids}
        # Configs every seed of which ran its budget: the ones a model can learn a mean curve from.
        self.complete = [c for c in self.ids if c not in self.failed
                         and all(len(self.values[c, s]) == curves.max_epochs for s in self.seeds[c])]
        self.mean_curve = {c: np.mean([self.values[c, s] for s in self.seeds[c]], axis=0) for c in self.complete}

    def encode(self, config: dict[str, Any]) -> list[float]:
        """Coordinates in [0, 1]: one per numeric key (and an is-active flag for a conditional one), one
        per choice of a categorical key."""
        return [u for key, domain in self.params.items() for u in domain.unit(config.get(key))]

    def nearest(self, config: dict[str, Any], among: list[int] | None = None) -> tuple[int, float]:
        """The recorded config nearest ``config`` (Euclidean over the coordinates, divided by the root of
        the number of keys: 0 the same config, about 1 a config differing in every key) and its distance."""
        here = np.array(self.encode(config))
        ids = self.ids if among is None else among
        rows = self.points if among is None else self.points[[self.ids.index(i) for i in among]]
        dist = np.sqrt(((rows - here) ** 2).sum(axis=1) / max(1, len(self.params)))
        best = int(np.argmin(dist))
        return ids[best], float(dist[best])

    def seed_for(self, config_id: int, seen: int) -> int:
        """The search's seed ``seen`` where ``config_id`` was recorded with it, else the config's first seed."""
        return seen if seen in self.seeds[config_id] else self.seeds[config_id][0]

    def recorded(self, config_id: int, distance: float, seen: int) -> ServedRun:
        """The recorded run of ``config_id`` with the search's seed (:meth:`seed_for`)."""
        seed = self.seed_for(config_id, seen)
        return ServedRun(config_id, False, seed, distance, self.values[config_id, seed], self.times[config_id, seed],
                         (config_id, seed) in self.failed_runs, self.warmup[config_id],
                         *self._qualities(self._bests(config_id), seed))

    def _bests(self, config_id: int) -> dict[int, float]:
        """Per seed that did not fail, the best value of ``config_id``'s run."""
        return {s: self.best[config_id, s] for s in self.seeds[config_id] if (config_id, s) in self.best}

    @staticmethod
    def _qualities(bests: dict[int, float], seen: int) -> tuple[float, float]:
        if not bests:
            return math.nan, math.nan
        unseen = [v for s, v in bests.items() if s != seen] or list(bests.values())
        return float(np.mean(list(bests.values()))), float(np.mean(unseen))

    def quality(self, config_id: int) -> float:
        """A recorded config's true quality: the mean over its seeds of the best value in the budget."""
        bests = list(self._bests(config_id).values())
        return float(np.mean(bests)) if bests else math.nan

    def seed_noise(self) -> float:
        """One seed noise: the pooled standard deviation over seeds of a config's best value."""
        variances = [np.var(list(self._bests(c).values()), ddof=1)
                     for c in self.complete if len(self.seeds[c]) > 1]
        return float(math.sqrt(np.mean(variances))) if variances else math.nan


class ExactRandom:
    """Random search on the table: the space's starting points first (a live search runs them first,
    and a recording records them first), then the other recorded configs in a random order, without
    replacement. The searcher's own proposal is not used (a random sampler learns nothing from it)."""

    def __init__(self, table: Table, starts: int, rng: np.random.Generator, seen: int) -> None:
        first = table.ids[:starts]
        rest = [int(i) for i in rng.permutation(table.ids[starts:])]
        self.table, self.order, self.seen = table, first + rest, seen

    def serve(self, config: dict[str, Any]) -> ServedRun:
        if not self.order:
            raise ValueError(f"curves {self.table.curves.name}: the search asked for more trials than the "
                             f"{len(self.table.ids)} recorded configs; record more configs than trials.")
        return self.table.recorded(self.order.pop(0), 0.0, self.seen)


class Nearest:
    """The recorded config nearest the proposal."""

    def __init__(self, table: Table, seen: int) -> None:
        self.table, self.seen = table, seen

    def serve(self, config: dict[str, Any]) -> ServedRun:
        config_id, distance = self.table.nearest(config)
        return self.table.recorded(config_id, distance, self.seen)


class CurveModel:
    """A regression of the mean curve (every epoch's value) on a config's coordinates, fitted on the
    recorded configs ``ids`` of ``table``. ``anchored``: a config's mean curve is its nearest recorded
    config's plus the model's difference between the two, so that the model's pull towards the
    average (which flatters bad configs and understates good ones) cancels near recorded configs."""

    def __init__(self, kind: str, table: Table, ids: list[int], seed: int = 0, anchored: bool = False) -> None:
        if kind not in MODELS:
            raise ValueError(f"model must be one of {MODELS}; got {kind!r}.")
        x = table.points[[table.ids.index(i) for i in ids]]
        y = np.array([table.mean_curve[i] for i in ids])
        self.kind, self.anchored = kind, anchored
        self.model = _regressor(kind, x.shape[1], seed).fit(x, y)

    @property
    def name(self) -> str:
        return self.kind + (" anchored" if self.anchored else "")

    def anchor(self) -> CurveModel:
        """This fitted regression, anchored: the fit does not depend on anchoring, so it is not fitted again."""
        twin = copy.copy(self)
        twin.anchored = True
        return twin

    def predict(self, points: np.ndarray) -> np.ndarray:
        points = np.atleast_2d(points)
        if self.kind == "forest":
            # The mean of the trees' predictions, as ExtraTreesRegressor.predict computes it, without its
            # per-call validation and joblib dispatch: a replay asks for one config at a time, and that
            # overhead was 95 % of a replayed 64-trial search.
            x = np.ascontiguousarray(points, dtype=np.float32)
            return np.mean([tree.tree_.predict(x)[:, :, 0] for tree in self.model.estimators_], axis=0)
        return np.atleast_2d(self.model.predict(points))

    def mean(self, point: np.ndarray, table: Table, near: int) -> np.ndarray:
        """The mean curve served for the config at ``point``, whose nearest recorded config is ``near``."""
        if not self.anchored or near not in table.mean_curve:
            return self.predict(point)[0]
        both = self.predict(np.vstack([point, table.points[table.ids.index(near)]]))
        return table.mean_curve[near] + both[0] - both[1]


def _regressor(kind: str, dims: int, seed: int) -> Any:
    from sklearn.ensemble import ExtraTreesRegressor
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
    from sklearn.neighbors import KNeighborsRegressor

    if kind == "forest":
        return ExtraTreesRegressor(n_estimators=200, min_samples_leaf=2, max_features=0.6, random_state=seed)
    if kind == "knn":
        return KNeighborsRegressor(n_neighbors=5, weights="distance")
    # One Matern kernel per dimension with a noise term: length scales learn which keys matter.
    kernel = ConstantKernel(0.1, (1e-4, 10.0)) * Matern(np.ones(dims), (1e-2, 1e2), nu=2.5) \
        + WhiteKernel(1e-3, (1e-6, 1e-1))
    return GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=2, random_state=seed)


class Modelled:
    """Unrecorded configs from a :class:`CurveModel`, recorded ones from the table (see the module
    docstring). ``exact`` is how close (in :meth:`Table.nearest`'s distance) a proposal must be to a
    recorded config to be served that config's runs."""

    def __init__(self, table: Table, model: CurveModel, seen: int, exact: float = 1e-9) -> None:
        self.table, self.model, self.seen, self.exact = table, model, seen, exact

    def serve(self, config: dict[str, Any]) -> ServedRun:
        t = self.table
        config_id, distance = t.nearest(config)
        if distance <= self.exact or config_id in t.failed:
            # A proposal near a config that failed when recorded (a diverging rate, say) fails as it did.
            return t.recorded(config_id, distance, self.seen)
        mean = self.model.mean(np.array(t.encode(config)), t, config_id)
        curves = modelled_curves(t, config_id, mean)
        seed = t.seed_for(config_id, self.seen)
        bests = {s: _best(v, t.sign) for s, v in curves.items()}
        return ServedRun(config_id, True, seed, distance, curves[seed], t.times[config_id, seed], False,
                         int(config.get("warmup_epochs", t.warmup[config_id])), *Table._qualities(bests, seed))


def modelled_curves(table: Table, near: int, mean: np.ndarray) -> dict[int, np.ndarray]:
    """Per seed of the recorded config ``near``: ``mean`` plus that seed's residual, kept inside the
    values the table holds (a macro-F1 stays within [0, 1])."""
    return {s: np.clip(mean + table.values[near, s] - table.mean_curve[near], table.low, table.high)
            for s in table.seeds[near]}


@dataclass(frozen=True)
class ModelCheck:
    """Held-out error of each candidate model of the curves: the root mean squared difference between a
    held-out config's predicted and recorded true quality, against one seed noise; ``nearest`` is the
    same error for serving the nearest other recorded config (what nearest-config serving does)."""

    errors: dict[str, float]
    nearest: float
    seed_noise: float
    configs: int
    folds: int
    # Mean (predicted - recorded) over the best quarter of configs by their recorded quality, in the metric's
    # direction: negative, a model that understates good configs. Selecting by the recorded (noisy) value
    # itself pulls it below zero by part of a seed noise.
    top_bias: dict[str, float]
    nearest_top_bias: float
    # The chosen model's error on smaller tables, where the lab measured it (:mod:`search.bench.size_curve`):
    # anything with ``describe()``.
    by_size: Any = None

    @property
    def chosen(self) -> str:
        return min(self.errors, key=self.errors.get)

    @property
    def faithful(self) -> bool:
        return self.errors[self.chosen] < self.seed_noise

    def describe(self) -> str:
        models = ", ".join(f"{k} {v:.4f} (top-quarter bias {self.top_bias[k]:+.4f})"
                           for k, v in sorted(self.errors.items(), key=lambda kv: kv[1]))
        verdict = "below" if self.faithful else "NOT below"
        return (f"curve model, {self.folds}-fold over {self.configs} recorded configs: held-out RMSE of true quality "
                f"{models}; nearest recorded config {self.nearest:.4f} (bias {self.nearest_top_bias:+.4f}); one seed "
                f"noise {self.seed_noise:.4f}: {self.chosen} is {verdict} it"
                + (f"\n{self.by_size.describe()}" if self.by_size else ""))

    def fit(self, table: Table, seed: int = 0) -> CurveModel:
        """The chosen model, fitted on every complete recorded config."""
        kind, _, anchored = self.chosen.partition(" ")
        return CurveModel(kind, table, table.complete, seed, anchored=bool(anchored))


FOLDS = 5


def checkable(table: Table, folds: int = FOLDS) -> bool:
    """Whether ``table`` holds enough complete configs (two per fold) for :func:`check_model`."""
    return len(table.complete) >= 2 * folds


def check_model(table: Table, folds: int = FOLDS, models: tuple[str, ...] = MODELS, seed: int = 0) -> ModelCheck:
    """Fit each model on all folds but one and score it on the held-out configs (see :class:`ModelCheck`).
    A held-out config's prediction carries its own residuals, so only the mean model is judged."""
    from sklearn.model_selection import KFold

    ids = list(table.complete)
    if not checkable(table, folds):
        raise ValueError(f"curves {table.curves.name}: {len(ids)} complete configs are too few for a {folds}-fold "
                         "check of the curve model; record more configs.")
    truth = np.array([table.quality(i) for i in ids])
    predicted: dict[str, np.ndarray] = {}
    nearest = np.zeros(len(ids))
    for train, held in KFold(folds, shuffle=True, random_state=seed).split(ids):
        fitted = [ids[i] for i in train]
        near = {i: table.nearest(table.curves.configs[ids[i]]["searched"], among=fitted)[0] for i in held}
        for m in models:
            plain = CurveModel(m, table, fitted, seed)
            for model in (plain, plain.anchor()):
                for i in held:
                    mean = model.mean(table.points[table.ids.index(ids[i])], table, near[i])
                    curves = modelled_curves(table, ids[i], mean)
                    predicted.setdefault(model.name, np.zeros(len(ids)))[i] = np.mean(
                        [_best(v, table.sign) for v in curves.values()])
        for i in held:
            nearest[i] = table.quality(near[i])
    rmse = {m: float(np.sqrt(np.mean((p - truth) ** 2))) for m, p in predicted.items()}
    # The quarter of configs worth most: where a good sampler's proposals land, and a model's pull towards
    # the average shows as a negative bias.
    top = truth >= np.quantile(truth, 0.75) if table.sign > 0 else truth <= np.quantile(truth, 0.25)
    bias = {m: float(table.sign * np.mean(p[top] - truth[top])) for m, p in predicted.items()}
    return ModelCheck(rmse, float(np.sqrt(np.mean((nearest - truth) ** 2))), table.seed_noise(), len(ids), folds,
                      bias, float(table.sign * np.mean(nearest[top] - truth[top])))
