"""Config sections of LLM labelling (corpus step 2 of the paper: label a sample medical / non-medical).

Each labeller backend is one model with a `kind:` literal, so a corpus config can hold them as a discriminated
union. Everything here forbids unknown keys (`definemed.config.Strict`). The API key is never part of a config:
only the name of the environment variable that holds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from definemed.config import Strict, kind_union


class OpenAILabellerSettings(Strict):
    """Any OpenAI-compatible chat endpoint: vLLM, llama.cpp server, Ollama, hosted APIs."""

    kind: Literal["openai"] = "openai"
    model: str
    base_url: str | None = Field(None, description="None: api.openai.com; local servers need no key")
    api_key_env: str = "OPENAI_API_KEY"
    template: str = Field("label_medical_de.md", description="file under assets/prompts/ or a path")
    json_schema: bool = Field(False, description="send response_format=json_schema (vLLM, OpenAI support it)")
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(96, ge=1)
    seed: int | None = None
    max_doc_chars: int = Field(6000, ge=100, description="documents are cut to this many characters")
    concurrency: int = Field(8, ge=1, description="requests in flight at once")
    max_retries: int = Field(4, ge=0, description="retries after timeouts, 429 and 5xx (not other 4xx)")
    backoff_s: float = Field(1.0, ge=0, description="first retry waits this long, then doubles")
    max_backoff_s: float = Field(60.0, ge=0, description="upper bound of one wait, Retry-After included")
    jitter: float = Field(0.25, ge=0, le=1, description="each wait is stretched by up to this fraction")
    timeout_s: float = Field(60.0, gt=0)

    @model_validator(mode="after")
    def _backoff_order(self) -> OpenAILabellerSettings:
        if self.max_backoff_s < self.backoff_s:
            raise ValueError("max_backoff_s must be at least backoff_s")
        return self


class HfLabellerSettings(Strict):
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

    @model_validator(mode="after")
    def _distinct_words(self) -> HfLabellerSettings:
        if self.positive.strip() == self.negative.strip():
            raise ValueError("positive and negative answer words must differ")
        return self


class FileLabellerSettings(Strict):
    """Labels computed elsewhere: JSONL with an id and at least a boolean `medical` field."""

    kind: Literal["file"] = "file"
    path: Path
    id_key: str = "id"
    label_key: str = "medical"


LabellerSettings = kind_union(OpenAILabellerSettings, HfLabellerSettings, FileLabellerSettings, default="openai")


class SampleSettings(Strict):
    """A reproducible random subset of the input documents (reservoir sampling)."""

    n: int = Field(ge=1)
    seed: int = 0
    id_key: str = "id"
    text_key: str = "text"


class AuditSettings(Strict):
    """Compare labels with a human-checked gold file (JSONL: id, medical, optional subdomain)."""

    gold: Path
    resamples: int = Field(1000, ge=10, description="bootstrap resamples for the 95 % intervals")
    seed: int = 0
    snippet_chars: int = Field(200, ge=0)


class LabellingSettings(Strict):
    """One labelling run: which documents, which labeller, how many failures are tolerated, optional audit."""

    sample: SampleSettings | None = None
    labeller: LabellerSettings
    max_failure_share: float = Field(0.05, ge=0, le=1, description="invalid + failed share that aborts the run")
    audit: AuditSettings | None = None
