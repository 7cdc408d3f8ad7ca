"""Held-out loss and perplexity: token-weighted mean cross-entropy over packed blocks, dropout off."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from definemed.train.data import PackedBlocks


def heldout_loss(model: Any, packed: PackedBlocks, max_blocks: int, batch_size: int) -> dict[str, Any]:
    """Mean next-token cross-entropy over at most `max_blocks` blocks, weighted by predicted tokens.

    Averaging per block would overweight a short final block; summing token losses and dividing by the token
    count gives the corpus-level figure that perplexity is defined on.
    """
    import torch

    rows = packed.all_blocks(limit=max_blocks)
    if not rows:
        return {"loss": None, "ppl": None, "blocks": 0, "tokens": 0}
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for batch in _batches(rows, batch_size):
                ids = torch.from_numpy(np.stack(batch)).to(device)
                logits = model(input_ids=ids).logits.float()
                loss = torch.nn.functional.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum")
                total += float(loss)
                count += int(ids[:, 1:].numel())
    finally:
        model.train(was_training)
    mean = total / count
    return {"loss": round(mean, 6), "ppl": round(math.exp(min(mean, 50.0)), 4), "blocks": len(rows),
            "tokens": count}


def _batches(rows: list[np.ndarray], batch_size: int) -> list[list[np.ndarray]]:
    """Group rows of equal length (the shorter tail block gets its own batch) so no padding is needed."""
    out: list[list[np.ndarray]] = []
    for row in rows:
        if out and len(out[-1]) < batch_size and len(out[-1][0]) == len(row):
            out[-1].append(row)
        else:
            out.append([row])
    return out


def compare(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Merge before/after results per held-out set into the metrics layout the report reads."""
    out = {}
    for name, b in before.items():
        a = after.get(name, {})
        out[name] = {"loss_before": b["loss"], "loss_after": a.get("loss"), "ppl_before": b["ppl"],
                     "ppl_after": a.get("ppl"), "blocks": b["blocks"], "tokens": b["tokens"]}
    return out
