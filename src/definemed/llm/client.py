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
- **Log-probabilities** (`score`): one output token with `top_logprobs`, chat endpoint first, `/completions` as
  fallback; the probabilities of answer words ('ja'/'nein', 'A'/'B'/'C') are summed over their spellings.
- Error texts and stored replies pass through `scrub`, so a key echoed by a proxy never reaches disk.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
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

logger = logging.getLogger("definemed")

T = TypeVar("T")
R = TypeVar("R")
TRANSPORT_CAUSES = ("timeout", "connection", "rate_limited", "server_error", "bad_request", "unsupported",
                    "invalid_reply")
STRUCTURED_MODES = ("json_schema", "json_object", "plain")


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
        return (self.timeout_s + self.timeout_per_token_s * (max_tokens or 0)) * 2 ** timeouts_so_far

    def backoff(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        wait = min(self.backoff_s * 2 ** attempt, self.max_backoff_s) * (1 + rng.uniform(0, self.jitter))
        if retry_after is not None:
            wait = max(wait, retry_after)
        return min(wait, self.max_backoff_s)


@dataclass
class Reply:
    text: str
    finish_reason: str | None = None
    model: str | None = None
    top_logprobs: dict[str, float] | None = None  # first output token: token text -> log-probability
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def cut(self) -> bool:
        return self.finish_reason == "length"


@dataclass
class Attempt:
    outcome: str  # "ok" or a cause from TRANSPORT_CAUSES
    status: int | None
    seconds: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None


@dataclass
class Outcome:
    """One item's request: the reply (None when every attempt failed) and every attempt."""

    reply: Reply | None
    attempts: list[Attempt] = field(default_factory=list)
    cause: str | None = None  # why there is no reply
    error: str | None = None

    @property
    def requests(self) -> int:
        return len(self.attempts)

    @property
    def prompt_tokens(self) -> int:
        return sum(a.prompt_tokens for a in self.attempts)

    @property
    def completion_tokens(self) -> int:
        return sum(a.completion_tokens for a in self.attempts)


@dataclass
class CallStats:
    requests: int = 0
    answered: int = 0
    setup_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    structured_output: str | None = None
    negotiation: list[dict[str, Any]] = field(default_factory=list)
    logprobs: str | None = None
    served_models: list[str] | None = None
    capacity: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["retries"], out["failed"] = dict(self.retries), dict(self.failed)
        return out


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


def _top_logprobs(choice: dict[str, Any]) -> dict[str, float] | None:
    """The first output token's alternatives, from a chat (`content[0].top_logprobs`) or completions reply."""
    lp = choice.get("logprobs")
    if not isinstance(lp, dict):
        return None
    content = lp.get("content")
    if isinstance(content, list) and content:
        first = content[0] or {}
        alts = {a["token"]: float(a["logprob"]) for a in first.get("top_logprobs") or [] if "token" in a}
        if "token" in first and first.get("logprob") is not None:
            alts.setdefault(first["token"], float(first["logprob"]))
        return alts or None
    tops = lp.get("top_logprobs")
    if isinstance(tops, list) and tops and isinstance(tops[0], dict):
        return {str(k): float(v) for k, v in tops[0].items()} or None
    return None


def reply_from_json(data: Any) -> Reply | None:
    """A chat or text completion as `Reply`; None when the body is not one (a proxy's error page)."""
    try:
        choice = data["choices"][0]
        message = choice.get("message")
        text = (message or {}).get("content") if message is not None else choice.get("text")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    usage = data.get("usage") or {}
    return Reply(text=text or "", finish_reason=choice.get("finish_reason"), model=data.get("model"),
                 top_logprobs=_top_logprobs(choice), prompt_tokens=int(usage.get("prompt_tokens") or 0),
                 completion_tokens=int(usage.get("completion_tokens") or 0))


def answer_probabilities(top: dict[str, float] | None, options: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """P(option) normalised over `options` from a token's top log-probabilities; each option's words are matched
    case-insensitively after stripping spaces and brackets, and their probabilities summed. Options absent from
    the top alternatives get 0; when none is present the result is empty (the reply could not be scored)."""
    mass = dict.fromkeys(options, 0.0)
    for token, logprob in (top or {}).items():
        norm = token.strip().strip("[]*\"'").lower()
        for option, words in options.items():
            if norm and norm in {w.lower() for w in words}:
                mass[option] += math.exp(logprob)
    total = sum(mass.values())
    return {k: v / total for k, v in mass.items()} if total > 0 else {}


def response_format(mode: str, schema: dict[str, Any], name: str = "reply") -> dict[str, Any] | None:
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}
    if mode == "json_object":  # llama.cpp / llama-cpp-python: a grammar built from the schema
        return {"type": "json_object", "schema": schema}
    return None


def _http_response_class(client: Any) -> type:
    """The Response class of the HTTP library under the SDK: as `cast_to` it makes the SDK return the raw
    response (skipping its request transform and response model, about 40 % of its CPU per request)."""
    for cls in type(client._client).__mro__:
        package = sys.modules.get(cls.__module__.split(".")[0])
        if package is not None and package.__name__ != "openai" and hasattr(package, "Response"):
            return package.Response
    raise RuntimeError("cannot find the HTTP library under the openai client")


class LLMClient:
    """Use as `async with LLMClient(endpoint, policy) as llm:` (opens the transport and runs the setup probe)."""

    _negotiated: dict[tuple[str, str, str], tuple[str, list[dict[str, Any]]]] = {}  # per process and endpoint

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
            raise EndpointSetupError("OpenAI-compatible endpoints need the 'openai' package: pip install openai") \
                from None
        self._key = self.endpoint.api_key()
        self._client = openai.AsyncOpenAI(api_key=self._key, base_url=self.endpoint.base_url,
                                          timeout=self.policy.timeout(None), max_retries=0)
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
            response = await self._client.get("/models", cast_to=self._response_cls,
                                              options={"timeout": PROBE_TIMEOUT_S})
        except openai.APIConnectionError as exc:
            raise EndpointSetupError(f"{ep.who}: cannot reach {ep.url} ({type(exc).__name__}: "
                                     f"{self.scrub(str(exc))}); is the server running and the URL right?") from None
        except openai.APIStatusError as exc:
            if exc.status_code in (401, 403):
                raise ep.refused(exc.status_code, self.scrub(str(exc)) or "") from None
            logger.info("%s: %s has no usable /models (HTTP %s): checking the reply's model instead",
                        ep.who, ep.url, exc.status_code)
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
        response = await self._client.post(path, body=body, cast_to=self._response_cls,
                                           options={"timeout": timeout})
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
                    raise EndpointSetupError(f"{ep.who}: {ep.url}{path} answered HTTP 404 for model '{ep.model}': "
                                             f"check {ep.who}.base_url and {ep.who}.model "
                                             f"({self.scrub(str(exc))[:200]})") from None
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
                    raise EndpointSetupError(f"{ep.who}: asked for model '{ep.model}', {ep.url} answered as "
                                             f"'{reply.model}'; set {ep.who}.model to the served name")
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

    # ------------------------------------------------------------------------------------------ negotiation
    async def _setup_post(self, path: str, body: dict[str, Any]) -> tuple[int | None, Any]:
        """A negotiation request: (HTTP status, body); transport failures are retried like any request."""
        import openai

        for attempt in range(self.policy.max_retries + 1):
            self.stats.setup_requests += 1
            try:
                return 200, await self._post(path, body, self.policy.timeout(body.get("max_tokens")))
            except openai.APIStatusError as exc:
                if exc.status_code in (401, 403):
                    raise self.endpoint.refused(exc.status_code, self.scrub(str(exc)) or "") from None
                if exc.status_code not in (429, 503):
                    return exc.status_code, self.scrub(str(exc))
            except openai.APIConnectionError as exc:  # time-outs included
                if attempt >= self.policy.max_retries:
                    raise EndpointSetupError(f"{self.endpoint.who}: {self.endpoint.url} did not answer the set-up "
                                             f"request ({type(exc).__name__})") from None
            await asyncio.sleep(self.policy.backoff(attempt, None, self._rng))
        return None, "no answer"

    async def structured_mode(self, schema: dict[str, Any], wanted: str = "auto") -> str:
        """The response_format this endpoint accepts: `wanted`, or for 'auto' the first of json_schema,
        json_object + schema, plain that the server answers with 200. Asked once per endpoint and process."""
        key = (self.endpoint.url, self.endpoint.model, wanted)
        if key not in self._negotiated:
            if wanted != "auto":
                self._negotiated[key] = (wanted, [{"mode": wanted, "status": None, "note": "set in the config"}])
            else:
                tried: list[dict[str, Any]] = []
                chosen = "plain"
                for mode in ("json_schema", "json_object"):
                    body = {"model": self.endpoint.model, "max_tokens": 8, "temperature": 0,
                            "messages": [{"role": "user", "content": "Antworte mit einem JSON-Objekt."}],
                            "response_format": response_format(mode, schema)}
                    status, data = await self._setup_post("/chat/completions", body)
                    tried.append({"mode": mode, "status": status,
                                  **({} if status == 200 else {"error": str(data)[:200]})})
                    if status == 200 and reply_from_json(data) is not None:
                        chosen = mode
                        break
                self._negotiated[key] = (chosen, tried)
                logger.info("%s: structured output via %s (%s)", self.endpoint.who, chosen, tried)
        self.stats.structured_output, self.stats.negotiation = self._negotiated[key]
        return self.stats.structured_output

    async def logprob_path(self) -> str:
        """'/chat/completions' when the server returns top_logprobs there, else '/completions'; raises when
        neither does (use a generating method instead)."""
        key = (self.endpoint.url, self.endpoint.model, "logprobs")
        if key not in self._negotiated:
            tried: list[dict[str, Any]] = []
            chosen = None
            for path in ("/chat/completions", "/completions"):
                status, data = await self._setup_post(path, self.logprob_body(path, "Sag ja.", 5))
                reply = reply_from_json(data) if status == 200 else None
                ok = reply is not None and bool(reply.top_logprobs)
                tried.append({"path": path, "status": status, "top_logprobs": ok})
                if ok:
                    chosen = path
                    break
            if chosen is None:
                raise EndpointSetupError(f"{self.endpoint.who}: {self.endpoint.url} returns no log-probabilities "
                                         f"(tried {tried}); use method: generate for this endpoint")
            self._negotiated[key] = (chosen, tried)
        self.stats.logprobs = self._negotiated[key][0]
        return self.stats.logprobs

    def logprob_body(self, path: str, prompt: str, top: int = 20) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.endpoint.model, "max_tokens": 1, "temperature": 0}
        if path == "/completions":
            return body | {"prompt": prompt, "logprobs": top}
        return body | {"messages": [{"role": "user", "content": prompt}], "logprobs": True, "top_logprobs": top}

    # ------------------------------------------------------------------------------------------ many items
    async def map(self, items: Sequence[T], fn: Callable[[T], Awaitable[R]], *,
                  budget: FailureBudget | None = None, cause_of: Callable[[R], str | None] | None = None,
                  on_result: Callable[[R], None] | None = None) -> list[R]:
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
            first = next((e for e in exc.exceptions if isinstance(e, FailureBudgetExceeded | EndpointSetupError)),
                         exc.exceptions[0])
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
