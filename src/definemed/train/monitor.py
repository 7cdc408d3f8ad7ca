"""Watching a CPT run: metrics.jsonl kept current during training, perplexities, and a tokens/s progress bar.

Held-out loss during training is the Trainer's own evaluation over two eval datasets ("medical", "general"),
so it runs correctly under FSDP / DeepSpeed; its rows carry `eval_medical_loss` / `eval_general_loss` and the
perplexities added here.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from definemed.artifacts import write_jsonl

MAX_LOG_LOSS = 50.0  # exp() beyond this overflows to inf in JSON; such a loss means "diverged" anyway


def perplexity(loss: float | None) -> float | None:
    return None if loss is None else round(math.exp(min(float(loss), MAX_LOG_LOSS)), 4)


def add_perplexities(logs: dict[str, Any]) -> dict[str, Any]:
    """For every `eval_<set>_loss` add `eval_<set>_ppl` (in place; returns `logs`)."""
    for key in [k for k in logs if k.startswith("eval_") and k.endswith("_loss")]:
        logs[key[: -len("_loss")] + "_ppl"] = perplexity(logs[key])
    return logs


def merge_eval_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Trainer logs one row per eval dataset; merge the rows of one evaluation (same step, disjoint keys)
    so each metrics.jsonl row holds eval_medical_loss and eval_general_loss together."""
    out: list[dict[str, Any]] = []
    for row in rows:
        prev = out[-1] if out else None
        is_eval = any(k.startswith("eval_") for k in row) and "loss" not in row
        if (
            is_eval
            and prev is not None
            and prev.get("step") == row.get("step")
            and "loss" not in prev
            and any(k.startswith("eval_") for k in prev)
            and not {k for k in row if k.startswith("eval_")} & set(prev)
        ):
            out[-1] = {**prev, **row}
        else:
            out.append(dict(row))
    return out


def metrics_writer(path: Path, head: list[dict[str, Any]]) -> Any:
    """A callback that rewrites `path` atomically from the Trainer's log history at every log event.

    Rewriting (not appending) keeps the file equal to the history that a resumed run restores from its
    checkpoint, so a crash and resume never duplicate or lose rows. `head` rows (the held-out loss before
    training, step 0) come first.
    """
    from transformers import TrainerCallback

    class MetricsWriter(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero:
                write_jsonl(path, merge_eval_rows([*head, *state.log_history]))

    return MetricsWriter()


def token_progress() -> Any:
    """The Trainer's progress bar (steps, ETA) with training tokens per second as a postfix."""
    from transformers.trainer_callback import ProgressCallback

    class TokenProgress(ProgressCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            super().on_train_begin(args, state, control, **kwargs)
            self._t0, self._tokens0 = time.perf_counter(), state.num_input_tokens_seen

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            super().on_step_end(args, state, control, **kwargs)
            elapsed = time.perf_counter() - self._t0
            if state.is_world_process_zero and self.training_bar is not None and elapsed > 0:
                rate = (state.num_input_tokens_seen - self._tokens0) / elapsed
                self.training_bar.set_postfix(tok_s=f"{rate:,.0f}", refresh=False)

    return TokenProgress()
