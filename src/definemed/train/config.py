"""Config schema of the cpt stage (continual pre-training)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from definemed.schema import Strict


# ---------------------------------------------------------------------------------------------------- cpt
class PackingConfig(Strict):
    """How documents share a packed block. `position_ids`: positions restart at every document, so attention
    never crosses a document boundary (transformers builds a block-diagonal mask for eager/sdpa and varlen
    calls for flash_attention_2). `eos`: plain causal attention over the block, documents only separated by
    EOS. `auto`: position_ids where the model supports it, else eos (the stage records which ran)."""

    mode: Literal["auto", "position_ids", "eos"] = "auto"


class ReplayConfig(Strict):
    """Replay of general text to limit forgetting: `ratio` is the share of training blocks drawn from
    `sources` (folders of JSONL(.gz) shards, or "corpus:general" for the corpus stage's general output).
    Documents in the general held-out split (by id hash) are never replayed."""

    ratio: float = Field(0.0, ge=0, lt=1)
    sources: list[str] = []

    @model_validator(mode="after")
    def _ratio_needs_sources(self) -> ReplayConfig:
        if self.ratio > 0 and not self.sources:
            raise ValueError("replay.ratio > 0 needs at least one entry in replay.sources")
        if self.sources and self.ratio == 0:
            raise ValueError("replay.sources is set but replay.ratio is 0: set the ratio or drop the sources")
        return self


class CptConfig(Strict):
    model: str = "instruct"
    init_from: Path | None = Field(
        None,
        description="start from these weights (a trained checkpoint) with a fresh optimizer and warm-up: re-warming",
    )
    block_size: int = Field(512, ge=16)
    per_device_batch_size: int = Field(4, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    learning_rate: float = Field(2e-5, gt=0)
    lr_scheduler: Literal["linear", "cosine", "wsd", "constant_with_warmup"] = "linear"
    warmup_steps: int = Field(0, ge=0)
    decay_fraction: float = Field(0.2, gt=0, le=1, description="wsd: share of steps in the final decay")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="final learning rate / peak (linear, cosine, wsd)")
    max_steps: int = Field(-1, description="-1: train `epochs` epochs")
    epochs: float = Field(1.0, gt=0, le=10_000)
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    heldout_fraction: float = Field(0.1, gt=0, lt=1)
    eval_max_blocks: int = Field(64, ge=1)
    eval_steps: int | None = Field(None, ge=1, description="held-out loss every N steps (None: before/after)")
    bf16: bool | Literal["auto"] = "auto"
    gradient_checkpointing: bool = False
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = "auto"
    packing: PackingConfig = PackingConfig()
    replay: ReplayConfig = ReplayConfig()
    shuffle_buffer: int = Field(2048, ge=1, description="blocks held in the streaming shuffle buffer")
    logging_steps: int = Field(10, ge=1)
    save_steps: int = Field(200, ge=1, description="checkpoint every N optimizer steps (resume after a crash)")
    keep_checkpoints: int = Field(2, ge=1, description="most recent checkpoints kept on disk")
    max_train_docs: int | None = Field(None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _plan_knobs_moved(cls, data: Any) -> Any:
        moved = [k for k in ("mfu", "gpu_peak_tflops") if isinstance(data, dict) and k in data]
        if moved:
            raise ValueError(
                f"{', '.join('cpt.' + k for k in moved)} moved to the `plan:` section "
                f"({', '.join('plan.' + k for k in moved)}): they only feed `definemed plan`"
            )
        return data

    @model_validator(mode="after")
    def _steps_or_epochs(self) -> CptConfig:
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError("max_steps must be -1 (use epochs) or a positive number")
        return self
