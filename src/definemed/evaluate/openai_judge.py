"""LLM judge behind any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama, hosted APIs).

All sending goes through `definemed.llm.LLMClient`: setup probe (the server is up, takes the key, serves the
model), adaptive concurrency, retries with back-off and Retry-After, time-outs that scale with `max_tokens`,
per-attempt token and request accounting. Two methods:
- `generate`: reasoning, then a last line `Urteil: [[A]]` / `[[B]]` / `[[C]]`, read by the strict parser. A reply
  that does not parse is asked again (`parse_retries`) only when `temperature > 0`: at temperature 0 the same
  request returns the same reply, so asking again would only double the cost. A reply cut at `max_tokens`
  (finish_reason "length") is recorded with that cause, not as a parse failure.
- `logprob`: the same rubric, asked for one letter; the probabilities of "A", "B" and "C" (tie) in the first
  output token decide, as the `hf` judge's log-probability method does locally. Always one request per verdict.
Each verdict records its cause when invalid (`timeout`, `server_error`, ..., `unparsed`, `cut`, `unscored`).
Replies that came back are cached (see `VerdictCache`) with finish_reason and usage, keyed on judge model,
method, template text, decoding settings and both answers in their order; failed requests are not cached, so a
rerun asks them again. The API key is read from the environment and is never written or logged.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from definemed.evaluate.config import OpenAIJudgeConfig
from definemed.evaluate.verdicts import (
    JudgeItem,
    Verdict,
    VerdictCache,
    Winner,
    load_template,
    parse_verdict,
    render,
)
from definemed.llm import Endpoint, FailureBudget, LLMClient, SendPolicy, run_sync
from definemed.llm.client import answer_probabilities
from definemed.schema import stable_hash

logger = logging.getLogger("definemed")

CACHE_FILE = "judge_cache.jsonl"
LOGPROB_SUFFIX = (
    "\n\nAntworte jetzt ohne Begründung mit genau einem Buchstaben: A (Antwort A ist besser), "
    "B (Antwort B ist besser) oder C (gleich gut)."
)
LETTERS = {"A": ["A"], "B": ["B"], "tie": ["C"]}

__all__ = ["CACHE_FILE", "OpenAIJudge", "load_template", "render"]


def _invalid_cause(verdict: Verdict) -> str | None:
    return (verdict.cause or "invalid") if verdict.winner == "invalid" else None


class OpenAIJudge:
    kind = "openai"

    def __init__(self, config: OpenAIJudgeConfig, workdir: Path | None = None) -> None:
        self.config = config
        self.model = config.model
        self.template = load_template(config.template)
        self.cache = VerdictCache(Path(workdir) / CACHE_FILE if workdir is not None else None)
        self.endpoint = Endpoint("evaluate.judge", config.model, config.base_url, config.api_key_env)
        self.policy = SendPolicy(
            max_concurrency=config.concurrency,
            max_retries=config.max_retries,
            backoff_s=config.backoff_s,
            timeout_s=config.timeout_s,
            timeout_per_token_s=config.timeout_per_token_s,
        )
        self.stats: dict[str, Any] = {}
        self.requests = 0  # HTTP requests sent for verdicts, retries included
        self.note = f"{config.method} judge {config.model}"

    def cache_key(self, item: JudgeItem) -> str:
        c = self.config
        decoding = (
            {"method": "logprob", "tie_margin": c.tie_margin}
            if c.method == "logprob"
            else {"temperature": c.temperature, "max_tokens": c.max_tokens}
        )
        return stable_hash(
            {
                "model": c.model,
                "template": self.template,
                **decoding,
                "prompt": item.prompt,
                "reference": item.reference,
                "answer_a": item.answer_a,
                "answer_b": item.answer_b,
                "order": "a_shown_first",
            }
        )

    def _decide(self, top: dict[str, float] | None) -> tuple[Winner, str | None, str]:
        probs = answer_probabilities(top, LETTERS)
        raw = json.dumps({k: round(v, 6) for k, v in probs.items()} or {"top_logprobs": top}, ensure_ascii=False)
        if not probs:
            return "invalid", "unscored", raw
        best: Winner = max(probs, key=probs.__getitem__)  # type: ignore[assignment]
        if best != "tie" and abs(probs["A"] - probs["B"]) < self.config.tie_margin:
            best = "tie"
        return best, None, raw

    async def _ask(self, llm: LLMClient, item: JudgeItem, path: str | None) -> Verdict:
        c = self.config
        content = render(self.template, item)
        tries = c.parse_retries + 1 if c.temperature > 0 and c.method == "generate" else 1
        usage = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}
        verdict = Verdict(winner="invalid")
        for _ in range(tries):
            if path is not None:
                outcome = await llm.send(llm.logprob_body(path, content + LOGPROB_SUFFIX), path)
            else:
                outcome = await llm.send(
                    {
                        "model": c.model,
                        "messages": [{"role": "user", "content": content}],
                        "temperature": c.temperature,
                        "max_tokens": c.max_tokens,
                    }
                )
            usage = {
                "requests": usage["requests"] + outcome.requests,
                "prompt_tokens": usage["prompt_tokens"] + outcome.prompt_tokens,
                "completion_tokens": usage["completion_tokens"] + outcome.completion_tokens,
            }
            reply = outcome.reply
            if reply is None:
                return Verdict(
                    winner="invalid", error=f"{outcome.cause}: {outcome.error}", cause=outcome.cause, **usage
                )
            if path is not None:
                winner, cause, raw = self._decide(reply.top_logprobs)
            else:
                raw, winner = reply.text, parse_verdict(reply.text)
                cause = None if winner != "invalid" else ("cut" if reply.cut else "unparsed")
            verdict = Verdict(winner=winner, raw=raw, cause=cause, finish_reason=reply.finish_reason, **usage)
            if winner != "invalid":
                break
        return verdict

    async def _judge_one(self, llm: LLMClient, item: JudgeItem, path: str | None) -> Verdict:
        key = self.cache_key(item)
        hit = self.cache.get(key)
        if hit is not None:  # generated replies are re-read with today's parser; log-probability rows as stored
            winner, cause = hit["winner"], hit.get("cause")
            if hit.get("method", "generate") == "generate":
                winner = parse_verdict(hit["raw"])
                cause = None if winner != "invalid" else ("cut" if hit.get("finish_reason") == "length" else "unparsed")
            return Verdict(
                winner=winner, raw=hit["raw"], cause=cause, finish_reason=hit.get("finish_reason"), cached=True
            )
        verdict = await self._ask(llm, item, path)
        if verdict.error is None:  # a reply came back: keep it, even if it did not parse
            self.cache.put(
                {
                    "key": key,
                    "model": self.config.model,
                    "method": self.config.method,
                    "raw": verdict.raw,
                    "winner": verdict.winner,
                    "cause": verdict.cause,
                    "finish_reason": verdict.finish_reason,
                    "requests": verdict.requests,
                    "prompt_tokens": verdict.prompt_tokens,
                    "completion_tokens": verdict.completion_tokens,
                }
            )
        return verdict

    async def _judge_all(self, items: list[JudgeItem]) -> list[Verdict]:
        from tqdm.auto import tqdm

        # Identical comparisons (same answers in the same order) are asked once; the copies count as cached.
        first: dict[str, int] = {}
        for index, key in enumerate(map(self.cache_key, items)):
            first.setdefault(key, index)
        todo = [items[i] for i in first.values()]
        if all(self.cache.get(k) is not None for k in first):
            unique = [await self._judge_one(None, i, None) for i in todo]  # type: ignore[arg-type]
        else:
            async with LLMClient(self.endpoint, self.policy) as llm:
                path = await llm.logprob_path() if self.config.method == "logprob" else None
                with tqdm(total=len(todo), desc="judge", unit="verdict", disable=None) as bar:
                    try:
                        unique = await llm.map(
                            todo,
                            lambda i: self._judge_one(llm, i, path),
                            budget=self._budget(len(todo)),
                            cause_of=_invalid_cause,
                            on_result=lambda _: bar.update(1),
                        )
                    finally:
                        self.stats = llm.stats.as_dict() | {"capacity": llm.limiter.stats()}
                        self.requests = llm.stats.requests
        by_key = dict(zip(first, unique, strict=True))
        return [
            by_key[key] if first[key] == index else replace(by_key[key], cached=True)
            for index, key in enumerate(map(self.cache_key, items))
        ]

    def _budget(self, total: int) -> FailureBudget:
        where = f"{self.cache.path} (reparse-able raw replies)" if self.cache.path is not None else None
        return FailureBudget(
            f"evaluate.judge ({self.config.method} judge {self.config.model})",
            total,
            self.config.max_invalid_share,
            raw_where=where,
        )

    def judge_batch(self, items: list[JudgeItem]) -> list[Verdict]:
        """Verdicts in input order."""
        return run_sync(lambda: self._judge_all(items))
