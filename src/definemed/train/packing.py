"""Packing documents into fixed blocks, with or without attention crossing document boundaries.

Every document is followed by EOS and the token stream is cut into blocks of exactly `block_size`, so a block has
no padding. In `position_ids` mode each block also carries position ids that restart at 0 at every document (and
at the start of every block, where a split document continues): transformers 5.x turns restarting position ids
into a block-diagonal causal mask for eager / sdpa (masking_utils.find_packed_sequence_indices) and into varlen
calls for flash_attention_2 (prepare_fa_kwargs_from_position_ids, batch flattened to one row). The first token of
each document gets label -100: nothing inside its own document predicts it. In `eos` mode attention is plain
causal over the block (the usual GPT-style packing) and every token is a target.

Isolation holds only without a KV cache: with `use_cache` on, transformers skips packed-sequence detection, so
training sets `model.config.use_cache = False`.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

logger = logging.getLogger("definemed")

IGNORE_INDEX = -100
# Attention paths whose mask (or varlen kernel) honours restarting position ids in transformers 5.x.
ISOLATING_ATTENTION = {"eager", "sdpa", "flash_attention_2", "flex_attention"}


class BlockPacker:
    """Accumulates token lists and emits full blocks as dicts of int64 arrays (input_ids, labels[, position_ids]).

    The packer keeps its remainder between calls, so a stream of documents is packed without dropping anything
    but the final partial block.
    """

    def __init__(self, block_size: int, eos_id: int, mode: str) -> None:
        if mode not in ("position_ids", "eos"):
            raise ValueError(f"packing mode must be 'position_ids' or 'eos' once resolved, got {mode!r}")
        self.block_size, self.eos_id, self.mode = block_size, eos_id, mode
        self._ids: list[int] = []
        self._pos: list[int] = []
        self.docs = 0
        self.tokens = 0  # document tokens + EOS separators taken in

    def add(self, ids: list[int]) -> Iterator[dict[str, np.ndarray]]:
        """Append one document (+ EOS) and yield every block that is now full."""
        doc = [*ids, self.eos_id]
        self._ids.extend(doc)
        self._pos.extend(range(len(doc)))
        self.docs += 1
        self.tokens += len(doc)
        while len(self._ids) >= self.block_size:
            ids_block, self._ids = self._ids[: self.block_size], self._ids[self.block_size :]
            pos_block, self._pos = self._pos[: self.block_size], self._pos[self.block_size :]
            # The continuation of a split document restarts at position 0: every row then starts a sequence,
            # which the flattened flash-attention path needs to find row boundaries.
            if self._pos and self._pos[0] != 0:
                start = self._pos[0]
                cut = next((i for i, p in enumerate(self._pos) if p == 0), len(self._pos))
                self._pos[:cut] = [p - start for p in self._pos[:cut]]
            yield self._block(ids_block, pos_block)

    def _block(self, ids: list[int], pos: list[int]) -> dict[str, np.ndarray]:
        input_ids = np.asarray(ids, dtype=np.int64)
        labels = input_ids.copy()
        if self.mode == "eos":
            return {"input_ids": input_ids, "labels": labels}
        position_ids = np.asarray(pos, dtype=np.int64)
        labels[position_ids == 0] = IGNORE_INDEX
        return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}


def pack_documents(
    token_lists: Any, block_size: int, eos_id: int, mode: str, max_blocks: int | None = None
) -> tuple[list[dict[str, np.ndarray]], BlockPacker]:
    """Pack an iterable of token lists into full blocks (the partial remainder is dropped), at most `max_blocks`."""
    packer = BlockPacker(block_size, eos_id, mode)
    blocks: list[dict[str, np.ndarray]] = []
    for ids in token_lists:
        blocks.extend(packer.add(ids))
        if max_blocks is not None and len(blocks) >= max_blocks:
            return blocks[:max_blocks], packer
    return blocks, packer


class PackedCollator:
    """Stacks packed blocks into a batch. `flatten=True` concatenates the batch into one row ([1, B*L]): the
    flash-attention varlen path only recognises packed sequences in a batch of one (transformers'
    DataCollatorWithFlattening does the same for unpacked examples)."""

    def __init__(self, flatten: bool = False) -> None:
        self.flatten = flatten

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch = {key: torch.as_tensor(np.stack([np.asarray(f[key]) for f in features])) for key in features[0]}
        if self.flatten:
            batch = {key: value.reshape(1, -1) for key, value in batch.items()}
        return batch


def resolve_attn_implementation(setting: str) -> str:
    """`auto`: flash_attention_2 when the flash-attn package is installed and CUDA is present, else sdpa."""
    if setting != "auto":
        if setting == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
            raise ImportError(
                "cpt.attn_implementation=flash_attention_2 needs the flash-attn package "
                "(pip install flash-attn --no-build-isolation) on a CUDA machine"
            )
        return setting
    import torch

    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def supports_isolation(model: Any) -> bool:
    """True when the model's attention honours restarting position ids: a supported attention implementation
    and a modeling module built on transformers' masking utilities (create_causal_mask)."""
    impl = getattr(model.config, "_attn_implementation", None)
    module = sys.modules.get(type(model).__module__)
    return impl in ISOLATING_ATTENTION and module is not None and hasattr(module, "create_causal_mask")


def resolve_packing_mode(setting: str, model: Any) -> str:
    """The packing mode that will run: `auto` picks position_ids where supported; an explicit position_ids on a
    model that cannot isolate documents is an error rather than silent cross-document attention."""
    isolating = supports_isolation(model)
    if setting == "eos":
        return "eos"
    if setting == "position_ids" and not isolating:
        raise ValueError(
            f"cpt.packing.mode=position_ids: {type(model).__name__} with attention "
            f"{getattr(model.config, '_attn_implementation', None)!r} does not isolate packed "
            "documents; use mode eos or auto"
        )
    mode = "position_ids" if isolating else "eos"
    if setting == "auto" and mode == "eos":
        logger.warning(
            "[cpt] %s cannot isolate packed documents: falling back to EOS-separated packing", type(model).__name__
        )
    return mode
