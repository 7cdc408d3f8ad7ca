"""The transformers Trainer set up for continual pre-training, with checkpoint resume.

accelerate runs underneath the Trainer, so the same code trains on this CPU, one GPU, or under
`accelerate launch` with an FSDP / DeepSpeed config for real runs.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from definemed.config import CptConfig

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


def training_arguments(cpt: CptConfig, seed: int, checkpoint_dir: Path) -> Any:
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(checkpoint_dir),
        per_device_train_batch_size=cpt.per_device_batch_size,
        gradient_accumulation_steps=cpt.gradient_accumulation_steps,
        learning_rate=cpt.learning_rate,
        lr_scheduler_type=cpt.lr_scheduler,
        warmup_steps=cpt.warmup_steps,
        max_steps=cpt.max_steps,
        num_train_epochs=cpt.epochs,
        weight_decay=cpt.weight_decay,
        max_grad_norm=cpt.max_grad_norm,
        optim="adamw_torch",
        bf16=use_bf16(cpt.bf16),
        activation_checkpointing=cpt.gradient_checkpointing,
        seed=seed,
        data_seed=seed,
        logging_steps=cpt.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=cpt.save_steps,
        save_total_limit=2,
        eval_strategy="no",
        report_to="none",
        # Adds num_input_tokens_seen and train_tokens_per_second to every log line (and the progress bar).
        include_num_input_tokens_seen=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        disable_tqdm=False,
    )


def train(model: Any, cpt: CptConfig, seed: int, dataset: Any, checkpoint_dir: Path,
          callbacks: list[Any] | None = None) -> tuple[Any, Any]:
    """Train, resuming from the last complete checkpoint in `checkpoint_dir` if an earlier attempt left one."""
    from transformers import Trainer, default_data_collator

    args = training_arguments(cpt, seed, checkpoint_dir)
    if cpt.gradient_checkpointing:
        model.config.use_cache = False  # the KV cache is useless in training and conflicts with recomputation
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=default_data_collator,
                      callbacks=callbacks or [])
    resume = last_complete_checkpoint(checkpoint_dir)
    if resume is not None:
        logger.info("[cpt] resuming from %s", resume)
    output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    return trainer, output


def final_train_loss(log_history: list[dict[str, Any]]) -> float | None:
    """The last logged training loss (the mean over the last logging window)."""
    losses = [row["loss"] for row in log_history if "loss" in row]
    return float(losses[-1]) if losses else None
