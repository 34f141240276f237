"""Fused training: K configs of one model trained as one, each member exactly as if trained alone.

Members share the architecture, the batch size and the optimizer (:func:`group_key`); each keeps its
own init seed, batch order, learning rate and schedule, weight decay, momentum, gradient clipping,
dropout rate and stream, loss (focal gamma, class weights, regression loss) and early stopping. Their
weights are stacked in one ``[K, T]`` row per member; the model's own ``forward`` runs once on a batch
that holds every member's rows one block after another (so elementwise layers, pooling and flatten
work unchanged) with its weighted leaves swapped: ``Linear`` for a batched matmul over the stacked
weights, ``Conv1d`` for a convolution with ``groups = K``, ``Dropout`` for masks drawn per member from
that member's own stream, as torch's CPU dropout draws them. One vectorised AdamW/Adam/SGD steps all
members with their rates as ``[K, 1]`` tensors, using torch's own update formulas.

Between epochs each member is a :class:`~trainables.recipe.RunState`, as in :func:`~trainables.recipe.train`:
its model holds its weights and its optimizer (never stepped; it carries the learning rate its
schedule sets) holds its state in torch's layout, so a member's ``state()`` resumes in
:func:`~trainables.recipe.train` and a solo run's state resumes here. A member's metrics equal the same
config trained alone within float noise on CPU (tests/test_fused.py). On a GPU, dropout masks come from
a per-member CUDA stream and differ from a solo run's (which uses torch's fused kernel).

Only models whose ``forward`` treats each example on its own can be fused (the folded batch would
otherwise mix members); :func:`fusion_refusal` refuses the known cases in one line.
"""

from __future__ import annotations

import copy
import re
import time
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from trainables.config import Recipe
from trainables.data import Splits
from trainables.losses import FocalLoss, RegressionLoss
from trainables.recipe import (EpochReport, NonFiniteLossError, RunState, _autocast, amp_dtype, check_metric,
                               eval_batch_size, make_criterion, score_outputs, seed_everything, to_device)

# Optimizers with a vectorised step here (torch's single-tensor formulas; build_optimizer's settings).
VECTORISED = ("adamw", "adam", "sgd")
# Leaves that hold no weights and act on each example alone: they run unchanged on the folded batch.
STATELESS = (nn.ReLU, nn.GELU, nn.Tanh, nn.LeakyReLU, nn.SiLU, nn.Sigmoid, nn.ELU, nn.Softplus, nn.Identity,
             nn.Flatten, nn.MaxPool1d, nn.AvgPool1d)
FUSED_LEAVES = (nn.Linear, nn.Conv1d, nn.Dropout)
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8     # build_optimizer leaves torch's defaults


def is_member_knob(key: str) -> bool:
    """Model knobs that may differ inside a group: dropout rates (``dropout``, ``dropout_fc`` ...), which
    change no weight's shape."""
    return key == "dropout" or key.startswith("dropout_")


def group_key(recipe: Recipe, model_config: dict[str, Any]) -> tuple:
    """What must be equal for configs to share a group: the architecture (every model knob but the
    per-member ones), the batch size and the optimizer. The device is the trainer's own."""
    architecture = tuple(sorted((k, repr(v)) for k, v in model_config.items() if not is_member_knob(k)))
    return architecture, recipe.batch_size, recipe.optimizer


def fusion_refusal(model: nn.Module, recipe: Recipe, augment: Callable | None) -> str | None:
    """``None`` when this model and recipe can be fused; else one line saying why not."""
    if augment is not None:
        return "the data module's augmentation draws from each trial's own stream per batch: runs unfused"
    if recipe.optimizer not in VECTORISED:
        return f"optimizer {recipe.optimizer} has no vectorised step (only {', '.join(VECTORISED)}): runs unfused"
    for name, module in model.named_modules():
        kind = type(module).__name__
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            return f"{kind} keeps batch statistics per model: runs unfused"
        own = list(module.parameters(recurse=False))
        if any(not p.requires_grad for p in own):
            return f"module {name or 'model'} ({kind}) has frozen weights: runs unfused"
        if list(module.buffers(recurse=False)):
            return f"module {name or 'model'} ({kind}) keeps buffers: runs unfused"
        if (own or not list(module.children())) and type(module) not in FUSED_LEAVES + STATELESS:
            return f"module {name or 'model'} ({kind}) has no fused form: runs unfused"
        if type(module) is nn.Conv1d and module.padding_mode != "zeros":
            return f"module {name} pads with {module.padding_mode!r}; only zero padding is fused: runs unfused"
    if not any(True for _ in model.parameters()):
        return "the model has no weights to train: runs unfused"
    if len(list(model.named_modules(remove_duplicate=False))) != len(list(model.named_modules())):
        return "the model uses one module in two places (shared weights): runs unfused"
    return None


class _FusedLinear(nn.Module):
    """``Linear`` over K members' weights ``[K, out, in]``: one batched matmul, member k's rows being
    the k-th block of the batch."""

    def __init__(self, k: int, weight: nn.Parameter, bias: nn.Parameter | None) -> None:
        super().__init__()
        self.k, self.weight, self.bias = k, weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(self.k, -1, x.shape[-1])
        w = self.weight.transpose(1, 2)
        y = torch.bmm(rows, w) if self.bias is None else torch.baddbmm(self.bias.unsqueeze(1), rows, w)
        return y.reshape(*x.shape[:-1], y.shape[-1])


class _FusedConv1d(nn.Module):
    """``Conv1d`` over K members' weights ``[K, out, in / groups, size]``: one convolution with ``K``
    times the groups, the members side by side on the channel axis."""

    def __init__(self, k: int, like: nn.Conv1d, weight: nn.Parameter, bias: nn.Parameter | None) -> None:
        super().__init__()
        self.k, self.weight, self.bias = k, weight, bias
        self.stride, self.padding, self.dilation, self.groups = like.stride, like.padding, like.dilation, like.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kb, channels, length = x.shape
        b = kb // self.k
        side = x.reshape(self.k, b, channels, length).transpose(0, 1).reshape(b, self.k * channels, length)
        weight = self.weight.reshape(-1, *self.weight.shape[2:])
        bias = None if self.bias is None else self.bias.reshape(-1)
        y = F.conv1d(side, weight, bias, self.stride, self.padding, self.dilation, self.groups * self.k)
        return y.reshape(b, self.k, -1, y.shape[-1]).transpose(0, 1).reshape(kb, -1, y.shape[-1])


class _FusedDropout(nn.Module):
    """Dropout with each member's own rate and stream: the mask torch's CPU dropout draws
    (``empty_like(x).bernoulli_(1 - p)`` divided by ``1 - p``), drawn block by block."""

    def __init__(self, rates: list[float], generators: list[torch.Generator], device: torch.device) -> None:
        super().__init__()
        self.rates, self.generators = rates, generators
        # A rate of 0 leaves the input as it is (torch draws nothing), a rate of 1 zeroes it; both divide by 1.
        self.keep = torch.tensor([[1 - p if 0 < p < 1 else 1.0] for p in rates], device=device)
        self.active = any(rates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.active:
            return x
        k = len(self.rates)
        noise = torch.ones(x.shape, dtype=x.dtype, device=x.device)
        for block, p, generator in zip(noise.split(x.shape[0] // k), self.rates, self.generators):
            if p == 1:
                block.zero_()
            elif p > 0:
                block.bernoulli_(1 - p, generator=generator)
        return x * noise.view(k, -1).div_(self.keep).view(x.shape)


@dataclass(frozen=True)
class _Slot:
    """Where one of a member's weights lives in its row of the stack."""

    name: str
    shape: torch.Size
    start: int
    stop: int


def _layout(model: nn.Module) -> list[_Slot]:
    slots, start = [], 0
    for name, p in model.named_parameters():
        slots.append(_Slot(name, p.shape, start, start + p.numel()))
        start += p.numel()
    return slots


@dataclass(eq=False)
class _Member:
    """One member between epochs: its run (weights, optimizer, schedules, streams, best epoch) as
    :func:`~trainables.recipe.train` keeps it, its loss, and the stream its dropout draws from."""

    name: str
    recipe: Recipe
    run: RunState
    criterion: FocalLoss | RegressionLoss
    dropout: torch.Generator
    cpu_rng: torch.Tensor     # torch's CPU stream after init: what a solo run on a GPU leaves there
    epoch: int = 0
    # The stack holding this member's optimizer state and its row there (None before its first fused epoch):
    # copied back into the member's own optimizer only when asked for (state()) or when the group changes.
    stacked: tuple["_StackedOptimizer", int] | None = None

    def torch_rng(self) -> torch.Tensor:
        """The ``torch_rng`` of this member's state: its dropout stream on CPU."""
        return self.dropout.get_state() if self.dropout.device.type == "cpu" else self.cpu_rng

    def settle(self) -> None:
        """Its optimizer state back in its own torch optimizer, in torch's layout."""
        if self.stacked is not None:
            stack, row = self.stacked
            stack.scatter(row, self)


class _StackedLoss:
    """Each member's training loss on its block of the batch, as its own criterion computes it, and each
    member's weight of that batch (for the epoch's weighted mean)."""

    def __init__(self, criteria: list[FocalLoss | RegressionLoss], device: torch.device) -> None:
        self.classify = isinstance(criteria[0], FocalLoss)
        if self.classify:
            self.alpha = torch.stack([c.alpha for c in criteria]).to(device)
            self.gamma = torch.tensor([[c.gamma] for c in criteria], device=device)
            self.focal = any(c.gamma for c in criteria)
        else:
            self.kinds = {kind: torch.tensor([[c.kind == kind] for c in criteria], device=device)
                          for kind in {c.kind for c in criteria}}
            self.delta = torch.tensor([[c.delta] for c in criteria], device=device)

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``output`` ``[K, b, ...]``, ``target`` ``[K, b]``: the K losses and the K batch weights."""
        if self.classify:
            logp = F.log_softmax(output.float(), dim=-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
            if self.focal:
                # FocalLoss's term, on the true class only (the only one nll_loss reads); gamma 0 gives 1.
                logp = (-torch.expm1(logp)).clamp(min=1e-6).pow(self.gamma) * logp
            weight = self.alpha.gather(1, target)
            return -(weight * logp).sum(1) / weight.sum(1), weight.double().sum(1)
        error = output.float().squeeze(-1) - target.float()
        per_example = None
        for kind, chosen in self.kinds.items():
            if kind == "mse":
                value = error * error
            elif kind == "l1":
                value = error.abs()
            else:
                size = error.abs()
                value = torch.where(size < self.delta, 0.5 * error * error, self.delta * (size - 0.5 * self.delta))
            per_example = value if per_example is None else torch.where(chosen, value, per_example)
        n = target.shape[1]
        return per_example.mean(1), target.new_full((target.shape[0],), n, dtype=torch.float64)


class _StackedOptimizer:
    """torch's single-tensor AdamW, Adam or SGD (momentum, Nesterov) stepping K members' rows at once,
    after clipping each member's gradient norm as ``clip_grad_norm_`` does."""

    def __init__(self, kind: str, members: list[_Member], weights: torch.Tensor, grads: torch.Tensor,
                 slots: list[_Slot]) -> None:
        self.kind, self.weights, self.grads, self.slots = kind, weights, grads, slots
        self.recipes = [m.recipe for m in members]
        norms = [r.max_grad_norm for r in self.recipes]
        self.max_norm = None if all(v is None for v in norms) else \
            self._column([float("inf") if v is None else v for v in norms]).squeeze(1)
        self.weight_decay = self._column([r.weight_decay for r in self.recipes])
        self.momentum = self._column([r.momentum for r in self.recipes])
        self.nesterov = self._column([r.nesterov for r in self.recipes], torch.bool)
        for member in members:
            member.settle()
        states = [[m.run.optimizer.state.get(p, {}) for p in _trainable(m.run.model)] for m in members]
        if kind == "sgd":
            self.uses_momentum = any(r.momentum for r in self.recipes)
            self.buffer = self._gather(states, "momentum_buffer") if self.uses_momentum else None
        else:
            self.step = self._column([float(s[0]["step"]) if s and s[0] else 0.0 for s in states], torch.float64)
            self.exp_avg = self._gather(states, "exp_avg")
            self.exp_avg_sq = self._gather(states, "exp_avg_sq")
        for row, member in enumerate(members):
            member.stacked = (self, row)

    def _column(self, values: list[float], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.tensor(values, dtype=dtype, device=self.weights.device).reshape(-1, 1)

    def set_rates(self, lrs: list[float]) -> None:
        """The epoch's learning rates, one per member (their schedules move them between epochs)."""
        self.lr64 = self._column(lrs, torch.float64)
        self.neg_lr = self._column([-lr for lr in lrs])
        self.decay = self._column([1 - lr * r.weight_decay for lr, r in zip(lrs, self.recipes)])

    def _gather(self, states: list[list[dict[str, torch.Tensor]]], key: str) -> torch.Tensor:
        out = torch.zeros_like(self.weights)
        for row, member in zip(out, states):
            for slot, state in zip(self.slots, member):
                if key in state:
                    row[slot.start:slot.stop] = state[key].reshape(-1)
        return out

    @torch.no_grad()
    def step_all(self) -> None:
        grad, weights = self.grads, self.weights
        if self.max_norm is not None:
            coef = (self.max_norm / (torch.linalg.vector_norm(grad, dim=1) + 1e-6)).clamp(max=1.0)
            grad.mul_(coef.unsqueeze(1))
        if self.kind == "sgd":
            grad = grad.add(weights * self.weight_decay)
            if self.uses_momentum:
                # A fresh buffer is zero: momentum * 0 + grad is torch's first-step clone of the gradient.
                self.buffer.mul_(self.momentum).add_(grad)
                grad = torch.where(self.nesterov, grad + self.momentum * self.buffer, self.buffer)
            weights.add_(grad * self.neg_lr)
            return
        beta1, beta2 = ADAM_BETAS
        self.step += 1
        if self.kind == "adamw":
            weights.mul_(self.decay)
        else:
            grad = grad.add(weights * self.weight_decay)
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step_size = (self.lr64 / (1 - beta1 ** self.step)).float()
        bias_correction2_sqrt = (1 - beta2 ** self.step).sqrt().float()
        denom = (self.exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(ADAM_EPS)
        weights.add_(self.exp_avg * -step_size / denom)

    def scatter(self, k: int, member: _Member) -> None:
        """Row ``k``'s optimizer state into ``member``'s own torch optimizer, in torch's layout."""
        optimizer = member.run.optimizer
        on_device = optimizer.defaults.get("fused") or optimizer.defaults.get("capturable")
        for slot, p in zip(self.slots, _trainable(member.run.model)):
            def part(stack: torch.Tensor) -> torch.Tensor:
                return stack[k, slot.start:slot.stop].reshape(slot.shape).clone()
            if self.kind != "sgd":
                step = torch.tensor(float(self.step[k]), dtype=torch.float32, device=p.device if on_device else "cpu")
                optimizer.state[p] = {"step": step, "exp_avg": part(self.exp_avg), "exp_avg_sq": part(self.exp_avg_sq)}
            elif member.recipe.momentum != 0:
                optimizer.state[p] = {"momentum_buffer": part(self.buffer)}


def _trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


class _Group:
    """The stack of a group while its members stay the same: their weights, gradients and optimizer state
    as ``[K, T]`` rows, and the model with its weighted leaves swapped for fused ones over views of them."""

    def __init__(self, members: list[_Member], slots: list[_Slot], device: torch.device) -> None:
        k, width = len(members), slots[-1].stop
        self.members, self.k = members, k
        self.weights = torch.empty(k, width, device=device)
        self.grads = torch.zeros(k, width, device=device)
        for row, member in zip(self.weights, members):
            for slot, p in zip(slots, member.run.model.parameters()):
                row[slot.start:slot.stop] = p.detach().reshape(-1)
        params: dict[str, nn.Parameter] = {}
        for slot in slots:
            params[slot.name] = nn.Parameter(self.weights[:, slot.start:slot.stop].view(k, *slot.shape))
            params[slot.name].grad = self.grads[:, slot.start:slot.stop].view(k, *slot.shape)
        self.slots = slots
        self.model = self._fuse(members, params)
        self.optimizer = _StackedOptimizer(members[0].recipe.optimizer, members, self.weights, self.grads, slots)
        self.loss = _StackedLoss([m.criterion for m in members], device)

    def _fuse(self, members: list[_Member], params: dict[str, nn.Parameter]) -> nn.Module:
        fused = copy.deepcopy(members[0].run.model)
        generators = [m.dropout for m in members]
        for name, module in list(fused.named_modules()):
            weight, bias = params.get(f"{name}.weight".lstrip(".")), params.get(f"{name}.bias".lstrip("."))
            if type(module) is nn.Linear:
                new: nn.Module = _FusedLinear(self.k, weight, bias)
            elif type(module) is nn.Conv1d:
                new = _FusedConv1d(self.k, module, weight, bias)
            elif type(module) is nn.Dropout:
                new = _FusedDropout([m.run.model.get_submodule(name).p for m in members], generators,
                                    self.weights.device)
            else:
                continue
            if not name:
                return new
            parent, _, child = name.rpartition(".")
            setattr(fused.get_submodule(parent), child, new)
        return fused

    def train(self, inputs: dict[str, torch.Tensor], labels: torch.Tensor, batch_size: int) -> list[float]:
        """One epoch of every member's batches (each member's own order); each member's training loss."""
        device, n, k = labels.device, labels.shape[0], self.k
        orders = torch.stack([torch.randperm(n, generator=m.run.generator) for m in self.members]).to(device)
        loss_sum = torch.zeros(k, device=device, dtype=torch.float64)
        weight_sum = torch.zeros(k, device=device, dtype=torch.float64)
        autocast = _autocast(device)
        self.model.train()
        for start in range(0, n, batch_size):
            idx = orders[:, start:start + batch_size]
            x = {name: v[idx.reshape(-1)] for name, v in inputs.items()}
            y = labels[idx]
            with autocast:
                output = self.model(**x)
            losses, weight = self.loss(output.reshape(k, idx.shape[1], *output.shape[1:]), y)
            self.grads.zero_()
            losses.sum().backward()
            self.optimizer.step_all()
            loss_sum += losses.detach().double() * weight
            weight_sum += weight
        return (loss_sum / weight_sum).tolist()

    @torch.no_grad()
    def outputs(self, inputs: dict[str, torch.Tensor], labels: torch.Tensor) -> list[torch.Tensor]:
        """Each member's outputs on the whole split, computed in :func:`~trainables.recipe.evaluate`'s
        batches (scored in one go: K members' scoring per batch cost more than the forward passes)."""
        self.model.eval()
        size, autocast = eval_batch_size(labels.device), _autocast(labels.device)
        blocks = []
        for start in range(0, labels.shape[0], size):
            x = {name: v[start:start + size] for name, v in inputs.items()}
            with autocast:
                output = self.model(**{name: v.repeat(self.k, *[1] * (v.dim() - 1)) for name, v in x.items()})
            blocks.append(output.float().reshape(self.k, -1, *output.shape[1:]))
        return list(torch.cat(blocks, dim=1))

    @torch.no_grad()
    def scatter_weights(self) -> None:
        """Each member's weights back into its own model (its optimizer state follows when asked for)."""
        for row, member in zip(self.weights, self.members):
            for slot, p in zip(self.slots, member.run.model.parameters()):
                p.copy_(row[slot.start:slot.stop].reshape(slot.shape))


class FusedTrainer:
    """Trains up to ``capacity`` members of one group (:func:`group_key`) on ``data`` as one, an epoch
    per :meth:`run_epoch`; each member reports as :func:`~trainables.recipe.train` would on its own.

    ``metric``/``mode`` choose each member's best epoch, as in :func:`~trainables.recipe.train`.
    """

    def __init__(self, data: Splits, device: torch.device | str, metric: str = "val_macro_f1", mode: str = "max",
                 capacity: int = 8) -> None:
        check_metric(metric, data)
        self.device = torch.device(device)
        if amp_dtype(self.device) is torch.float16:
            raise ValueError("this GPU trains in fp16 with loss scaling, which a fused group does not do: runs unfused")
        self.data, self.metric, self.mode, self.capacity = data, metric, mode, capacity
        self.train_x, self.train_y = to_device(data.train, self.device)
        self.val_x, self.val_y = to_device(data.val, self.device)
        self._members: dict[str, _Member] = {}
        self._slots: list[_Slot] | None = None
        self._key: tuple[int, str] | None = None
        self._group: _Group | None = None

    @property
    def members(self) -> list[str]:
        """The members that will train in the next epoch."""
        return list(self._members)

    def add(self, member: str, model_fn: Callable[[], nn.Module], recipe: Recipe,
            resume: dict[str, Any] | None = None) -> None:
        """Join at the next epoch boundary (``resume`` = a state from :func:`~trainables.recipe.train`'s
        or this trainer's snapshot). ``ValueError`` when the group is full, the name is taken, the model or
        recipe cannot be fused or does not match the group's, or ``resume`` is of a run that has ended."""
        if member in self._members:
            raise ValueError(f"member {member!r} is already in this group")
        if len(self._members) >= self.capacity:
            raise ValueError(f"the group is full ({self.capacity} members); remove one first")
        seed_everything(recipe.seed)
        model = model_fn().to(self.device)
        refusal = fusion_refusal(model, recipe, None)
        if refusal:
            raise ValueError(f"member {member!r}: {refusal}")
        slots = _layout(model)
        key = (recipe.batch_size, recipe.optimizer)
        if self._members and (slots != self._slots or key != self._key):
            raise ValueError(f"member {member!r} (batch size {key[0]}, {key[1]}) does not match the group's "
                             f"architecture, batch size {self._key[0]} and optimizer {self._key[1]}")
        cpu_rng = torch.get_rng_state()
        dropout = torch.Generator(self.device)
        if self.device.type == "cpu":
            dropout.set_state(cpu_rng)
        else:
            dropout.manual_seed(recipe.seed)
        run = RunState.start(model, recipe, self.device, self.mode)
        epoch = 0
        if resume:
            rng = run.restore(resume)
            epoch = resume["epoch"]
            if run.rule.stopped or epoch >= recipe.epochs:
                raise ValueError(f"member {member!r}: its state is of a run that ended at epoch {epoch}")
            if self.device.type == "cpu":
                dropout.set_state(rng)
            cpu_rng = rng
        self._slots, self._key = slots, key
        self._members[member] = _Member(member, recipe, run, make_criterion(self.data, recipe, self.device),
                                        dropout, cpu_rng, epoch)

    def remove(self, member: str) -> None:
        """Leave before the next epoch (a stopped trial); unknown names are ignored."""
        self._members.pop(member, None)

    def run_epoch(self) -> dict[str, EpochReport | Exception]:
        """One epoch of every member; per member its :class:`~trainables.recipe.EpochReport` (the metrics
        :func:`~trainables.recipe.train` reports, ``epoch_time_s`` being the member's share of the fused
        epoch; ``state()`` valid until the member's next epoch) or the exception that ended it
        (:class:`~trainables.recipe.NonFiniteLossError` for that member only). A member whose report is
        ``last`` (epochs done or stopped early) or that failed has left."""
        members = list(self._members.values())
        if not members:
            return {}
        started = time.perf_counter()
        if self._group is None or self._group.members != members:
            # Restacked only when members join or leave: a steady group keeps its stack between epochs.
            self._group = _Group(members, self._slots, self.device)
        group = self._group
        lrs = [m.run.lr for m in members]
        group.optimizer.set_rates(lrs)
        with warnings.catch_warnings():
            # The gradients are views of one [K, T] buffer, laid out as the weights' views are, on purpose.
            warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout contract")
            losses = group.train(self.train_x, self.train_y, members[0].recipe.batch_size)
        outputs = group.outputs(self.val_x, self.val_y)
        group.scatter_weights()
        seconds = (time.perf_counter() - started) / len(members)
        reports: dict[str, EpochReport | Exception] = {}
        for member, lr, loss, output in zip(members, lrs, losses, outputs):
            epoch = member.epoch + 1
            try:
                with warnings.catch_warnings():
                    # A member's own optimizer only carries its rate and state: the group stepped its weights.
                    warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()` before"))
                    member.run.end_training(epoch, lr, loss)
            except NonFiniteLossError as exc:
                reports[member.name] = exc
                self.remove(member.name)
                continue
            val = score_outputs([(self.val_y, output)], self.val_y, member.criterion, self.data)
            metrics, improved, last = member.run.close_epoch(epoch, lr, loss, val, member.recipe, self.metric,
                                                             seconds)
            member.epoch = epoch
            reports[member.name] = EpochReport(epoch=epoch, metrics=metrics, improved=improved, last=last,
                                               state=partial(_snapshot, member, epoch))
            if last:
                self.remove(member.name)
        return reports


def _snapshot(member: _Member, epoch: int) -> dict[str, Any]:
    if member.epoch != epoch:
        raise RuntimeError(f"member {member.name!r}: state() of epoch {epoch} asked for after epoch {member.epoch}")
    member.settle()
    return member.run.snapshot(epoch, member.torch_rng())
