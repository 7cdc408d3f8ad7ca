"""Generative labeller behind any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama, hosted).

Requests run on asyncio through `openai.AsyncOpenAI` with a fixed pool of `concurrency` workers pulling from
one document iterator (rather than one task per document behind a Semaphore): at most `concurrency` requests
are in flight and memory stays flat for a 260k-document sample. Time-outs, connection errors, 429 and 5xx are
retried with exponential back-off and jitter, waiting at least as long as a Retry-After header asks (up to
`max_backoff_s`); other 4xx are final. 401/403/404 mean the setup is wrong (key, model, URL) and abort the run
instead of failing every document. The API key comes from the environment and is never logged or stored.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlparse

from definemed.corpus.labelling.cache import JSON_REPLY
from definemed.corpus.labelling.prompts import load_template, render
from definemed.corpus.labelling.schema import Document, LabelResult, json_schema, parse_reply
from definemed.corpus.labelling.settings import OpenAILabellerSettings
from definemed.errors import DefinemedError

logger = logging.getLogger("definemed")

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
T = TypeVar("T")


class LabellingSetupError(DefinemedError, RuntimeError):
    """The endpoint cannot work at all (missing key, refused key, unknown model or URL)."""


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds a server asks us to wait: `retry-after-ms`, `retry-after` as seconds or as an HTTP date."""
    if not headers:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(float(ms) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(email.utils.parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def backoff_wait(attempt: int, settings: OpenAILabellerSettings, retry_after: float | None,
                 rng: random.Random) -> float:
    """Exponential back-off with jitter, never shorter than Retry-After; both capped at `max_backoff_s`."""
    wait = min(settings.backoff_s * 2**attempt, settings.max_backoff_s)
    wait *= 1 + rng.uniform(0, settings.jitter)
    if retry_after is not None:
        wait = max(wait, retry_after)
    return min(wait, settings.max_backoff_s)


def run_coroutine(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion, also when the caller already has an event loop (notebooks)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


class OpenAILabeller:
    backend = "openai"
    parser = JSON_REPLY

    def __init__(self, settings: OpenAILabellerSettings) -> None:
        self.settings = settings
        self.template = load_template(settings.template, "json")
        self.requests = 0  # HTTP requests sent, retries included
        self._rng = random.Random()  # jitter only; need not be reproducible

    def identity(self) -> dict[str, Any]:
        """Everything besides the document that determines a reply (the cache key). The URL is left out so
        that moving a server does not invalidate the cache."""
        s = self.settings
        return {"backend": self.backend, "model": s.model, "template": self.template,
                "temperature": s.temperature, "max_tokens": s.max_tokens, "seed": s.seed,
                "json_schema": s.json_schema, "max_doc_chars": s.max_doc_chars}

    def _api_key(self) -> str:
        key = os.environ.get(self.settings.api_key_env)
        if key:
            return key
        url = self.settings.base_url
        if url and urlparse(url).hostname in LOCAL_HOSTS:
            return "EMPTY"  # local servers accept any key, the client insists on one
        raise LabellingSetupError(f"labeller: environment variable {self.settings.api_key_env} is not set "
                                  f"(needed for {url or 'the OpenAI API'})")

    def _request(self, doc: Document) -> dict[str, Any]:
        s = self.settings
        request: dict[str, Any] = {
            "model": s.model, "temperature": s.temperature, "max_tokens": s.max_tokens,
            "messages": [{"role": "user", "content": render(self.template, doc.text, s.max_doc_chars)}]}
        if s.seed is not None:
            request["seed"] = s.seed
        if s.json_schema:
            request["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "medical_labels", "strict": True, "schema": json_schema()}}
        return request

    def _retry_wait(self, exc: Exception, attempt: int) -> float | None:
        """Seconds to wait before retrying `exc`; None when it is final. Raises on setup errors."""
        import openai

        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError | openai.NotFoundError):
            raise LabellingSetupError(f"labelling endpoint refused the setup: {type(exc).__name__}: "
                                      f"{str(exc)[:300]}") from None
        status = getattr(exc, "status_code", None)
        retryable = isinstance(exc, openai.APIConnectionError) or status == 429 or (status or 0) >= 500
        if not retryable or attempt >= self.settings.max_retries:
            return None
        response = getattr(exc, "response", None)
        headers = response.headers if response is not None else None
        return backoff_wait(attempt, self.settings, retry_after_seconds(headers), self._rng)

    async def _label_one(self, client: Any, doc: Document) -> LabelResult:
        import openai

        request = self._request(doc)
        for attempt in range(self.settings.max_retries + 1):
            self.requests += 1
            try:
                response = await client.chat.completions.create(**request)
            except openai.APIError as exc:
                wait = self._retry_wait(exc, attempt)
                if wait is None:
                    logger.warning("labelling %s failed after %d attempt(s): %s", doc.id, attempt + 1,
                                   type(exc).__name__)
                    status = "timeout" if isinstance(exc, openai.APITimeoutError) else "http_error"
                    return LabelResult(doc_id=doc.id, status=status, attempts=attempt + 1,
                                       error=f"{type(exc).__name__}: {str(exc)[:500]}")
                logger.info("labelling %s: %s, retry %d/%d in %.2f s", doc.id, type(exc).__name__,
                            attempt + 1, self.settings.max_retries, wait)
                await asyncio.sleep(wait)
                continue
            return _result_from_response(doc, response, attempt + 1)
        raise AssertionError("unreachable: the last attempt returns")

    async def _label_all(self, docs: Sequence[Document],
                         on_result: Callable[[LabelResult], None] | None) -> list[LabelResult]:
        import openai

        s = self.settings
        client = openai.AsyncOpenAI(api_key=self._api_key(), base_url=s.base_url, timeout=s.timeout_s,
                                    max_retries=0)  # retries are ours: counted, logged, backed off
        results: list[LabelResult | None] = [None] * len(docs)
        pending = iter(enumerate(docs))  # shared by the workers; next() never interleaves in one loop

        async def worker() -> None:
            for index, doc in pending:
                results[index] = result = await self._label_one(client, doc)
                if on_result is not None:
                    on_result(result)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(s.concurrency, len(docs))):
                    group.create_task(worker())
        except BaseExceptionGroup as exc:  # surface the cause, not the group wrapper
            raise exc.exceptions[0] from None
        finally:
            await client.close()
        return [r for r in results if r is not None]

    def label_many(self, docs: Sequence[Document],
                   on_result: Callable[[LabelResult], None] | None = None) -> list[LabelResult]:
        """Label `docs` (results in input order); `on_result` sees each result as soon as it exists."""
        if not docs:
            return []
        return run_coroutine(lambda: self._label_all(docs, on_result))


def _result_from_response(doc: Document, response: Any, attempts: int) -> LabelResult:
    """Parse a chat completion; a body that is not one (proxy error page) is an http_error, raw kept."""
    try:
        text = response.choices[0].message.content or ""
    except (AttributeError, IndexError, TypeError):
        return LabelResult(doc_id=doc.id, status="http_error", raw=str(response)[:2000], attempts=attempts,
                           error="response is not a chat completion")
    usage = getattr(response, "usage", None)
    status, labels, error = parse_reply(text)
    return LabelResult(doc_id=doc.id, labels=labels, status=status, raw=text, error=error, attempts=attempts,
                       prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                       completion_tokens=getattr(usage, "completion_tokens", 0) or 0)
