"""datatrove readers that survive bad input: a corrupt shard or a record without text is counted, not fatal.

At FineWeb2 scale (thousands of parquet shards fetched over the network) one truncated file must not kill a task
that has processed millions of documents. Both readers extend datatrove's at its documented extension points
(`read_file`, `get_document_from_dict`) and add two stats to the reader's block in the executor's stats files:
`corrupt_files` and `missing_text`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from datatrove.pipeline.readers import JsonlReader, ParquetReader
from datatrove.utils.logging import logger

if TYPE_CHECKING:
    from datatrove.data import Document, DocumentsPipeline
    from datatrove.pipeline.readers.base import BaseDiskReader

    from definemed.config import JsonlInput, ParquetInput

CORRUPT_FILES = "corrupt_files"
MISSING_TEXT = "missing_text"
# How many ids of records without text to name in the log per task; the count is always exact.
_MISSING_TEXT_LOG_LIMIT = 5


class _RobustReadingMixin:
    """Shared behaviour of the robust readers; mixed in before the datatrove reader class."""

    text_key: str
    id_key: str
    _missing_logged: int = 0

    def read_file(self, filepath: str) -> DocumentsPipeline:
        """datatrove's read_file, but an unreadable or truncated file is logged, counted and skipped.

        Documents yielded before the damage is reached stay in the output: they were read intact.
        """
        try:
            yield from super().read_file(filepath)  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - any decoder error means "this file is damaged"
            # Only reading raises here: exceptions of later pipeline steps are not thrown into this generator.
            self.stat_update(CORRUPT_FILES)  # type: ignore[attr-defined]
            logger.warning(f"Skipping corrupt input file {filepath}: {type(exc).__name__}: {exc}")

    def get_document_from_dict(self, data: dict[str, Any], source_file: str, id_in_file: int | str) -> Document | None:
        """Reject records whose text is missing, null, empty or not a string before datatrove sees them."""
        text = data.get(self.text_key)
        if not isinstance(text, str) or not text.strip():
            self.stat_update(MISSING_TEXT)  # type: ignore[attr-defined]
            if self._missing_logged < _MISSING_TEXT_LOG_LIMIT:
                self._missing_logged += 1
                doc_id = data.get(self.id_key, f"{source_file}/{id_in_file}")
                logger.warning(f"Skipping record {doc_id} in {source_file}: no usable '{self.text_key}' "
                               f"(got {type(text).__name__})")
            return None
        return super().get_document_from_dict(data, source_file, id_in_file)  # type: ignore[misc]


class RobustParquetReader(_RobustReadingMixin, ParquetReader):
    """ParquetReader (e.g. FineWeb2 shards on disk, hf:// or s3://) that skips corrupt files and empty records."""

    name = "📒 Parquet (robust)"


class RobustJsonlReader(_RobustReadingMixin, JsonlReader):
    """JsonlReader that also survives a truncated compressed file (datatrove already skips malformed lines)."""

    name = "🐿 Jsonl (robust)"


def build_readers(source: ParquetInput | JsonlInput, doc_progress: bool = True) -> list[BaseDiskReader]:
    """The readers for `corpus.input`: one per entry of `paths` (local folder or fsspec URL: hf://, s3://).

    A datatrove reader reads one folder; chained readers pass earlier documents through, so each folder's files
    are sharded across the tasks on their own.
    """
    cls = RobustParquetReader if source.kind == "parquet" else RobustJsonlReader
    return [cls(path, glob_pattern=source.glob, limit=source.limit, text_key=source.text_key,
                id_key=source.id_key, doc_progress=doc_progress) for path in source.paths]
