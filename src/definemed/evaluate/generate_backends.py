"""Generation backends besides transformers: any OpenAI-compatible server, and vLLM in-process on a GPU.

Both take the same decoding settings as `HfGenerator` (max_new_tokens, temperature, top_p, system prompt) and
return the same `Generation` records: `n_tokens` are the completion tokens the server counted (usage) or vLLM
produced, `hit_limit` is finish_reason == "length".
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

from definemed.config import OpenAIGenerationConfig, VllmGenerationConfig
from definemed.evaluate.generate import Generation
from definemed.evaluate.openai_client import (
    RetryPolicy,
    api_key,
    async_client,
    call_with_retries,
    chat_completion,
    gather_bounded,
    run_sync,
)

logger = logging.getLogger("definemed")

VLLM_MISSING = ("the vllm generation backend needs vLLM, which runs on CUDA GPUs only: "
                "pip install 'definemed[vllm]' (in a GPU environment with its own torch build)")


def chat_messages(prompt: str, system_prompt: str | None) -> list[dict[str, str]]:
    """The conversation sent for one prompt: optional system message, then the user's prompt."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*messages, {"role": "user", "content": prompt}]


class OpenAIGenerator:
    """Answers from an OpenAI-compatible chat endpoint, `concurrency` requests in flight, retried with back-off.

    `cfg.model` is the served model name; `{name}` stands for the evaluate.models name, `{path}` for its
    resolved checkpoint or hub id. A request that fails after every retry fails the model's generation (a
    missing answer would silently shrink the comparison); finished models are kept for a resumed stage.
    """

    def __init__(self, model_path: str, cfg: OpenAIGenerationConfig, seed: int = 0, dtype: str = "auto",
                 revision: str | None = None, name: str | None = None) -> None:
        self.cfg, self.seed = cfg, seed
        self.model = cfg.model.replace("{name}", name or model_path).replace("{path}", model_path)
        self.key = api_key(cfg.api_key_env, cfg.base_url, "openai generation")
        self.policy = RetryPolicy(cfg.max_retries, cfg.backoff_s)
        self.requests = 0  # HTTP requests sent, retries included

    def _count(self) -> None:
        self.requests += 1

    async def _one(self, client: Any, prompt: str) -> Generation:
        c = self.cfg
        body: dict[str, Any] = {"model": self.model, "messages": chat_messages(prompt, c.system_prompt),
                                "max_tokens": c.max_new_tokens, "temperature": c.temperature, "top_p": c.top_p}
        if c.seed:
            body["seed"] = self.seed
        t0 = time.perf_counter()
        reply = await call_with_retries(lambda: chat_completion(client, body), self.policy,
                                        f"generation request ({self.model})", self._count)
        choice = reply["choices"][0]
        text = ((choice.get("message") or {}).get("content") or "").strip()
        tokens = (reply.get("usage") or {}).get("completion_tokens")
        # No usage in the reply: a word count is the best stand-in.
        n_tokens = int(tokens) if tokens is not None else len(text.split())
        return Generation(text=text, n_tokens=n_tokens, hit_limit=choice.get("finish_reason") == "length",
                          seconds=round(time.perf_counter() - t0, 3))

    async def _generate(self, prompts: list[str], desc: str) -> list[Generation]:
        from tqdm.auto import tqdm

        client = async_client(self.cfg.base_url, self.key, self.cfg.timeout_s)
        bar = tqdm(total=len(prompts), desc=desc, unit="answer")
        try:
            jobs = [lambda p=p: self._one(client, p) for p in prompts]
            return await gather_bounded(jobs, self.cfg.concurrency, progress=lambda: bar.update(1))
        finally:
            bar.close()
            await client.close()

    def generate(self, prompts: list[str], desc: str = "generate") -> list[Generation]:
        """Answers in input order."""
        return run_sync(lambda: self._generate(prompts, desc))

    def close(self) -> None:
        """Nothing to release: the client lives only inside `generate`."""


class VllmGenerator:
    """Batched offline generation with vLLM's `LLM.chat` (the model's chat template) and `SamplingParams`."""

    def __init__(self, model_path: str, cfg: VllmGenerationConfig, seed: int = 0, dtype: str = "auto",
                 revision: str | None = None, name: str | None = None) -> None:
        try:
            from vllm import LLM
        except ImportError:
            raise RuntimeError(VLLM_MISSING) from None
        self.cfg, self.seed = cfg, seed
        self.llm = LLM(model=model_path, revision=revision, dtype=dtype, seed=seed,
                       tensor_parallel_size=cfg.tensor_parallel_size,
                       gpu_memory_utilization=cfg.gpu_memory_utilization, max_model_len=cfg.max_model_len)

    def generate(self, prompts: list[str], desc: str = "generate") -> list[Generation]:
        from vllm import SamplingParams

        c = self.cfg
        params = SamplingParams(max_tokens=c.max_new_tokens, temperature=c.temperature,
                                top_p=c.top_p if c.temperature > 0 else 1.0,
                                repetition_penalty=c.repetition_penalty, seed=self.seed)
        t0 = time.perf_counter()
        outputs = self.llm.chat([chat_messages(p, c.system_prompt) for p in prompts], params, use_tqdm=True)
        per_item = round((time.perf_counter() - t0) / max(len(prompts), 1), 3)
        return [Generation(text=o.outputs[0].text.strip(), n_tokens=len(o.outputs[0].token_ids),
                           hit_limit=o.outputs[0].finish_reason == "length", seconds=per_item) for o in outputs]

    def close(self) -> None:
        import torch

        del self.llm
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
