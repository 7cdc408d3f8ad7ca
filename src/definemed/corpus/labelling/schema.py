"""What a labeller returns: the label schema, one result per document, and the parser of LLM replies.

A generative labeller must answer with one JSON object `{"medical": bool, "edu_score": 0-5, "subdomain": ...}`.
The parser is strict (exact types, no extra keys, a subdomain that agrees with `medical`) and never raises: a
reply that does not fit is kept verbatim with status `invalid_json` or `schema_error`, so a later parser fix can
re-read it (`cache.reparse`) without asking the endpoint again.
"""

from __future__ import annotations

import json
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Subdomain = Literal[
    "clinical",
    "pharmacology",
    "patient_information",
    "public_health",
    "nursing",
    "research",
    "veterinary",
    "wellness_marketing",
    "none",
]
SUBDOMAINS: tuple[str, ...] = get_args(Subdomain)
# Subdomains that never describe human medicine: a reply pairing them with medical=true contradicts itself.
NON_MEDICAL_SUBDOMAINS = frozenset({"veterinary", "wellness_marketing", "none"})

Status = Literal["ok", "invalid_json", "schema_error", "http_error", "timeout", "missing"]
STATUSES: tuple[str, ...] = get_args(Status)
# Statuses where the endpoint did answer; these replies are cached (failures are asked again on a rerun).
ANSWERED = frozenset({"ok", "invalid_json", "schema_error"})


class MedicalLabels(BaseModel):
    """The object a generative labeller must return (also sent as response_format json_schema)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    medical: bool
    edu_score: int = Field(ge=0, le=5)
    subdomain: Subdomain

    @model_validator(mode="after")
    def _subdomain_agrees(self) -> MedicalLabels:
        if self.medical == (self.subdomain in NON_MEDICAL_SUBDOMAINS):
            raise ValueError(f"subdomain '{self.subdomain}' contradicts medical={self.medical}")
        return self


class DocLabels(BaseModel):
    """Labels of one document as any backend yields them; scoring backends fill only `medical`, `p_medical`."""

    model_config = ConfigDict(extra="forbid")

    medical: bool
    edu_score: int | None = Field(None, ge=0, le=5)
    subdomain: Subdomain | None = None
    p_medical: float | None = Field(None, ge=0, le=1)


class Document(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    text: str


class LabelResult(BaseModel):
    """One document's outcome. `labels` is None unless status is `ok`; `raw` keeps the reply as received."""

    doc_id: str
    labels: DocLabels | None = None
    status: Status
    raw: str | None = None
    finish_reason: str | None = None  # as the endpoint said ("length": cut at max_tokens)
    error: str | None = None
    attempts: int = 0  # requests sent for this document, failed attempts included
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False


def json_schema() -> dict[str, Any]:
    """The reply schema in the form OpenAI-style `response_format: json_schema` (strict mode) accepts."""
    return {
        "type": "object",
        "properties": {
            "medical": {"type": "boolean"},
            "edu_score": {"type": "integer", "enum": [0, 1, 2, 3, 4, 5]},
            "subdomain": {"type": "string", "enum": list(SUBDOMAINS)},
        },
        "required": ["medical", "edu_score", "subdomain"],
        "additionalProperties": False,
    }


def first_json_object(text: str) -> Any:
    """Decode the first `{...}` value in `text` (models like to wrap it in prose or code fences)."""
    start = text.find("{")
    if start < 0:
        raise ValueError("no '{' in reply")
    obj, _ = json.JSONDecoder().raw_decode(text, start)
    return obj


def parse_reply(raw: str) -> tuple[Status, DocLabels | None, str | None]:
    """(status, labels, error) for one reply; never raises."""
    try:
        obj = first_json_object(raw)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        return "invalid_json", None, f"invalid JSON: {exc}"
    try:
        labels = MedicalLabels.model_validate(obj)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors())
        return "schema_error", None, f"schema: {problems}"
    return "ok", DocLabels(**labels.model_dump()), None
