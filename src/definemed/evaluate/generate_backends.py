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

from definemed.evaluate.config import OpenAIGenerationConfig, VllmGenerationConfig
from definemed.evaluate.generate import Generation
from definemed.llm import Endpoint, FailureBudget, LLMClient, SendPolicy, run_sync

logger = logging.getLogger("definemed")

VLLM_MISSING = (
    "the vllm generation backend needs vLLM, which runs on CUDA GPUs only: "
    "pip install 'definemed[vllm]' (in a GPU environment with its own torch build)"
)


def chat_messages(prompt: str, system_prompt: str | None) -> list[dict[str, str]]:
    """The conversation sent for one prompt: optional system message, then the user's prompt."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*messages, {"role": "user", "content": prompt}]


class OpenAIGenerator:
    """Answers from an OpenAI-compatible chat endpoint through `definemed.llm.LLMClient` (probe, adaptive
    concurrency, retries, time-outs scaled by `max_new_tokens`, per-attempt accounting).

    `cfg.model` is the served model name; `{name}` stands for the evaluate.models name, `{path}` for its
    resolved checkpoint or hub id. A request that fails after every retry fails the model's generation at once
    (a missing answer would silently shrink the comparison); finished models are kept for a resumed stage.
    """

    def __init__(
        self,
        model_path: str,
        cfg: OpenAIGenerationConfig,
        seed: int = 0,
        dtype: str = "auto",
        revision: str | None = None,
        name: str | None = None,
    ) -> None:
        self.cfg, self.seed = cfg, seed
        self.model = cfg.model.replace("{name}", name or model_path).replace("{path}", model_path)
        self.endpoint = Endpoint("evaluate.generation", self.model, cfg.base_url, cfg.api_key_env)
        self.endpoint.api_key()  # an unset key for a remote endpoint fails here, before any work
        self.policy = SendPolicy(
            max_concurrency=cfg.concurrency,
            max_retries=cfg.max_retries,
            backoff_s=cfg.backoff_s,
            timeout_s=cfg.timeout_s,
            timeout_per_token_s=cfg.timeout_per_token_s,
        )
        self.stats: dict[str, Any] = {}
        self.requests = 0  # HTTP requests sent, retries included

    async def _one(self, llm: LLMClient, prompt: str) -> Generation:
        c = self.cfg
        body: dict[str, Any] = {
            "model": self.model,
            "messages": chat_messages(prompt, c.system_prompt),
            "max_tokens": c.max_new_tokens,
            "temperature": c.temperature,
            "top_p": c.top_p,
        }
        if c.seed:
            body["seed"] = self.seed
        t0 = time.perf_counter()
        outcome = await llm.send(body)
        reply = outcome.reply
        if reply is None:
            return Generation(
                text="",
                n_tokens=0,
                hit_limit=False,
                seconds=round(time.perf_counter() - t0, 3),
                error=f"{outcome.cause}: {outcome.error}",
                cause=outcome.cause,
                requests=outcome.requests,
            )
        text = reply.text.strip()
        # No usage in the reply: a word count is the best stand-in.
        n_tokens = reply.completion_tokens or len(text.split())
        return Generation(
            text=text,
            n_tokens=n_tokens,
            hit_limit=reply.cut,
            seconds=round(time.perf_counter() - t0, 3),
            requests=outcome.requests,
            prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens,
        )

    async def _generate(self, prompts: list[str], desc: str) -> list[Generation]:
        from tqdm.auto import tqdm

        budget = FailureBudget(f"evaluate.generation ({self.model})", len(prompts), 0.0)
        async with LLMClient(self.endpoint, self.policy) as llm:
            with tqdm(total=len(prompts), desc=desc, unit="answer", disable=None) as bar:
                try:
                    return await llm.map(
                        prompts,
                        lambda p: self._one(llm, p),
                        budget=budget,
                        cause_of=lambda g: g.cause,
                        on_result=lambda _: bar.update(1),
                    )
                finally:
                    self.stats = llm.stats.as_dict() | {"capacity": llm.limiter.stats()}
                    self.requests = llm.stats.requests

    def generate(self, prompts: list[str], desc: str = "generate") -> list[Generation]:
        """Answers in input order."""
        return run_sync(lambda: self._generate(prompts, desc))

    def close(self) -> None:
        """Nothing to release: the client lives only inside `generate`."""


class VllmGenerator:
    """Batched offline generation with vLLM's `LLM.chat` (the model's chat template) and `SamplingParams`."""

    def __init__(
        self,
        model_path: str,
        cfg: VllmGenerationConfig,
        seed: int = 0,
        dtype: str = "auto",
        revision: str | None = None,
        name: str | None = None,
    ) -> None:
        try:
            from vllm import LLM
        except ImportError:
            raise RuntimeError(VLLM_MISSING) from None
        self.cfg, self.seed = cfg, seed
        self.llm = LLM(
            model=model_path,
            revision=revision,
            dtype=dtype,
            seed=seed,
            tensor_parallel_size=cfg.tensor_parallel_size,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            max_model_len=cfg.max_model_len,
        )

    def generate(self, prompts: list[str], desc: str = "generate") -> list[Generation]:
        from vllm import SamplingParams

        c = self.cfg
        params = SamplingParams(
            max_tokens=c.max_new_tokens,
            temperature=c.temperature,
            top_p=c.top_p if c.temperature > 0 else 1.0,
            repetition_penalty=c.repetition_penalty,
            seed=self.seed,
        )
        t0 = time.perf_counter()
        outputs = self.llm.chat([chat_messages(p, c.system_prompt) for p in prompts], params, use_tqdm=True)
        per_item = round((time.perf_counter() - t0) / max(len(prompts), 1), 3)
        return [
            Generation(
                text=o.outputs[0].text.strip(),
                n_tokens=len(o.outputs[0].token_ids),
                hit_limit=o.outputs[0].finish_reason == "length",
                seconds=per_item,
            )
            for o in outputs
        ]

    def close(self) -> None:
        import torch

        del self.llm
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
