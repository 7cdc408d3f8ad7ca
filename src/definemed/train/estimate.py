"""What a CPT run will cost, before it runs: tokens per step, steps, FLOPs and GPU-hours. Imports no torch.

Compute is the usual dense-transformer estimate FLOPs = 6 x parameters x training tokens (forward + backward,
attention FLOPs ignored), converted to time at an assumed model FLOPs utilisation (`plan.mfu`) of a GPU's dense
bf16 peak (`plan.gpu_peak_tflops`, H100 SXM: 989 TFLOP/s). Both are assumptions and printed as such.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from definemed.config import DefinemedConfig

# Parameter counts (billions) of common ids; other models are counted from a local config.json.
KNOWN_PARAMS_B = {
    "qwen/qwen2.5-7b-instruct": 7.62,
    "qwen/qwen2.5-7b": 7.62,
    "mistralai/mistral-7b-instruct-v0.3": 7.25,
    "mistralai/mistral-7b-instruct-v0.2": 7.24,
    "mistralai/mistral-small-24b-instruct-2501": 23.57,
    "mistralai/mistral-small-24b-base-2501": 23.57,
    "huggingfacetb/smollm2-135m-instruct": 0.135,
    "huggingfacetb/smollm2-135m": 0.135,
    "huggingfacetb/smollm2-360m-instruct": 0.362,
    "huggingfacetb/smollm2-1.7b-instruct": 1.71,
}
WORDS_TO_TOKENS = 1.5  # German web text, BPE tokenizers of the Qwen / Mistral kind: a stated rough factor


def world_size() -> int:
    """Data-parallel processes, as torchrun / accelerate launch export it; 1 for a plain `definemed run`."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def tokens_per_step(cfg: DefinemedConfig) -> int:
    cpt = cfg.cpt
    return cpt.block_size * cpt.per_device_batch_size * cpt.gradient_accumulation_steps * world_size()


def model_params(model_id: str) -> float | None:
    """Parameters of `model_id` from the table, or counted from `<model_id>/config.json` (a local folder)."""
    if model_id.lower() in KNOWN_PARAMS_B:
        return KNOWN_PARAMS_B[model_id.lower()] * 1e9
    config = Path(model_id) / "config.json"
    if not config.is_file():
        return None
    c = json.loads(config.read_text(encoding="utf-8"))
    h, layers, inter, vocab = c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"], c["vocab_size"]
    kv = h // c["num_attention_heads"] * c.get("num_key_value_heads", c["num_attention_heads"])
    attn = 2 * h * h + 2 * h * kv  # q, o and the (grouped) k, v projections
    mlp = 3 * h * inter  # gated MLP: gate, up, down
    embeddings = vocab * h * (1 if c.get("tie_word_embeddings", False) else 2)
    return float(layers * (attn + mlp) + embeddings)


def corpus_tokens(cfg: DefinemedConfig) -> tuple[int | None, str]:
    """Medical corpus tokens from the corpus stage manifest, with where the figure comes from."""
    manifest = cfg.run.run_dir / "corpus" / "manifest.json"
    if not manifest.exists():
        return None, "corpus size known after the corpus stage"
    metrics: dict[str, Any] = json.loads(manifest.read_text(encoding="utf-8")).get("metrics", {})
    if metrics.get("tokens_kept"):
        name = (metrics.get("tokenizer") or {}).get("name", "the corpus tokenizer")
        return int(metrics["tokens_kept"]), f"corpus manifest tokens_kept ({name} tokens)"
    if metrics.get("kept_words"):
        return int(metrics["kept_words"] * WORDS_TO_TOKENS), f"estimate: kept_words x {WORDS_TO_TOKENS}"
    return None, "the corpus manifest has no token or word count"


def describe_cpt_plan(cfg: DefinemedConfig, corpus_token_count: int | None = None) -> str:
    """A few lines for `definemed plan`: tokens per step, steps, training tokens, FLOPs and GPU-hours."""
    cpt, spec = cfg.cpt, cfg.models[cfg.cpt.model]
    per_step, ws = tokens_per_step(cfg), world_size()
    lines = [
        f"cpt: {spec.id}, {per_step:,} tokens per optimizer step (block {cpt.block_size} x batch "
        f"{cpt.per_device_batch_size} x grad accum {cpt.gradient_accumulation_steps} x world size {ws})"
    ]
    source = "given"
    if corpus_token_count is None:
        corpus_token_count, source = corpus_tokens(cfg)
    dilution = 1.0 / (1.0 - cpt.replay.ratio)  # replay blocks come on top of the domain tokens
    if cpt.max_steps > 0:
        steps = cpt.max_steps
        lines.append(f"     {steps:,} steps = {steps * per_step:,} training tokens")
    elif corpus_token_count is not None:
        steps = int(cpt.epochs * corpus_token_count * dilution // per_step)
        replay = f" / (1 - replay {cpt.replay.ratio:g})" if cpt.replay.ratio else ""
        lines.append(
            f"     {cpt.epochs:g} epochs x {corpus_token_count:,} corpus tokens ({source}){replay} / "
            f"{per_step:,} = {steps:,} steps"
        )
    else:
        lines.append(f"     steps = {cpt.epochs:g} epochs x corpus tokens / {per_step:,} ({source})")
        return "\n".join(lines)
    lines.append(_compute_line(cfg, steps * per_step))
    return "\n".join(lines)


def _compute_line(cfg: DefinemedConfig, train_tokens: int) -> str:
    spec = cfg.models[cfg.cpt.model]
    params = model_params(spec.id)
    if params is None:
        return f"     compute: unknown parameter count for {spec.id} (not in the table, no local config.json)"
    flops = 6 * params * train_tokens
    gpu_hours = flops / (cfg.plan.mfu * cfg.plan.gpu_peak_tflops * 1e12) / 3600
    return (
        f"     compute: 6 x {params / 1e9:.3g}B params x {train_tokens:,} tokens = {flops:.3g} FLOPs = "
        f"{_hours(gpu_hours)} GPU-hours (assumed: MFU {cfg.plan.mfu:g} of {cfg.plan.gpu_peak_tflops:g} TFLOP/s dense "
        f"bf16 peak per GPU), {_hours(gpu_hours / world_size())} h wall on {world_size()} GPU(s)"
    )


def _hours(h: float) -> str:
    return f"{h:,.1f}" if h >= 1 else f"{h:.2g}"
