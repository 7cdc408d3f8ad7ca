"""Benchmark decontamination: drop corpus documents that share word n-grams with an item the evaluate stage uses.

The benchmark texts are the multiple-choice questions (alone, and followed by their options) of every task in
`evaluate.mcq.tasks`, and the prompts and reference answers of `evaluate.prompts` (bound into the corpus stage's
inputs as `CorpusInputs.benchmarks`, so a changed benchmark reruns the stage). The stage collects them once
into `decontamination/benchmark_items.jsonl`; each worker builds its n-gram index from that file on first use,
so only a path travels to Slurm or Ray workers.

Matching follows GPT-3 / Llama practice: 13-word n-grams of text case-folded with punctuation stripped. A
benchmark text shorter than `ngram` words (many MMLU questions are) is matched as a whole when it has at least
`min_item_words` words; shorter texts ("Welches Hormon senkt den Blutzucker?") are too generic to match safely.
A document is contaminated when it shares `min_matches` distinct n-grams with one item, or fewer when one of the
item's texts has fewer (a 13-word question is a single n-gram; its verbatim copy must still count).
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections import Counter, defaultdict
from itertools import compress, count, islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datatrove.pipeline.filters.base_filter import BaseFilter

from definemed.artifacts import write_jsonl

if TYPE_CHECKING:
    from datatrove.data import Document
    from datatrove.pipeline.writers.disk_base import DiskWriter

    from definemed.corpus.config import DecontaminationConfig
    from definemed.corpus.contract import BenchmarkRefs

logger = logging.getLogger("definemed")
REASON = "benchmark_overlap"
_WORD = re.compile(r"\w+")


def normalize_words(text: str) -> list[str]:
    """Case-folded words with punctuation removed. NFKC makes typographic variants equal; casefold (not lower)
    makes "KALTSCHWEISSIGKEIT" equal "Kaltschweißigkeit", as German upper case has no ß."""
    # the maximal runs of word characters: what blanking every other non-space and splitting gives, 20 % faster
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def _jsonl_files(path: Path) -> list[Path]:
    # Same rule as the evaluate stage: a .jsonl file, or every *.jsonl in a folder.
    path = Path(path)
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise FileNotFoundError(
            f"corpus.decontamination: benchmark data not found at {path} (expected a .jsonl file or a folder of them)"
        )
    return files


def _rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(file:line, row) for every JSON object in the files under `path`; malformed lines are logged and skipped."""
    rows = []
    for file in _jsonl_files(path):
        for lineno, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                logger.warning("%s:%d: malformed benchmark line not used for decontamination", file, lineno)
                continue
            if isinstance(row, dict):
                rows.append((f"{file.name}:{lineno}", row))
    return rows


def benchmark_items(benchmarks: BenchmarkRefs) -> list[dict[str, Any]]:
    """Every benchmark item as {id, source, texts}: the texts a document must not contain."""
    items = []
    for task in benchmarks.tasks:
        source = task.path
        if source is None:
            # A hub task without local files: its questions are not readable here, so they cannot be checked.
            logging.getLogger("definemed").warning(
                "[corpus] decontamination skips hub task '%s' (no local data_files)", task.name
            )
            continue
        for where, row in _rows(source):
            question = str(row.get("question") or "")
            choices = " ".join(str(c) for c in row.get("choices") or [])
            texts = [t for t in (question, f"{question} {choices}".strip()) if t]
            items.append({"id": f"{task.name}/{row.get('id', where)}", "source": task.name, "texts": texts})
    if benchmarks.prompts is not None:
        for where, row in _rows(benchmarks.prompts):
            texts = [str(row[k]) for k in ("prompt", "reference") if row.get(k)]
            items.append({"id": f"prompts/{row.get('id', where)}", "source": "prompts", "texts": texts})
    return items


def write_benchmark_items(benchmarks: BenchmarkRefs, settings: DecontaminationConfig, path: Path) -> dict[str, Any]:
    """Collect the benchmark items into `path` (atomic) and return what the index will hold, for the stats."""
    items = benchmark_items(benchmarks)
    write_jsonl(path, items)
    index = NgramIndex.build(items, settings.ngram, settings.min_item_words)
    return {
        "items": len(items),
        "sources": dict(Counter(i["source"] for i in items)),
        "indexed_ngrams": index.size,
        "items_too_short": len(items) - index.items,
    }


class NgramIndex:
    """Benchmark n-grams (and whole short texts), keyed by their joined normalised words, mapped to the benchmark
    texts they come from; each text knows its item, its source and how many keys it has."""

    def __init__(self, ngram: int) -> None:
        self.ngram = ngram
        self.by_length: dict[int, dict[str, set[int]]] = {}
        # (first word, second word) of every key -> the key lengths that start so; one-word keys by their word.
        # A document position is checked only when its first two words open some key: few positions do.
        self.openings: dict[tuple[str, str], set[int]] = {}
        self.single_words: set[str] = set()
        self.text_item: list[str] = []
        self.text_keys: list[int] = []
        self.item_source: dict[str, str] = {}

    @classmethod
    def build(cls, items: list[dict[str, Any]], ngram: int, min_item_words: int) -> NgramIndex:
        index = cls(ngram)
        for item in items:
            for text in item["texts"]:
                keys = index.text_keys_of(normalize_words(text), min_item_words)
                if not keys:
                    continue
                text_id = len(index.text_item)
                index.text_item.append(item["id"])
                index.text_keys.append(len(keys))
                index.item_source[item["id"]] = item["source"]
                for length, key in keys:
                    index.by_length.setdefault(length, {}).setdefault(key, set()).add(text_id)
                    first, *rest = key.split(" ", 2)
                    if rest:
                        index.openings.setdefault((first, rest[0]), set()).add(length)
                    else:
                        index.single_words.add(first)
        return index

    def text_keys_of(self, words: list[str], min_item_words: int) -> set[tuple[int, str]]:
        """(length, key) pairs of one benchmark text: its n-grams, itself when short, nothing when too short."""
        if len(words) >= self.ngram:
            return {(self.ngram, " ".join(words[i : i + self.ngram])) for i in range(len(words) - self.ngram + 1)}
        return {(len(words), " ".join(words))} if len(words) >= min_item_words else set()

    @property
    def size(self) -> int:
        return sum(len(table) for table in self.by_length.values())

    @property
    def items(self) -> int:
        return len(self.item_source)

    def matches(self, text: str) -> Counter:
        """Distinct keys of each benchmark text (by text id) that occur in `text`."""
        words = normalize_words(text)
        found: dict[int, set[str]] = defaultdict(set)
        n, opens = len(words), self.openings.get
        # The positions whose first two words open some key, found by one dict lookup per position in C (map,
        # compress): most positions fail it, and no Python code runs for them.
        for i in compress(count(), map(opens, zip(words, islice(words, 1, None), strict=False))):
            for length in opens((words[i], words[i + 1])):
                if i + length <= n and (key := " ".join(words[i : i + length])) in self.by_length[length]:
                    for text_id in self.by_length[length][key]:
                        found[text_id].add(key)
        if self.single_words:
            for word in self.single_words.intersection(words):
                for text_id in self.by_length[1][word]:
                    found[text_id].add(word)
        return Counter({text_id: len(keys) for text_id, keys in found.items()})

    def contamination(self, text: str, min_matches: int) -> tuple[str, int] | None:
        """(item id, shared keys) of the most-matched item, if `text` shares `min_matches` keys with one of its
        texts, or all keys of a text that has fewer (a copy of a 13-word question shares exactly one)."""
        hits = [
            (n, self.text_item[t]) for t, n in self.matches(text).items() if n >= min(min_matches, self.text_keys[t])
        ]
        if not hits:
            return None
        count, item = max(hits)
        return item, count


class BenchmarkDecontaminationFilter(BaseFilter):
    """Drop documents that share n-grams with a benchmark item; reason `benchmark_overlap`.

    The dropped document's metadata names the item with the most shared n-grams (`decontam_item`, its
    `decontam_source`) and the count (`decontam_ngrams`). Each hit also counts as `source_<benchmark>` in the stats.
    """

    name = "🧪 Benchmark decontamination"

    def __init__(
        self,
        items_path: str,
        ngram: int = 13,
        min_matches: int = 1,
        min_item_words: int = 8,
        exclusion_writer: DiskWriter | None = None,
    ) -> None:
        super().__init__(exclusion_writer)
        self.items_path = items_path
        self.ngram = ngram
        self.min_matches = min_matches
        self.min_item_words = min_item_words
        self._index: NgramIndex | None = None

    def index(self) -> NgramIndex:
        if self._index is None:
            items = [
                json.loads(line)
                for line in Path(self.items_path).read_text(encoding="utf-8").splitlines()
                if line.strip()
            ]
            self._index = NgramIndex.build(items, self.ngram, self.min_item_words)
        return self._index

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        index = self.index()
        hit = index.contamination(doc.text, self.min_matches)
        if hit is None:
            return True
        item, count = hit
        source = index.item_source[item]
        doc.metadata.update({"decontam_item": item, "decontam_source": source, "decontam_ngrams": count})
        self.stat_update(f"source_{source}")
        return False, REASON
