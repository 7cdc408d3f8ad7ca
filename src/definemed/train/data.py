"""CPT documents: the corpus stage's datatrove JSONL shards, the id-hash train / held-out split, and held-out sets.

Every source (medical, general, replay) is split the same way: a document is held out when the hash of its id
falls below `heldout_fraction`. Held-out documents are only ever evaluated, never trained on, so the general
held-out set stays disjoint from replay even when replay reads the very same folder ("corpus:general"), and it
does not change when replay is switched on or off.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# One reader and one split rule for every stage (definemed.documents); CPT's split is unsalted (seed=None), see there
# why it differs from the corpus classifier's. Re-exported: the train package and its tests import them from here.
from definemed.documents import SHARD_PATTERNS, is_heldout, iter_documents, shard_files

__all__ = [
    "SHARD_PATTERNS",
    "BlockList",
    "HeldoutSet",
    "build_heldout",
    "is_heldout",
    "iter_documents",
    "shard_files",
    "tokenize_texts",
]


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
class HeldoutSet:
    """Full packed blocks of one held-out split (a partial last block is dropped so every batch stacks)."""

    name: str
    blocks: list[dict[str, np.ndarray]] = field(default_factory=list)
    docs: int = 0

    @property
    def tokens(self) -> int:
        """Predicted tokens: labels after the model's one-step shift that are not ignored."""
        return int(sum((b["labels"][1:] != -100).sum() for b in self.blocks))


def build_heldout(name: str, folder: Path, cpt: Any, tokenizer: Any, mode: str) -> HeldoutSet:
    """Pack the held-out documents of `folder` into at most `cpt.eval_max_blocks` blocks."""
    from definemed.train.packing import pack_documents

    texts = (d["text"] for d in iter_documents(folder) if is_heldout(d, cpt.heldout_fraction))
    blocks, packer = pack_documents(
        tokenize_texts(tokenizer, texts), cpt.block_size, tokenizer.eos_token_id, mode, max_blocks=cpt.eval_max_blocks
    )
    return HeldoutSet(name=name, blocks=blocks, docs=packer.docs)


class BlockList:
    """A map-style dataset over a list of packed blocks (held-out sets for Trainer evaluation)."""

    def __init__(self, blocks: list[dict[str, np.ndarray]]) -> None:
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return self.blocks[i]
