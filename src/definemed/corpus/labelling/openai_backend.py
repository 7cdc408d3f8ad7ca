"""Labeller behind any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama, hosted APIs).

All sending goes through `definemed.llm.LLMClient` (setup probe, adaptive concurrency, retries, time-outs that
scale with `max_tokens`, per-attempt accounting, secret scrubbing). Two methods:
- `generate`: the rubric's `json` answer section; the reply must be one JSON object, read by the strict parser.
  The response format is negotiated once per endpoint (`structured_output: auto`: json_schema, then json_object
  with the schema, then plain text). A reply cut at `max_tokens` keeps its raw text and says so in its error.
- `logprob`: the rubric's `yesno` section, one output token with `top_logprobs`; P(medical) is the probability of
  the positive word (any casing) over positive + negative, as the `hf` labeller computes it locally.
Transport failures are returned with status `timeout` / `http_error` and are never cached (the runner asks them
again on a rerun). The API key comes from the environment and is never logged or stored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from definemed.corpus.labelling.cache import JSON_REPLY
from definemed.corpus.labelling.hf_backend import word_variants
from definemed.corpus.labelling.prompts import load_template, render
from definemed.corpus.labelling.schema import DocLabels, Document, LabelResult, json_schema, parse_reply
from definemed.corpus.labelling.settings import OpenAILabellerSettings
from definemed.llm import Endpoint, EndpointSetupError, LLMClient, Outcome, SendPolicy, run_sync
from definemed.llm.client import answer_probabilities, response_format

logger = logging.getLogger("definemed")

LabellingSetupError = EndpointSetupError  # the name older code and tests import


def policy_of(s: Any, max_tokens: int) -> SendPolicy:
    return SendPolicy(
        max_concurrency=s.concurrency,
        max_retries=s.max_retries,
        backoff_s=s.backoff_s,
        max_backoff_s=s.max_backoff_s,
        jitter=s.jitter,
        timeout_s=s.timeout_s,
        timeout_per_token_s=s.timeout_per_token_s,
    )


class OpenAILabeller:
    backend = "openai"

    def __init__(self, settings: OpenAILabellerSettings) -> None:
        self.settings = settings
        self.logprob = settings.method == "logprob"
        self.parser = "logprob" if self.logprob else JSON_REPLY
        self.template = load_template(settings.template, "yesno" if self.logprob else "json")
        self.endpoint = Endpoint("corpus.labelling.labeller", settings.model, settings.base_url, settings.api_key_env)
        self.stats: dict[str, Any] = {}
        self.requests = 0  # HTTP requests sent for documents, retries included

    def identity(self) -> dict[str, Any]:
        """Everything besides the document that determines a reply (the cache key). The URL is left out so
        that moving a server does not invalidate the cache."""
        s = self.settings
        ident = {
            "backend": self.backend,
            "model": s.model,
            "template": self.template,
            "method": s.method,
            "temperature": s.temperature,
            "max_tokens": s.max_tokens,
            "seed": s.seed,
            "max_doc_chars": s.max_doc_chars,
        }
        if self.logprob:
            return ident | {
                "positive": s.positive,
                "negative": s.negative,
                "threshold": s.threshold,
                "temperature": 0.0,
                "max_tokens": 1,
            }
        return ident | {"structured_output": s.structured_output}

    def _body(self, llm: LLMClient, doc: Document, mode: str | None, path: str | None) -> dict[str, Any]:
        s = self.settings
        prompt = render(self.template, doc.text, s.max_doc_chars)
        if self.logprob:
            return llm.logprob_body(path or "/chat/completions", prompt)
        body: dict[str, Any] = {
            "model": s.model,
            "temperature": s.temperature,
            "max_tokens": s.max_tokens,
            "messages": [{"role": "user", "content": prompt}],
        }
        if s.seed is not None:
            body["seed"] = s.seed
        if mode is not None and (fmt := response_format(mode, json_schema(), "medical_labels")) is not None:
            body["response_format"] = fmt
        return body

    def _result(self, doc: Document, outcome: Outcome) -> LabelResult:
        usage = {
            "attempts": outcome.requests,
            "prompt_tokens": outcome.prompt_tokens,
            "completion_tokens": outcome.completion_tokens,
        }
        reply = outcome.reply
        if reply is None:
            status = "timeout" if outcome.cause == "timeout" else "http_error"
            return LabelResult(doc_id=doc.id, status=status, error=f"{outcome.cause}: {outcome.error}", **usage)
        if self.logprob:
            s = self.settings
            probs = answer_probabilities(
                reply.top_logprobs, {"pos": word_variants(s.positive), "neg": word_variants(s.negative)}
            )
            raw = json.dumps(
                {"top_logprobs": reply.top_logprobs, "finish_reason": reply.finish_reason}, ensure_ascii=False
            )
            if not probs:
                return LabelResult(
                    doc_id=doc.id,
                    status="invalid_json",
                    raw=raw,
                    error=(f"neither '{s.positive}' nor '{s.negative}' among the top log-probabilities"),
                    **usage,
                )
            p = probs["pos"]
            return LabelResult(
                doc_id=doc.id, status="ok", raw=raw, **usage, labels=DocLabels(medical=p >= s.threshold, p_medical=p)
            )
        status, labels, error = parse_reply(reply.text)
        if status != "ok" and reply.cut:
            error = f"cut at max_tokens={self.settings.max_tokens} (finish_reason=length); {error}"
        return LabelResult(
            doc_id=doc.id,
            labels=labels,
            status=status,
            raw=reply.text,
            error=error,
            finish_reason=reply.finish_reason,
            **usage,
        )

    async def _label_all(
        self, docs: Sequence[Document], on_result: Callable[[LabelResult], None] | None
    ) -> list[LabelResult]:
        s = self.settings
        async with LLMClient(self.endpoint, policy_of(s, s.max_tokens)) as llm:
            mode = path = None
            if self.logprob:
                path = await llm.logprob_path()
            else:
                mode = await llm.structured_mode(json_schema(), s.structured_output)

            async def one(doc: Document) -> LabelResult:
                return self._result(doc, await llm.send(self._body(llm, doc, mode, path), path or "/chat/completions"))

            try:
                return await llm.map(list(docs), one, on_result=on_result)
            finally:
                self.stats = llm.stats.as_dict() | {"capacity": llm.limiter.stats()}
                self.requests = llm.stats.requests

    def label_many(
        self, docs: Sequence[Document], on_result: Callable[[LabelResult], None] | None = None
    ) -> list[LabelResult]:
        """Label `docs` (results in input order); `on_result` sees each result as soon as it exists (and may
        raise to stop the batch, as the runner's failure budget does)."""
        if not docs:
            return []
        return run_sync(lambda: self._label_all(docs, on_result))
