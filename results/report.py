"""The study report: what a search found, as figures and tables in one ``report.html``.

Optimisation history (each trial's best value against trial number and against the epochs spent,
the best-so-far line, ASHA-stopped and failed trials marked), hyperparameter importances computed
by Optuna from the study the searcher kept (PED-ANOVA, Optuna's default), Optuna's parallel
coordinates and slice plots, the best trial's learning curves and confusion matrix and its
per-class F1 (a regressor's predicted-vs-true and residual plots instead). Images are embedded, so the file opens from a file link or as an MLflow artifact.
"""

from __future__ import annotations

import base64
import html
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402

from results.plots import save_figure  # noqa: E402

MARKERS = {"completed": ("o", "tab:blue"), "stopped early": ("x", "tab:orange"), "failed": ("^", "tab:red")}


@dataclass(frozen=True)
class Report:
    html: Path
    figures: dict[str, Path]
    importances: dict[str, float]
    note: str


def per_class_f1(confusion: np.ndarray, classes: Sequence[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support per class from a confusion matrix (rows true, columns predicted),
    computed by scikit-learn (0 where undefined)."""
    from sklearn.metrics import precision_recall_fscore_support

    confusion = np.asarray(confusion, dtype=np.int64)
    n = confusion.shape[0]
    # The (true, predicted) pairs the matrix counts, one per example.
    true, predicted = np.divmod(np.repeat(np.arange(n * n), confusion.ravel()), n)
    precision, recall, f1, support = precision_recall_fscore_support(true, predicted, labels=np.arange(n),
                                                                     zero_division=0)
    return pd.DataFrame({"class": list(classes), "precision": precision, "recall": recall, "f1": f1,
                         "support": support.astype(int)})


def plot_history(trials: pd.DataFrame, metric: str, mode: str, path: Path, title: str) -> Path:
    """Best value per trial against trial number (in start order) and against cumulative epochs."""
    best_col = f"best_{metric}"
    # Searches from before started_at was recorded keep trials.csv's order.
    frame = (trials.sort_values("started_at") if "started_at" in trials else trials).reset_index(drop=True)
    values = frame[best_col].to_numpy(dtype=float)
    running = (np.fmax.accumulate if mode == "max" else np.fmin.accumulate)(np.where(np.isnan(values),
                                                                            -np.inf if mode == "max" else np.inf,
                                                                            values))
    number = np.arange(1, len(frame) + 1)
    spent = frame["epochs"].to_numpy(dtype=float).cumsum()
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
    for ax, x, label in ((axes[0], number, "trial (in start order)"), (axes[1], spent, "epochs spent (cumulative)")):
        for outcome, (marker, colour) in MARKERS.items():
            rows = (frame["outcome"] == outcome).to_numpy()
            if rows.any():
                ax.scatter(x[rows], values[rows], marker=marker, color=colour, label=outcome, zorder=3)
        finite = np.isfinite(running)
        ax.step(x[finite], running[finite], where="post", color="black", lw=1, label="best so far")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"best {metric}")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, path)


def _optuna_figure(plot: Any, study: optuna.Study, path: Path, size: tuple[float, float] = (9, 4),
                   **kw: Any) -> Path | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")    # Optuna marks its matplotlib plots experimental
        try:
            axes = plot(study, **kw)
        except (ValueError, RuntimeError):
            return None
    first = np.ravel(axes)[0] if isinstance(axes, np.ndarray) else axes
    fig = first.figure
    fig.set_size_inches(*size)
    return save_figure(fig, path)


def importances(study: optuna.Study, target: Any = None) -> tuple[dict[str, float], str]:
    """Optuna's importances (PED-ANOVA) over the completed trials, with a note on what they cover
    (``target``: which value of a multi-objective trial, the primary)."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.get_trials(deepcopy=False))
    if len(done) < 2:
        return {}, f"importances need at least 2 completed trials; this study has {len(done)}."
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            values = optuna.importance.get_param_importances(study, target=target)
        except (ValueError, RuntimeError) as exc:
            return {}, f"Optuna could not compute importances: {exc}"
    return ({k: float(v) for k, v in values.items()},
            f"PED-ANOVA (optuna.importance.get_param_importances) over {len(done)} completed trials; "
            f"{pruned} trials stopped by ASHA are left out, as Optuna does"
            + ("; for the primary objective." if target is not None else "."))


def write_report(out_dir: Path, *, space: str, name: str, metric: str, mode: str, trials: pd.DataFrame,
                 study: optuna.Study | None, best: dict[str, Any], classes: Sequence[str],
                 confusion: np.ndarray | None, extra_figures: dict[str, Path] | None = None,
                 ranges: dict[str, str] | None = None) -> Report:
    """Write the figures and ``report.html`` into ``out_dir`` and return what was written."""
    out_dir = Path(out_dir)
    figures: dict[str, Path] = {"history": plot_history(trials, metric, mode, out_dir / "history.png",
                                                        f"{space}: {name}")}
    objectives = best.get("objectives") or []
    several = study is not None and len(objectives) > 1 and len(study.directions) == len(objectives)
    # A multi-objective study's per-key plots and importances are of the primary objective.
    primary = {"target": (lambda t: t.values[0]), "target_name": f"best {metric}"} if several else {}
    scores, note = (({}, "no Optuna study was kept for this search") if study is None
                    else importances(study, primary.get("target")))
    if study is not None:
        vis = optuna.visualization.matplotlib
        keys = sorted({k for t in study.get_trials(deepcopy=False) for k in t.params})
        plots = [("parallel", vis.plot_parallel_coordinate, primary, (max(9.0, 1.3 * len(keys) + 3), 5.0))]
        if scores:
            plots.insert(0, ("importances", vis.plot_param_importances, primary, (9.0, 0.4 * len(scores) + 1.5)))
        if several:
            names = [o["name"] for o in objectives]
            plots += [("pareto", vis.plot_pareto_front, {"target_names": [f"best {names[0]}", *names[1:]]}, (7.0, 5.0)),
                      ("hypervolume", vis.plot_hypervolume_history,
                       {"reference_point": best["hypervolume"]["reference"]}, (7.0, 4.0))]
        # One slice per key, shown three to a row: Optuna's single strip is unreadable beyond a few keys.
        plots += [(f"slice:{k}", vis.plot_slice, {"params": [k], **primary}, (4.0, 3.2)) for k in keys]
        for key, plot, kw, size in plots:
            made = _optuna_figure(plot, study, out_dir / f"{key.replace(':', '_')}.png", size, **kw)
            if made is not None:
                figures[key] = made
    figures.update(extra_figures or {})
    table = per_class_f1(confusion, classes) if confusion is not None else None
    path = out_dir / "report.html"
    path.write_text(_html(space, name, metric, best, trials, figures, scores, note, table, ranges or {}))
    return Report(path, figures, scores, note)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def _html(space: str, name: str, metric: str, best: dict[str, Any], trials: pd.DataFrame,
          figures: dict[str, Path], scores: dict[str, float], note: str, table: pd.DataFrame | None,
          ranges: dict[str, str]) -> str:
    e = html.escape
    counts = trials["outcome"].value_counts().to_dict()
    searched = best.get("searched", {})
    parts = [f"<h1>{e(space)}: search {e(name)}</h1>",
             f"<p>{len(trials)} trials ({', '.join(f'{v} {e(k)}' for k, v in counts.items())}); best "
             f"{e(metric)} <b>{best.get('best_value', float('nan')):.4f}</b> by trial {e(str(best.get('trial_id')))} "
             f"at epoch {best.get('best_epoch')}.</p>",
             "<h2>Best config (searched keys, with the ranges the search saved in space.json)</h2><table>"
             + "".join(f"<tr><td>{e(k)}</td><td>{e(str(v))}</td><td>{e(ranges.get(k, ''))}</td></tr>"
                       for k, v in searched.items()) + "</table>",
             "<h2>Optimisation history</h2>", _img(figures["history"], "optimisation history")]
    parts.append("<h2>Hyperparameter importances</h2>" + f"<p>{e(note)}</p>")
    if scores:
        parts.append("<table>" + "".join(f"<tr><td>{e(k)}</td><td>{v:.3f}</td></tr>" for k, v in scores.items())
                     + "</table>")
    if best.get("pareto") is not None:
        parts.append(_front_html(best))
    for key, title in (("pareto", "Pareto front (Optuna: trials that ran their budget)"),
                       ("hypervolume", "Hypervolume history (reference: each objective's worst value in this search)"),
                       ("importances", ""), ("parallel", "Parallel coordinates (completed trials)")):
        if key in figures:
            parts.append((f"<h2>{title}</h2>" if title else "") + _img(figures[key], title or key))
    slices = [k for k in figures if k.startswith("slice:")]
    if slices:
        parts.append("<h2>Slices: each key against the metric (completed trials)</h2><div class='grid'>"
                     + "".join(_img(figures[k], k) for k in slices) + "</div>")
    for key, title in (("learning_curves", "Best trial: learning curves"),
                       ("confusion", "Best trial: validation confusion"),
                       ("predictions", "Best trial: predicted vs true, and residuals (validation)")):
        if key in figures:
            parts.append(f"<h2>{title}</h2>" + _img(figures[key], title))
    if table is not None:
        parts.append("<h2>Best trial: per-class F1 (validation)</h2>" + table.to_html(index=False, float_format="%.3f"))
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}img{max-width:100%}"
             ".grid{display:flex;flex-wrap:wrap}.grid figure{width:31%;margin:0 1% 1em 0}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(space)} {e(name)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")


def _front_html(best: dict[str, Any]) -> str:
    e = html.escape
    names = [o["name"] for o in best["objectives"]]
    keys = sorted({k for p in best["pareto"] for k in p["searched"]})
    head = "".join(f"<th>{e(n)}</th>" for n in ["trial", *names, *keys])
    rows = "".join("<tr>" + f"<td>{e(p['trial_id'])}</td>"
                   + "".join(f"<td>{p['objectives'][n]:.4g}</td>" for n in names)
                   + "".join(f"<td>{e(str(p['searched'].get(k, '')))}</td>" for k in keys) + "</tr>"
                   for p in best["pareto"])
    return (f"<h2>Pareto front: {len(best['pareto'])} trials</h2><p>Objectives: "
            + e(", ".join(f"{o['name']} ({o['mode']})" for o in best["objectives"]))
            + f"; hypervolume {best['hypervolume']['value']:.4g}. Chosen (best.json's config): trial "
            f"{e(str(best.get('trial_id')))}, {e(best['chosen_by'])}.</p><table><tr>{head}</tr>{rows}</table>")


def study_storage(path: Path) -> str:
    """The SQLite URL of a search's Optuna study (read by the report, and by optuna-dashboard)."""
    return f"sqlite:///{Path(path).resolve()}"


def study_report(out_dir: Path, best: dict[str, Any], frame: pd.DataFrame, study_file: Path,
                 ranges: dict[str, str] | None = None) -> Report:
    """Keep the search's Optuna study as ``study.db`` beside its results and write ``report.html``,
    from what the search saved (``best.json``, ``trials.csv``, and ``ranges``: each searched key's range
    as its saved ``space.json`` describes it, read by the caller with :func:`spaces.saved_ranges`, since
    spaces sit above this floor): today's space file, which may have changed since, is not read."""
    from results.export import read_confusion
    from results.sqlite_files import copy_database

    kept = out_dir / "study.db"
    if Path(study_file).resolve() != kept.resolve() and Path(study_file).exists():
        copy_database(Path(study_file), kept)
    study = None
    if kept.exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna.load_study(study_name=best["search_name"], storage=study_storage(kept))
    checkpoint = out_dir / "checkpoint"
    confusion = read_confusion(checkpoint) if checkpoint.is_dir() else None
    extra = {k: out_dir / f for k, f in (("learning_curves", "learning_curves.png"), ("confusion", "val_confusion.png"),
                                         ("predictions", "val_predictions.png"))
             if (out_dir / f).exists()}
    return write_report(out_dir, space=best["space"], name=best["search_name"], metric=best["metric"],
                        mode=best["mode"], trials=frame, study=study, best=best,
                        classes=confusion["classes"] if confusion else (),
                        confusion=np.asarray(confusion["matrix"]) if confusion else None, extra_figures=extra,
                        ranges=ranges or {})
