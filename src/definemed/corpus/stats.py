"""Counts of the corpus stage, and the datatrove steps that produce the ones datatrove does not count itself.

Each rank writes `<logging_dir>/stats/<rank>.json` (a list with one block per pipeline step, in pipeline order)
when it completes. Merging those files (datatrove's `PipelineStats` addition), rather than reading the merged
`stats.json` of the last executor run, counts the ranks an interrupted earlier attempt already finished. The role
of each step (see `pipelines.py`) says how its counters enter the totals: documents in, dropped per step and
reason, tokens, length histogram, subdomains.

Tokens are counted once, right after reading the input, with the CPT model's tokenizer (`CorpusInputs.tokenizer`,
its `tokenizer.json` saved into the stage folder, so workers need neither transformers nor the hub); the count
travels in `metadata.token_count`, and later `CorpusProfile` steps only add it up.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datatrove.pipeline.base import PipelineStep

from definemed.corpus.readers import (
    EMPTY_TEXT,
    INPUT_DROP_REASONS,
    INVALID_UTF8,
    MALFORMED_LINES,
    MISSING_TEXT,
    TOO_LONG,
)

if TYPE_CHECKING:
    from datatrove.data import DocumentsPipeline

    from definemed.corpus.pipelines import Pipeline
    from definemed.schema import ModelSpec

logger = logging.getLogger("definemed")
# Length histogram bins per doubling of the token count: bin k holds documents of 2^(k/4) to 2^((k+1)/4) tokens.
BINS_PER_OCTAVE = 4
LENGTH_BIN, SUBDOMAIN = "length_bin_", "subdomain_"
# The readers' documents dropped before the filters appear as this step (see readers.py).
INPUT_STEP = "input"
# The readers' counters reported as `input_problems`.
INPUT_PROBLEMS = (MISSING_TEXT, EMPTY_TEXT, MALFORMED_LINES, INVALID_UTF8, TOO_LONG)


@dataclass(frozen=True)
class TokenizerChoice:
    """What the token counts mean: a model tokenizer saved as `path`, or whitespace words (`path` None)."""

    name: str
    path: str | None
    note: str = ""

    @property
    def kind(self) -> str:
        return "model" if self.path else "whitespace"


def choose_tokenizer(spec: ModelSpec | str, out_dir: Path) -> TokenizerChoice:
    """The tokenizer the inputs name (the CPT model's spec, a hub id or local path) as a tokenizers JSON file;
    whitespace words for "whitespace" or when it cannot be loaded (offline, no fast backend). Never raises: the
    counts then say what they are."""
    if spec == "whitespace":
        return TokenizerChoice("whitespace", None, "corpus.card.tokenizer: whitespace")
    name, revision = (spec, None) if isinstance(spec, str) else (spec.id, spec.revision)
    try:
        _save_tokenizer_json(name, revision, out_dir / "tokenizer.json")
        return TokenizerChoice(name, str(out_dir / "tokenizer.json"))
    except Exception as exc:  # noqa: BLE001 - any failure means "count words instead", stated in the stats
        note = f"tokenizer of {name} not loadable here ({type(exc).__name__}: {str(exc)[:200]}); counted words"
        logger.warning("[corpus] %s", note)
        return TokenizerChoice("whitespace", None, note)


def _save_tokenizer_json(name: str, revision: str | None, target: Path) -> None:
    """Write the tokenizers-library JSON of model `name` to `target` (atomically)."""
    from definemed.artifacts import atomic_path
    from definemed.models import resolve

    local = Path(resolve(name)) / "tokenizer.json"
    with atomic_path(target) as tmp:
        if local.is_file():  # a checkpoint folder: its file as is, without importing transformers (seconds)
            from tokenizers import Tokenizer

            Tokenizer.from_file(str(local)).save(str(tmp))
            return
        from transformers import AutoTokenizer

        backend = getattr(AutoTokenizer.from_pretrained(resolve(name), revision=revision), "backend_tokenizer", None)
        if backend is None:
            raise RuntimeError("the tokenizer has no fast (tokenizers) backend to ship to workers")
        backend.save(str(tmp))


class WhitespaceTokenCounter(PipelineStep):
    """Fallback for datatrove's TokensCounter: whitespace words as `metadata.token_count` and the `tokens` stat."""

    name = "📊 Word counter"
    type = "🔢 - TOKENIZER"

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for doc in data:
            count = len(doc.text.split())
            doc.metadata["token_count"] = count
            self.stat_update("tokens", value=count)
            yield doc


def token_counter(choice: TokenizerChoice) -> PipelineStep:
    from datatrove.pipeline.tokens import TokensCounter

    return TokensCounter(choice.path, batch_size=1000) if choice.path else WhitespaceTokenCounter()


class CorpusProfile(PipelineStep):
    """Passes documents through and counts them: docs, words, tokens (from `metadata.token_count`), optionally
    a log-scale token length histogram and the subdomain of documents that the labels file gives one."""

    name = "📏 Corpus profile"
    type = "📊 - STATS"

    def __init__(
        self,
        histogram: bool = False,
        labels_path: str | None = None,
        id_key: str = "id",
        subdomain_key: str = "subdomain",
    ) -> None:
        super().__init__()
        self.histogram = histogram
        self.labels_path = labels_path
        self.id_key = id_key
        self.subdomain_key = subdomain_key
        self._subdomains: dict[str, str] | None = None

    def subdomains(self) -> dict[str, str]:
        """{doc id: subdomain}, read once per worker; lines without a string subdomain are left out."""
        if self._subdomains is None:
            self._subdomains = {}
            path = Path(self.labels_path) if self.labels_path else None
            for line in path.read_text(encoding="utf-8").splitlines() if path and path.is_file() else []:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # training.load_labels already reports malformed label lines
                if isinstance(row, dict) and isinstance(sub := row.get(self.subdomain_key), str):
                    self._subdomains[str(row.get(self.id_key))] = sub
        return self._subdomains

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for doc in data:
            with self.track_time():
                words = len(doc.text.split())
                tokens = doc.metadata.get("token_count", words)
                self.stat_update("docs")
                self.stat_update("words", value=words)
                self.stat_update("tokens", value=tokens)
                if self.histogram:
                    self.stat_update(f"{LENGTH_BIN}{int(BINS_PER_OCTAVE * math.log2(max(tokens, 1))):03d}")
                if self.labels_path and (sub := self.subdomains().get(doc.id)):
                    self.stat_update(f"{SUBDOMAIN}{sub}")
            yield doc


def step_counters(logging_dir: Path) -> list[Counter]:
    """One Counter of totals per pipeline step, from the ranks' stats files merged by datatrove (`PipelineStats`
    addition: counters sum, distributions combine)."""
    from datatrove.utils.stats import PipelineStats, Stats

    files = sorted((logging_dir / "stats").glob("*.json"))
    if not files:
        raise RuntimeError(f"no per-rank stats in {logging_dir / 'stats'}: did the pipeline run?")
    merged: PipelineStats | None = None
    for path in files:
        rank = PipelineStats.from_json(json.loads(path.read_text(encoding="utf-8")))
        if merged is None:  # an empty start, so that every value, even of a single rank, is a MetricStats
            merged = PipelineStats([Stats(block.name) for block in rank.stats])
        elif len(rank.stats) != len(merged.stats):
            raise RuntimeError(
                f"{path} has {len(rank.stats)} steps, other ranks have {len(merged.stats)}: "
                "stats from different pipelines in one logging folder"
            )
        merged += rank
    assert merged is not None
    return [Counter({key: value.total for key, value in block.stats.items()}) for block in merged.stats]


def filter_row(name: str, counter: Counter) -> dict[str, Any]:
    """A filter step's in / kept / dropped counts and drop reasons from its summed stats."""
    return _filter_row(name, counter)


def _filter_row(name: str, counter: Counter) -> dict[str, Any]:
    from definemed.corpus.dedup import REASON as DEDUP_REASON
    from definemed.corpus.pipelines import DEDUP_STEP

    reasons = {k.removeprefix("dropped_"): int(v) for k, v in sorted(counter.items()) if k.startswith("dropped_") and v}
    if name == DEDUP_STEP and counter["dropped"]:  # datatrove's MinhashDedupFilter counts no reason
        reasons = {DEDUP_REASON: int(counter["dropped"])}
    row = {
        "step": name,
        "in": int(counter["total"]),
        "kept": int(counter["forwarded"]),
        "dropped": int(counter["dropped"]),
        "reasons": reasons,
    }
    if sources := {k.removeprefix("source_"): int(v) for k, v in sorted(counter.items()) if k.startswith("source_")}:
        row["sources"] = sources
    return row


def _profile(counter: Counter) -> dict[str, Any]:
    def picked(prefix: str) -> dict[str, int]:
        return {k.removeprefix(prefix): int(v) for k, v in sorted(counter.items()) if k.startswith(prefix) and v}

    return {
        "docs": int(counter["docs"]),
        "words": int(counter["words"]),
        "tokens": int(counter["tokens"]),
        "length_hist": picked(LENGTH_BIN),
        "subdomains": picked(SUBDOMAIN),
    }


def _docs_in(readers: Counter) -> int:
    """Documents with text the readers found: those they passed on and those they dropped (INPUT_DROP_REASONS)."""
    return int(readers["documents"]) + sum(int(readers[reason]) for reason in INPUT_DROP_REASONS)


def _input_row(readers: Counter) -> dict[str, Any] | None:
    """The readers' document drops as a step row (None when there were none): it comes before the filters."""
    reasons = {reason: int(readers[reason]) for reason in INPUT_DROP_REASONS if readers[reason]}
    if not reasons:
        return None
    return {
        "step": INPUT_STEP,
        "in": _docs_in(readers),
        "kept": int(readers["documents"]),
        "dropped": sum(reasons.values()),
        "reasons": reasons,
    }


def collect(pipelines: list[Pipeline], logs_root: Path) -> dict[str, Any]:
    """Counts of every pipeline: documents in, kept, dropped per step and reason, reader problems, tokens, profiles.

    `docs_in` counts the documents with text the readers found; records without text are `missing_text` and
    unreadable files `corrupt_files`. Every document in is either kept or dropped by exactly one step: documents
    the readers drop before the filters (text not UTF-8, longer than `max_doc_chars`) form the `input` step, which
    is listed only when it dropped something. `input_problems` breaks the readers' counts down.
    """
    readers, tokens, dedup = Counter(), Counter(), Counter()
    rows, profiles = [], {}
    for pipeline in pipelines:
        counters = step_counters(logs_root / pipeline.name)
        if len(counters) != len(pipeline.roles):
            raise RuntimeError(
                f"{logs_root / pipeline.name} has stats for {len(counters)} steps, the pipeline has "
                f"{len(pipeline.roles)}: an attempt with another configuration wrote them"
            )
        for role, counter in zip(pipeline.roles, counters, strict=True):
            kind, _, name = role.partition(":")
            if kind == "input":
                readers += counter
            elif kind == "tokens" and not name:  # "tokens:kept" (single pass) feeds the kept profile only
                tokens += counter
            elif kind == "filter":
                rows.append(_filter_row(name, counter))
            elif kind == "profile":
                profiles[name] = _profile(counter)
            elif kind == "dedup":
                dedup += counter
    if input_row := _input_row(readers):
        rows.insert(0, input_row)
    dropped = {row["step"]: row["dropped"] for row in rows}
    by_reason: Counter = Counter()
    for row in rows:
        by_reason.update(row["reasons"])
    docs_in, kept = _docs_in(readers), profiles["kept"]
    return {
        "docs_in": docs_in,
        "docs_kept": kept["docs"],
        "dropped": dropped,
        "dropped_by_reason": dict(sorted(by_reason.items())),
        "corrupt_files": int(readers["corrupt_files"]),
        "missing_text": int(readers["missing_text"]),
        "input_problems": {key: int(readers[key]) for key in INPUT_PROBLEMS},
        "input_files": int(readers["input_files"]),
        "filter_survivors": profiles["survivors"]["docs"],
        "kept_words": kept["words"],
        "tokens_in": int(tokens["tokens"]),
        "steps": rows,
        "profiles": profiles,
        # union-find nodes in clusters minus those removed = one kept document per cluster
        "minhash": {
            "duplicate_pairs": int(dedup["total_matches"]),
            "clusters": int(dedup["duplicates"] - dedup["to_remove"]),
            "docs_in_clusters": int(dedup["duplicates"]),
        }
        if dedup
        else None,
        "balanced": docs_in == kept["docs"] + sum(dropped.values()),
    }


def sample_counts(pipeline: Pipeline, logs_root: Path) -> dict[str, int]:
    """What the single-pass sample pipeline read, counted and kept: documents in (with text), tokens in, survivors
    of its filters, reader problems; it has no profiles, so `collect` does not apply."""
    readers, tokens = Counter(), Counter()
    survivors = 0
    counters = step_counters(logs_root / pipeline.name)
    for role, counter in zip(pipeline.roles, counters, strict=True):
        kind, _, _ = role.partition(":")
        if kind == "input":
            readers += counter
        elif kind == "tokens":
            tokens += counter
        elif kind == "filter":
            survivors = int(counter["forwarded"])
    return {
        "input_files": int(readers["input_files"]),
        "docs_in": _docs_in(readers),
        "tokens_in": int(tokens["tokens"]),
        "survivors": survivors,
        "corrupt_files": int(readers["corrupt_files"]),
        "missing_text": int(readers["missing_text"]),
    }


def tokenizer_info(choice: TokenizerChoice) -> dict[str, Any]:
    return {**asdict(choice), "kind": choice.kind}
