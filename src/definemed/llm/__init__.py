"""One layer for every call to an OpenAI-compatible endpoint (labeller, judge, generator).

- `endpoint`: the key (from the environment only), the setup probe (`/v1/models`), secret scrubbing.
- `capacity`: how many requests may be in flight: start at one, grow while throughput grows, halve on time-outs
  and 429, pause every sender for a Retry-After.
- `client`: `LLMClient`, one async client per endpoint: retries with back-off, time-outs that scale with the
  requested output tokens, and `map` that runs many items and checks a failure budget as results stream in.
- `negotiation`: structured-output mode and log-probability path, asked once per endpoint (a base of `LLMClient`).
- `replies`: reading completions, first-token log-probabilities, answer-word probabilities, Retry-After.
- `stats`: per-attempt accounting (`Attempt`, `Outcome`, `CallStats`) and its typed form in metrics (`EndpointStats`).
"""

from definemed.llm.client import LLMClient, SendPolicy, run_sync
from definemed.llm.endpoint import Endpoint, EndpointSetupError, scrub
from definemed.llm.errors import FailureBudget, FailureBudgetExceeded
from definemed.llm.replies import Reply, answer_probabilities, response_format
from definemed.llm.stats import Attempt, CallStats, EndpointStats, Outcome

__all__ = [
    "Attempt",
    "CallStats",
    "Endpoint",
    "EndpointSetupError",
    "EndpointStats",
    "FailureBudget",
    "FailureBudgetExceeded",
    "LLMClient",
    "Outcome",
    "Reply",
    "SendPolicy",
    "answer_probabilities",
    "response_format",
    "run_sync",
    "scrub",
]
