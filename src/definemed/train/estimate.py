"""What a CPT run will do, before it runs: tokens per optimizer step and number of steps. Imports no torch."""

from __future__ import annotations

import os

from definemed.config import DefinemedConfig


def world_size() -> int:
    """Data-parallel processes, as torchrun / accelerate launch export it; 1 for a plain `definemed run`."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def tokens_per_step(cfg: DefinemedConfig) -> int:
    cpt = cfg.cpt
    return cpt.block_size * cpt.per_device_batch_size * cpt.gradient_accumulation_steps * world_size()


def describe_cpt_plan(cfg: DefinemedConfig, corpus_tokens: int | None = None) -> str:
    """A few lines for `definemed plan`. `corpus_tokens` (training tokens) is known once the corpus exists."""
    cpt = cfg.cpt
    per_step = tokens_per_step(cfg)
    lines = [
        f"cpt: {cfg.models[cpt.model].id}, {per_step:,} tokens per optimizer step "
        f"(block {cpt.block_size} x batch {cpt.per_device_batch_size} x grad accum "
        f"{cpt.gradient_accumulation_steps} x world size {world_size()})",
    ]
    if cpt.max_steps > 0:
        lines.append(f"     {cpt.max_steps:,} steps = {cpt.max_steps * per_step:,} training tokens")
    elif corpus_tokens is not None:
        steps = int(cpt.epochs * corpus_tokens // per_step)
        lines.append(f"     {cpt.epochs:g} epochs x {corpus_tokens:,} corpus tokens / {per_step:,} = {steps:,} steps")
    else:
        lines.append(f"     steps = {cpt.epochs:g} epochs x corpus tokens / {per_step:,} "
                     "(corpus size known after the corpus stage)")
    return "\n".join(lines)
