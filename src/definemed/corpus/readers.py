"""datatrove readers that survive bad input: every problem is counted, none is fatal, none is silent.

At FineWeb2 scale (thousands of parquet shards fetched over the network) one truncated file must not kill a task
that has processed millions of documents, and a user's own shards may hold bytes that are not UTF-8, blank
records or a multi-megabyte page. Both readers extend datatrove's at its extension points (`read_file`,
`get_document_from_dict`) and add these stats to the reader's block in the executor's stats files:

- `corrupt_files`: a file that cannot be read or is cut short; the documents read before the damage are kept.
- `missing_text`: a record without usable text: no text field, null, not a string, blank (also counted as
  `empty_text`), or a JSONL line that is not a JSON object (also counted as `malformed_lines`).
- `invalid_utf8`: a document whose text is not valid UTF-8 (a binary parquet column, a JSONL line with stray
  bytes). Dropped rather than decoded with replacement characters: such text is most often in another encoding
  (cp1252 German turns every umlaut into U+FFFD) and would otherwise pass language ID as mangled German.
- `too_long`: a document longer than `max_doc_chars` characters, dropped before the tokenizers see it. The
  spaCy-based Gopher filters cost about 3 s and 130 MB per MB of text, so one 100 MB record could take minutes and
  exhaust a worker's memory on every retry; FineWeb2's pages are a few kB.

`stats.collect` reports the last two as the `input` step's drops, so documents in = kept + dropped still holds.
With an `exclusion_writer` (the stage gives one writing `rejected/input/`) those two are also written out like
every filter's drops, with `metadata.filter_reason`, the source file and the record's position in it; the text of
an `invalid_utf8` record is written with U+FFFD for the bad bytes (the input file keeps the original). Records
without text are written there too (reason `missing_text`, or `malformed_line` with the raw line as text), so no
record is lost without a trace; they are records, not documents, and stay outside the documents-in balance.
Corrupt files are named with their error in `corrupt_files/<rank>.json` beside those rejects, which the stage
reads into its metrics (`corrupt_file_list`), the dataset card and the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datatrove.pipeline.readers import JsonlReader, ParquetReader
from datatrove.utils.logging import logger

if TYPE_CHECKING:
    from datatrove.data import Document, DocumentsPipeline
    from datatrove.pipeline.readers.base import BaseDiskReader
    from datatrove.pipeline.writers.disk_base import DiskWriter

    from definemed.corpus.config import JsonlInput, ParquetInput

CORRUPT_FILES = "corrupt_files"
MISSING_TEXT = "missing_text"
EMPTY_TEXT = "empty_text"
MALFORMED_LINES = "malformed_lines"
MALFORMED_LINE = "malformed_line"  # the reject reason of one such line
CORRUPT_LIST_DIR = "corrupt_files"  # under the input rejects folder: one JSON list of {file, error} per rank
INVALID_UTF8 = "invalid_utf8"
TOO_LONG = "too_long"
# Documents with text that the readers drop before the filters, in the order they are checked.
INPUT_DROP_REASONS = (INVALID_UTF8, TOO_LONG)
# How many records to name in the log per task and problem; the counts are always exact.
_LOG_LIMIT = 5


class _RobustReadingMixin:
    """Shared behaviour of the robust readers; mixed in before the datatrove reader class."""

    text_key: str
    id_key: str

    def __init__(
        self, *args: Any, max_doc_chars: int | None = None, exclusion_writer: DiskWriter | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_doc_chars = max_doc_chars
        self.exclusion_writer = exclusion_writer
        self._logged: dict[str, int] = {}
        self._rejects: Any = None  # the open exclusion writer and the rank, while run() reads
        self._rank = 0
        self._corrupt: list[dict[str, str]] = []

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self._corrupt = []
        if self.exclusion_writer is None:
            yield from super().run(data, rank, world_size)  # type: ignore[misc]
            return
        with self.exclusion_writer as writer:
            self._rejects, self._rank = writer, rank
            try:
                yield from super().run(data, rank, world_size)  # type: ignore[misc]
            finally:
                self._rejects = None
        # Written (also when empty) once the rank has read everything: a resumed rank replaces its own list.
        name = self.exclusion_writer.output_filename.substitute(rank=f"{rank:05d}").split(".")[0]
        with self.exclusion_writer.output_folder.open(f"{CORRUPT_LIST_DIR}/{name}.json", "wt") as fh:
            fh.write(json.dumps(self._corrupt, ensure_ascii=False))

    def _reject(
        self, reason: str, text: str, data: dict[str, Any], source_file: str, id_in_file: int | str, **details: Any
    ) -> None:
        """Write a dropped document to the exclusion writer (if any), as the filters write theirs."""
        if self._rejects is None:
            return
        from datatrove.data import Document

        metadata = {
            k: v
            for k, v in data.items()
            if k not in (self.text_key, self.id_key) and not isinstance(v, bytes | bytearray | memoryview)
        }
        metadata.update(filter_reason=reason, source_file=source_file, id_in_file=id_in_file, **details)
        doc_id = data.get(self.id_key)
        self._rejects.write(
            Document(
                text=text, id=str(doc_id if doc_id is not None else f"{source_file}/{id_in_file}"), metadata=metadata
            ),
            self._rank,
        )

    def _read_records(self, filepath: str) -> DocumentsPipeline:
        raise NotImplementedError

    def read_file(self, filepath: str) -> DocumentsPipeline:
        """Read one file; an unreadable or truncated file is logged, counted and skipped.

        Documents yielded before the damage is reached stay in the output: they were read intact.
        """
        try:
            yield from self._read_records(filepath)
        except Exception as exc:  # noqa: BLE001 - any decoder error means "this file is damaged"
            # Only reading raises here: exceptions of later pipeline steps are not thrown into this generator.
            self.stat_update(CORRUPT_FILES)  # type: ignore[attr-defined]
            self._corrupt.append({"file": str(filepath), "error": f"{type(exc).__name__}: {exc}"[:500]})
            logger.warning(f"Skipping corrupt input file {filepath}: {type(exc).__name__}: {exc}")

    def _skip(self, problem: str, data: dict[str, Any], source_file: str, id_in_file: int | str, why: str) -> None:
        """Count a record that becomes no document; name the first few of each problem in the log."""
        self.stat_update(problem)  # type: ignore[attr-defined]
        if self._logged.get(problem, 0) < _LOG_LIMIT:
            self._logged[problem] = self._logged.get(problem, 0) + 1
            doc_id = data.get(self.id_key, f"{source_file}/{id_in_file}")
            logger.warning(f"Skipping record {doc_id!r} in {source_file} ({problem}): {why}")

    def get_document_from_dict(self, data: dict[str, Any], source_file: str, id_in_file: int | str) -> Document | None:
        """Decode binary text; skip records without usable text, not UTF-8 or too long; then datatrove's."""
        text = data.get(self.text_key)
        if isinstance(text, bytes | bytearray | memoryview):  # a binary column: a user's parquet, not FineWeb2
            try:
                text = bytes(text).decode("utf-8")
            except UnicodeDecodeError as exc:
                self._skip(
                    INVALID_UTF8, data, source_file, id_in_file, f"text is not UTF-8 ({exc.reason} at byte {exc.start})"
                )
                self._reject(
                    INVALID_UTF8,
                    bytes(text).decode("utf-8", errors="replace"),
                    data,
                    source_file,
                    id_in_file,
                    invalid_utf8_at_byte=exc.start,
                )
                return None
            data = {**data, self.text_key: text}
        if not isinstance(text, str) or not text.strip():
            blank = isinstance(text, str)
            self._skip(
                MISSING_TEXT,
                data,
                source_file,
                id_in_file,
                f"no usable '{self.text_key}' (got {'blank text' if blank else type(text).__name__})",
            )
            if blank:
                self.stat_update(EMPTY_TEXT)  # type: ignore[attr-defined]
            self._reject(
                MISSING_TEXT, text if blank else "", data, source_file, id_in_file, text_type=type(text).__name__
            )
            return None
        if self.max_doc_chars is not None and len(text) > self.max_doc_chars:
            self._skip(
                TOO_LONG,
                data,
                source_file,
                id_in_file,
                f"{len(text):,} characters > max_doc_chars {self.max_doc_chars:,}",
            )
            self._reject(TOO_LONG, text, data, source_file, id_in_file, chars=len(text))
            return None
        return super().get_document_from_dict(data, source_file, id_in_file)  # type: ignore[misc]


class RobustParquetReader(_RobustReadingMixin, ParquetReader):
    """ParquetReader (e.g. FineWeb2 shards on disk, hf:// or s3://) that skips corrupt files and bad records.

    A string column holding bytes that are not UTF-8 makes pyarrow fail the whole batch; such a batch is read
    again with its string columns as bytes, so only the records with bad text are lost (as `invalid_utf8`).
    """

    name = "📒 Parquet (robust)"

    def _read_records(self, filepath: str) -> DocumentsPipeline:
        import pyarrow.parquet as pq

        with self.data_folder.open(filepath, "rb") as f, pq.ParquetFile(f) as pqf:
            li = 0
            columns = [self.text_key, self.id_key] if not self.read_metadata else None
            for batch in pqf.iter_batches(batch_size=self.batch_size, columns=columns):
                documents = []
                with self.track_time("batch"):
                    for row in _rows(batch, self.text_key):
                        if document := self.get_document_from_dict(row, filepath, li):
                            documents.append(document)
                        li += 1
                yield from documents


def _rows(batch: Any, text_key: str) -> list[dict[str, Any]]:
    """The batch as dicts; if a string column is not valid UTF-8, its values as bytes (text) or replaced (others)."""
    try:
        return batch.to_pylist()
    except UnicodeDecodeError:
        import pyarrow as pa

        binary = [
            col.view(pa.binary())
            if pa.types.is_string(col.type)
            else col.view(pa.large_binary())
            if pa.types.is_large_string(col.type)
            else col
            for col in batch.columns
        ]
        rows = pa.RecordBatch.from_arrays(binary, names=batch.schema.names).to_pylist()
        for row in rows:  # metadata must stay JSON-writable; the text column is judged by get_document_from_dict
            for key, value in row.items():
                if key != text_key and isinstance(value, bytes):
                    row[key] = value.decode("utf-8", errors="replace")
        return rows


class RobustJsonlReader(_RobustReadingMixin, JsonlReader):
    """JsonlReader that survives a truncated compressed file, bytes that are not UTF-8 and lines that are not JSON.

    datatrove's JsonlReader stops reading a file at the first invalid UTF-8 byte and skips malformed lines with
    a log message only; here the file is read as bytes, each line judged on its own, and every skip counted.
    """

    name = "🐿 Jsonl (robust)"

    def _read_records(self, filepath: str) -> DocumentsPipeline:
        with self.data_folder.open(filepath, "rb", compression=self.compression) as f:
            for li, raw in enumerate(f):
                if not raw.strip():
                    continue  # a blank line (e.g. the file's last newline) is no record
                with self.track_time():
                    document = self._parse_line(raw, filepath, li)
                if document is not None:
                    yield document

    def _parse_line(self, raw: bytes, filepath: str, li: int) -> Document | None:
        import orjson

        try:
            line, bad_bytes = raw.decode("utf-8"), None
        except UnicodeDecodeError as exc:
            line, bad_bytes = raw.decode("utf-8", errors="replace"), exc
        try:
            data = orjson.loads(line)
            why = f"a JSON {type(data).__name__}, not an object"
        except orjson.JSONDecodeError as exc:
            data, why = None, f"not JSON ({exc})"
        if not isinstance(data, dict):
            self._skip(MISSING_TEXT, {}, filepath, li, why)
            self.stat_update(MALFORMED_LINES)
            self._reject(MALFORMED_LINE, line.rstrip("\n"), {}, filepath, li, error=why[:300])
            return None
        text = data.get(self.text_key)
        if bad_bytes is not None and isinstance(text, str) and text.strip():
            self._skip(
                INVALID_UTF8, data, filepath, li, f"line is not UTF-8 ({bad_bytes.reason} at byte {bad_bytes.start})"
            )
            self._reject(INVALID_UTF8, text, data, filepath, li, invalid_utf8_at_byte=bad_bytes.start)
            return None
        return self.get_document_from_dict(data, filepath, li)


def build_readers(
    source: ParquetInput | JsonlInput,
    doc_progress: bool = True,
    paths_files: list[str] | None = None,
    rejects: Path | None = None,
) -> list[BaseDiskReader]:
    """The readers for `corpus.input`: one per entry of `paths` (local folder or fsspec URL: hf://, s3://).

    A datatrove reader reads one folder; chained readers pass earlier documents through, so each folder's files
    are sharded across the tasks on their own. `paths_files` (one per entry of `paths`) restricts each reader to
    the files listed there, relative to its folder (see `sample_input_files`). `rejects`: the folder the readers'
    drops (`invalid_utf8`, `too_long`, records without text) are written to, one file per rank and reader, with
    the corrupt files named under its `corrupt_files/`.
    """
    from datatrove.pipeline.writers import JsonlWriter

    cls = RobustParquetReader if source.kind == "parquet" else RobustJsonlReader
    listed = paths_files or [None] * len(source.paths)
    return [
        cls(
            path,
            paths_file=paths_file,
            glob_pattern=source.glob,
            limit=source.limit,
            text_key=source.text_key,
            id_key=source.id_key,
            doc_progress=doc_progress,
            max_doc_chars=source.max_doc_chars,
            exclusion_writer=None
            if rejects is None
            else JsonlWriter(str(rejects), output_filename=f"${{rank}}_{i}.jsonl.gz", compression="gzip"),
        )
        for i, (path, paths_file) in enumerate(zip(source.paths, listed, strict=True))
    ]


def sample_input_files(source: ParquetInput | JsonlInput, share: float, seed: int, out_dir: Path) -> list[str]:
    """Write, per entry of `source.paths`, a file listing a seeded `share` of its input files (at least one);
    return their paths for `build_readers(paths_files=...)`. Listing is sorted, so a rerun picks the same files."""
    import random

    from datatrove.io import get_datafolder

    out_dir.mkdir(parents=True, exist_ok=True)
    listed = []
    for i, path in enumerate(source.paths):
        files = sorted(get_datafolder(path).list_files(glob_pattern=source.glob, recursive=True))
        if not files:
            raise RuntimeError(f"corpus.input.paths[{i}]: no files matching {source.glob!r} in {path}")
        # seeded by position, not by path: the same files wherever the input is mounted
        picked = sorted(random.Random(f"{seed}:{i}").sample(files, max(1, round(share * len(files)))))
        target = out_dir / f"paths_{i}.txt"
        target.write_text("".join(f"{name}\n" for name in picked), encoding="utf-8")
        listed.append(str(target))
    return listed


def corrupt_file_list(rejects: Path) -> list[dict[str, str]]:
    """Every corrupt input file the readers named under `rejects` (the input step's reject folder), by file."""
    found = {}
    for part in sorted((rejects / CORRUPT_LIST_DIR).glob("*.json")):
        for row in json.loads(part.read_text(encoding="utf-8")):
            found[row["file"]] = row
    return [found[f] for f in sorted(found)]
