"""What every pairwise judge takes and returns, and the strict parser for LLM verdicts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Protocol

Winner = Literal["A", "B", "tie", "invalid"]


@dataclass(frozen=True)
class JudgeItem:
    """One comparison as shown to the judge: answer A is shown first."""

    prompt: str
    reference: str | None
    answer_a: str
    answer_b: str


@dataclass
class Verdict:
    """`winner`: a slot ('A'/'B'), 'tie', or 'invalid' (unparseable reply or failed request, see `error`)."""

    winner: Winner
    raw: str = ""
    error: str | None = None
    cached: bool = False


class PairwiseJudge(Protocol):
    def judge_batch(self, items: list[JudgeItem]) -> list[Verdict]: ...


# Only the last non-empty line counts, and it must be nothing but the verdict (optionally "Urteil:" and
# markdown emphasis). Accepting a verdict anywhere in the text would let "[[A]] oder [[B]]" through.
_VERDICT_LINE = re.compile(r"^(?:urteil\s*:\s*)?\[\[([ABC])\]\]$", re.IGNORECASE)
_VERDICTS: dict[str, Winner] = {"A": "A", "B": "B", "C": "tie"}


def parse_verdict(text: str | None) -> Winner:
    """'A', 'B' or 'tie' from a final line `Urteil: [[A]]` / `[[B]]` / `[[C]]`; anything else is 'invalid'."""
    lines = [ln.strip().strip("*_` ").rstrip(".").strip() for ln in (text or "").splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        return "invalid"
    match = _VERDICT_LINE.match(lines[-1])
    return _VERDICTS[match.group(1)] if match else "invalid"
