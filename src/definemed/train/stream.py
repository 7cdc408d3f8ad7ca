"""Streaming CPT training data: shards are read, tokenised and packed on the fly, then mixed with replay data.

Nothing is held in memory but a shuffle buffer of blocks, so the corpus may be larger than RAM. The stream is a
pure function of (config, seed): shard order and block shuffling use generators seeded by (seed, source, pass),
and the domain/replay choice per block uses its own generator. It never ends (each source restarts with a new
pass), so the Trainer sees one endless epoch of `max_steps` steps and, on resume, skips exactly the batches
already trained (accelerate's skip_first_batches re-reads and discards them), giving the same batches as an
uninterrupted run.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from definemed.train.data import iter_documents, shard_files, tokenize_texts
from definemed.train.packing import BlockPacker

try:  # torch is a hard dependency of training, but this module must stay importable for docs and planning
    from torch.utils.data import IterableDataset as _Base
except ImportError:  # pragma: no cover
    _Base = object  # type: ignore[assignment,misc]

DOMAIN, REPLAY = 0, 1


@dataclass
class TextSource:
    """One stream of training documents: shard folders plus a filter (e.g. "not in the held-out split")."""

    name: str
    folders: list[Path]
    keep: Callable[[dict[str, Any]], bool]
    max_docs: int | None = None

    def documents(self, rng: np.random.Generator | None) -> Iterator[dict[str, Any]]:
        """Documents of one pass; shard order permuted by `rng` (None: stable order, used with max_docs)."""
        files = [f for folder in self.folders for f in shard_files(folder)]
        if rng is not None and self.max_docs is None:
            files = [files[i] for i in rng.permutation(len(files))]
        kept = 0
        for doc in iter_documents(files):
            if not self.keep(doc):
                continue
            yield doc
            kept += 1
            if self.max_docs is not None and kept >= self.max_docs:
                return


def mixture_choices(seed: int, ratio: float, n: int) -> np.ndarray:
    """Which of the first `n` blocks come from replay (True): the exact sequence CptStream draws."""
    if ratio <= 0:
        return np.zeros(n, dtype=bool)
    return np.random.default_rng([seed, 7919]).random(n) < ratio


class CptStream(_Base):  # type: ignore[misc,valid-type]
    """An endless IterableDataset of packed blocks: domain blocks, and replay blocks with probability `ratio`."""

    def __init__(
        self,
        domain: TextSource,
        tokenizer: Any,
        block_size: int,
        mode: str,
        seed: int,
        replay: TextSource | None = None,
        ratio: float = 0.0,
        shuffle_buffer: int = 1024,
    ) -> None:
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no EOS token; packing needs one to separate documents")
        if ratio > 0 and replay is None:
            raise ValueError("a replay ratio needs a replay source")
        self.domain, self.replay, self.ratio = domain, replay, ratio
        self.tokenizer, self.block_size, self.mode = tokenizer, block_size, mode
        self.seed, self.shuffle_buffer = seed, shuffle_buffer

    def source_blocks(self, source: TextSource, source_id: int) -> Iterator[dict[str, np.ndarray]]:
        """Endless shuffled blocks of one source; pass p reads the shards in a (seed, source, p) order."""
        packer = BlockPacker(self.block_size, self.tokenizer.eos_token_id, self.mode)
        for p in itertools.count():
            before = packer.tokens
            texts = (d["text"] for d in source.documents(np.random.default_rng([self.seed, source_id, p])))
            for ids in tokenize_texts(self.tokenizer, texts):
                yield from packer.add(ids)
            if packer.tokens == before:
                raise ValueError(f"training source {source.name!r} has no documents ({source.folders})")

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        domain = _shuffled(
            self.source_blocks(self.domain, DOMAIN),
            self.shuffle_buffer,
            np.random.default_rng([self.seed, DOMAIN, 101]),
        )
        if self.replay is None or self.ratio <= 0:
            yield from domain
            return
        replay = _shuffled(
            self.source_blocks(self.replay, REPLAY),
            self.shuffle_buffer,
            np.random.default_rng([self.seed, REPLAY, 101]),
        )
        chooser = np.random.default_rng([self.seed, 7919])
        while True:
            # One draw per block, in the same order as mixture_choices, so metrics can recount it exactly.
            yield next(replay) if chooser.random() < self.ratio else next(domain)

    def count_domain_blocks(self) -> tuple[int, int, int]:
        """(blocks, tokens, docs) of one pass over the domain source, for epoch-based step counts."""
        packer = BlockPacker(self.block_size, self.tokenizer.eos_token_id, self.mode)
        blocks = 0
        for ids in tokenize_texts(self.tokenizer, (d["text"] for d in self.domain.documents(None))):
            blocks += sum(1 for _ in packer.add(ids))
        return blocks, packer.tokens, packer.docs


def _shuffled(
    blocks: Iterator[dict[str, np.ndarray]], size: int, rng: np.random.Generator
) -> Iterator[dict[str, np.ndarray]]:
    """A shuffle buffer: fill `size` blocks, then emit a random one and put the next block in its slot."""
    buffer: list[dict[str, np.ndarray]] = []
    for block in blocks:
        if len(buffer) < size:
            buffer.append(block)
            continue
        i = int(rng.integers(len(buffer)))
        yield buffer[i]
        buffer[i] = block
    # Only reached when the source is finite (it is not in training); drain in random order.
    for i in rng.permutation(len(buffer)):
        yield buffer[i]
