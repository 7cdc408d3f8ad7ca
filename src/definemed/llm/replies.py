"""Reading what an OpenAI-compatible server sent back: the completion (`Reply`), its first token's
log-probabilities, the probabilities of answer words, Retry-After headers; and the `response_format` bodies that
structured-output negotiation tries. Pure functions over JSON, no I/O."""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

STRUCTURED_MODES = ("json_schema", "json_object", "plain")


@dataclass
class Reply:
    text: str
    finish_reason: str | None = None
    model: str | None = None
    top_logprobs: dict[str, float] | None = None  # first output token: token text -> log-probability
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def cut(self) -> bool:
        return self.finish_reason == "length"


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds a server asks us to wait: `retry-after-ms`, `retry-after` as seconds or as an HTTP date."""
    if not headers:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(float(ms) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(email.utils.parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def _top_logprobs(choice: dict[str, Any]) -> dict[str, float] | None:
    """The first output token's alternatives, from a chat (`content[0].top_logprobs`) or completions reply."""
    lp = choice.get("logprobs")
    if not isinstance(lp, dict):
        return None
    content = lp.get("content")
    if isinstance(content, list) and content:
        first = content[0] or {}
        alts = {a["token"]: float(a["logprob"]) for a in first.get("top_logprobs") or [] if "token" in a}
        if "token" in first and first.get("logprob") is not None:
            alts.setdefault(first["token"], float(first["logprob"]))
        return alts or None
    tops = lp.get("top_logprobs")
    if isinstance(tops, list) and tops and isinstance(tops[0], dict):
        return {str(k): float(v) for k, v in tops[0].items()} or None
    return None


def reply_from_json(data: Any) -> Reply | None:
    """A chat or text completion as `Reply`; None when the body is not one (a proxy's error page)."""
    try:
        choice = data["choices"][0]
        message = choice.get("message")
        text = (message or {}).get("content") if message is not None else choice.get("text")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    usage = data.get("usage") or {}
    return Reply(
        text=text or "",
        finish_reason=choice.get("finish_reason"),
        model=data.get("model"),
        top_logprobs=_top_logprobs(choice),
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
    )


def answer_probabilities(top: dict[str, float] | None, options: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """P(option) normalised over `options` from a token's top log-probabilities; each option's words are matched
    case-insensitively after stripping spaces and brackets, and their probabilities summed. Options absent from
    the top alternatives get 0; when none is present the result is empty (the reply could not be scored)."""
    mass = dict.fromkeys(options, 0.0)
    for token, logprob in (top or {}).items():
        norm = token.strip().strip("[]*\"'").lower()
        for option, words in options.items():
            if norm and norm in {w.lower() for w in words}:
                mass[option] += math.exp(logprob)
    total = sum(mass.values())
    return {k: v / total for k, v in mass.items()} if total > 0 else {}


def response_format(mode: str, schema: dict[str, Any], name: str = "reply") -> dict[str, Any] | None:
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}
    if mode == "json_object":  # llama.cpp / llama-cpp-python: a grammar built from the schema
        return {"type": "json_object", "schema": schema}
    return None
