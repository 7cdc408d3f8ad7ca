"""One layer for every call to an OpenAI-compatible endpoint (labeller, judge, generator).

- `endpoint`: the key (from the environment only), the setup probe (`/v1/models`), secret scrubbing.
- `capacity`: how many requests may be in flight: start at one, grow while throughput grows, halve on time-outs
  and 429, pause every sender for a Retry-After.
- `client`: `LLMClient`, one async client per endpoint: retries with back-off, time-outs that scale with the
  requested output tokens, per-attempt accounting, structured-output negotiation, log-probability scoring, and
  `map` that runs many items and checks a failure budget as results stream in.
"""

from definemed.llm.client import Attempt, CallStats, LLMClient, Outcome, Reply, SendPolicy, run_sync
from definemed.llm.endpoint import Endpoint, EndpointSetupError, scrub
from definemed.llm.errors import FailureBudget, FailureBudgetExceeded

__all__ = ["Attempt", "CallStats", "Endpoint", "EndpointSetupError", "FailureBudget", "FailureBudgetExceeded",
           "LLMClient", "Outcome", "Reply", "SendPolicy", "run_sync", "scrub"]
