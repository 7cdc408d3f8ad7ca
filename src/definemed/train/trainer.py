"""The transformers Trainer set up for continual pre-training, with checkpoint resume.

accelerate runs underneath the Trainer, so the same code trains on this CPU, one GPU, or under
`accelerate launch` with an FSDP / DeepSpeed config (configs/accelerate/) for real runs. Our additions sit at the
Trainer's extension points: `create_scheduler` (the schedules of schedule.py as a LambdaLR), `log` (perplexities)
and callbacks (metrics.jsonl, tokens/s progress bar).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from definemed.train.config import CptConfig
from definemed.train.monitor import add_perplexities, metrics_writer, token_progress
from definemed.train.schedule import Schedule, lambda_lr

logger = logging.getLogger("definemed")

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
# The Trainer writes trainer_state.json after model, optimizer, scheduler and RNG states: a checkpoint without
# it was cut off mid-save and must not be resumed from.
CHECKPOINT_COMPLETE = "trainer_state.json"


def use_bf16(setting: bool | str) -> bool:
    """bf16 mixed precision: "auto" turns it on only where CUDA supports bf16 (never on CPU)."""
    if setting != "auto":
        return bool(setting)
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def last_complete_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The highest-step checkpoint that finished saving, or None."""
    if not checkpoint_dir.is_dir():
        return None
    found = []
    for path in checkpoint_dir.iterdir():
        match = CHECKPOINT_RE.match(path.name)
        if match and path.is_dir() and (path / CHECKPOINT_COMPLETE).exists():
            found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


def fsdp_checkpoints_activations() -> bool:
    """True under `accelerate launch` with an FSDP config that checkpoints activations itself: the Trainer
    refuses its own activation checkpointing on top of it, and one is enough."""
    return (
        os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"
        and os.environ.get("FSDP_ACTIVATION_CHECKPOINTING", "").lower() == "true"
    )


def training_arguments(cpt: CptConfig, seed: int, checkpoint_dir: Path, max_steps: int) -> Any:
    """TrainingArguments for a run of exactly `max_steps` optimizer steps (the stream has no length)."""
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(checkpoint_dir),
        per_device_train_batch_size=cpt.per_device_batch_size,
        per_device_eval_batch_size=cpt.per_device_batch_size,
        gradient_accumulation_steps=cpt.gradient_accumulation_steps,
        learning_rate=cpt.learning_rate,
        lr_scheduler_type="linear",  # not used: CptTrainer.create_scheduler builds the configured schedule
        warmup_steps=cpt.warmup_steps,
        max_steps=max_steps,
        weight_decay=cpt.weight_decay,
        max_grad_norm=cpt.max_grad_norm,
        optim="adamw_torch",
        bf16=use_bf16(cpt.bf16),
        activation_checkpointing=cpt.gradient_checkpointing and not fsdp_checkpoints_activations(),
        seed=seed,
        data_seed=seed,
        logging_steps=cpt.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=cpt.save_steps,
        save_total_limit=cpt.keep_checkpoints,
        eval_strategy="steps" if cpt.eval_steps else "no",
        eval_steps=cpt.eval_steps,
        prediction_loss_only=True,  # never gather [batch, block, vocab] logits across ranks
        report_to="none",
        # Adds num_input_tokens_seen and train_tokens_per_second to every log line.
        include_num_input_tokens_seen=True,
        dataloader_num_workers=0,  # the stream is read in the main process: one deterministic order
        dataloader_pin_memory=torch.cuda.is_available(),
        disable_tqdm=True,  # our TokenProgress bar replaces the default one
    )


def cpt_trainer_class() -> type:
    """The Trainer subclass, built lazily so importing this module needs no transformers."""
    from transformers import Trainer

    class CptTrainer(Trainer):
        """Trainer with the configured LR schedule and perplexities next to every held-out loss."""

        schedule_config: CptConfig

        def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
            if self.lr_scheduler is None:
                schedule = Schedule.from_config(self.schedule_config, num_training_steps)
                self.lr_scheduler = lambda_lr(optimizer or self.optimizer, schedule)
                self._created_lr_scheduler = True
            return self.lr_scheduler

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            super().log(add_perplexities(logs), start_time)

    return CptTrainer


@dataclass
class TrainPlan:
    """Everything `train` needs besides the model: datasets, collator, step count, where to write."""

    train_dataset: Any
    eval_datasets: dict[str, Any]
    collator: Any
    max_steps: int
    checkpoint_dir: Path
    log_path: Path
    log_head: list[dict[str, Any]] = field(default_factory=list)
    callbacks: list[Any] = field(default_factory=list)


def build_trainer(model: Any, cpt: CptConfig, seed: int, plan: TrainPlan) -> Any:
    args = training_arguments(cpt, seed, plan.checkpoint_dir, plan.max_steps)
    # Off in training, always: besides being useless there (and conflicting with recomputation), a KV cache
    # makes transformers skip the packed-sequence mask, so position-id packing would silently attend across
    # documents (tests/train/test_packing.py checks this).
    model.config.use_cache = False
    callbacks = [metrics_writer(plan.log_path, plan.log_head), token_progress(), *plan.callbacks]
    trainer = cpt_trainer_class()(
        model=model,
        args=args,
        train_dataset=plan.train_dataset,
        eval_dataset=plan.eval_datasets or None,
        data_collator=plan.collator,
        callbacks=callbacks,
    )
    trainer.schedule_config = cpt  # read by create_scheduler, which train() calls
    return trainer


def train(trainer: Any, checkpoint_dir: Path) -> Any:
    """Train, resuming from the last complete checkpoint in `checkpoint_dir` if an earlier attempt left one."""
    resume = last_complete_checkpoint(checkpoint_dir)
    if resume is not None:
        logger.info("[cpt] resuming from %s", resume)
    return trainer.train(resume_from_checkpoint=str(resume) if resume else None)


def final_train_loss(log_history: list[dict[str, Any]]) -> float | None:
    """The last logged training loss (the mean over the last logging window)."""
    losses = [row["loss"] for row in log_history if "loss" in row]
    return float(losses[-1]) if losses else None
