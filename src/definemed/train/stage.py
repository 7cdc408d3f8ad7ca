"""The `cpt` stage: continual pre-training of the instruct model on the medical corpus (causal-LM objective).

Reads the corpus stage's `medical` documents (split by id hash into train / held-out) and `general` documents
(held-out only, to measure forgetting of general German). Writes `model/` (safetensors + tokenizer) and
`metrics.jsonl` (the Trainer log history). An interrupted attempt resumes from `checkpoints/`.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from definemed.artifacts import StageContext, StageResult, read_json, write_json, write_jsonl
from definemed.config import DefinemedConfig, ModelSpec
from definemed.models import resolve
from definemed.train.data import BlockDataset, CptData, build_cpt_data
from definemed.train.heldout import compare, heldout_loss
from definemed.train.trainer import final_train_loss, train

logger = logging.getLogger("definemed")

MODEL_DIR = "model"
LOG_FILE = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
HELDOUT_BEFORE = "heldout_before.json"
# Written after model/ is complete; a crash between it and the manifest then skips retraining on resume.
RESULT_FILE = "train_result.json"


def run(cfg: DefinemedConfig, ctx: StageContext) -> StageResult:
    """Evaluate held-out loss, train, evaluate again, save model and log. See the module docstring."""
    t0 = time.perf_counter()
    stage_dir = ctx.stage_dir
    outputs = {"model": MODEL_DIR, "log": LOG_FILE}
    if (stage_dir / RESULT_FILE).exists() and (stage_dir / MODEL_DIR).is_dir():
        logger.info("[cpt] the interrupted attempt had finished training; reusing its model")
        return StageResult(outputs=outputs, metrics=read_json(stage_dir / RESULT_FILE))

    from transformers import AutoTokenizer

    cpt, spec = cfg.cpt, cfg.models[cfg.cpt.model]
    model_path = resolve(spec.id)
    tokenizer = AutoTokenizer.from_pretrained(model_path, revision=spec.revision)
    data = build_cpt_data(cpt, tokenizer, ctx.input_path("corpus", "medical"), _general_dir(ctx))
    summary = data.summary()
    logger.info("[cpt] %d train blocks of %d tokens (%d docs), held-out docs %s", summary["train_blocks"],
                cpt.block_size, summary["train_docs"], summary["heldout_docs"])

    model = load_model(model_path, spec)
    before = _heldout_before(model, data, cfg, stage_dir / HELDOUT_BEFORE)
    trainer, _ = train(model, cpt, cfg.run.seed, BlockDataset(data.train.blocks), stage_dir / CHECKPOINTS)
    after = _evaluate_all(trainer.model, data, cfg)
    _save_model(trainer.model, tokenizer, stage_dir / MODEL_DIR)
    history = trainer.state.log_history
    write_jsonl(stage_dir / LOG_FILE, history)

    metrics = {
        "heldout": compare(before, after),
        "train_tokens": summary["train_tokens"], "train_blocks": summary["train_blocks"],
        "train_docs": summary["train_docs"], "train_tokens_dropped": summary["train_tokens_dropped"],
        "packing_efficiency": summary["packing_efficiency"],
        "steps": int(trainer.state.global_step), "final_train_loss": final_train_loss(history),
        "tokens_per_step": cpt.block_size * cpt.per_device_batch_size * cpt.gradient_accumulation_steps
        * trainer.args.world_size,
        "model_source": model_path, "seconds": round(time.perf_counter() - t0, 2),
    }
    write_json(stage_dir / RESULT_FILE, metrics)
    # Optimizer states dominate disk use (about 12 bytes per parameter); the final model and the result file
    # now make them unnecessary.
    shutil.rmtree(stage_dir / CHECKPOINTS, ignore_errors=True)
    return StageResult(outputs=outputs, metrics=metrics)


def load_model(model_path: str, spec: ModelSpec) -> Any:
    """Load the causal LM. dtype "auto" trains float32 master weights; mixed precision comes from cpt.bf16."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.float32 if spec.dtype == "auto" else getattr(torch, spec.dtype)
    return AutoModelForCausalLM.from_pretrained(model_path, revision=spec.revision, dtype=dtype)


def _general_dir(ctx: StageContext) -> Path | None:
    """The general-German held-out folder; a corpus run without one only loses the forgetting measurement."""
    outputs = ctx.upstream.get("corpus", {}).get("outputs", {})
    if "general" not in outputs:
        logger.warning("[cpt] the corpus stage has no 'general' output: general held-out loss is skipped")
        return None
    return ctx.input_path("corpus", "general")


def _evaluate_all(model: Any, data: CptData, cfg: DefinemedConfig) -> dict[str, dict[str, Any]]:
    return {name: heldout_loss(model, packed, cfg.cpt.eval_max_blocks, cfg.cpt.per_device_batch_size)
            for name, packed in data.heldout.items()}


def _heldout_before(model: Any, data: CptData, cfg: DefinemedConfig, cache: Path) -> dict[str, dict[str, Any]]:
    """Held-out loss of the untrained model, cached so a resumed attempt (same key) does not recompute it."""
    if cache.exists():
        return read_json(cache)
    result = _evaluate_all(model, data, cfg)
    for name, r in result.items():
        logger.info("[cpt] held-out %s before training: loss %s, ppl %s (%d blocks)", name, r["loss"], r["ppl"],
                    r["blocks"])
    write_json(cache, result)
    return result


def _save_model(model: Any, tokenizer: Any, target: Path) -> None:
    """Save safetensors + tokenizer to a temporary sibling, then rename: model/ exists only when complete."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.config.use_cache = True  # switched off for gradient checkpointing; generation wants it back
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
