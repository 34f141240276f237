"""The one training recipe shared by every trainable, the ``train`` command and the tests.

The optimizer (AdamW by default, Adam, SGD or RMSprop), a linear warm-up then the chosen
schedule stepped per epoch (cosine warm restarts by default, cosine, step decay, reduce on
plateau, constant), the chosen loss (alpha-balanced focal by default, class-weighted or plain
cross-entropy; for a regression task mean squared error by default, Huber or mean absolute error);
mixed precision on GPUs (bf16 where supported, else fp16 with loss scaling); gradient clipping;
early stopping on the selection metric (validation macro-F1 unless the space says otherwise); the
best epoch's weights kept. Batches reach the model as keyword arguments, one per named input, so a
model with several inputs needs nothing special. The task decides what is measured each epoch:
macro-F1, accuracy and top-3 accuracy of a classifier; RMSE, MAE and R^2 of a regressor, in the
target's own unit (a standardised target is scaled back first).

The data is put on the device once (under Ray, once per trial process) and batches are indexed
there, and the only host synchronisation is one per epoch, when the epoch's metrics are read: on
a GPU the Python loop then runs ahead of the kernels instead of waiting on each batch.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from trainables.checkpoint import load_trainable_state, trainable_state
from trainables.config import Recipe
from trainables.data import Split, Splits
from results.errors import OptionError
from trainables.losses import FocalLoss, RegressionLoss, balanced_alpha
from trainables.metrics import confusion_matrix, macro_f1
from trainables.tasks import REGRESSION, TASK_METRICS

# What the loop reports every epoch that a space may select and search on (per task: TASK_METRICS).
METRICS = tuple(dict.fromkeys(m for metrics in TASK_METRICS.values() for m in metrics))


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

    def scores(self, split: str) -> dict[str, float]:
        """The metrics named as the loop reports them, e.g. ``val_macro_f1``."""
        return {f"{split}_loss": self.loss, f"{split}_acc": self.acc, f"{split}_top3_acc": self.top3_acc,
                f"{split}_macro_f1": self.macro_f1}

    def to_state(self) -> dict[str, Any]:
        """Its fields with arrays as tensors: what a training state saves (``torch.load(weights_only=True)``)."""
        return {**self.__dict__, "confusion": torch.from_numpy(self.confusion)}


@dataclass
class RegressionEvaluation:
    """Metrics of a regressor on one split, in the target's own unit, with every example's ``target``
    and ``prediction`` (for the predicted-vs-true and residual plots). ``loss`` is the recipe's, on
    the standardised target the model learns."""

    loss: float
    rmse: float
    mae: float
    r2: float
    target: np.ndarray
    prediction: np.ndarray

    def scores(self, split: str) -> dict[str, float]:
        """The metrics named as the loop reports them, e.g. ``val_rmse``."""
        return {f"{split}_loss": self.loss, f"{split}_rmse": self.rmse, f"{split}_mae": self.mae,
                f"{split}_r2": self.r2}

    def to_state(self) -> dict[str, Any]:
        """Its fields with arrays as tensors: what a training state saves (``torch.load(weights_only=True)``)."""
        return {**self.__dict__, "target": torch.from_numpy(self.target),
                "prediction": torch.from_numpy(self.prediction)}


def evaluation_from_state(state: dict[str, Any]) -> Evaluation | RegressionEvaluation:
    """An evaluation saved by ``to_state`` (in a training state), as it was."""
    if "confusion" in state:
        return Evaluation(**{**state, "confusion": np.asarray(state["confusion"])})
    return RegressionEvaluation(**{**state, "target": np.asarray(state["target"]),
                                   "prediction": np.asarray(state["prediction"])})


@dataclass
class EpochReport:
    """What the per-epoch callback receives. ``state()`` is everything :func:`train` needs to
    continue from the end of this epoch exactly (``resume=``), the best epoch's weights included."""

    epoch: int
    metrics: dict[str, float]
    improved: bool
    last: bool
    state: Callable[[], dict[str, Any]]


@dataclass
class TrainResult:
    """The outcome of :func:`train`; ``model`` holds the best epoch's weights."""

    model: nn.Module
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    best: dict[str, float]
    best_val: Evaluation | RegressionEvaluation
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class EarlyStop:
    """The recipe's selection and early-stopping rule, shared with replays of recorded curves: the best
    value so far (``sign`` -1 turns a ``min`` metric into a max) and ``patience`` epochs without
    improvement, counted from the end of warm-up, where a climbing rate makes flat scores say nothing
    about the config."""

    patience: int | None
    warmup_epochs: int
    sign: float = 1.0
    best_value: float = -math.inf
    best_epoch: int = 0
    since_best: int = 0

    def update(self, epoch: int, score: float) -> bool:
        """Take epoch ``epoch``'s score; whether it improved on the best so far."""
        value = self.sign * score
        if value > self.best_value + 1e-6:
            self.best_value, self.best_epoch, self.since_best = value, epoch, 0
            return True
        if epoch > self.warmup_epochs:
            self.since_best += 1
        return False

    @property
    def stopped(self) -> bool:
        return self.patience is not None and self.since_best >= self.patience

    @property
    def best(self) -> float:
        """The best score so far, in the metric's own sign."""
        return self.sign * self.best_value


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available; asking for ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise OptionError("--device cuda was asked for, but PyTorch sees no CUDA GPU "
                         f"(torch {torch.__version__}); use --device cpu or install a CUDA build of torch.")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise OptionError(f"--device must be cpu, cuda, cuda:N or auto; got {name!r}.")
    return torch.device(name)


def build_optimizer(params: Any, recipe: Recipe, device: torch.device) -> torch.optim.Optimizer:
    """The recipe's optimizer over ``params``."""
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay, fused=device.type == "cuda")
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay, fused=device.type == "cuda")
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov,
                               weight_decay=recipe.weight_decay)
    return torch.optim.RMSprop(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Linear warm-up from ``start_factor * lr`` over ``warmup_epochs``, then the recipe's schedule,
    stepped once per epoch. ``plateau`` and ``constant`` keep the rate after warm-up (the loop steps
    :class:`~torch.optim.lr_scheduler.ReduceLROnPlateau` itself, since it reads a metric)."""
    sched = torch.optim.lr_scheduler
    main: sched.LRScheduler | None = None
    if recipe.scheduler == "cosine_restarts":
        main = sched.CosineAnnealingWarmRestarts(optimizer, T_0=recipe.T_0, T_mult=recipe.T_mult,
                                                 eta_min=recipe.eta_min)
    elif recipe.scheduler == "cosine":
        main = sched.CosineAnnealingLR(optimizer, T_max=max(1, recipe.epochs - recipe.warmup_epochs),
                                       eta_min=recipe.eta_min)
    elif recipe.scheduler == "step":
        main = sched.StepLR(optimizer, step_size=recipe.step_size, gamma=recipe.decay)
    if recipe.warmup_epochs == 0:
        return main
    warmup = sched.LinearLR(optimizer, start_factor=recipe.start_factor, end_factor=1.0,
                            total_iters=recipe.warmup_epochs)
    if main is None:
        return warmup
    return sched.SequentialLR(optimizer, schedulers=[warmup, main], milestones=[recipe.warmup_epochs])


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
# uploading the dataset again (every array of train, val and test of one dataset fits the cache).
_RESIDENT: OrderedDict[tuple[Any, ...], tuple[np.ndarray, torch.Tensor]] = OrderedDict()
_RESIDENT_MAX = 12


def to_device(split: Split, device: torch.device) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Inputs and labels as tensors on ``device``. Read-only arrays are uploaded once per process and
    kept (writable arrays could change under a cached copy, so they are uploaded every call)."""
    inputs = {k: _upload(v, device) for k, v in split.inputs.items()}
    return inputs, _upload(split.labels, device)


def _upload(array: np.ndarray, device: torch.device) -> torch.Tensor:
    key = None
    if not array.flags.writeable:
        key = (*_buffer(array), str(device))
        if key in _RESIDENT:
            _RESIDENT.move_to_end(key)
            return _RESIDENT[key][1]
    with warnings.catch_warnings():
        # The recipe never writes into the (possibly read-only) arrays it is given.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        tensor = torch.from_numpy(array)
    if tensor.stride() != torch.empty(tensor.shape, device="meta").stride():
        # A size-1 axis can carry any stride (rows taken from x[:, None] give the channel axis the
        # channels-last one) and convolutions pick their kernel by strides: the usual strides make a
        # run on this array train exactly as a Ray trial does on its unpickled copy.
        tensor = tensor.clone(memory_format=torch.contiguous_format)
    tensor = tensor.to(device, non_blocking=True)
    if key is not None:
        # Holding the array keeps its memory alive, so no other data can take its address.
        _RESIDENT[key] = (array, tensor)
        while len(_RESIDENT) > _RESIDENT_MAX:
            _RESIDENT.popitem(last=False)
    return tensor


def _buffer(array: np.ndarray) -> tuple[Any, ...]:
    return array.__array_interface__["data"][0], array.shape, array.strides, array.dtype.str


def _rows(inputs: dict[str, torch.Tensor], index: torch.Tensor | slice) -> dict[str, torch.Tensor]:
    return {k: v[index] for k, v in inputs.items()}


def evaluate_split(model: nn.Module, inputs: dict[str, torch.Tensor], labels: torch.Tensor, criterion: nn.Module,
                   data: Splits) -> Evaluation | RegressionEvaluation:
    """:func:`evaluate` or :func:`evaluate_regression`, as ``data``'s task asks."""
    if data.task == REGRESSION:
        return evaluate_regression(model, inputs, labels, criterion, data.target_scale)
    return evaluate(model, inputs, labels, criterion, data.n_classes)


def _forward_batches(model: nn.Module, inputs: dict[str, torch.Tensor], targets: torch.Tensor,
                     batch_size: int | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Each evaluation batch's targets and the model's float outputs, in eval mode (the callers hold
    ``torch.no_grad``)."""
    model.eval()
    batch_size = batch_size or eval_batch_size(targets.device)
    autocast = _autocast(targets.device)
    for start in range(0, targets.shape[0], batch_size):
        with autocast:
            output = model(**_rows(inputs, slice(start, start + batch_size)))
        yield targets[start:start + batch_size], output.float()


def evaluate(model: nn.Module, inputs: dict[str, torch.Tensor], labels: torch.Tensor, criterion: nn.Module,
             n_classes: int, batch_size: int | None = None) -> Evaluation:
    """Loss, accuracy, top-3 accuracy, macro-F1 and confusion matrix, with one host sync."""
    return score_classifier(_forward_batches(model, inputs, labels, batch_size), labels, criterion, n_classes)


def evaluate_regression(model: nn.Module, inputs: dict[str, torch.Tensor], targets: torch.Tensor,
                        criterion: nn.Module, scale: tuple[float, float],
                        batch_size: int | None = None) -> RegressionEvaluation:
    """Loss (on the standardised target), then RMSE, MAE and R^2 in the target's unit (``scale`` is the
    ``(mean, std)`` the target was standardised with), with one host sync."""
    return score_regressor(_forward_batches(model, inputs, targets, batch_size), targets, criterion, scale)


def score_outputs(batches: Iterable[tuple[torch.Tensor, torch.Tensor]], targets: torch.Tensor, criterion: nn.Module,
                  data: Splits) -> Evaluation | RegressionEvaluation:
    """:func:`score_classifier` or :func:`score_regressor`, as ``data``'s task asks."""
    if data.task == REGRESSION:
        return score_regressor(batches, targets, criterion, data.target_scale)
    return score_classifier(batches, targets, criterion, data.n_classes)


@torch.no_grad()
def score_classifier(batches: Iterable[tuple[torch.Tensor, torch.Tensor]], labels: torch.Tensor, criterion: nn.Module,
                     n_classes: int) -> Evaluation:
    """:func:`evaluate`'s metrics from each batch's ``(labels, logits)``, however the logits were computed
    (one model, or one member of a fused group)."""
    device = labels.device
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    top3 = torch.zeros((), device=device, dtype=torch.int64)
    confusion = torch.zeros((n_classes, n_classes), device=device, dtype=torch.int64)
    k = min(3, n_classes)
    for y, logits in batches:
        loss_sum += criterion(logits, y).double() * _weight_sum(criterion, y)
        top3 += (logits.topk(k, dim=1).indices == y[:, None]).any(dim=1).sum()
        confusion += confusion_matrix(y, logits.argmax(dim=1), n_classes)
    n = labels.shape[0]
    total_weight = _weight_sum(criterion, labels)
    stats = torch.stack([loss_sum / total_weight, confusion.diagonal().sum().double() / n,
                         top3.double() / n, macro_f1(confusion)]).tolist()
    return Evaluation(loss=stats[0], acc=stats[1], top3_acc=stats[2], macro_f1=stats[3],
                      confusion=confusion.cpu().numpy())


@torch.no_grad()
def score_regressor(batches: Iterable[tuple[torch.Tensor, torch.Tensor]], targets: torch.Tensor, criterion: nn.Module,
                    scale: tuple[float, float]) -> RegressionEvaluation:
    """:func:`evaluate_regression`'s metrics from each batch's ``(targets, outputs)``."""
    loss_sum = torch.zeros((), device=targets.device, dtype=torch.float64)
    parts = []
    for y, output in batches:
        loss_sum += criterion(output, y).double() * _weight_sum(criterion, y)
        parts.append(output.squeeze(-1))
    mean, std = scale
    prediction = torch.cat(parts).double() * std + mean
    target = targets.double() * std + mean
    error = prediction - target
    total = ((target - target.mean()) ** 2).sum()
    stats = torch.stack([loss_sum / _weight_sum(criterion, targets), error.pow(2).mean().sqrt(), error.abs().mean(),
                         1 - error.pow(2).sum() / total.clamp(min=1e-12)]).tolist()
    return RegressionEvaluation(loss=stats[0], rmse=stats[1], mae=stats[2], r2=stats[3],
                                target=target.float().cpu().numpy(), prediction=prediction.float().cpu().numpy())


def make_criterion(data: Splits, recipe: Recipe, device: torch.device | str = "cpu") -> FocalLoss | RegressionLoss:
    """The recipe's loss: focal (alpha from the training split's class frequencies), class-weighted
    cross-entropy (the same alpha, gamma 0) or plain cross-entropy (alpha 1, gamma 0); for a
    regression task mean squared error, Huber or mean absolute error."""
    if data.task == REGRESSION:
        return RegressionLoss(recipe.loss, recipe.huber_delta).to(device)
    if recipe.loss == "ce":
        return FocalLoss(torch.ones(data.n_classes), 0.0).to(device)
    gamma = recipe.gamma if recipe.loss == "focal" else 0.0
    return FocalLoss(balanced_alpha(data.train.labels, data.n_classes), gamma).to(device)


def evaluate_test(model: nn.Module, data: Splits, recipe: Recipe,
                  device: torch.device | str) -> Evaluation | RegressionEvaluation:
    """The final model on ``data.test``: call once, after selection on validation is over."""
    test_x, test_y = to_device(data.test, torch.device(device))
    return evaluate_split(model, test_x, test_y, make_criterion(data, recipe, device), data)


def eval_batch_size(device: torch.device) -> int:
    """Large on a GPU; small on CPU, where 256 fell out of cache and evaluated half as fast as 128."""
    return 2048 if device.type == "cuda" else 128


def _weight_sum(criterion: nn.Module, target: torch.Tensor) -> torch.Tensor:
    # The focal loss is a weighted mean; re-weighting by the batch's weight sum makes the
    # epoch loss the same weighted mean over the whole split, whatever the batch size.
    return criterion.weight_sum(target)


def _autocast(device: torch.device):
    dtype = amp_dtype(device)
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


@dataclass
class RunState:
    """What one run carries from epoch to epoch besides its data: the model, its optimizer, schedules
    and scaler, its two random streams (batch order, augmentation), the early-stopping rule, the history
    and the best epoch. :func:`train` holds one; a fused group holds one per member, whose optimizer is
    the member's own (its learning rate and, between epochs, its state in torch's layout) though the
    group steps the weights. ``snapshot`` and ``restore`` are the exact-resume format of
    :attr:`EpochReport.state`."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None
    scaler: torch.amp.GradScaler
    generator: torch.Generator
    augment_generator: torch.Generator
    rule: EarlyStop
    history: list[dict[str, float]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    best_val: Evaluation | RegressionEvaluation | None = None

    @classmethod
    def start(cls, model: nn.Module, recipe: Recipe, device: torch.device, mode: str) -> "RunState":
        """A fresh run of ``model`` (already built after seeding, on ``device``) under ``recipe``."""
        # Frozen weights (a fine-tuned model's base) get no optimizer state and no weight decay.
        optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], recipe, device)
        # Built after the warm-up has set the starting rate, which the plateau schedule records.
        scheduler = build_scheduler(optimizer, recipe)
        plateau = (torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=recipe.decay,
                                                              patience=recipe.plateau_patience)
                   if recipe.scheduler == "plateau" else None)
        # Shuffled on the CPU so that a seed gives the same batches on every device; the copy is
        # a few kB per epoch, at the epoch boundary where the host has synchronised anyway.
        # Augmentation draws from its own stream, so switching it on leaves the batch order alone.
        return cls(model=model, optimizer=optimizer, scheduler=scheduler, plateau=plateau,
                   scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype(device) is torch.float16),
                   generator=torch.Generator().manual_seed(recipe.seed),
                   augment_generator=torch.Generator().manual_seed(recipe.seed + 1),
                   rule=EarlyStop(recipe.patience, recipe.warmup_epochs, 1.0 if mode == "max" else -1.0))

    @property
    def lr(self) -> float:
        """The learning rate of the coming epoch."""
        return self.optimizer.param_groups[0]["lr"]

    def restore(self, resume: dict[str, Any]) -> torch.Tensor:
        """Continue from ``resume`` (a :meth:`snapshot`); returns its global random state, which the caller
        puts where the run draws dropout from."""
        self.model.load_state_dict(resume["model"], strict=False)
        self.optimizer.load_state_dict(resume["optimizer"])
        for part, saved in ((self.scheduler, resume.get("scheduler")), (self.plateau, resume.get("plateau")),
                            (self.scaler, resume.get("scaler"))):
            if part is not None and saved is not None:
                part.load_state_dict(saved)
        self.generator.set_state(resume["generator"])
        self.augment_generator.set_state(resume["augment_generator"])
        self.history = list(resume["history"])
        self.rule.best_value, self.rule.best_epoch, self.rule.since_best = (resume["best_value"], resume["best_epoch"],
                                                                            resume["since_best"])
        self.best_state = dict(resume["best_state"])
        self.best_val = evaluation_from_state(resume["best_val"])
        return resume["torch_rng"]

    def snapshot(self, epoch: int, torch_rng: torch.Tensor) -> dict[str, Any]:
        """Everything needed to continue exactly after ``epoch``; ``torch_rng`` is the state of the stream
        the run draws dropout from (torch's global one in :func:`train`)."""
        return {"epoch": epoch, "model": trainable_state(self.model), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "plateau": self.plateau.state_dict() if self.plateau is not None else None,
                "scaler": self.scaler.state_dict(), "generator": self.generator.get_state(),
                "augment_generator": self.augment_generator.get_state(), "torch_rng": torch_rng,
                "history": list(self.history), "best_value": self.rule.best_value, "best_epoch": self.rule.best_epoch,
                "since_best": self.rule.since_best, "best_state": self.best_state, "best_val": self.best_val.to_state()}

    def end_training(self, epoch: int, lr: float, train_loss: float) -> None:
        """Step the epoch's schedule once its batches are done; :class:`NonFiniteLossError` when its
        training loss is not finite."""
        if self.scheduler is not None:
            self.scheduler.step()
        if not np.isfinite(train_loss):
            raise NonFiniteLossError(f"training loss became {train_loss} at epoch {epoch} "
                                     f"(lr={lr:.3g}); this config diverges.")

    def close_epoch(self, epoch: int, lr: float, train_loss: float, val: Evaluation | RegressionEvaluation,
                    recipe: Recipe, metric: str, seconds: float) -> tuple[dict[str, float], bool, bool]:
        """Judge ``val`` (keeping the best epoch's weights), step the plateau schedule and record the epoch;
        returns its metrics, whether it improved, and whether it is the run's last."""
        scores = val.scores("val")
        improved = self.rule.update(epoch, scores[metric])
        if improved:
            self.best_val = val
            # Only what trains moves between epochs; the frozen base (quantised or not) is not copied.
            self.best_state = {k: v.detach().clone() for k, v in trainable_state(self.model).items()}
        if self.plateau is not None and epoch >= recipe.warmup_epochs:
            self.plateau.step(scores[metric])
        metrics = {"epoch": epoch, "learning_rate": lr, "train_loss": train_loss, **scores,
                   f"best_{metric}": self.rule.best, "epoch_time_s": seconds}
        self.history.append(metrics)
        return metrics, improved, self.rule.stopped or epoch == recipe.epochs


def check_metric(metric: str, data: Splits) -> None:
    """``metric`` must be one the data's task reports."""
    if metric not in TASK_METRICS[data.task]:
        raise ValueError(f"metric must be one of {list(TASK_METRICS[data.task])} for a {data.task} task; "
                         f"got {metric!r}.")


def train(model_fn: Callable[[], nn.Module], data: Splits, recipe: Recipe,
          device: torch.device | str = "cpu",
          on_epoch: Callable[[EpochReport], Any] | None = None,
          metric: str = "val_macro_f1", mode: str = "max",
          augment: Callable[[dict[str, torch.Tensor], torch.Generator], dict[str, torch.Tensor]] | None = None,
          resume: dict[str, Any] | None = None) -> TrainResult:
    """Train ``model_fn()`` on ``data.train``, select on ``data.val``; never touches ``data.test``.

    ``model_fn`` is called after seeding so that initial weights depend only on ``recipe.seed``.
    ``metric``/``mode`` choose the best epoch (kept weights, early stopping, plateau schedule).
    ``augment(batch, generator)`` changes each training batch (a data module's searched knobs).
    ``on_epoch`` is called after every epoch (the search layer reports from it).
    ``resume`` is an :attr:`EpochReport.state` saved earlier: the run continues after that epoch
    with the same weights, optimizer, schedule, scaler, random streams, best epoch and patience
    counter, so an interrupted and resumed run gives the same metrics as an uninterrupted one.
    """
    check_metric(metric, data)
    device = torch.device(device)
    seed_everything(recipe.seed)
    model = model_fn().to(device)
    train_x, train_y = to_device(data.train, device)
    val_x, val_y = to_device(data.val, device)
    criterion = make_criterion(data, recipe, device)
    run = RunState.start(model, recipe, device, mode)
    optimizer, scaler = run.optimizer, run.scaler
    autocast = _autocast(device)
    n = train_y.shape[0]

    first = 1
    if resume:
        torch.set_rng_state(run.restore(resume))
        first = resume["epoch"] + 1
        if run.rule.stopped:
            # The run had stopped early at that epoch (a driver killed before it heard): it stays stopped.
            first = recipe.epochs + 1

    for epoch in range(first, recipe.epochs + 1):
        started = time.perf_counter()
        model.train()
        lr = run.lr
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        weight_sum = torch.zeros((), device=device, dtype=torch.float64)
        order = torch.randperm(n, generator=run.generator).to(device)
        for start in range(0, n, recipe.batch_size):
            idx = order[start:start + recipe.batch_size]
            x, y = _rows(train_x, idx), train_y[idx]
            if augment is not None:
                x = augment(x, run.augment_generator)
            with autocast:
                loss = criterion(model(**x), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if recipe.max_grad_norm is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), recipe.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            w = _weight_sum(criterion, y)
            loss_sum += loss.detach().double() * w
            weight_sum += w
        train_loss = (loss_sum / weight_sum).item()
        run.end_training(epoch, lr, train_loss)
        val = evaluate_split(model, val_x, val_y, criterion, data)
        metrics, improved, last = run.close_epoch(epoch, lr, train_loss, val, recipe, metric,
                                                  time.perf_counter() - started)
        if on_epoch is not None:
            on_epoch(EpochReport(epoch=epoch, metrics=metrics, improved=improved, last=last,
                                 state=lambda: run.snapshot(epoch, torch.get_rng_state())))
        if run.rule.stopped:
            break

    rule, history = run.rule, run.history
    load_trainable_state(model, run.best_state, "the best epoch's weights")
    return TrainResult(model=model, best_epoch=rule.best_epoch, epochs_run=len(history),
                       stopped_early=rule.stopped, best=history[rule.best_epoch - 1], best_val=run.best_val,
                       history=history)
