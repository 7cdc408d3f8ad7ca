"""What every pairwise judge takes and returns, the judge template, the strict verdict parser, the verdict cache."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Protocol

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
    cause: str | None = None  # why invalid: a transport cause (timeout, ...), 'unparsed', 'cut' or 'unscored'
    finish_reason: str | None = None
    requests: int = 0  # HTTP requests sent for this verdict (every attempt)
    prompt_tokens: int = 0
    completion_tokens: int = 0


class PairwiseJudge(Protocol):
    """What the evaluate stage needs from a judge registered under `evaluate.judge.kind` (built-ins: reference,
    openai, hf; a plugin registers its class with `register("judge", name, cls, config=ItsConfig)`).

    Built once per stage run as `cls(config, cache_dir)`: the `evaluate.judge` section (the plugin's own config
    model, whose `kind` literal is the registered name) and the run-level cache folder (`<run_dir>/.cache/judge`,
    None outside a run) where it may keep replies across reruns. `judge_batch` returns one `Verdict` per item, in
    order; answer A is shown first and the stage asks both orders itself. Optional attributes the stage reads:
    `model` and `note` (shown in the report), `stats` (a dict shaped like `definemed.llm.EndpointStats`), `close()`
    (called after judging), and a config field `max_invalid_share` (the stage fails above that share of invalid
    verdicts).
    """

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


# -------------------------------------------------------------------------------------- template and cache
_FIELDS = re.compile(r"\{(prompt|reference|answer_a|answer_b)\}")


def load_template(name: str) -> str:
    """A judge prompt: a file path, or a file name under `definemed/assets/prompts/`."""
    path = Path(name).expanduser()
    if path.is_file():
        return path.read_text(encoding="utf-8")
    return resources.files("definemed").joinpath("assets", "prompts", name).read_text(encoding="utf-8")


def render(template: str, item: JudgeItem) -> str:
    """Fill the four fields in one pass, so braces inside an answer are never substituted."""
    values = {
        "prompt": item.prompt,
        "reference": item.reference or "(keine Referenz)",
        "answer_a": item.answer_a,
        "answer_b": item.answer_b,
    }
    return _FIELDS.sub(lambda m: values[m.group(1)], template)


class VerdictCache:
    """Append-only JSONL of judge replies, keyed by the judge (see `cache_key` of each judge). It lives in
    `<run_dir>/.cache/judge/`, outside the stage folder, so a rerun of the stage asks nothing twice. A torn last
    line (crash mid-write) is ignored when reading; appends are whole lines under a lock."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._rows: dict[str, dict[str, Any]] = {}
        if path is not None and path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                self._rows[row["key"]] = row

    def get(self, key: str) -> dict[str, Any] | None:
        return self._rows.get(key)

    def put(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._rows[row["key"]] = row
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
