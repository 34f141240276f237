"""Fine-tuning a pretrained model four ways, the knobs that choose between them, and the size of each.

``lora`` (peft's LoRA adapters on the named layers, the head trained in full through
``modules_to_save``), ``full`` (every weight trains), ``head`` (the base frozen, only the head
trains) and ``scratch`` (the same architecture from random weights, the baseline that says whether
the base helps at all). The LoRA scale is tied to the rank: ``lora_alpha = lora_alpha_ratio * lora_rank``,
so the update's scale ``alpha / r`` is ``lora_alpha_ratio`` whatever the rank (with a fixed alpha, a
rank sweep would also sweep the step size, r = 64 with alpha 8 being a 0.125x damping).
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from trainables.hparams import Choice, ConfigError, Float, Int, Table
from trainables.models._quantize import (QUANTIZE, base_bytes, quantize_linears, quiet_bitsandbytes,
                                         unquantised_numel)

FINETUNE = ("lora", "full", "head", "scratch")


def finetune_table(targets: Sequence[str], default: str = "lora", quantize: bool = False) -> Table:
    """The knobs of a fine-tunable model: the method, and LoRA's own (which apply only to ``lora``).
    ``targets`` names the model's choices of layers to adapt, the first being the default;
    ``quantize`` adds QLoRA's knob, for a model whose base is made of ``nn.Linear`` layers."""
    lora = ("finetune", ("lora",))
    qlora = {"quantize": Choice("none", QUANTIZE, when=lora,
                                help="the frozen base's Linear layers in 4 bits (nf4, fp4) or 8 bits (int8): QLoRA")}
    return {
        "finetune": Choice(default, FINETUNE, help="lora, full fine-tuning, head only, or from scratch"),
        "lora_rank": Int(8, 1, 1024, when=lora, help="LoRA rank r"),
        "lora_alpha_ratio": Float(1.0, 0.0, 64.0, closed="right", when=lora, help="lora_alpha / r"),
        "lora_dropout": Float(0.0, 0.0, 1.0, closed="left", when=lora, help="dropout on the adapters' input"),
        "lora_targets": Choice(targets[0], tuple(targets), when=lora, help="which layers get adapters"),
        **(qlora if quantize else {}),
    }


def adapt(model: nn.Module, finetune: str, head: Sequence[str], targets: Sequence[str], lora_rank: int = 8,
          lora_alpha_ratio: float = 1.0, lora_dropout: float = 0.0, quantize: str = "none") -> nn.Module:
    """``model`` (already holding the base weights, or random ones for ``scratch``) made ready for
    ``finetune``: LoRA adapters on ``targets`` with the ``head`` modules trained in full (over a base
    quantised to ``quantize`` outside the head: QLoRA), only the head trainable, or everything trainable."""
    if finetune in ("full", "scratch"):
        return model
    if finetune == "head":
        model.requires_grad_(False)
        for name in head:
            model.get_submodule(name).requires_grad_(True)
        return model
    if finetune != "lora":
        raise ConfigError(f"finetune must be one of {list(FINETUNE)}; got {finetune!r}.")
    quiet_bitsandbytes()
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ConfigError("finetune='lora' needs the peft package: pip install 'peft>=0.15' (or `make install`, "
                          "which installs it).") from None
    quantize_linears(model, quantize, skip=head)
    config = LoraConfig(r=lora_rank, lora_alpha=lora_alpha_ratio * lora_rank, lora_dropout=lora_dropout,
                        target_modules=list(targets), modules_to_save=list(head))
    return get_peft_model(model, config)


def parameter_counts(model: nn.Module) -> dict[str, float]:
    """Trainable and total parameters (a PEFT model's frozen originals of ``modules_to_save`` count in
    the total once, as the base's) and the frozen base's memory in bytes, as held and unquantised
    (:func:`~trainables.models._quantize.base_bytes`); what the search logs as ``trainable_params``,
    ``base_bytes`` and ``base_bytes_unquantised``. A quantised weight counts as many parameters as before."""
    counts = unquantised_numel(model)
    trainable = sum(counts[name] for name, p in model.named_parameters() if p.requires_grad)
    total = sum(counts[name] for name, p in model.named_parameters()
                if not (p.requires_grad and ".modules_to_save." in name))
    return {"trainable_params": float(trainable), "total_params": float(total),
            "trainable_fraction": trainable / max(total, 1), **base_bytes(model)}
