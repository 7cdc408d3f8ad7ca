"""Metrics of the cpt stage (manifest.json `metrics`): what the report and the summary read as attributes.

Also the content of the stage's own `train_result.json`, which an interrupted attempt that had finished training
reads back through this model.
"""

from __future__ import annotations

from typing import Literal

from definemed.stage import Metrics


class HeldoutMetrics(Metrics):
    """Loss and perplexity of one held-out set (medical, general) before and after training. None: the set had
    no full block, so it was not evaluated."""

    loss_before: float | None
    loss_after: float | None
    ppl_before: float | None
    ppl_after: float | None
    blocks: int
    tokens: int  # predicted tokens (labels after the one-step shift that are not ignored)
    docs: int


class CptMetrics(Metrics):
    heldout: dict[str, HeldoutMetrics]  # by set name: "medical", and "general" when the corpus has one
    steps: int  # optimizer steps
    tokens_per_step: int  # block_size x batch x accumulation x world size
    train_tokens: int
    train_blocks: int  # domain and replay blocks seen
    final_train_loss: float | None  # the last logged training loss (None: nothing logged)
    domain_blocks_per_pass: int
    train_docs: int  # domain documents in one pass (held-out ones excluded)
    domain_tokens_per_pass: int
    epochs_trained: float  # passes over the domain data
    replay_ratio: float
    replay_blocks: int
    replay_share: float
    # Every slot of a packed block holds a document token or an EOS separator: 1.0 by construction.
    packing_efficiency: float
    packing_mode: Literal["position_ids", "eos"]  # what `packing.mode: auto` resolved to
    attn_implementation: str
    init_from: str  # "" unless re-warming a trained checkpoint
    model_source: str  # the local folder the model id resolved to
    seconds: float
