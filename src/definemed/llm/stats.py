"""Accounting of requests: every attempt of one item (`Attempt`, `Outcome`), the sums per client (`CallStats`), and
the typed form of those sums that stage metrics store (`EndpointStats`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from definemed.llm.replies import Reply

TRANSPORT_CAUSES = (
    "timeout",
    "connection",
    "rate_limited",
    "server_error",
    "bad_request",
    "unsupported",
    "invalid_reply",
)


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


class EndpointStats(BaseModel):
    """`CallStats.as_dict()` of one endpoint as stored in stage metrics (the generator's or judge's `stats`)."""

    model_config = ConfigDict(extra="forbid")

    requests: int  # every attempt, retries included
    answered: int
    setup_requests: int  # probe and negotiation requests
    prompt_tokens: int
    completion_tokens: int
    retries: dict[str, int]  # by cause
    failed: dict[str, int]  # items without a reply after every retry, by cause
    structured_output: str | None = None  # json_schema | json_object | plain, when negotiated
    negotiation: list[dict[str, Any]] = []  # what each tried mode or path answered (free-form, for the log)
    logprobs: str | None = None  # the path that returned log-probabilities
    served_models: list[str] | None = None
    capacity: dict[str, int] = {}  # final_limit, peak_limit, decreases
