"""Labels computed elsewhere (another run, a hosted batch job, hand labels) read from JSONL.

Each line holds an id and a boolean label; `edu_score`, `subdomain` and `p_medical` are taken when present and
valid. A malformed line (bad JSON, no id, a label that is not a boolean) is skipped, counted and named by
file:line in one warning, so a few bad lines in a 260k-line file neither abort the run nor go unnoticed.
Documents without a line get status `missing`, which counts against the failure budget.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from definemed.artifacts import file_sha256
from definemed.corpus.labelling.schema import DocLabels, Document, LabelResult
from definemed.corpus.labelling.settings import FileLabellerSettings

logger = logging.getLogger("definemed")
_NAMED_LINES = 10  # how many bad lines the warning names; the count is always complete


class FileLabeller:
    backend = "file"
    parser = "file"
    cacheable = False  # the file is its own cache

    def __init__(self, settings: FileLabellerSettings) -> None:
        self.settings = settings
        self.malformed: list[str] = []  # "file:line: why"
        self._labels: dict[str, tuple[DocLabels, str]] | None = None

    def identity(self) -> dict[str, Any]:
        s = self.settings
        return {
            "backend": self.backend,
            "path": str(s.path),
            "sha256": file_sha256(s.path),
            "id_key": s.id_key,
            "label_key": s.label_key,
        }

    def _parse_line(self, line: str) -> tuple[str, DocLabels]:
        s = self.settings
        row = json.loads(line)
        if not isinstance(row, dict) or s.id_key not in row:
            raise ValueError(f"no '{s.id_key}'")
        if not isinstance(row.get(s.label_key), bool):
            raise ValueError(f"'{s.label_key}' is not a boolean: {row.get(s.label_key)!r}")
        fields = {k: row[k] for k in ("edu_score", "subdomain", "p_medical") if row.get(k) is not None}
        return str(row[s.id_key]), DocLabels(medical=row[s.label_key], **fields)

    def load(self) -> dict[str, tuple[DocLabels, str]]:
        """id -> (labels, raw line); read once."""
        if self._labels is not None:
            return self._labels
        path = self.settings.path
        labels: dict[str, tuple[DocLabels, str]] = {}
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    doc_id, doc_labels = self._parse_line(line)
                except (ValueError, ValidationError) as exc:  # JSONDecodeError is a ValueError
                    reason = str(exc).splitlines()[0][:120]
                    self.malformed.append(f"{path}:{lineno}: {reason}")
                    continue
                labels[doc_id] = (doc_labels, line.strip())
        if self.malformed:
            shown = "; ".join(self.malformed[:_NAMED_LINES])
            more = f" (and {len(self.malformed) - _NAMED_LINES} more)" if len(self.malformed) > _NAMED_LINES else ""
            logger.warning("%d malformed label line(s) skipped: %s%s", len(self.malformed), shown, more)
        self._labels = labels
        return labels

    def label_many(
        self, docs: Sequence[Document], on_result: Callable[[LabelResult], None] | None = None
    ) -> list[LabelResult]:
        """Look every document up by id; absent ids get status `missing`."""
        labels = self.load()
        results = []
        for doc in docs:
            hit = labels.get(doc.id)
            missing = f"no line for this id in {self.settings.path}"
            result = (
                LabelResult(doc_id=doc.id, status="ok", labels=hit[0], raw=hit[1])
                if hit
                else LabelResult(doc_id=doc.id, status="missing", error=missing)
            )
            results.append(result)
            if on_result is not None:
                on_result(result)
        return results
