"""GalSpecNet moved to a new instrument: a source checkpoint trained by spectune, then LoRA, full
fine-tuning, a new head only, or the same network from scratch (``finetune``).

The base is a folder written by ``spectune train --space galspecnet --save DIR`` (``make source``);
it must have been trained on sequences of the target's length, since GalSpecNet's first dense
layer is sized by it. LoRA adapts the four ``Conv1d`` layers (peft >= 0.15; their kernels are
plain k=3, no dilation, zero padding, which peft's conv LoRA copies faithfully) and/or the two
hidden ``Linear`` layers; the last ``Linear`` (the head) trains in full. The head keeps the source's
weights when the classes match, and starts fresh when they do not.
"""

from __future__ import annotations

from torch import nn

from results.best_file import DataOptions
from trainables.checkpoint import read_checkpoint
from trainables.data._base import InputSpec
from trainables.hparams import ConfigError
from trainables.models._base import register_model
from trainables.models._finetune import adapt, finetune_table
from trainables.models.spectra_cnn import DROPOUT, GalSpecNet
from trainables.pretrained import Base, BaseError, Pretrained, local_folder, sha256_file

HEAD = "classifier.6"
CONV = ("features.0", "features.3", "features.6", "features.9")
LINEAR = ("classifier.2", "classifier.4")
TARGETS = {"conv+linear": CONV + LINEAR, "conv": CONV, "linear": LINEAR}
SOURCE = "models/galspecnet-source"
MAKE_IT = ("Make it with `make source` (spectune train --space galspecnet --points 1024 --train-per-class 280 "
           f"--save {SOURCE}), or pass --base DIR naming a checkpoint folder written by `spectune train --save`.")


def load_source(source: str) -> Base:
    """A GalSpecNet checkpoint folder as a :class:`Base`, with its input length and classes."""
    folder = local_folder(source, ("model.pt", "config.json"), "base checkpoint", MAKE_IT)
    try:
        state, record = read_checkpoint(folder)
    except ValueError as exc:
        raise BaseError(f"base {exc.args[0]}") from None
    if record.get("model") != "galspecnet":
        raise BaseError(f"base checkpoint {source} holds a {record.get('model')!r} model; galspecnet_transfer starts "
                        f"from a galspecnet one. {MAKE_IT}")
    try:
        channels, points = record["spec"]["shapes"]["x"]
        classes = list(record["spec"]["classes"])
    except (KeyError, TypeError, ValueError):
        raise BaseError(f"base checkpoint {source}: config.json lacks spec.shapes.x and spec.classes; "
                        f"write it again with `spectune train --save`.") from None
    return Base(source=source, path=str(folder), sha256=sha256_file(folder / "model.pt"), state=state,
                meta={"channels": channels, "points": points, "classes": classes,
                      "data_fingerprint": DataOptions.from_record(record).fingerprint})


@register_model("galspecnet_transfer", inputs="sequence",
                hparams={**finetune_table(tuple(TARGETS)), **DROPOUT},
                pretrained=Pretrained(SOURCE, load_source, "a GalSpecNet checkpoint from `make source`"))
def galspecnet_transfer(spec: InputSpec, base: Base, finetune: str, dropout: float, lora_rank: int = 8,
                        lora_alpha_ratio: float = 1.0, lora_dropout: float = 0.0,
                        lora_targets: str = "conv+linear") -> nn.Module:
    channels, points = spec.shapes["x"]
    if (channels, points) != (base.meta["channels"], base.meta["points"]):
        raise ConfigError(f"the base {base.path} was trained on sequences of shape "
                          f"({base.meta['channels']}, {base.meta['points']}) and the data has ({channels}, {points}); "
                          f"GalSpecNet's dense layers are sized by the length. Scale the data to "
                          f"{base.meta['points']} points (--points) or train a source at {points} points.")
    model = GalSpecNet(spec.n_classes, points, dropout, channels)
    if finetune != "scratch":
        state = dict(base.state)
        if list(spec.classes) != base.meta["classes"]:
            state = {k: v for k, v in state.items() if not k.startswith(HEAD + ".")}
        loaded = model.load_state_dict(state, strict=False)
        if loaded.unexpected_keys or any(not k.startswith(HEAD + ".") for k in loaded.missing_keys):
            raise ConfigError(f"the base {base.path} does not fit GalSpecNet (missing {loaded.missing_keys[:3]}, "
                              f"unexpected {loaded.unexpected_keys[:3]}).")
    return adapt(model, finetune, head=[HEAD], targets=TARGETS[lora_targets], lora_rank=lora_rank,
                 lora_alpha_ratio=lora_alpha_ratio, lora_dropout=lora_dropout)
