"""The two datatrove pipelines of the corpus stage, each a pure function of (config, folder layout).

A (filter):   read shards -> language -> Gopher repetition -> Gopher quality -> FineWeb quality -> `filtered/`
B (classify): read `filtered/` -> medical relevance classifier -> `medical/`

Every filter writes what it drops to `rejected/<step>/` with the reason in `metadata.filter_reason`. Output files
are named per rank, so a rank that reruns after a crash overwrites its own partial files instead of duplicating.
Nothing here closes over process state: the steps carry only configuration values and paths, so the same
pipeline objects can be shipped to Slurm or Ray workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from definemed.config import DefinemedConfig

LANGUAGE_STEP = "language"
MEDICAL_STEP = "not_medical"


@dataclass(frozen=True)
class CorpusLayout:
    """Folders of the corpus stage, all inside the stage directory."""

    root: Path

    @property
    def filtered(self) -> Path:
        return self.root / "filtered"

    @property
    def medical(self) -> Path:
        return self.root / "medical"

    @property
    def rejected(self) -> Path:
        return self.root / "rejected"

    @property
    def classifier(self) -> Path:
        return self.root / "classifier"

    def logs(self, pipeline: str) -> Path:
        return self.root / "logs" / pipeline

    def rejected_for(self, step: str) -> Path:
        return self.rejected / step


def _writer(folder: Path) -> Any:
    from datatrove.pipeline.writers import JsonlWriter

    # ${rank} in the name: each task owns its files, which makes reruns of a task idempotent.
    return JsonlWriter(str(folder), output_filename="${rank}.jsonl.gz", compression="gzip")


def filter_steps(cfg: DefinemedConfig, layout: CorpusLayout) -> list[tuple[str, Any]]:
    """(reject folder, filter) pairs of pipeline A in order; the names key the drop counts in the metrics."""
    from definemed.corpus.filters import GermanLanguageFilter, build_quality_filters

    lang = cfg.corpus.language
    steps: list[tuple[str, Any]] = [(LANGUAGE_STEP, GermanLanguageFilter(
        languages=lang.languages, min_score=lang.min_score,
        min_fineweb_language_score=lang.min_fineweb_language_score,
        exclusion_writer=_writer(layout.rejected_for(LANGUAGE_STEP))))]
    steps += build_quality_filters(cfg.corpus.quality, lambda name: _writer(layout.rejected_for(name)))
    return steps


def build_filter_pipeline(cfg: DefinemedConfig, layout: CorpusLayout) -> list[Any]:
    """Pipeline A: robust readers, language and quality filters, survivors to `filtered/`."""
    from definemed.corpus.readers import build_readers

    readers = build_readers(cfg.corpus.input)
    return [*readers, *(step for _, step in filter_steps(cfg, layout)), _writer(layout.filtered)]


def build_classify_pipeline(cfg: DefinemedConfig, layout: CorpusLayout) -> list[Any]:
    """Pipeline B: survivors of A through the trained classifier; medical to `medical/`, the rest rejected."""
    from definemed.corpus.filters import MedicalRelevanceFilter
    from definemed.corpus.readers import RobustJsonlReader

    clf = cfg.corpus.classifier
    return [
        RobustJsonlReader(str(layout.filtered), glob_pattern="*.jsonl.gz", doc_progress=True),
        MedicalRelevanceFilter(kind=clf.kind, model_dir=str(layout.classifier), threshold=clf.threshold,
                               exclusion_writer=_writer(layout.rejected_for(MEDICAL_STEP))),
        _writer(layout.medical),
    ]
