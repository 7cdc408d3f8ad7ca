"""A reproducible random subset of documents from local JSONL (optionally gzipped) and parquet files.

Reservoir sampling (Vitter's algorithm R) reads the stream once in a fixed order (files sorted by path), so the
same files, `n` and `seed` give the same sample, and memory holds only the `n` kept documents. Records without
text are skipped and counted; a record without id gets `file:row`.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from definemed.corpus.labelling.schema import Document

logger = logging.getLogger("definemed")

SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")


def input_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files named directly, plus every JSONL/parquet file under named folders; sorted, without repeats."""
    files: set[Path] = set()
    for entry in map(Path, paths):
        if entry.is_dir():
            files.update(p for p in entry.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
        elif entry.is_file():
            files.add(entry)
        else:
            raise FileNotFoundError(f"no such document file or folder: {entry}")
    return sorted(files)


def _open_text(path: Path) -> IO[str]:
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


def _rows(path: Path, id_key: str, text_key: str) -> Iterator[dict]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        columns = [c for c in (id_key, text_key) if c in parquet.schema_arrow.names]
        for batch in parquet.iter_batches(columns=columns, batch_size=4096):
            yield from batch.to_pylist()
        return
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                logger.warning("%s:%d: malformed JSON line skipped", path, lineno)


def iter_documents(paths: Iterable[str | Path], id_key: str = "id", text_key: str = "text") -> Iterator[Document]:
    """Every document with non-empty text, in file order."""
    for path in input_files(paths):
        skipped = 0
        for row_index, row in enumerate(_rows(path, id_key, text_key)):
            text = row.get(text_key) if isinstance(row, dict) else None
            if not isinstance(text, str) or not text.strip():
                skipped += 1
                continue
            doc_id = row.get(id_key)
            yield Document(id=str(doc_id) if doc_id is not None else f"{path.name}:{row_index}", text=text)
        if skipped:
            logger.warning("%s: %d record(s) without usable '%s' skipped", path, skipped, text_key)


def reservoir_sample(docs: Iterable[Document], n: int, seed: int = 0) -> tuple[list[Document], int]:
    """`n` of `docs` drawn uniformly without replacement (all of them if fewer), in stream order; and how many
    documents the stream held."""
    if n < 1:
        raise ValueError(f"sample size must be positive, got {n}")
    rng = random.Random(seed)
    reservoir: list[tuple[int, Document]] = []
    seen = 0
    for seen, doc in enumerate(docs, 1):
        if len(reservoir) < n:
            reservoir.append((seen, doc))
        elif (slot := rng.randrange(seen)) < n:
            reservoir[slot] = (seen, doc)
    return [doc for _, doc in sorted(reservoir, key=lambda pair: pair[0])], seen


def sample_documents(paths: Iterable[str | Path], n: int, seed: int = 0, id_key: str = "id",
                     text_key: str = "text") -> list[Document]:
    """`n` documents drawn uniformly without replacement (all of them if fewer), in stream order."""
    sample, seen = reservoir_sample(iter_documents(paths, id_key, text_key), n, seed)
    logger.info("sampled %d of %d documents (seed %d)", len(sample), seen, seed)
    return sample
