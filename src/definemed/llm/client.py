"""`LLMClient`: every request to an OpenAI-compatible endpoint goes through here.

One `openai.AsyncOpenAI` transport (its own retries off: ours are counted), one `CapacityLimiter` per client.

- **Retries**: time-outs, connection errors, 429 and 5xx are retried with exponential back-off and jitter, never
  sooner than a Retry-After asks (which also pauses every other sender). 400/422 are final (an unsupported
  parameter does not get better by asking again); 401/403 and 404 abort with an `EndpointSetupError` that names
  the key variable or the model. A 400/422/500 that names `response_format` is an unsupported parameter: final.
- **Time-outs scale with the requested output tokens** (`timeout_s + timeout_per_token_s * max_tokens`), and each
  time-out of the same item doubles the next one. A timed-out request is asked again only after as long as it was
  given: a server that queues requests (llama.cpp) may still be computing it, and resending at once would make
  it compute the same answer twice.
- **Accounting**: every attempt is recorded (outcome, HTTP status, seconds, tokens) in the item's `Outcome` and
  summed in `CallStats`: requests, answers, failures and retries by cause, prompt and completion tokens.
- **Structured output** (`structured_mode`) is negotiated once per endpoint: `json_schema`, then `json_object`
  with the schema inside (llama.cpp), then plain text read by a strict parser; the choice is in the stats.
- **Log-probabilities** (`logprob_path`): one output token with `top_logprobs`, chat endpoint first,
  `/completions` as fallback; the probabilities of answer words ('ja'/'nein', 'A'/'B'/'C') are summed over their
  spellings (`answer_probabilities`). Both negotiations live in `negotiation.py`, reply parsing in `replies.py`,
  the accounting records in `stats.py`.
- Error texts and stored replies pass through `scrub`, so a key echoed by a proxy never reaches disk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from definemed.llm.capacity import CapacityLimiter
from definemed.llm.endpoint import (
    PROBE_TIMEOUT_S,
    Endpoint,
    EndpointSetupError,
    check_model_listed,
    model_ids,
    scrub,
)
from definemed.llm.errors import FailureBudget, FailureBudgetExceeded
from definemed.llm.negotiation import Negotiation
from definemed.llm.replies import (  # answer_probabilities, response_format: imported from here by callers
    STRUCTURED_MODES,
    Reply,
    answer_probabilities,
    reply_from_json,
    response_format,
    retry_after_seconds,
)
from definemed.llm.stats import TRANSPORT_CAUSES, Attempt, CallStats, Outcome

logger = logging.getLogger("definemed")

T = TypeVar("T")
R = TypeVar("R")

__all__ = [
    "STRUCTURED_MODES",
    "TRANSPORT_CAUSES",
    "Attempt",
    "CallStats",
    "LLMClient",
    "Outcome",
    "Reply",
    "SendPolicy",
    "answer_probabilities",
    "reply_from_json",
    "response_format",
    "retry_after_seconds",
    "run_sync",
]


@dataclass(frozen=True)
class SendPolicy:
    max_concurrency: int = 8
    start_concurrency: int = 1
    max_retries: int = 3
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    jitter: float = 0.25
    timeout_s: float = 30.0
    timeout_per_token_s: float = 0.25

    def timeout(self, max_tokens: int | None, timeouts_so_far: int = 0) -> float:
        return (self.timeout_s + self.timeout_per_token_s * (max_tokens or 0)) * 2**timeouts_so_far

    def backoff(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        wait = min(self.backoff_s * 2**attempt, self.max_backoff_s) * (1 + rng.uniform(0, self.jitter))
        if retry_after is not None:
            wait = max(wait, retry_after)
        return min(wait, self.max_backoff_s)


def _http_response_class(client: Any) -> type:
    """The Response class of the HTTP library under the SDK: as `cast_to` it makes the SDK return the raw
    response (skipping its request transform and response model, about 40 % of its CPU per request)."""
    for cls in type(client._client).__mro__:
        package = sys.modules.get(cls.__module__.split(".")[0])
        if package is not None and package.__name__ != "openai" and hasattr(package, "Response"):
            return package.Response
    raise RuntimeError("cannot find the HTTP library under the openai client")


class LLMClient(Negotiation):
    """Use as `async with LLMClient(endpoint, policy) as llm:` (opens the transport and runs the setup probe)."""

    def __init__(self, endpoint: Endpoint, policy: SendPolicy | None = None, probe: bool = True) -> None:
        self.endpoint = endpoint
        self.policy = policy or SendPolicy()
        self.stats = CallStats()
        self.limiter = CapacityLimiter(self.policy.max_concurrency, self.policy.start_concurrency)
        self._probe = probe
        self._client: Any = None
        self._key = ""
        self._response_cls: type | None = None
        self._check_reply_model = False
        self._rng = random.Random()

    # ------------------------------------------------------------------------------------------ set-up
    async def __aenter__(self) -> LLMClient:
        try:
            import openai
        except ImportError:
            raise EndpointSetupError(
                "OpenAI-compatible endpoints need the 'openai' package: pip install openai"
            ) from None
        self._key = self.endpoint.api_key()
        self._client = openai.AsyncOpenAI(
            api_key=self._key, base_url=self.endpoint.base_url, timeout=self.policy.timeout(None), max_retries=0
        )
        self._response_cls = _http_response_class(self._client)
        if self._probe:
            await self.probe()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stats.capacity = self.limiter.stats()
        if self._client is not None:
            await self._client.close()

    def scrub(self, text: str | None) -> str | None:
        return scrub(text, (self._key,))

    async def probe(self) -> None:
        """`GET /models`: the server is up, takes the key and serves the model. A server without the route is
        checked on its first reply's `model` instead."""
        import openai

        ep = self.endpoint
        self.stats.setup_requests += 1
        try:
            response = await self._client.get(
                "/models", cast_to=self._response_cls, options={"timeout": PROBE_TIMEOUT_S}
            )
        except openai.APIConnectionError as exc:
            raise EndpointSetupError(
                f"{ep.who}: cannot reach {ep.url} ({type(exc).__name__}: "
                f"{self.scrub(str(exc))}); is the server running and the URL right?"
            ) from None
        except openai.APIStatusError as exc:
            if exc.status_code in (401, 403):
                raise ep.refused(exc.status_code, self.scrub(str(exc)) or "") from None
            logger.info(
                "%s: %s has no usable /models (HTTP %s): checking the reply's model instead",
                ep.who,
                ep.url,
                exc.status_code,
            )
            self._check_reply_model = True
            return
        try:
            ids = model_ids(json.loads(response.content))
        except ValueError:
            ids = []
        self.stats.served_models = ids
        check_model_listed(ep, ids)
        self._check_reply_model = not ids

    # ------------------------------------------------------------------------------------------ sending
    async def _post(self, path: str, body: dict[str, Any], timeout: float) -> Any:
        response = await self._client.post(path, body=body, cast_to=self._response_cls, options={"timeout": timeout})
        try:
            return json.loads(response.content)
        except ValueError:
            return response.text

    async def send(self, body: dict[str, Any], path: str = "/chat/completions") -> Outcome:
        """One item's request with retries; never raises for transport failures (see `Outcome.cause`)."""
        import openai

        policy, ep = self.policy, self.endpoint
        outcome = Outcome(reply=None)
        timeouts = 0
        for attempt in range(policy.max_retries + 1):
            timeout = policy.timeout(body.get("max_tokens"), timeouts)
            await self.limiter.acquire()
            self.stats.requests += 1
            t0 = time.monotonic()
            kind, retry_after, status, cause, error, final = "other", None, None, None, None, False
            try:
                data = await self._post(path, body, timeout)
                reply = reply_from_json(data)
                status = 200
                if reply is None:
                    cause, error = "invalid_reply", f"not a completion: {str(data)[:300]}"
                else:
                    kind = "ok"
            except openai.APITimeoutError:
                cause, kind, error = "timeout", "overload", f"no reply within {timeout:.0f} s"
                timeouts += 1
            except openai.APIConnectionError as exc:
                cause, error = "connection", f"{type(exc).__name__}: {exc}"
            except openai.APIStatusError as exc:
                status = exc.status_code
                error = f"HTTP {status}: {exc}"
                if status in (401, 403):
                    await self.limiter.release("other")
                    raise ep.refused(status, self.scrub(str(exc)) or "") from None
                if status == 404:
                    await self.limiter.release("other")
                    raise EndpointSetupError(
                        f"{ep.who}: {ep.url}{path} answered HTTP 404 for model '{ep.model}': "
                        f"check {ep.who}.base_url and {ep.who}.model "
                        f"({self.scrub(str(exc))[:200]})"
                    ) from None
                retry_after = retry_after_seconds(exc.response.headers if exc.response is not None else None)
                if status in (400, 422, 500) and "response_format" in str(exc):
                    cause, final = "unsupported", True  # a parameter the server rejects: asking again cannot help
                elif status == 429:
                    cause, kind = "rate_limited", "overload"
                elif status >= 500:
                    cause, kind = "server_error", ("overload" if status == 503 else "other")
                else:
                    cause, final = "bad_request", True
            finally:
                seconds = round(time.monotonic() - t0, 3)
            await self.limiter.release(kind, retry_after, latency=seconds)
            if cause is None:
                if self._check_reply_model and reply.model and not reply.model.startswith(ep.model):
                    raise EndpointSetupError(
                        f"{ep.who}: asked for model '{ep.model}', {ep.url} answered as "
                        f"'{reply.model}'; set {ep.who}.model to the served name"
                    )
                outcome.attempts.append(Attempt("ok", status, seconds, reply.prompt_tokens, reply.completion_tokens))
                outcome.reply = reply
                reply.text = self.scrub(reply.text) or ""
                self.stats.answered += 1
                self.stats.prompt_tokens += reply.prompt_tokens
                self.stats.completion_tokens += reply.completion_tokens
                return outcome
            error = self.scrub(error)
            outcome.attempts.append(Attempt(cause, status, seconds, error=error))
            if final or attempt >= policy.max_retries:
                outcome.cause, outcome.error = cause, error
                self.stats.failed[cause] += 1
                logger.warning("%s: request failed after %d attempt(s): %s", ep.who, attempt + 1, error)
                return outcome
            self.stats.retries[cause] += 1
            wait = policy.backoff(attempt, retry_after, self._rng)
            if cause == "timeout":  # the server may still be computing it: do not make it compute it twice
                wait = max(wait, timeout)
            logger.info("%s: %s, retry %d/%d in %.1f s", ep.who, cause, attempt + 1, policy.max_retries, wait)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns")

    # ------------------------------------------------------------------------------------------ many items
    async def map(
        self,
        items: Sequence[T],
        fn: Callable[[T], Awaitable[R]],
        *,
        budget: FailureBudget | None = None,
        cause_of: Callable[[R], str | None] | None = None,
        on_result: Callable[[R], None] | None = None,
    ) -> list[R]:
        """`fn` over `items` (results in input order); the limiter decides how many requests are in flight.
        With a budget, each result's cause (`cause_of`, None = fine) is counted as it arrives and the batch stops
        with `FailureBudgetExceeded` as soon as the budget cannot hold any more."""
        results: list[Any] = [None] * len(items)
        pending = iter(enumerate(items))

        async def worker() -> None:
            for index, item in pending:
                results[index] = result = await fn(item)
                if on_result is not None:
                    on_result(result)
                if budget is not None:
                    budget.add(cause_of(result) if cause_of is not None else None)
                    budget.check()

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.policy.max_concurrency, len(items))):
                    group.create_task(worker())
        except BaseExceptionGroup as exc:  # the cause, not the group wrapper
            first = next(
                (e for e in exc.exceptions if isinstance(e, FailureBudgetExceeded | EndpointSetupError)),
                exc.exceptions[0],
            )
            raise first from None
        return results


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from synchronous code, also when the caller already runs an event loop (a
    notebook): then on a fresh loop in a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())  # type: ignore[arg-type]
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(make())  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="definemed-llm")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
