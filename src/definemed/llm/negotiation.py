"""What an endpoint supports, asked once per endpoint and process: the structured-output mode it accepts and the
path that returns log-probabilities. `Negotiation` is a base of `LLMClient`; its requests are set-up requests
(counted apart from the items' requests in `CallStats.setup_requests`)."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING, Any

from definemed.llm.endpoint import Endpoint, EndpointSetupError
from definemed.llm.replies import reply_from_json, response_format
from definemed.llm.stats import CallStats

logger = logging.getLogger("definemed")


class Negotiation:
    """Needs from the client: `endpoint`, `policy`, `stats`, `_rng`, `scrub` and `_post`."""

    # per process, keyed on (endpoint url, model, what): the answer and every try that led to it
    _negotiated: dict[tuple[str, str, str], tuple[str, list[dict[str, Any]]]] = {}
    endpoint: Endpoint
    stats: CallStats
    policy: Any  # SendPolicy
    _rng: random.Random

    if TYPE_CHECKING:  # provided by LLMClient

        def scrub(self, text: str | None) -> str | None: ...

        async def _post(self, path: str, body: dict[str, Any], timeout: float) -> Any: ...

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
                    raise EndpointSetupError(
                        f"{self.endpoint.who}: {self.endpoint.url} did not answer the set-up "
                        f"request ({type(exc).__name__})"
                    ) from None
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
                    body = {
                        "model": self.endpoint.model,
                        "max_tokens": 8,
                        "temperature": 0,
                        "messages": [{"role": "user", "content": "Antworte mit einem JSON-Objekt."}],
                        "response_format": response_format(mode, schema),
                    }
                    status, data = await self._setup_post("/chat/completions", body)
                    tried.append(
                        {"mode": mode, "status": status, **({} if status == 200 else {"error": str(data)[:200]})}
                    )
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
                raise EndpointSetupError(
                    f"{self.endpoint.who}: {self.endpoint.url} returns no log-probabilities "
                    f"(tried {tried}); use method: generate for this endpoint"
                )
            self._negotiated[key] = (chosen, tried)
        self.stats.logprobs = self._negotiated[key][0]
        return self.stats.logprobs

    def logprob_body(self, path: str, prompt: str, top: int = 20) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.endpoint.model, "max_tokens": 1, "temperature": 0}
        if path == "/completions":
            return body | {"prompt": prompt, "logprobs": top}
        return body | {"messages": [{"role": "user", "content": prompt}], "logprobs": True, "top_logprobs": top}
