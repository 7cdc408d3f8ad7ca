"""Shared plumbing for OpenAI-compatible endpoints (the openai generator and the openai judge).

- `api_key`: read from the environment variable the config names; local servers get a dummy key. Keys are never
  logged or written.
- `call_with_retries`: one request with our own retries (the client's are off so that every attempt is counted
  and logged): time-outs, connection errors, 429 and 5xx are retried with exponential back-off and jitter,
  honouring Retry-After up to a minute; setup errors (401/403/404) abort with `EndpointSetupError`.
- `gather_bounded` / `run_sync`: run coroutines with at most `concurrency` in flight, from synchronous code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlparse

from definemed.errors import DefinemedError

logger = logging.getLogger("definemed")

T = TypeVar("T")
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
MAX_RETRY_AFTER_S = 60.0


class EndpointSetupError(DefinemedError, RuntimeError):
    """The endpoint refused the setup (bad key, unknown model or URL): retrying cannot help."""


class RequestFailed(RuntimeError):
    """A request that still failed after every retry; `error` is the last error, as text."""

    def __init__(self, error: str, attempts: int) -> None:
        super().__init__(error)
        self.error, self.attempts = error, attempts


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    backoff_s: float = 1.0
    jitter: float = 0.5  # each wait is scaled by a random factor in [1 - jitter, 1]


def api_key(env_name: str, base_url: str | None, who: str) -> str:
    """The key from `env_name`; "EMPTY" for local servers, which accept any key (the client insists on one)."""
    key = os.environ.get(env_name)
    if key:
        return key
    if (urlparse(base_url).hostname if base_url else None) in LOCAL_HOSTS:
        return "EMPTY"
    raise RuntimeError(f"{who}: environment variable {env_name} is not set "
                       f"(needed for {base_url or 'the OpenAI API'})")


def async_client(base_url: str | None, key: str, timeout_s: float) -> Any:
    """An AsyncOpenAI client without its own retries. Create it inside the event loop that will use it."""
    try:
        import openai
    except ImportError:
        raise RuntimeError("OpenAI-compatible backends need the 'openai' package: pip install openai") from None
    return openai.AsyncOpenAI(api_key=key, base_url=base_url, timeout=timeout_s, max_retries=0)


def _http_response_class(client: Any) -> type:
    """The Response class of the HTTP library the SDK runs on (httpx, or httpx2 in newer releases): asking for
    it as `cast_to` makes the SDK hand back the raw response."""
    for cls in type(client._client).__mro__:
        package = sys.modules.get(cls.__module__.split(".")[0])
        if package is not None and package.__name__ != "openai" and hasattr(package, "Response"):
            return package.Response
    raise RuntimeError("cannot find the HTTP library under the openai client")


async def chat_completion(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    """POST /chat/completions through the AsyncOpenAI client and return the reply as plain JSON.

    Same transport, time-outs and typed errors (RateLimitError, InternalServerError, ...) as
    `client.chat.completions.create`, without the SDK's parameter transform and response model, which cost about
    40% of the client's CPU per request: at 16 requests in flight on a small machine that is the bottleneck.
    """
    import json

    response = await client.post("/chat/completions", body=body, cast_to=_http_response_class(client))
    return json.loads(response.content)


def retry_wait(exc: Exception, attempt: int, policy: RetryPolicy, rng: random.Random | None = None) -> float | None:
    """Seconds to wait before retrying `exc` (attempt 0 = the first failure), or None when not worth retrying."""
    import openai

    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError | openai.NotFoundError):
        raise EndpointSetupError(f"endpoint refused the setup: {type(exc).__name__}: {exc}") from None
    retryable = isinstance(exc, openai.APIConnectionError | openai.RateLimitError | openai.InternalServerError)
    if not retryable or attempt >= policy.max_retries:
        return None
    wait = policy.backoff_s * 2**attempt * (1 - policy.jitter * (rng or random).random())
    response = getattr(exc, "response", None)
    retry_after = response.headers.get("retry-after") if response is not None else None
    # An HTTP-date Retry-After is rare from model servers: then our own back-off stands.
    if retry_after:
        with contextlib.suppress(ValueError):
            wait = max(wait, min(float(retry_after), MAX_RETRY_AFTER_S))
    return wait


async def call_with_retries(request: Callable[[], Awaitable[T]], policy: RetryPolicy, what: str,
                            on_attempt: Callable[[], None] | None = None) -> T:
    """Await `request()` until it succeeds; raise `RequestFailed` after the last retry."""
    import openai

    for attempt in range(policy.max_retries + 1):
        if on_attempt is not None:
            on_attempt()
        try:
            return await request()
        except openai.APIError as exc:  # anything else is a bug or a setup error: let it surface
            wait = retry_wait(exc, attempt, policy)
            if wait is None:
                logger.warning("%s failed for good after %d attempt(s): %s", what, attempt + 1, type(exc).__name__)
                raise RequestFailed(f"{type(exc).__name__}: {exc}", attempt + 1) from None
            logger.info("%s failed (%s); retry %d/%d in %.2f s", what, type(exc).__name__, attempt + 1,
                        policy.max_retries, wait)
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")


async def gather_bounded(jobs: Sequence[Callable[[], Awaitable[T]]], concurrency: int,
                         progress: Callable[[], None] | None = None) -> list[T]:
    """Run the jobs with at most `concurrency` in flight; results in input order. The first exception cancels
    the rest and propagates."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            result = await job()
        if progress is not None:
            progress()
        return result

    tasks = [asyncio.ensure_future(one(job)) for job in jobs]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()


def run_sync(coro_factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from synchronous code, also when the caller already runs an event loop
    (a notebook): then it runs on a fresh loop in a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_factory())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro_factory())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="definemed-async")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
