"""A reproducible random subset of documents from local JSONL (optionally gzipped) and parquet files.

Reservoir sampling (Vitter's algorithm R) reads the stream once in a fixed order (files sorted by path), so the
same files, `n` and `seed` give the same sample, and memory holds only the `n` kept documents. Records without
text are skipped and counted; a record without id gets `file:row`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Iterator
from pathlib import Path

from definemed.corpus.labelling.schema import Document
from definemed.documents import iter_documents

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


def sample_stream(paths: Iterable[str | Path], id_key: str = "id", text_key: str = "text") -> Iterator[Document]:
    """Every document with non-empty text of the files under `paths`, in file order (`definemed.documents`'s
    reader; malformed JSON lines are logged and skipped, a record without id gets `file:row`)."""
    for row in iter_documents(
        input_files(paths), text_key=text_key, id_key=id_key, columns=[id_key, text_key], on_malformed="skip"
    ):
        yield Document(id=str(row[id_key]), text=row[text_key])


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


def sample_documents(
    paths: Iterable[str | Path], n: int, seed: int = 0, id_key: str = "id", text_key: str = "text"
) -> list[Document]:
    """`n` documents drawn uniformly without replacement (all of them if fewer), in stream order."""
    sample, seen = reservoir_sample(sample_stream(paths, id_key, text_key), n, seed)
    logger.info("sampled %d of %d documents (seed %d)", len(sample), seen, seed)
    return sample
