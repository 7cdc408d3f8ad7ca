"""The datatrove pipelines of the corpus stage, each a pure function of (corpus section, folder layout).

A (filter):   read shards -> count tokens -> language -> Gopher repetition -> Gopher quality -> FineWeb quality
              -> `filtered/`
B (classify): read `filtered/` -> medical relevance classifier -> benchmark decontamination (optional)
              -> `medical/`, or `classified/` when deduplication follows
C (dedup, optional): MinHash signature -> buckets -> cluster -> filter `classified/` -> `medical/`

With `corpus.single_pass` (FineWeb2 scale), A becomes `sample`: the same steps over a seeded share of the input
files and without reject writers, only to give the labelling and the classifier their sample. B then reads the
input itself and runs the filters (with their reject writers), the classifier and decontamination in one pass;
tokens are counted on the kept documents only, just before the kept profile.

Decontamination runs before deduplication: MinHash keeps one document per cluster, and if that one were
contaminated and dropped afterwards the whole cluster would be lost; the other way round the clean copies stay.
It sits inside B, after the classifier, so only the kept medical documents (about 2 % of FineWeb2) pay for the
n-gram lookups and no extra pass over the data is needed.

Every filter, and the readers for documents they drop (`input`: not UTF-8, too long), writes what it drops to
`rejected/<step>/` with the reason in `metadata.filter_reason`. Output files are named per rank, so a rank that
reruns after a crash overwrites its own partial files instead of duplicating.
Nothing here closes over process state: the steps carry only configuration values and paths, so the same
pipeline objects can be shipped to Slurm or Ray workers. Each step carries a role (`input`, `read`, `tokens`,
`filter:<name>`, `profile:<name>`, `dedup:<stage>`, `write`) that tells `stats.py` what its counters mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from definemed.corpus.config import CorpusConfig, FileLabels

if TYPE_CHECKING:
    from definemed.corpus.stats import TokenizerChoice

SAMPLE_PIPELINE = "sample"
INPUT_STEP = "input"  # the readers' drops (stats.INPUT_STEP)
LANGUAGE_STEP = "language"
MEDICAL_STEP = "not_medical"
DECONTAM_STEP = "decontamination"
DEDUP_STEP = "dedup"


@dataclass(frozen=True)
class CorpusLayout:
    """Folders of the corpus stage, all inside the stage directory."""

    root: Path

    @property
    def filtered(self) -> Path:
        return self.root / "filtered"

    @property
    def classified(self) -> Path:
        """Medical (and decontaminated) documents waiting for deduplication."""
        return self.root / "classified"

    @property
    def medical(self) -> Path:
        return self.root / "medical"

    @property
    def rejected(self) -> Path:
        return self.root / "rejected"

    @property
    def sample(self) -> Path:
        """Single pass: the lists of input files the sample pipeline reads."""
        return self.root / "sample"

    @property
    def classifier(self) -> Path:
        return self.root / "classifier"

    @property
    def labelling(self) -> Path:
        """The labelling step's folder (`corpus.labelling`): cache, audits, the labels the classifier learns."""
        return self.root / "labelling"

    @property
    def minhash(self) -> Path:
        return self.root / "minhash"

    @property
    def benchmark_items(self) -> Path:
        return self.root / "decontamination" / "benchmark_items.jsonl"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def card(self) -> Path:
        return self.root / "README.md"

    def logs(self, pipeline: str) -> Path:
        return self.root / "logs" / pipeline

    def rejected_for(self, step: str) -> Path:
        return self.rejected / step


@dataclass(frozen=True)
class Pipeline:
    """One datatrove pipeline: its steps with their roles, and its task count (None: `corpus.executor.tasks`)."""

    name: str
    steps: list[tuple[str, Any]]
    tasks: int | None = None

    @property
    def blocks(self) -> list[Any]:
        return [step for _, step in self.steps]

    @property
    def roles(self) -> list[str]:
        return [role for role, _ in self.steps]


def _writer(folder: Path) -> Any:
    from datatrove.pipeline.writers import JsonlWriter

    # ${rank} in the name: each task owns its files, which makes reruns of a task idempotent.
    return JsonlWriter(str(folder), output_filename="${rank}.jsonl.gz", compression="gzip")


def _reader(folder: Path) -> Any:
    from definemed.corpus.readers import RobustJsonlReader

    return RobustJsonlReader(str(folder), glob_pattern="*.jsonl.gz", doc_progress=True)


def filter_steps(corpus: CorpusConfig, layout: CorpusLayout, rejects: bool = True) -> list[tuple[str, Any]]:
    """(reject folder, filter) pairs in order; the names key the drop counts in the metrics. `rejects=False`:
    drops are counted but not written (the single-pass sample, whose documents pipeline B rejects again)."""
    from definemed.corpus.filters import GermanLanguageFilter
    from definemed.corpus.quality import build_quality_filters

    def writer(name: str) -> Any:
        return _writer(layout.rejected_for(name)) if rejects else None

    lang = corpus.language
    steps: list[tuple[str, Any]] = [
        (
            LANGUAGE_STEP,
            GermanLanguageFilter(
                languages=lang.languages,
                min_score=lang.min_score,
                backend=lang.backend,
                max_chars=lang.max_chars,
                min_fineweb_language_score=lang.min_fineweb_language_score,
                exclusion_writer=writer(LANGUAGE_STEP),
            ),
        )
    ]
    steps += build_quality_filters(corpus.quality, writer)
    return steps


def build_filter_pipeline(
    corpus: CorpusConfig, layout: CorpusLayout, tokenizer: TokenizerChoice, sample_paths: list[str] | None = None
) -> Pipeline:
    """Pipeline A: robust readers, token count of every input document, language and quality filters.

    With `corpus.single_pass`, `sample_paths` (from `readers.sample_input_files`) restrict the readers to the
    sampled files and the pipeline is named `sample`; its drops are not written (pipeline B writes them)."""
    from definemed.corpus.readers import build_readers
    from definemed.corpus.stats import token_counter

    single = corpus.single_pass is not None
    if single and sample_paths is None:
        raise ValueError("corpus.single_pass: build_filter_pipeline needs the sampled input files (sample_paths)")
    readers = [
        ("input", reader)
        for reader in build_readers(
            corpus.input, paths_files=sample_paths, rejects=None if single else layout.rejected_for(INPUT_STEP)
        )
    ]
    filters = [(f"filter:{name}", step) for name, step in filter_steps(corpus, layout, rejects=not single)]
    return Pipeline(
        SAMPLE_PIPELINE if single else "filter",
        [*readers, ("tokens", token_counter(tokenizer)), *filters, ("write", _writer(layout.filtered))],
    )


def dedup_enabled(corpus: CorpusConfig) -> bool:
    return corpus.dedup is not None and corpus.dedup.enabled


def training_labels(corpus: CorpusConfig, layout: CorpusLayout) -> FileLabels:
    """The labels the classifier learns: `corpus.labels`, or the file the stage's labelling step writes."""
    if corpus.labelling is not None:
        from definemed.corpus.labelling.runner import LABELS_FILE

        return FileLabels(path=layout.labelling / LABELS_FILE)
    assert corpus.labels is not None  # CorpusConfig requires one of the two
    return corpus.labels


def _kept_steps(corpus: CorpusConfig, layout: CorpusLayout, tokenizer: TokenizerChoice | None) -> list[tuple[str, Any]]:
    """The kept profile, preceded in single-pass mode by the token count (pipeline A counted only the sample)."""
    from definemed.corpus.stats import CorpusProfile, token_counter

    labels = training_labels(corpus, layout)
    steps: list[tuple[str, Any]] = []
    if corpus.single_pass is not None:
        if tokenizer is None:
            raise ValueError("corpus.single_pass: the kept documents' token count needs the tokenizer")
        steps.append(("tokens:kept", token_counter(tokenizer)))
    return [
        *steps,
        (
            "profile:kept",
            CorpusProfile(
                histogram=True,
                labels_path=str(labels.path),
                id_key=labels.id_key,
                subdomain_key=corpus.card.subdomain_key,
            ),
        ),
    ]


def build_classify_pipeline(
    corpus: CorpusConfig, layout: CorpusLayout, tokenizer: TokenizerChoice | None = None
) -> Pipeline:
    """Pipeline B: survivors of A (single pass: the input, through the filters) through the classifier and
    decontamination; the rest rejected per reason."""
    from definemed.corpus.filters import MedicalRelevanceFilter
    from definemed.corpus.readers import build_readers
    from definemed.corpus.stats import CorpusProfile
    from definemed.corpus.training import chosen_threshold

    clf, decontam = corpus.classifier, corpus.decontamination
    if corpus.single_pass is None:
        source: list[tuple[str, Any]] = [("read", _reader(layout.filtered))]
    else:
        source = [("input", reader) for reader in build_readers(corpus.input, rejects=layout.rejected_for(INPUT_STEP))]
        source += [(f"filter:{name}", step) for name, step in filter_steps(corpus, layout)]
    steps: list[tuple[str, Any]] = [
        *source,
        ("profile:survivors", CorpusProfile()),
        (
            f"filter:{MEDICAL_STEP}",
            MedicalRelevanceFilter(
                # The trained classifier's report holds the threshold actually chosen (by score, precision or quantile).
                kind=clf.kind,
                model_dir=str(layout.classifier),
                threshold=chosen_threshold(layout.classifier),
                exclusion_writer=_writer(layout.rejected_for(MEDICAL_STEP)),
            ),
        ),
        ("profile:classified", CorpusProfile()),
    ]
    if decontam is not None and decontam.enabled:
        from definemed.corpus.decontam import BenchmarkDecontaminationFilter

        steps.append(
            (
                f"filter:{DECONTAM_STEP}",
                BenchmarkDecontaminationFilter(
                    items_path=str(layout.benchmark_items),
                    ngram=decontam.ngram,
                    min_matches=decontam.min_matches,
                    min_item_words=decontam.min_item_words,
                    exclusion_writer=_writer(layout.rejected_for(DECONTAM_STEP)),
                ),
            )
        )
    if dedup_enabled(corpus):
        steps.append(("write", _writer(layout.classified)))
    else:
        steps += [*_kept_steps(corpus, layout, tokenizer), ("write", _writer(layout.medical))]
    return Pipeline("classify", steps)


def build_dedup_pipelines(
    corpus: CorpusConfig, layout: CorpusLayout, tokenizer: TokenizerChoice | None = None
) -> list[Pipeline]:
    """Pipelines C1-C4 (MinHash signature, buckets, cluster, filter); empty when `corpus.dedup` is off.

    Signature and filter read `classified/` with the executor's task count, so rank r of both sees the same
    documents in the same order; buckets need one task per bucket, clustering exactly one.
    """
    if not dedup_enabled(corpus):
        return []
    from definemed.corpus import dedup

    mh, work = corpus.dedup, layout.minhash
    assert mh is not None
    return [
        Pipeline(
            dedup.SIGNATURE, [("read", _reader(layout.classified)), ("dedup:signature", dedup.signature_step(mh, work))]
        ),
        Pipeline(dedup.BUCKETS, [("dedup:buckets", dedup.buckets_step(mh, work))], tasks=mh.num_buckets),
        Pipeline(dedup.CLUSTER, [("dedup:cluster", dedup.cluster_step(mh, work))], tasks=1),
        Pipeline(
            dedup.FILTER,
            [
                ("read", _reader(layout.classified)),
                (f"filter:{DEDUP_STEP}", dedup.filter_step(work, layout.rejected_for(DEDUP_STEP))),
                *_kept_steps(corpus, layout, tokenizer),
                ("write", _writer(layout.medical)),
            ],
        ),
    ]


GENERAL = "general"  # the deduplicated general output: what CPT replays and holds out for the general loss
GENERAL_DUPLICATES = "general_duplicates"  # general documents removed as duplicates (not part of `rejected/`)


def build_general_dedup_pipelines(corpus: CorpusConfig, layout: CorpusLayout) -> list[Pipeline]:
    """The general documents (the classifier's non-medical drops) deduplicated like the medical ones, into
    `general/`; empty when `corpus.dedup` is off (CPT then reads `rejected/not_medical/` as before).

    CPT replays these documents and holds out a share of them by id hash: without deduplication a copy of a
    held-out document (another id, same text) could be trained on. Exact copies share every MinHash bucket, so
    the MinHash pass removes them along with the near-duplicates. The medical corpus is untouched by this pass.
    """
    if not dedup_enabled(corpus):
        return []
    from definemed.corpus import dedup

    mh, work, source = corpus.dedup, layout.root / "minhash_general", layout.rejected_for(MEDICAL_STEP)
    assert mh is not None
    return [
        Pipeline(
            f"{dedup.SIGNATURE}_{GENERAL}",
            [("read", _reader(source)), ("dedup:signature", dedup.signature_step(mh, work))],
        ),
        Pipeline(f"{dedup.BUCKETS}_{GENERAL}", [("dedup:buckets", dedup.buckets_step(mh, work))], tasks=mh.num_buckets),
        Pipeline(f"{dedup.CLUSTER}_{GENERAL}", [("dedup:cluster", dedup.cluster_step(mh, work))], tasks=1),
        Pipeline(
            f"{dedup.FILTER}_{GENERAL}",
            [
                ("read", _reader(source)),
                ("filter:general_dedup", dedup.filter_step(work, layout.root / GENERAL_DUPLICATES)),
                ("write", _writer(layout.root / GENERAL)),
            ],
        ),
    ]
