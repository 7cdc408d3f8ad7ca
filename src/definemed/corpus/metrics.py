"""Metrics of the corpus stage (manifest.json `metrics`), read as attributes by the dataset card, the report, the
CPT plan and the tests.

Same keys and nesting as the stage has always written (`stats.json` repeats them beside the per-step rows and the
profiles). A key that exists only in some configurations is optional with a `None` default: `decontamination`
(off), `dedup` (off), `labelling` (precomputed `corpus.labels`), `single_pass` (two passes), `real_test` (no
`corpus.classifier.real_test`), `classifier_comparison` (nothing compared), `general_dedup` (dedup off).
"""

from __future__ import annotations

from typing import Any, Literal

from definemed.corpus.labelling.metrics import Confusion, Labelling
from definemed.stage import Metrics


# ------------------------------------------------------------------------------------------- shared blocks
class Support(Metrics):
    medical: int
    other: int


class Scores(Metrics):
    """Precision, recall, F1 (and accuracy) of the medical class; `confusion` where the writer keeps it."""

    precision: float
    recall: float
    f1: float
    accuracy: float | None = None
    confusion: Confusion | None = None


# -------------------------------------------------------------------------------------------- input, tokens
class InputProblems(Metrics):
    """The readers' counts (readers.py): records without text, empty, malformed, not UTF-8, too long."""

    missing_text: int
    empty_text: int
    malformed_lines: int
    invalid_utf8: int
    too_long: int


class CorruptFile(Metrics):
    file: str
    error: str


class TokenizerInfo(Metrics):
    """What the token counts mean: a model tokenizer (`path` of its saved JSON) or whitespace words."""

    name: str
    path: str | None
    note: str
    kind: Literal["model", "whitespace"]


class TokenRetention(Metrics):
    filter_survivors_tokens: int
    classifier_kept_tokens: int
    classifier_token_share: float
    unit: str | None = None  # "words" in single-pass mode, where pipeline B counts words before the classifier


class SinglePass(Metrics):
    """Single pass: the share of input files pipeline A sampled and what it counted there."""

    sample_files_share: float
    sample_input_files: int
    sample_docs_in: int
    sample_tokens_in: int
    sample_survivors: int
    sample_corrupt_files: int
    sample_missing_text: int


# ---------------------------------------------------------------------------------------------- classifier
class GoldCheck(Metrics):
    """The main classifier and the labels it learned against the audit's gold file on its held-out documents."""

    n: int
    gold: str
    classifier: Scores
    training_labels: Scores


class RealTestRow(Metrics):
    """The real-test figures of one family at its saved threshold (gold_audit.real_test_row)."""

    real_n: int
    real_precision: float
    real_recall: float
    real_f1: float
    real_f1_lo: float | None = None
    real_f1_hi: float | None = None
    real_fpr_technical: float | None = None
    real_recall_short: float | None = None


class CascadeOnReal(Metrics):
    """A cascade against its stage 2 alone on the real test set, and the projected cost at FineWeb2 scale."""

    stage2_kind: str
    stage2_alone: RealTestRow
    routed_share: float
    routed_medical_recall: float | None = None
    f1_gap_vs_stage2: float
    projection_docs: int
    stage1_cpu_hours: float
    stage2_cpu_hours: float
    stage2_alone_cpu_hours: float
    stage2_gpu_hours: float | None = None
    stage2_alone_gpu_hours: float | None = None
    gpu_docs_per_s: float | None = None
    cpu_note: str


class RealTestFamily(RealTestRow):
    folder: str
    breakdown_genre: dict[str, dict[str, Any]] | None = None
    cascade: CascadeOnReal | None = None


class RealTest(Metrics):
    """Every trained family on `corpus.classifier.real_test` (documents no training or threshold saw)."""

    path: str
    n: int
    medical: int
    bad_lines: int
    families: dict[str, RealTestFamily]


class ClassifierSummary(Metrics):
    """The main classifier on its held-out split: keys of training.py's report (stage.CLASSIFIER_KEYS takes them
    from here), then what the gold and real-test checks add."""

    kind: str
    threshold: float
    precision: float
    recall: float
    f1: float
    accuracy: float
    support: Support
    confusion: Confusion
    n_train: int
    n_heldout: int
    n_unlabelled: int
    label_lines_malformed: int
    vs_gold: GoldCheck | None = None
    real_test: RealTestFamily | None = None


class ComparisonRow(Metrics):
    """One family of `corpus.classifier.compare` (training.summary_row, plus status and the gold/real figures).
    A family that failed or was not run has only kind, status, main and note."""

    kind: str
    status: Literal["ok", "failed", "not run"]
    main: bool
    note: str | None = None
    threshold: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    ap: float | None = None
    kept_words: float | None = None
    train_s: float | None = None
    docs_per_s: float | None = None
    heldout_docs: int | None = None
    pass_share: float | None = None
    cost_saved: float | None = None
    f1_lost: float | None = None
    gold_f1: float | None = None
    written_f1: float | None = None
    real_n: int | None = None
    real_precision: float | None = None
    real_recall: float | None = None
    real_f1: float | None = None
    real_f1_lo: float | None = None
    real_f1_hi: float | None = None
    real_fpr_technical: float | None = None
    real_recall_short: float | None = None
    real_routed_share: float | None = None
    real_f1_gap_vs_stage2: float | None = None


# ------------------------------------------------------------------------------------ filters, dedup, decontam
class StepCost(Metrics):
    dropped: int
    medical_dropped: int
    real_medical_dropped: int


class MedicalRecall(Metrics):
    docs: int
    dropped: int
    recall: float | None = None


class FilterCosts(Metrics):
    """Known medical documents (gold, else training labels) each step dropped (filter_costs.py)."""

    source: Literal["gold", "labels"]
    steps: dict[str, StepCost]
    medical_recall: MedicalRecall
    real_medical_recall: MedicalRecall


class Decontamination(Metrics):
    items: int
    sources: dict[str, int]
    indexed_ngrams: int
    items_too_short: int
    ngram: int
    min_matches: int
    min_item_words: int
    removed: int
    matched_sources: dict[str, int]


class Dedup(Metrics):
    """`corpus.dedup` as run, what MinHash found (absent when nothing reached the cluster step) and removed."""

    enabled: bool
    n_grams: int
    num_buckets: int
    hashes_per_bucket: int
    seed: int
    removed: int
    duplicate_pairs: int | None = None
    clusters: int | None = None
    docs_in_clusters: int | None = None
    similarity_threshold: float


class GeneralDedup(Metrics):
    """The deduplicated general output CPT replays (`general/`)."""

    docs_in: int
    docs_kept: int
    duplicates_removed: int
    output: str
    removed_to: str


# ----------------------------------------------------------------------------------------------- the stage
class CorpusMetrics(Metrics):
    docs_in: int
    docs_kept: int
    kept_fraction: float
    filter_survivors: int
    general_docs: int
    classifier_kept: int
    dropped: dict[str, int]
    dropped_by_reason: dict[str, int]
    corrupt_files: int
    missing_text: int
    input_problems: InputProblems
    input_files: int
    kept_words: int
    corrupt_file_list: list[CorruptFile] = []
    classifier: ClassifierSummary
    classifier_comparison: list[ComparisonRow] | None = None
    labelling: Labelling | None = None
    real_test: RealTest | None = None
    filter_costs: FilterCosts | None = None
    tokenizer: TokenizerInfo
    tokens_in: int
    tokens_in_estimated: bool = False  # single pass: input tokens scaled up from the sample
    tokens_kept: int
    kept_tokens_share: float
    tokens_per_doc_mean: float
    token_retention: TokenRetention
    single_pass: SinglePass | None = None
    decontam_removed: int
    dedup_removed: int
    decontamination: Decontamination | None = None
    dedup: Dedup | None = None
    general_dedup: GeneralDedup | None = None
    subdomains: dict[str, int]
    timings_s: dict[str, float]
