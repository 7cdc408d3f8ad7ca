"""Held-out loss and perplexity on the medical and general sets, through the Trainer's evaluation loop.

Evaluating through the Trainer (not a hand-written forward loop) places the model on the right device and works
unchanged under FSDP / DeepSpeed, where only the wrapped model can run a forward pass. The loss of a set is the
Trainer's: the mean over its full blocks of each block's mean next-token cross-entropy. Blocks have equal length,
so this equals the token-weighted corpus loss up to the few document-start tokens that position-id packing
leaves unscored.
"""

from __future__ import annotations

import logging
from typing import Any

from definemed.train.data import HeldoutSet
from definemed.train.monitor import perplexity

logger = logging.getLogger("definemed")


def evaluate_sets(trainer: Any, sets: dict[str, HeldoutSet], reuse_last: bool = False) -> dict[str, dict[str, Any]]:
    """Loss, perplexity, blocks and predicted tokens per held-out set (sets without a block get None).

    `reuse_last`: take the figures of an evaluation the Trainer already ran at the current step (eval_steps
    dividing max_steps) instead of evaluating the same weights again.
    """
    results: dict[str, dict[str, Any]] = {}
    wanted = {f"eval_{name}_loss" for name, s in sets.items() if s.blocks}
    metrics = _logged_at_current_step(trainer, wanted) if reuse_last else {}
    if wanted and not metrics:
        metrics = trainer.evaluate()
    for name, heldout in sets.items():
        loss = metrics.get(f"eval_{name}_loss")
        loss = None if loss is None else round(float(loss), 6)
        results[name] = {
            "loss": loss,
            "ppl": perplexity(loss),
            "blocks": len(heldout.blocks),
            "tokens": heldout.tokens,
            "docs": heldout.docs,
        }
    return results


def _logged_at_current_step(trainer: Any, keys: set[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for row in trainer.state.log_history:
        if row.get("step") == trainer.state.global_step:
            found.update({k: v for k, v in row.items() if k in keys})
    return found if keys and keys <= set(found) else {}


def as_log_row(results: dict[str, dict[str, Any]], step: int) -> dict[str, Any]:
    """A metrics.jsonl row in the Trainer's eval layout (eval_<set>_loss / _ppl) for a step."""
    row: dict[str, Any] = {"step": step}
    for name, r in results.items():
        row[f"eval_{name}_loss"], row[f"eval_{name}_ppl"] = r["loss"], r["ppl"]
    return row


def compare(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Merge before/after results per held-out set into the metrics layout the report reads."""
    out = {}
    for name, b in before.items():
        a = after.get(name, {})
        out[name] = {
            "loss_before": b["loss"],
            "loss_after": a.get("loss"),
            "ppl_before": b["ppl"],
            "ppl_after": a.get("ppl"),
            "blocks": b["blocks"],
            "tokens": b["tokens"],
            "docs": b["docs"],
        }
    return out
