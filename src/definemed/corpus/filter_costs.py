"""What each filter costs the medical class: gold- (or label-) positive documents among every step's drops.

The reject writers keep every dropped document in `rejected/<step>/` with its id, so the count needs no second pass
over the corpus: the ids of the known medical documents (the audit's gold file, else the training labels) are
looked up in each step's drops. `medical_recall` of the filters is the share of known medical documents that
the language and quality steps (everything before the classifier) let through; `real` narrows it to the documents
the gold file marks `origin: real` (text nobody in the project wrote).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

# Steps after the filters: their drops are the classifier's, decontamination's and deduplication's, not the filters'.
AFTER_FILTERS = ("not_medical", "decontamination", "dedup")


def _ids(folder: Path) -> list[str]:
    ids = []
    for path in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    ids.append(str(json.loads(line)["id"]))
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
    return ids


def known_positives(path: Path, id_key: str = "id", label_key: str = "medical") -> dict[str, dict[str, Any]]:
    """Rows of `path` whose label is true, by id (gold rows keep `origin`, `lang`, `genre` when they have them)."""
    rows = {}
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and row.get(label_key) is True and id_key in row:
                rows[str(row[id_key])] = row
    return rows


def filter_costs(
    rejected: Path, positives: dict[str, dict[str, Any]], source: str, languages: list[str] | None = None
) -> dict[str, Any]:
    """Per step: documents dropped and known medical documents among them; the filters' medical recall.

    `languages`: only positives in these languages (a gold `lang` field) count towards the recall, since the
    language filter is meant to drop the others."""
    steps, dropped = {}, {}
    for folder in sorted(p for p in rejected.iterdir() if p.is_dir()) if rejected.is_dir() else []:
        ids = dropped[folder.name] = _ids(folder)
        medical = [i for i in ids if i in positives]
        steps[folder.name] = {
            "dropped": len(ids),
            "medical_dropped": len(medical),
            "real_medical_dropped": sum(positives[i].get("origin") == "real" for i in medical),
        }

    def eligible(row: dict[str, Any]) -> bool:
        return languages is None or row.get("lang", languages[0]) in languages

    def recall(keep: Any) -> dict[str, Any]:
        pool = {i for i, r in positives.items() if eligible(r) and keep(r)}
        lost = {i for step, ids in dropped.items() if step not in AFTER_FILTERS for i in ids if i in pool}
        return {
            "docs": len(pool),
            "dropped": len(lost),
            "recall": round(1 - len(lost) / len(pool), 4) if pool else None,
        }

    return {
        "source": source,
        "steps": steps,
        "medical_recall": recall(lambda r: True),
        "real_medical_recall": recall(lambda r: r.get("origin") == "real"),
    }
