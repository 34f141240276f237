"""Figures people would rather look at than read: confusion matrices, a regressor's predictions and
residuals, and learning curves."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from results.files import replace_whole  # noqa: E402


def plot_confusion(matrix: np.ndarray, classes: Sequence[str], path: str | Path, title: str) -> Path:
    """Row-normalised confusion matrix (recall per true class) with the counts annotated."""
    matrix = np.asarray(matrix)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * n, 0.8 + 0.6 * n))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true class")
    return save_figure(fig, path)


def plot_predictions(target: np.ndarray, prediction: np.ndarray, path: str | Path, title: str,
                     unit: str = "") -> Path:
    """A regressor's prediction against the true value (the diagonal is a perfect fit) and its residual
    (prediction minus true value) against the prediction, in the target's unit."""
    target, prediction = np.asarray(target, dtype=float), np.asarray(prediction, dtype=float)
    residual = prediction - target
    name = unit or "target"
    fig, (ax_fit, ax_res) = plt.subplots(1, 2, figsize=(11, 4.4))
    # Small translucent points: thousands of them would otherwise hide where most examples lie.
    ax_fit.scatter(target, prediction, s=4, alpha=0.3, linewidths=0)
    low, high = float(min(target.min(), prediction.min())), float(max(target.max(), prediction.max()))
    ax_fit.plot([low, high], [low, high], color="black", lw=1, label="prediction = true")
    ax_fit.set_xlabel(f"true {name}")
    ax_fit.set_ylabel(f"predicted {name}")
    ax_fit.legend(fontsize=8)
    ax_res.scatter(prediction, residual, s=4, alpha=0.3, linewidths=0)
    ax_res.axhline(0.0, color="black", lw=1)
    ax_res.set_xlabel(f"predicted {name}")
    ax_res.set_ylabel("residual (predicted - true)")
    rmse, mae = float(np.sqrt(np.mean(residual ** 2))), float(np.mean(np.abs(residual)))
    ax_res.set_title(f"RMSE {rmse:.4f}, MAE {mae:.4f}, {len(target)} examples", fontsize=9)
    for ax in (ax_fit, ax_res):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_learning_curves(history: Sequence[dict[str, float]], path: str | Path, title: str) -> Path:
    """Losses, the validation scores (macro-F1 and accuracy, or RMSE and MAE) and learning rate against epoch."""
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_f1, ax_lr) = plt.subplots(1, 3, figsize=(13, 3.6))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], label="val")
    ax_loss.set_ylabel("loss (the recipe's)")
    ax_loss.legend()
    if "val_rmse" in history[0]:
        ax_f1.plot(epochs, [h["val_rmse"] for h in history], label="val RMSE")
        ax_f1.plot(epochs, [h["val_mae"] for h in history], label="val MAE", alpha=0.6)
        ax_f1.set_ylabel("in the target's unit")
    else:
        ax_f1.plot(epochs, [h["val_macro_f1"] for h in history], label="val macro-F1")
        ax_f1.plot(epochs, [h["val_acc"] for h in history], label="val accuracy", alpha=0.6)
        ax_f1.set_ylim(0, 1)
    ax_f1.legend()
    rates = [h["learning_rate"] for h in history]
    ax_lr.plot(epochs, rates)
    # eta_min may be 0, and the cosine then reaches a rate of exactly 0: no log axis for that.
    ax_lr.set_yscale("log" if min(rates) > 0 else "linear")
    ax_lr.set_ylabel("learning rate")
    for ax in (ax_loss, ax_f1, ax_lr):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return save_figure(fig, path)


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    # Write beside, then rename: a reader never sees half a PNG.
    fig.tight_layout()
    try:
        return replace_whole(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    finally:
        plt.close(fig)


def plot_confirmation(table: pd.DataFrame, metric: str, path: str | Path, title: str) -> Path:
    """Confirmed configs ranked by their mean over seeds, with 95 % intervals, beside the value each
    had in the search (one run)."""
    n = len(table)
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.45 * n))
    y = np.arange(n)[::-1]
    ax.errorbar(table["mean"], y, xerr=[table["mean"] - table["ci95_low"], table["ci95_high"] - table["mean"]],
                fmt="o", capsize=4, label="mean over seeds, 95 % interval")
    ax.scatter(table["search_value"], y, marker="x", color="tab:red", label="in the search (one run)", zorder=3)
    ax.set_yticks(y, [f"#{r} {c} (search #{s})" for r, c, s in
                      zip(table["rank"], table["candidate"], table["search_rank"])])
    ax.set_xlabel(f"best {metric}")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(title)
    return save_figure(fig, path)
