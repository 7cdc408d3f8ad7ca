"""Documents on disk, as every stage reads them: JSONL (optionally gzipped) and parquet records, and the id-hash
held-out split.

One reader for the corpus classifier's labelled survivors, the labelling sample and the CPT shards (they used to
have three). `iter_documents` yields the records that carry text, in file order; the shards of a datatrove
`JsonlWriter` folder are found by `shard_files`.

`is_heldout` is the one split rule: a document is held out when a hash of its id falls below `fraction`. Hashing
the id (not the position) keeps the split stable when shards are reordered or the corpus grows. The two callers
use it on purpose with different parameters (ADR 0007, "held-out splits"):
- the corpus classifier salts the hash with `run.seed` (`seed=`): its held-out split is part of the classifier
  experiment, and another seed is another draw of it, like the classifier's own initialisation;
- CPT does not (`seed=None`): its held-out documents are fixed by their ids alone, so the held-out loss of runs with
  different seeds, the medical and general folders, and replay reading the very folder it holds out from, all
  agree on the same documents.
Because the salts differ, the classifier's held-out documents are not CPT's held-out documents: the two splits are
independent, and neither stage's evaluation is tied to what the other one held out.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Literal

logger = logging.getLogger("definemed")

SHARD_PATTERNS = ("*.jsonl.gz", "*.jsonl")


def shard_files(folder: str | Path) -> list[Path]:
    """The JSONL(.gz) shards under a datatrove JsonlWriter output folder, in a stable order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"corpus folder {folder} does not exist")
    return sorted({p for pattern in SHARD_PATTERNS for p in folder.rglob(pattern)})


def _open_text(path: Path) -> IO[str]:
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


def read_rows(
    path: Path, columns: list[str] | None = None, on_malformed: Literal["raise", "skip"] = "raise"
) -> Iterator[Any]:
    """The records of one file: JSON lines (blank lines skipped) or parquet rows (only `columns` when given).
    A malformed JSON line raises with its file and line, or with `on_malformed="skip"` is logged and skipped."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        names = [c for c in columns if c in parquet.schema_arrow.names] if columns is not None else None
        for batch in parquet.iter_batches(columns=names, batch_size=4096):
            yield from batch.to_pylist()
        return
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                if on_malformed == "raise":
                    raise ValueError(f"{path}:{lineno}: malformed JSON: {exc.msg}") from None
                logger.warning("%s:%d: malformed JSON line skipped", path, lineno)


def iter_documents(
    source: str | Path | Iterable[str | Path],
    *,
    text_key: str = "text",
    id_key: str | None = None,
    columns: list[str] | None = None,
    on_malformed: Literal["raise", "skip"] = "raise",
) -> Iterator[dict[str, Any]]:
    """Records with non-empty text of a shard folder (`shard_files`) or of a list of files, in the given order.

    Records without text are skipped and counted in a warning per file. `id_key`: a record without that key gets
    `<file name>:<row>` as its id (the row counts every record of the file). `columns`: what to read from parquet.
    """
    files = shard_files(source) if isinstance(source, str | Path) else [Path(p) for p in source]
    for path in files:
        skipped = 0
        for row_index, row in enumerate(read_rows(path, columns, on_malformed)):
            text = row.get(text_key) if isinstance(row, dict) else None
            if not isinstance(text, str) or not text.strip():
                skipped += 1
                continue
            if id_key is not None and row.get(id_key) is None:
                row[id_key] = f"{path.name}:{row_index}"
            yield row
        if skipped:
            logger.warning("%s: %d record(s) without usable '%s' skipped", path, skipped, text_key)


def is_heldout(doc: str | Mapping[str, Any], fraction: float, seed: int | None = None) -> bool:
    """Deterministic split: held out when the hash of the id (salted with `seed` when given) falls below
    `fraction`. `doc`: an id, or a document (its `id`; its text when it has none). See the module docstring for
    why the corpus classifier passes a seed and CPT does not."""
    key = doc if isinstance(doc, str) else str(doc.get("id") or doc["text"])
    salted = key if seed is None else f"{seed}\x00{key}"
    return int.from_bytes(hashlib.sha256(salted.encode("utf-8")).digest()[:8], "big") / 2**64 < fraction
