"""The failure budget of a stage, checked as results arrive, and the one-line error it raises."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from definemed.errors import DefinemedError


class FailureBudgetExceeded(DefinemedError, RuntimeError):
    """Too many items failed or came back unusable; `counts` holds the counts per cause."""

    def __init__(self, message: str, counts: dict[str, Any]) -> None:
        super().__init__(message)
        self.counts = counts


@dataclass
class FailureBudget:
    """At most `max_share` of `total` items may fail (any cause). `check` raises as soon as that is certain, so a
    dead endpoint costs a few requests, not the whole batch. `raw_where` says where the replies are kept."""

    what: str
    total: int
    max_share: float
    raw_where: str | None = None
    done: int = 0
    causes: Counter[str] = field(default_factory=Counter)

    @property
    def failed(self) -> int:
        return sum(self.causes.values())

    @property
    def allowed(self) -> int:
        return int(self.max_share * self.total + 1e-9)

    def add(self, cause: str | None) -> None:
        self.done += 1
        if cause is not None:
            self.causes[cause] += 1

    def over(self) -> bool:
        return self.failed > self.allowed

    def check(self, final: bool = False) -> None:
        if self.over():
            raise FailureBudgetExceeded(self.message(final), self.counts())

    def counts(self) -> dict[str, Any]:
        return {"total": self.total, "done": self.done, "failed": self.failed, "by_cause": dict(self.causes)}

    def message(self, final: bool = True) -> str:
        causes = ", ".join(f"{c}={n}" for c, n in self.causes.most_common())
        stop = "" if final or self.done >= self.total else f" (stopped early after {self.done} of {self.total})"
        transport = {"timeout", "connection", "rate_limited", "server_error", "http_error"} & set(self.causes)
        where = f"; replies that came back are kept in {self.raw_where}" if self.raw_where else ""
        again = "; transport failures are not cached and are asked again on a rerun" if transport else ""
        return (
            f"{self.what}: {self.failed} of {self.total} failed, more than the budget of {self.max_share:.1%}"
            f"{stop}: {causes}{where}{again}"
        )
