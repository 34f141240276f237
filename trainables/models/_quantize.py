"""QLoRA's frozen base: a model's ``nn.Linear`` layers replaced by bitsandbytes' quantised ones, and
the memory the base then holds.

``nf4`` and ``fp4`` store each weight in 4 bits (``Linear4bit``, blocks of 64 with their own scale),
``int8`` in 8 bits (``Linear8bitLt``, one scale per row); all three run forward and backward on CPU
with bitsandbytes 0.50.2. The head is left in full precision (it trains in full), and so is every
layer that is not an ``nn.Linear`` (embeddings, layer norms, convolutions). Quantising the same
weights gives the same bytes every time, so a checkpoint keeps only the adapters and the head, and
a resumed run re-quantises the base from the package weights.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Sequence

import torch
from torch import nn

from trainables.checkpoint import frozen_keys
from trainables.hparams import ConfigError

QUANTIZE = ("none", "nf4", "fp4", "int8")
FIX = "pip install 'bitsandbytes==0.50.2' (`make install` does), or set quantize to 'none'."


def quiet_bitsandbytes() -> None:
    """Before bitsandbytes is first imported (peft imports it whenever it is installed): on a CPU with
    AVX512-BF16 it warns that it cannot fetch an inference kernel from the Hugging Face hub, for the
    path :func:`quantize_linears` switches off, so the advice to install one would mislead."""
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


def _bnb() -> ModuleType:
    quiet_bitsandbytes()
    try:
        import bitsandbytes
    except ImportError:
        raise ConfigError(f"quantize needs the bitsandbytes package: {FIX}") from None
    return bitsandbytes


def _quantized(linear: nn.Linear, mode: str, device: torch.device) -> nn.Module:
    """``linear``'s weights in a bitsandbytes layer of ``mode``, quantised on ``device``."""
    bnb = _bnb().nn
    bias = linear.bias is not None
    if mode == "int8":
        layer = bnb.Linear8bitLt(linear.in_features, linear.out_features, bias, has_fp16_weights=False)
        layer.weight = bnb.Int8Params(linear.weight.data, requires_grad=False, has_fp16_weights=False)
    else:
        layer = bnb.Linear4bit(linear.in_features, linear.out_features, bias, compute_dtype=torch.float32,
                               quant_type=mode)
        layer.weight = bnb.Params4bit(linear.weight.data, requires_grad=False, quant_type=mode, module=layer)
        # Where the CPU has AVX512-BF16, bitsandbytes repacks the weight for inference on the first
        # no-grad forward; a repacked weight no longer trains or saves like the others (PAIRS.md).
        layer.support_avx512bf16_for_cpu = False
    if bias:
        layer.bias = nn.Parameter(linear.bias.data.clone(), requires_grad=False)
    return layer.to(device)     # bitsandbytes quantises when a layer moves to a device


def quantize_linears(model: nn.Module, mode: str, skip: Sequence[str], device: str = "cpu") -> nn.Module:
    """``model`` with every ``nn.Linear`` outside the modules named in ``skip`` quantised to ``mode``
    (in place; the layers are frozen). ``none`` leaves the model as it is."""
    if mode not in QUANTIZE:
        raise ConfigError(f"quantize must be one of {list(QUANTIZE)}; got {mode!r}.")
    if mode == "none":
        return model
    targets = [name for name, m in model.named_modules() if type(m) is nn.Linear
               and not any(name == s or name.startswith(s + ".") for s in skip)]
    if not targets:
        raise ConfigError(f"quantize={mode!r}: the model has no nn.Linear layer outside {list(skip)} to quantise; "
                          "set quantize to 'none'.")
    for name in targets:
        parent, _, attr = name.rpartition(".")
        owner = model.get_submodule(parent)
        setattr(owner, attr, _quantized(getattr(owner, attr), mode, torch.device(device)))
    return model


def unquantised_numel(model: nn.Module) -> dict[str, int]:
    """Every parameter's element count as it was before quantisation (a 4-bit weight stores two
    values a byte, so its own ``numel`` is half of it), by name."""
    counts = {}
    for name, p in model.named_parameters():
        owner = model.get_submodule(name.rpartition(".")[0])
        quantised = type(owner).__module__.startswith("bitsandbytes") and name.endswith(".weight")
        counts[name] = owner.in_features * owner.out_features if quantised else p.numel()
    return counts


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def base_bytes(model: nn.Module) -> dict[str, float]:
    """The frozen base's memory as held (``base_bytes``: frozen parameters with a quantised layer's
    scales, and buffers) and as it was before quantisation (``base_bytes_unquantised``: every frozen
    parameter at float32, and buffers). Equal without quantisation; zero when nothing is frozen."""
    state = model.state_dict()
    frozen = frozen_keys(model, state)
    if not frozen:
        return {"base_bytes": 0.0, "base_bytes_unquantised": 0.0}
    buffers = sum(_nbytes(b) for b in model.buffers())
    held = buffers + sum(_nbytes(state[k]) for k in frozen)
    counts = unquantised_numel(model)
    unquantised = buffers + sum(4 * counts[name] for name, p in model.named_parameters() if not p.requires_grad)
    return {"base_bytes": float(held), "base_bytes_unquantised": float(unquantised)}
