"""LLM judge behind any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama, hosted APIs).

Requests run on one asyncio loop with an AsyncOpenAI client, at most `concurrency` in flight. Time-outs,
connection errors, 429 and 5xx are retried with exponential back-off and jitter, honouring Retry-After (up to a
minute); a reply that does not parse (garbage, empty, a verdict for a third option such as [[D]]) is asked again
up to `parse_retries` times. What still fails is an 'invalid' verdict with its error or raw reply: counted and
reported by the stage, never dropped. Setup errors (bad key, unknown model or URL) abort the batch.

Every reply that came back is cached (see `VerdictCache`), keyed on everything that determines it: judge model,
template text, decoding settings, prompt, reference and both answers in their order. Failed requests are not
cached, so a rerun asks again. The API key is read from the environment and is never written or logged.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from definemed.config import OpenAIJudgeConfig, stable_hash
from definemed.evaluate.openai_client import (
    RequestFailed,
    RetryPolicy,
    api_key,
    async_client,
    call_with_retries,
    chat_completion,
    gather_bounded,
    run_sync,
)
from definemed.evaluate.verdicts import JudgeItem, Verdict, VerdictCache, load_template, parse_verdict, render

logger = logging.getLogger("definemed")

CACHE_FILE = "judge_cache.jsonl"

__all__ = ["CACHE_FILE", "OpenAIJudge", "load_template", "render"]


def _reply_text(reply: dict[str, Any]) -> str:
    """The first choice's message text; a reply without one reads as empty (and so as an invalid verdict)."""
    try:
        return reply["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        return ""


class OpenAIJudge:
    kind = "openai"

    def __init__(self, config: OpenAIJudgeConfig, workdir: Path | None = None) -> None:
        self.config = config
        self.model = config.model
        self.template = load_template(config.template)
        self.cache = VerdictCache(Path(workdir) / CACHE_FILE if workdir is not None else None)
        self.policy = RetryPolicy(config.max_retries, config.backoff_s)
        self.requests = 0  # HTTP requests sent, retries included (one event loop: no lock needed)

    def cache_key(self, item: JudgeItem) -> str:
        c = self.config
        return stable_hash({"model": c.model, "template": self.template, "temperature": c.temperature,
                            "max_tokens": c.max_tokens, "prompt": item.prompt, "reference": item.reference,
                            "answer_a": item.answer_a, "answer_b": item.answer_b, "order": "a_shown_first"})

    def _count(self) -> None:
        self.requests += 1

    async def _ask(self, client: Any, item: JudgeItem) -> Verdict:
        """One verdict: transport retries inside `call_with_retries`, then re-asks for unparseable replies."""
        c = self.config
        body = {"model": c.model, "messages": [{"role": "user", "content": render(self.template, item)}],
                "temperature": c.temperature, "max_tokens": c.max_tokens}
        verdict = Verdict(winner="invalid")
        for _ in range(c.parse_retries + 1):
            try:
                reply = await call_with_retries(lambda: chat_completion(client, body), self.policy,
                                                "judge request", self._count)
            except RequestFailed as exc:
                return Verdict(winner="invalid", error=exc.error)
            text = _reply_text(reply)
            verdict = Verdict(winner=parse_verdict(text), raw=text)
            if verdict.winner != "invalid":
                break
        return verdict

    async def _judge_one(self, client: Any, item: JudgeItem) -> Verdict:
        key = self.cache_key(item)
        hit = self.cache.get(key)
        if hit is not None:
            return Verdict(winner=parse_verdict(hit["raw"]), raw=hit["raw"], cached=True)
        verdict = await self._ask(client, item)
        if verdict.error is None:  # a reply came back: keep it, even if it did not parse
            self.cache.put({"key": key, "model": self.config.model, "raw": verdict.raw,
                            "winner": verdict.winner})
        return verdict

    async def _judge_all(self, items: list[JudgeItem]) -> list[Verdict]:
        from tqdm.auto import tqdm

        c = self.config
        client = async_client(c.base_url, api_key(c.api_key_env, c.base_url, "judge"), c.timeout_s)
        bar = tqdm(total=len(items), desc="judge", unit="verdict")
        # Identical comparisons (same answers in the same order) are asked once; the copies count as cached.
        first: dict[str, int] = {}
        for index, key in enumerate(map(self.cache_key, items)):
            first.setdefault(key, index)
        try:
            jobs = [lambda i=items[i]: self._judge_one(client, i) for i in first.values()]
            unique = dict(zip(first, await gather_bounded(jobs, c.concurrency, progress=lambda: bar.update(1)),
                              strict=True))
            return [unique[key] if first[key] == index else replace(unique[key], cached=True)
                    for index, key in enumerate(map(self.cache_key, items))]
        finally:
            bar.close()
            await client.close()

    def judge_batch(self, items: list[JudgeItem]) -> list[Verdict]:
        """Verdicts in input order."""
        return run_sync(lambda: self._judge_all(items))
