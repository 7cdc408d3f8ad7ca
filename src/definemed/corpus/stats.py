"""Per-step document counts of the corpus stage, read back from datatrove's per-rank stats files.

Each rank writes `<logging_dir>/stats/<rank>.json` (a list with one block per pipeline step, in pipeline order)
when it completes. Summing those files, rather than the merged `stats.json` of the last executor run, counts the
ranks an interrupted earlier attempt already finished.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any


def _total(value: Any) -> float:
    """datatrove stores a counter as a bare number, or as a dict with `total` when it also has a distribution."""
    if isinstance(value, dict):
        return value.get("total", 0)
    return value or 0


def step_counters(logging_dir: Path) -> list[Counter]:
    """One Counter per pipeline step, summed over the ranks' stats files."""
    files = sorted((logging_dir / "stats").glob("*.json"))
    if not files:
        raise RuntimeError(f"no per-rank stats in {logging_dir / 'stats'}: did the pipeline run?")
    summed: list[Counter] = []
    for path in files:
        blocks = json.loads(path.read_text(encoding="utf-8"))
        if summed and len(blocks) != len(summed):
            raise RuntimeError(f"{path} has {len(blocks)} steps, other ranks have {len(summed)}: "
                               "stats from different pipelines in one logging folder")
        summed = summed or [Counter() for _ in blocks]
        for counter, block in zip(summed, blocks, strict=True):
            counter.update({k: _total(v) for k, v in block.get("stats", {}).items()})
    return summed


def _filter_row(name: str, counter: Counter) -> dict[str, Any]:
    reasons = {k.removeprefix("dropped_"): int(v) for k, v in sorted(counter.items())
               if k.startswith("dropped_") and v}
    return {"step": name, "in": int(counter["total"]), "kept": int(counter["forwarded"]),
            "dropped": int(counter["dropped"]), "reasons": reasons}


def collect(filter_logs: Path, classify_logs: Path, n_readers: int, filter_names: list[str],
            medical_step: str) -> dict[str, Any]:
    """Counts of both pipelines: documents in, kept, dropped per step and reason, reader problems, kept words.

    `docs_in` counts documents with text handed to the filters; records without text are `missing_text` and
    unreadable files `corrupt_files`. Every document in is either kept or dropped by exactly one step.
    """
    a_steps, b_steps = step_counters(filter_logs), step_counters(classify_logs)
    readers = sum(a_steps[:n_readers], Counter())
    filters = a_steps[n_readers:n_readers + len(filter_names)]
    rows = [_filter_row(name, c) for name, c in zip(filter_names, filters, strict=True)]
    medical = _filter_row(medical_step, b_steps[1])
    rows.append(medical)
    dropped = {row["step"]: row["dropped"] for row in rows}
    by_reason: Counter = Counter()
    for row in rows:
        by_reason.update(row["reasons"])
    docs_in = int(readers["documents"])
    return {
        "docs_in": docs_in, "docs_kept": medical["kept"], "dropped": dropped,
        "dropped_by_reason": dict(sorted(by_reason.items())),
        "corrupt_files": int(readers["corrupt_files"]), "missing_text": int(readers["missing_text"]),
        "input_files": int(readers["input_files"]), "filter_survivors": rows[-2]["kept"],
        "kept_words": int(b_steps[1]["kept_words"]), "steps": rows,
        "balanced": docs_in == medical["kept"] + sum(dropped.values()),
    }
