"""The `cpt` stage: continual pre-training of the instruct model on the medical corpus (causal-LM objective).

Reads the corpus stage's `medical` documents (split by id hash into train / held-out), its `general` documents
(held-out split only, to measure forgetting of general German) and optional replay sources. Training data is
streamed (stream.py) and packed (packing.py). Writes `model/` (safetensors + tokenizer) and `metrics.jsonl` (the
Trainer log history, kept current during training). An interrupted attempt resumes from `checkpoints/`.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any

from definemed.artifacts import read_json, write_json
from definemed.models import resolve
from definemed.schema import ModelSpec
from definemed.stage import StageContext, StageResult
from definemed.train.config import CptConfig
from definemed.train.contract import CptInputs
from definemed.train.data import BlockList, HeldoutSet, build_heldout, is_heldout
from definemed.train.heldout import as_log_row, compare, evaluate_sets
from definemed.train.metrics import CptMetrics
from definemed.train.packing import PackedCollator, resolve_attn_implementation, resolve_packing_mode
from definemed.train.stream import CptStream, TextSource, mixture_choices
from definemed.train.trainer import TrainPlan, build_trainer, final_train_loss, train

logger = logging.getLogger("definemed")

MODEL_DIR = "model"
LOG_FILE = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
HELDOUT_BEFORE = "heldout_before.json"
DATA_COUNT = "train_data_count.json"
# Written after model/ is complete; a crash between it and the manifest then skips retraining on resume.
RESULT_FILE = "train_result.json"
REPLAY_GENERAL = "corpus:general"


def run(inputs: CptInputs, ctx: StageContext) -> StageResult[CptMetrics]:
    """Evaluate held-out loss, train, evaluate again, save model and log. See the module docstring."""
    t0 = time.perf_counter()
    stage_dir, cpt, spec = ctx.stage_dir, inputs.cpt, inputs.model
    outputs = {"model": MODEL_DIR, "log": LOG_FILE}
    if (stage_dir / RESULT_FILE).exists() and (stage_dir / MODEL_DIR).is_dir():
        logger.info("[cpt] the interrupted attempt had finished training; reusing its model")
        return StageResult(outputs=outputs, metrics=CptMetrics.model_validate(read_json(stage_dir / RESULT_FILE)))

    from transformers import AutoTokenizer

    model_path = resolve(spec.id)
    tokenizer = AutoTokenizer.from_pretrained(model_path, revision=spec.revision)
    model = load_model(_init_weights(cpt, model_path), spec, resolve_attn_implementation(cpt.attn_implementation))
    mode = resolve_packing_mode(cpt.packing.mode, model)
    heldout = _heldout_sets(ctx, cpt, tokenizer, mode)
    stream = _train_stream(cpt, inputs.seed, ctx, tokenizer, mode)
    count = _count_training_data(stream, cpt, stage_dir / DATA_COUNT)
    max_steps = cpt.max_steps if cpt.max_steps > 0 else _epoch_steps(cpt, count["blocks"])
    logger.info(
        "[cpt] packing %s, attention %s; %d domain blocks of %d tokens per pass (%d docs); %d steps",
        mode,
        model.config._attn_implementation,
        count["blocks"],
        cpt.block_size,
        count["docs"],
        max_steps,
    )

    before = read_json(stage_dir / HELDOUT_BEFORE) if (stage_dir / HELDOUT_BEFORE).exists() else None
    plan = TrainPlan(
        train_dataset=stream,
        collator=PackedCollator(flatten=_flatten(model, mode)),
        eval_datasets={n: BlockList(s.blocks) for n, s in heldout.items() if s.blocks},
        max_steps=max_steps,
        checkpoint_dir=stage_dir / CHECKPOINTS,
        log_path=stage_dir / LOG_FILE,
    )
    trainer = build_trainer(model, cpt, inputs.seed, plan)
    if before is None:  # cached so a resumed attempt does not evaluate the trained checkpoint as "before"
        before = evaluate_sets(trainer, heldout)
        write_json(stage_dir / HELDOUT_BEFORE, before)
    plan.log_head.append({**as_log_row(before, 0), "phase": "before"})
    train(trainer, stage_dir / CHECKPOINTS)
    after = evaluate_sets(trainer, heldout, reuse_last=True)
    shutil.rmtree(stage_dir / (MODEL_DIR + ".tmp"), ignore_errors=True)
    trainer.save_model(str(stage_dir / (MODEL_DIR + ".tmp")))
    _finish_model(trainer, tokenizer, stage_dir / MODEL_DIR)

    metrics = _metrics(inputs, trainer, count, compare(before, after), mode, round(time.perf_counter() - t0, 2))
    write_json(stage_dir / RESULT_FILE, metrics.model_dump(mode="json"))
    # Optimizer states dominate disk use (about 12 bytes per parameter); the final model and the result file
    # now make them unnecessary.
    shutil.rmtree(stage_dir / CHECKPOINTS, ignore_errors=True)
    return StageResult(outputs=outputs, metrics=metrics)


def _metrics(
    inputs: CptInputs, trainer: Any, count: dict[str, int], heldout: dict[str, Any], mode: str, seconds: float
) -> CptMetrics:
    """The stage's metrics: the report reads heldout, steps, train_tokens, final_train_loss, packing_efficiency."""
    cpt, history = inputs.cpt, trainer.state.log_history
    steps = int(trainer.state.global_step)
    per_step = cpt.block_size * cpt.per_device_batch_size * cpt.gradient_accumulation_steps * trainer.args.world_size
    blocks = steps * per_step // cpt.block_size
    replay_blocks = int(mixture_choices(inputs.seed, cpt.replay.ratio, blocks).sum())
    return CptMetrics.model_validate(
        {
            "heldout": heldout,
            "steps": steps,
            "tokens_per_step": per_step,
            "train_tokens": steps * per_step,
            "train_blocks": blocks,
            "final_train_loss": final_train_loss(history),
            "domain_blocks_per_pass": count["blocks"],
            "train_docs": count["docs"],
            "domain_tokens_per_pass": count["tokens"],
            "epochs_trained": _epochs(steps, per_step, count, cpt),
            "replay_ratio": cpt.replay.ratio,
            "replay_blocks": replay_blocks,
            "replay_share": round(replay_blocks / max(1, blocks), 4),
            # Every slot of a packed block holds a document token or EOS separator: no padding by construction.
            "packing_efficiency": 1.0,
            "packing_mode": mode,
            "attn_implementation": trainer.model.config._attn_implementation,
            "init_from": str(cpt.init_from or ""),
            "model_source": str(resolve(inputs.model.id)),
            "seconds": seconds,
        }
    )


def load_model(model_path: str | Path, spec: ModelSpec, attn_implementation: str) -> Any:
    """Load the causal LM. dtype "auto" trains float32 master weights; mixed precision comes from cpt.bf16."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.float32 if spec.dtype == "auto" else getattr(torch, spec.dtype)
    revision = None if Path(str(model_path)).is_dir() else spec.revision
    return AutoModelForCausalLM.from_pretrained(
        model_path, revision=revision, dtype=dtype, attn_implementation=attn_implementation
    )


def _init_weights(cpt: CptConfig, model_path: str) -> str | Path:
    """`init_from` (re-warming a trained checkpoint) or the configured model. The tokenizer always comes from
    the configured model: a CPT checkpoint shares it."""
    if cpt.init_from is None:
        return model_path
    if not (cpt.init_from / "config.json").exists():
        raise FileNotFoundError(f"cpt.init_from: {cpt.init_from} is not a model folder (no config.json)")
    logger.info("[cpt] re-warming from %s with a fresh optimizer and warm-up", cpt.init_from)
    return cpt.init_from


def _flatten(model: Any, mode: str) -> bool:
    """flash-attention finds packed documents only in a flattened batch of one row."""
    return mode == "position_ids" and model.config._attn_implementation == "flash_attention_2"


def _general_dir(ctx: StageContext) -> Path | None:
    """The corpus stage's general-German folder; a corpus run without one only loses the forgetting measurement."""
    if "general" not in ctx.outputs("corpus"):
        logger.warning("[cpt] the corpus stage has no 'general' output: general held-out loss is skipped")
        return None
    return ctx.input_path("corpus", "general")


def _heldout_sets(ctx: StageContext, cpt: CptConfig, tokenizer: Any, mode: str) -> dict[str, HeldoutSet]:
    sets = {"medical": build_heldout("medical", ctx.input_path("corpus", "medical"), cpt, tokenizer, mode)}
    general = _general_dir(ctx)
    if general is not None:
        sets["general"] = build_heldout("general", general, cpt, tokenizer, mode)
    return sets


def _train_stream(cpt: CptConfig, seed: int, ctx: StageContext, tokenizer: Any, mode: str) -> CptStream:
    """Domain source (medical, not held out) and the replay source; both exclude their held-out split."""
    frac = cpt.heldout_fraction

    def keep(doc: dict[str, Any]) -> bool:
        return not is_heldout(doc, frac)

    domain = TextSource("medical", [ctx.input_path("corpus", "medical")], keep, cpt.max_train_docs)
    replay = None
    if cpt.replay.ratio > 0:
        folders = [ctx.input_path("corpus", "general") if s == REPLAY_GENERAL else Path(s) for s in cpt.replay.sources]
        replay = TextSource("replay", folders, keep)
    return CptStream(
        domain,
        tokenizer,
        cpt.block_size,
        mode,
        seed,
        replay=replay,
        ratio=cpt.replay.ratio,
        shuffle_buffer=cpt.shuffle_buffer,
    )


def _count_training_data(stream: CptStream, cpt: CptConfig, cache: Path) -> dict[str, int]:
    """One tokenising pass over the domain source (cached: a resumed attempt skips it)."""
    if cache.exists():
        return read_json(cache)
    blocks, tokens, docs = stream.count_domain_blocks()
    if blocks == 0:
        raise ValueError(
            f"{stream.domain.folders[0]}: {tokens} training tokens from {docs} documents do not fill one block "
            f"of {cpt.block_size} tokens; lower cpt.block_size or provide more medical documents"
        )
    count = {"blocks": blocks, "tokens": tokens, "docs": docs}
    write_json(cache, count)
    return count


def _epoch_steps(cpt: CptConfig, domain_blocks: int) -> int:
    """Steps for `epochs` passes over the domain data; replay blocks come on top (they dilute each step)."""
    per_step = cpt.per_device_batch_size * cpt.gradient_accumulation_steps * _world_size()
    total_blocks = cpt.epochs * domain_blocks / (1.0 - cpt.replay.ratio)
    return max(1, math.ceil(total_blocks / per_step))


def _epochs(steps: int, per_step: int, count: dict[str, int], cpt: CptConfig) -> float:
    domain_blocks = steps * per_step / cpt.block_size * (1.0 - cpt.replay.ratio)
    return round(domain_blocks / max(1, count["blocks"]), 3)


def _world_size() -> int:
    from definemed.train.estimate import world_size

    return world_size()


def _finish_model(trainer: Any, tokenizer: Any, target: Path) -> None:
    """Complete the model saved to `<target>.tmp` (tokenizer, use_cache) and rename it: model/ exists only
    when complete. trainer.save_model gathers FSDP / ZeRO-3 shards, which model.save_pretrained would not."""
    tmp = target.with_name(target.name + ".tmp")
    if trainer.args.should_save:
        tokenizer.save_pretrained(tmp)
        config_path = tmp / "config.json"
        config = read_json(config_path)
        config["use_cache"] = True  # switched off for gradient checkpointing; generation wants it back
        write_json(config_path, config)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
