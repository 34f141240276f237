"""The one training recipe shared by every trainable, the ``train`` command and the tests.

AdamW; linear warm-up then cosine warm restarts (stepped per epoch); alpha-balanced focal
loss; mixed precision on GPUs (bf16 where supported, else fp16 with loss scaling); gradient
clipping; early stopping on validation macro-F1; the best epoch's weights kept.

The data is put on the device once (under Ray, once per trial process) and batches are indexed
there, and the only host synchronisation is one per epoch, when the epoch's metrics are read: on
a GPU the Python loop then runs ahead of the kernels instead of waiting on each batch.
"""

from __future__ import annotations

import time
import warnings
from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from trainables.config import Recipe
from trainables.data import SpectraData, Split
from trainables.losses import FocalLoss, balanced_alpha
from trainables.metrics import confusion_matrix, macro_f1


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or inf: this config diverges."""


@dataclass
class Evaluation:
    """Metrics of a model on one split; ``confusion`` is rows = true class, columns = predicted."""

    loss: float
    acc: float
    top3_acc: float
    macro_f1: float
    confusion: np.ndarray


@dataclass
class EpochReport:
    """What the per-epoch callback receives. ``model`` holds this epoch's weights."""

    epoch: int
    metrics: dict[str, float]
    improved: bool
    last: bool
    model: nn.Module
    val: Evaluation


@dataclass
class TrainResult:
    """The outcome of :func:`train`; ``model`` holds the best epoch's weights."""

    model: nn.Module
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    best: dict[str, float]
    best_val: Evaluation
    history: list[dict[str, float]] = field(default_factory=list)


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available; asking for ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA GPU "
                         f"(torch {torch.__version__}); use --device cpu or install a CUDA build of torch.")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ValueError(f"--device must be cpu, cuda, cuda:N or auto; got {name!r}.")
    return torch.device(name)


def build_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up from ``start_factor * lr`` over ``warmup_epochs``, then cosine warm restarts."""
    cosine = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer, T_0=recipe.T_0, T_mult=recipe.T_mult, eta_min=recipe.eta_min)
    if recipe.warmup_epochs == 0:
        return cosine
    warmup = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=recipe.start_factor, end_factor=1.0, total_iters=recipe.warmup_epochs)
    return torch.optim.lr_scheduler.SequentialLR(
        optimizer, schedulers=[warmup, cosine], milestones=[recipe.warmup_epochs])


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 on GPUs that have it, fp16 on older GPUs, full precision on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


# Arrays from Ray's object store are read-only and stay mapped at one address in a trial process
# for the whole search, so a reused actor keeps them on the device between trials instead of
# uploading the dataset again (train, val and test of one dataset fit in the cache).
_RESIDENT: OrderedDict[tuple[Any, ...], tuple[np.ndarray, np.ndarray, torch.Tensor, torch.Tensor]] = OrderedDict()
_RESIDENT_MAX = 3


def to_device(split: Split, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Flux and labels as tensors on ``device``. Read-only splits are uploaded once per process and
    kept (writable arrays could change under a cached copy, so they are uploaded every call)."""
    key = None
    if not split.flux.flags.writeable and not split.labels.flags.writeable:
        key = (*_buffer(split.flux), *_buffer(split.labels), str(device))
        if key in _RESIDENT:
            _RESIDENT.move_to_end(key)
            return _RESIDENT[key][2], _RESIDENT[key][3]
    with warnings.catch_warnings():
        # The recipe never writes into the (possibly read-only) arrays it is given.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        flux, labels = torch.from_numpy(split.flux), torch.from_numpy(split.labels)
    flux, labels = flux.to(device, non_blocking=True), labels.to(device, non_blocking=True)
    if key is not None:
        # Holding the arrays keeps their memory alive, so no other data can take their address.
        _RESIDENT[key] = (split.flux, split.labels, flux, labels)
        while len(_RESIDENT) > _RESIDENT_MAX:
            _RESIDENT.popitem(last=False)
    return flux, labels


def _buffer(array: np.ndarray) -> tuple[Any, ...]:
    return array.__array_interface__["data"][0], array.shape, array.strides, array.dtype.str


@torch.no_grad()
def evaluate(model: nn.Module, flux: torch.Tensor, labels: torch.Tensor, criterion: nn.Module,
             n_classes: int, batch_size: int | None = None) -> Evaluation:
    """Loss, accuracy, top-3 accuracy, macro-F1 and confusion matrix, with one host sync."""
    model.eval()
    batch_size = batch_size or eval_batch_size(flux.device)
    autocast = _autocast(flux.device)
    loss_sum = torch.zeros((), device=flux.device, dtype=torch.float64)
    top3 = torch.zeros((), device=flux.device, dtype=torch.int64)
    confusion = torch.zeros((n_classes, n_classes), device=flux.device, dtype=torch.int64)
    k = min(3, n_classes)
    for start in range(0, flux.shape[0], batch_size):
        x, y = flux[start:start + batch_size], labels[start:start + batch_size]
        with autocast:
            logits = model(x)
        logits = logits.float()
        loss_sum += criterion(logits, y).double() * _weight_sum(criterion, y)
        top3 += (logits.topk(k, dim=1).indices == y[:, None]).any(dim=1).sum()
        confusion += confusion_matrix(y, logits.argmax(dim=1), n_classes)
    n = flux.shape[0]
    total_weight = _weight_sum(criterion, labels)
    stats = torch.stack([loss_sum / total_weight, confusion.diagonal().sum().double() / n,
                         top3.double() / n, macro_f1(confusion)]).tolist()
    return Evaluation(loss=stats[0], acc=stats[1], top3_acc=stats[2], macro_f1=stats[3],
                      confusion=confusion.cpu().numpy())


def make_criterion(data: SpectraData, recipe: Recipe, device: torch.device | str = "cpu") -> FocalLoss:
    """The recipe's loss: focal loss with alpha from the training split's class frequencies."""
    return FocalLoss(balanced_alpha(data.train.labels, data.n_classes), recipe.gamma).to(device)


def evaluate_test(model: nn.Module, data: SpectraData, recipe: Recipe, device: torch.device | str) -> Evaluation:
    """The final model on ``data.test``: call once, after selection on validation is over."""
    test_x, test_y = to_device(data.test, torch.device(device))
    return evaluate(model, test_x, test_y, make_criterion(data, recipe, device), data.n_classes)


def eval_batch_size(device: torch.device) -> int:
    """Large on a GPU; small on CPU, where 256 fell out of cache and evaluated half as fast as 128."""
    return 2048 if device.type == "cuda" else 128


def _weight_sum(criterion: nn.Module, target: torch.Tensor) -> torch.Tensor:
    # The focal loss is a weighted mean; re-weighting by the batch's alpha sum makes the
    # epoch loss the same weighted mean over the whole split, whatever the batch size.
    return criterion.alpha[target].double().sum()


def _autocast(device: torch.device):
    dtype = amp_dtype(device)
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def train(model_fn: Callable[[], nn.Module], data: SpectraData, recipe: Recipe,
          device: torch.device | str = "cpu",
          on_epoch: Callable[[EpochReport], Any] | None = None) -> TrainResult:
    """Train ``model_fn()`` on ``data.train``, select on ``data.val``; never touches ``data.test``.

    ``model_fn`` is called after seeding so that initial weights depend only on ``recipe.seed``.
    ``on_epoch`` is called after every epoch (the search layer reports from it).
    """
    device = torch.device(device)
    seed_everything(recipe.seed)
    model = model_fn().to(device)
    train_x, train_y = to_device(data.train, device)
    val_x, val_y = to_device(data.val, device)
    criterion = make_criterion(data, recipe, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay,
                                  fused=device.type == "cuda")
    scheduler = build_scheduler(optimizer, recipe)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype(device) is torch.float16)
    autocast = _autocast(device)
    # Shuffled on the CPU so that a seed gives the same batches on every device; the copy is
    # a few kB per epoch, at the epoch boundary where the host has synchronised anyway.
    generator = torch.Generator().manual_seed(recipe.seed)
    n = train_x.shape[0]

    history: list[dict[str, float]] = []
    best_f1, best_epoch, best_state, best_val = -1.0, 0, None, None
    since_best = 0
    stopped_early = False
    for epoch in range(1, recipe.epochs + 1):
        started = time.perf_counter()
        model.train()
        lr = optimizer.param_groups[0]["lr"]
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        weight_sum = torch.zeros((), device=device, dtype=torch.float64)
        order = torch.randperm(n, generator=generator).to(device)
        for start in range(0, n, recipe.batch_size):
            idx = order[start:start + recipe.batch_size]
            x, y = train_x[idx], train_y[idx]
            with autocast:
                loss = criterion(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), recipe.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            w = _weight_sum(criterion, y)
            loss_sum += loss.detach().double() * w
            weight_sum += w
        scheduler.step()
        train_loss = (loss_sum / weight_sum).item()
        if not np.isfinite(train_loss):
            raise NonFiniteLossError(f"training loss became {train_loss} at epoch {epoch} "
                                     f"(lr={lr:.3g}); this config diverges.")
        val = evaluate(model, val_x, val_y, criterion, data.n_classes)
        improved = val.macro_f1 > best_f1 + 1e-6
        if improved:
            best_f1, best_epoch, best_val, since_best = val.macro_f1, epoch, val, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch > recipe.warmup_epochs:
            # Patience counts from the end of warm-up: while the rate is still climbing from
            # start_factor * lr, a flat score says nothing about the config.
            since_best += 1
        stopped_early = recipe.patience is not None and since_best >= recipe.patience
        metrics = {
            "epoch": epoch, "lr": lr, "train_loss": train_loss, "val_loss": val.loss,
            "val_acc": val.acc, "val_top3_acc": val.top3_acc, "val_macro_f1": val.macro_f1,
            "best_val_macro_f1": best_f1, "epoch_time_s": time.perf_counter() - started,
        }
        history.append(metrics)
        last = stopped_early or epoch == recipe.epochs
        if on_epoch is not None:
            on_epoch(EpochReport(epoch=epoch, metrics=metrics, improved=improved, last=last,
                                 model=model, val=val))
        if stopped_early:
            break

    model.load_state_dict(best_state)
    return TrainResult(model=model, best_epoch=best_epoch, epochs_run=len(history),
                       stopped_early=stopped_early, best=history[best_epoch - 1], best_val=best_val,
                       history=history)
