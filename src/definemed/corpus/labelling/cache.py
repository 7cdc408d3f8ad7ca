"""Append-only JSONL cache of labeller replies, safe against a crash at any moment.

The key is sha256 over everything that determines a reply (backend, model, prompt template text, decoding
settings; see each labeller's `identity()`) and the sha256 of the document text. Each row is written and
flushed as soon as its reply arrives, so killing the process loses only requests in flight. On load, rows are
deduplicated by key (the last one wins) and a torn last line is skipped; the next append starts on a new line.
Rows hold raw replies, so `reparse()` can re-read them with today's parser without asking the endpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import Counter
from pathlib import Path
from typing import IO, Any

from definemed.artifacts import write_jsonl
from definemed.corpus.labelling.schema import DocLabels, LabelResult, parse_reply
from definemed.schema import stable_hash

logger = logging.getLogger("definemed")

CACHE_FILE = "label_cache.jsonl"
JSON_REPLY = "json_reply"  # rows whose raw text `parse_reply` reads (generative labellers)


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_key(identity: dict[str, Any], text: str) -> str:
    """The cache key of one document under one labeller identity."""
    return stable_hash({"labeller": identity, "text_sha256": text_sha256(text)})


class LabelCache:
    """Rows by key, loaded once; `append` writes one flushed line per result."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._fh: IO[str] | None = None
        self.rows: dict[str, dict[str, Any]] = {}
        self.skipped_lines = 0
        self.duplicate_lines = 0
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        with self.path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    key = row["key"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    self.skipped_lines += 1
                    logger.warning("%s:%d: unreadable cache line skipped (torn write?)", self.path, lineno)
                    continue
                self.duplicate_lines += key in self.rows
                self.rows[key] = row

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, key: str, doc_id: str) -> LabelResult | None:
        """The cached result for `key`, reported under `doc_id` (equal texts share one reply)."""
        row = self.rows.get(key)
        if row is None:
            return None
        fields = {k: row[k] for k in LabelResult.model_fields if k in row and k not in ("doc_id", "cached")}
        return LabelResult(doc_id=doc_id, cached=True, **fields)

    def append(self, key: str, result: LabelResult, meta: dict[str, Any]) -> None:
        """Store `result` under `key`; `meta` (backend, model, parser) goes into the row for later reparsing."""
        row = {"key": key, **meta, **result.model_dump(mode="json", exclude={"cached"})}
        line = json.dumps(row, ensure_ascii=False) + "\n"
        with self._lock:
            if self._fh is None:
                self._fh = self._open_for_append()
            self._fh.write(line)
            self._fh.flush()
            self.rows[key] = row

    def _open_for_append(self) -> IO[str]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        needs_newline = self.path.exists() and self.path.stat().st_size > 0 and not _ends_with_newline(self.path)
        fh = self.path.open("a", encoding="utf-8")
        if needs_newline:  # a torn last line must not swallow the next row
            fh.write("\n")
        return fh

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def __enter__(self) -> LabelCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, 2)
        return fh.read(1) == b"\n"


def reparse(path: str | Path) -> dict[str, int]:
    """Re-read every raw JSON reply in the cache with the current parser and rewrite it compacted.

    No request is sent. Rows of scoring labellers (no JSON reply) are kept as they are. Returns counts per
    status after reparsing. The rewrite is atomic and drops duplicate and torn lines.
    """
    cache = LabelCache(path)
    rows = []
    for row in cache.rows.values():
        if row.get("parser") == JSON_REPLY and row.get("raw") is not None:
            status, labels, error = parse_reply(row["raw"])
            row = {
                **row,
                "status": status,
                "error": error,
                "labels": labels.model_dump(mode="json") if isinstance(labels, DocLabels) else None,
            }
        rows.append(row)
    write_jsonl(cache.path, rows)
    counts = Counter(row["status"] for row in rows)
    logger.info("reparsed %d cached replies in %s: %s", len(rows), cache.path, dict(counts))
    return dict(counts)
