"""Config sections of LLM labelling (corpus step 2 of the paper: label a sample medical / non-medical).

Each labeller backend is one model with a `kind:` literal; the kinds are open (registry family `labeller`), so a
plugin can add one. The API key is never part of a config: only the name of the environment variable that holds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from definemed.schema import SafeName, Strict, open_union

AuditMetric = Literal["precision", "recall", "f1", "accuracy"]


class NamedLabeller(Strict):
    name: SafeName | None = Field(
        None, description="how audits and metrics call this labeller; required when `labellers` lists several"
    )

    @property
    def label(self) -> str:
        return self.name or self.default_name()

    def default_name(self) -> str:
        return self.kind  # type: ignore[attr-defined]


class OpenAILabellerSettings(NamedLabeller):
    """Any OpenAI-compatible chat endpoint: vLLM, llama.cpp server, Ollama, hosted APIs."""

    kind: Literal["openai"] = "openai"
    model: str
    base_url: str | None = Field(None, description="None: api.openai.com; local servers need no key")
    api_key_env: str = "OPENAI_API_KEY"
    template: str = Field("label_medical_de.md", description="file under assets/prompts/ or a path")
    structured_output: Literal["auto", "json_schema", "json_object", "plain"] = Field(
        "auto",
        description="auto: negotiated once per endpoint (json_schema, then json_object + schema, then "
        "plain strict parsing); or force one",
    )
    method: Literal["generate", "logprob"] = Field(
        "generate",
        description="generate: a JSON reply; logprob: P(positive) from one token's log-probabilities "
        "(medical and p_medical only, like the hf labeller)",
    )
    positive: str = Field("ja", description="logprob: answer word meaning 'medical'")
    negative: str = Field("nein", description="logprob: answer word meaning 'not medical'")
    threshold: float = Field(0.5, gt=0, lt=1, description="logprob: medical when P(positive) >= threshold")
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(96, ge=1)
    seed: int | None = None
    max_doc_chars: int = Field(6000, ge=100, description="documents are cut to this many characters")
    concurrency: int = Field(
        8, ge=1, description="most requests in flight; the client starts at 1 and grows only while throughput grows"
    )
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


class HfLabellerSettings(NamedLabeller):
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


class FileLabellerSettings(NamedLabeller):
    """Labels computed elsewhere: JSONL with an id and at least a boolean `medical` field."""

    kind: Literal["file"] = "file"
    path: Path
    id_key: str = "id"
    label_key: str = "medical"

    def default_name(self) -> str:
        return f"file:{self.path.name}"


LabellerSettings = open_union(
    "labeller", OpenAILabellerSettings, HfLabellerSettings, FileLabellerSettings, default="openai"
)


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
    max_docs: int | None = Field(
        None, ge=1, description="audit this many gold documents (drawn with `seed`); None: all that qualify"
    )
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
            raise ValueError(
                "set either `labeller` (one) or `labellers` (several candidates), not "
                + ("both" if self.labeller is not None else "neither")
            )
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
