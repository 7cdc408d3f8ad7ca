"""CPT data: read the corpus stage's datatrove JSONL shards, split by document id, tokenise and pack.

Packing concatenates documents with the tokenizer's EOS after each one and cuts the stream into blocks of exactly
`block_size` tokens, so no slot is padding. Training drops the final partial block (a standard choice: it would
need padding or a different shape); held-out sets keep it as a shorter last block so no held-out token is lost.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SHARD_PATTERNS = ("*.jsonl.gz", "*.jsonl")


def iter_documents(folder: str | Path) -> Iterator[dict[str, Any]]:
    """Documents of a datatrove JsonlWriter output folder (keys text, id, metadata), in a stable file order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"corpus folder {folder} does not exist")
    files = sorted({p for pattern in SHARD_PATTERNS for p in folder.rglob(pattern)})
    for path in files:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    doc = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: malformed JSON: {exc.msg}") from None
                if doc.get("text"):
                    yield doc


def is_heldout(doc: dict[str, Any], fraction: float) -> bool:
    """Deterministic split: a document is held out when the hash of its id falls below `fraction`.

    Hashing the id (not the position) keeps the split stable when shards are reordered or the corpus grows.
    """
    key = str(doc.get("id") or doc["text"])
    bucket = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64
    return bucket < fraction


@dataclass
class PackedBlocks:
    """Token blocks of one split. `blocks` is [n, block_size] int64; `tail` is a shorter final block or empty."""

    blocks: np.ndarray
    tail: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    docs: int = 0
    tokens_total: int = 0  # document tokens + EOS separators before cutting
    tokens_dropped: int = 0  # remainder discarded (training only)

    @property
    def tokens_in_blocks(self) -> int:
        return int(self.blocks.size + self.tail.size)

    def all_blocks(self, limit: int | None = None) -> list[np.ndarray]:
        rows = [row for row in self.blocks] + ([self.tail] if self.tail.size > 1 else [])
        return rows if limit is None else rows[:limit]

    @property
    def packing_efficiency(self) -> float:
        """Share of non-padding tokens in the full blocks: 1.0 by construction, reported to prove it."""
        return 1.0 if self.blocks.size else 0.0


def pack_token_lists(token_lists: Iterable[list[int]], eos_id: int, block_size: int,
                     keep_remainder: bool = False, max_tokens: int | None = None) -> PackedBlocks:
    """Concatenate documents, each followed by `eos_id`, and cut into blocks of exactly `block_size`.

    `max_tokens` stops reading once enough tokens for the wanted blocks are in (held-out sets are capped).
    """
    stream: list[int] = []
    docs = 0
    for ids in token_lists:
        stream.extend(ids)
        stream.append(eos_id)
        docs += 1
        if max_tokens is not None and len(stream) >= max_tokens:
            break
    total = len(stream)
    if max_tokens is not None:
        stream = stream[:max_tokens]
    n_full = len(stream) // block_size
    arr = np.asarray(stream, dtype=np.int64)
    blocks = arr[: n_full * block_size].reshape(n_full, block_size)
    rest = arr[n_full * block_size:]
    tail = rest if keep_remainder else np.zeros(0, dtype=np.int64)
    dropped = 0 if keep_remainder else int(rest.size)
    return PackedBlocks(blocks=blocks, tail=tail, docs=docs, tokens_total=total, tokens_dropped=dropped)


def tokenize_texts(tokenizer: Any, texts: Iterable[str], batch: int = 256) -> Iterator[list[int]]:
    """Token ids without special tokens (packing adds EOS itself), batched lazily for the fast tokenizer."""
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) == batch:
            yield from tokenizer(chunk, add_special_tokens=False)["input_ids"]
            chunk = []
    if chunk:
        yield from tokenizer(chunk, add_special_tokens=False)["input_ids"]


@dataclass
class CptData:
    train: PackedBlocks
    heldout: dict[str, PackedBlocks]

    def summary(self) -> dict[str, Any]:
        return {
            "train_docs": self.train.docs, "train_blocks": int(self.train.blocks.shape[0]),
            "train_tokens": int(self.train.blocks.size), "train_tokens_dropped": self.train.tokens_dropped,
            "packing_efficiency": self.train.packing_efficiency,
            "heldout_docs": {name: b.docs for name, b in self.heldout.items()},
        }


def build_cpt_data(cpt: Any, tokenizer: Any, medical_dir: Path, general_dir: Path | None) -> CptData:
    """Split medical docs into train / held-out by id hash, cap training docs, tokenise and pack every split."""
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token; packing needs one to separate documents")
    train_texts: list[str] = []
    heldout_texts: list[str] = []
    for doc in iter_documents(medical_dir):
        if is_heldout(doc, cpt.heldout_fraction):
            heldout_texts.append(doc["text"])
        elif cpt.max_train_docs is None or len(train_texts) < cpt.max_train_docs:
            train_texts.append(doc["text"])
    eos, size = tokenizer.eos_token_id, cpt.block_size
    eval_cap = cpt.eval_max_blocks * size
    train = pack_token_lists(tokenize_texts(tokenizer, train_texts), eos, size)
    if train.blocks.shape[0] == 0:
        raise ValueError(
            f"{medical_dir}: {train.tokens_total} training tokens from {len(train_texts)} documents do not fill "
            f"one block of {size} tokens; lower cpt.block_size or provide more medical documents")
    heldout = {"medical": pack_token_lists(tokenize_texts(tokenizer, heldout_texts), eos, size,
                                           keep_remainder=True, max_tokens=eval_cap)}
    if general_dir is not None:
        general_texts = (d["text"] for d in iter_documents(general_dir))
        heldout["general"] = pack_token_lists(tokenize_texts(tokenizer, general_texts), eos, size,
                                              keep_remainder=True, max_tokens=eval_cap)
    return CptData(train=train, heldout=heldout)


class BlockDataset:
    """A map-style dataset of packed blocks for the Trainer: labels equal inputs (the model shifts them)."""

    def __init__(self, blocks: np.ndarray) -> None:
        self.blocks = blocks

    def __len__(self) -> int:
        return int(self.blocks.shape[0])

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        ids = torch.from_numpy(self.blocks[i].copy())
        return {"input_ids": ids, "labels": ids.clone()}
