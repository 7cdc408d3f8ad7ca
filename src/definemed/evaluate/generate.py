"""Answers to open prompts with transformers `generate`: batched, left-padded, chat template if there is one.

One `HfGenerator` holds one model. Greedy decoding at temperature 0, otherwise sampling seeded per batch, so a
rerun with the same seed and batch size gives the same answers. `n_tokens` counts generated tokens before the
first end-of-sequence token; `hit_limit` marks answers cut off by `max_new_tokens` (the verbosity analysis and
the judge both need to know an answer was truncated).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from definemed.evaluate.config import HfGenerationConfig

logger = logging.getLogger("definemed")


@dataclass
class Generation:
    text: str
    n_tokens: int
    hit_limit: bool
    seconds: float  # the batch's wall time divided by its size
    error: str | None = None  # HTTP backends: why no answer came back
    cause: str | None = None
    requests: int = 0  # HTTP backends: requests sent for this answer (every attempt)
    prompt_tokens: int = 0
    completion_tokens: int = 0


class AnswerGenerator(Protocol):
    """What the evaluate stage needs from a generator registered under `evaluate.generation.kind` (built-ins: hf,
    openai, vllm; a plugin registers its class with `register("generator", name, cls, config=ItsConfig)`).

    Built once per evaluated model as `cls(model_path, cfg, seed=, dtype=, revision=, name=)`: the checkpoint
    folder or hub id, the `evaluate.generation` section (the plugin's own config model), the run seed, the dtype
    and revision of the model spec, and the evaluate.models name. `generate` returns one `Generation` per prompt
    in input order; `close` releases the model before the next one is loaded. A generator that talks to an
    endpoint may also expose `stats`: a dict shaped like `definemed.llm.EndpointStats` (stored in the metrics).
    """

    def generate(self, prompts: list[str], desc: str = "generate") -> list[Generation]: ...

    def close(self) -> None: ...


def count_generated(tokens: Sequence[int], eos_ids: set[int], max_new_tokens: int) -> tuple[int, bool]:
    """(tokens before the first EOS, whether generation stopped at the length limit without an EOS)."""
    for i, tok in enumerate(tokens):
        if tok in eos_ids:
            return i, False
    return len(tokens), len(tokens) >= max_new_tokens


class HfGenerator:
    """Batched generation with a local or hub transformers checkpoint (never `trust_remote_code`)."""

    def __init__(
        self,
        model_path: str,
        cfg: HfGenerationConfig,
        seed: int = 0,
        dtype: str = "auto",
        revision: str | None = None,
        name: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.cfg, self.seed = cfg, seed
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, revision=revision)
        self.tokenizer.padding_side = "left"  # decoder-only: new tokens must follow the prompt directly
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, revision=revision, dtype=torch_dtype)
        self.model.to(self.device).eval()
        self.eos_ids = self._eos_ids()

    def _eos_ids(self) -> set[int]:
        """Every id that ends an answer: the tokenizer's EOS plus the generation config's (chat models often
        list several, e.g. <|im_end|> and <|endoftext|>)."""
        ids: set[int] = set()
        for source in (self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id):
            if source is None:
                continue
            ids.update(source if isinstance(source, list) else [source])
        return ids

    def render(self, prompt: str) -> str:
        """The text the model sees: its chat template with the optional system prompt, or the bare prompt."""
        if not getattr(self.tokenizer, "chat_template", None):
            return prompt + "\n"
        messages = [{"role": "system", "content": self.cfg.system_prompt}] if self.cfg.system_prompt else []
        messages.append({"role": "user", "content": prompt})
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _generate_batch(self, prompts: list[str], batch_index: int) -> list[Generation]:
        import torch

        # The chat template already contains BOS where the model wants one; don't add a second.
        add_special = not getattr(self.tokenizer, "chat_template", None)
        enc = self.tokenizer(
            [self.render(p) for p in prompts], return_tensors="pt", padding=True, add_special_tokens=add_special
        ).to(self.device)
        sample = self.cfg.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.cfg.max_new_tokens,
            "do_sample": sample,
            "repetition_penalty": self.cfg.repetition_penalty,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": sorted(self.eos_ids),
        }
        if sample:
            kwargs.update(temperature=self.cfg.temperature, top_p=self.cfg.top_p)
            torch.manual_seed(self.seed + batch_index)
        else:  # keep the model's own sampling defaults from leaking into greedy decoding warnings
            kwargs.update(temperature=None, top_p=None, top_k=None)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)
        per_item = (time.perf_counter() - t0) / len(prompts)
        new = out[:, enc["input_ids"].shape[1] :].tolist()
        results = []
        for tokens in new:
            n, hit = count_generated(tokens, self.eos_ids, self.cfg.max_new_tokens)
            text = self.tokenizer.decode(tokens[:n], skip_special_tokens=True).strip()
            results.append(Generation(text=text, n_tokens=n, hit_limit=hit, seconds=round(per_item, 3)))
        return results

    def generate(self, prompts: list[str], desc: str = "generate") -> list[Generation]:
        """Answers in input order; prompts are batched by length so padding stays small."""
        from tqdm.auto import tqdm

        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        answers: list[Generation | None] = [None] * len(prompts)
        size = self.cfg.batch_size
        for b, start in enumerate(tqdm(range(0, len(order), size), desc=desc, unit="batch")):
            idx = order[start : start + size]
            for i, gen in zip(idx, self._generate_batch([prompts[i] for i in idx], b), strict=True):
                answers[i] = gen
        return [a for a in answers if a is not None]

    def close(self) -> None:
        """Release the weights (the stage loads one model after another)."""
        import torch

        del self.model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
