"""Where requests go and whether they can work at all: the API key, the setup probe, secret scrubbing.

The key is read from the environment variable the config names and is never logged or stored; a local server
(localhost) without that variable gets a dummy key, and when such a server then refuses it the error names the
variable. `probe` asks `GET /models` with a short time-out before any real work: a server that is down fails in
seconds, a refused key names its variable, and a model name the server does not list is an error (llama.cpp's
server answers any name with its default model and echoes the name back, so the reply alone would not tell).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from definemed.errors import DefinemedError

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
DUMMY_KEY = "EMPTY"
PROBE_TIMEOUT_S = 5.0

_SECRET_PATTERNS = [
    re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"(?i)(bearer\s+)[^\s\"',]+"),
    re.compile(r"(?i)(api[_-]?key[\"']?\s*[:=]\s*[\"']?)[^\s\"',]+"),
]


class EndpointSetupError(DefinemedError, RuntimeError):
    """The endpoint cannot work at all (down, key missing or refused, unknown model or URL): retrying cannot help."""


def scrub(text: str | None, secrets: tuple[str, ...] = ()) -> str | None:
    """`text` with the given secrets and anything that looks like a key or bearer token replaced by '***'."""
    if text is None:
        return None
    for secret in secrets:
        if secret and secret != DUMMY_KEY and len(secret) >= 4:
            text = text.replace(secret, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
    return text


def is_local(base_url: str | None) -> bool:
    return (urlparse(base_url).hostname if base_url else None) in LOCAL_HOSTS


@dataclass(frozen=True)
class Endpoint:
    """One served model: `who` names the config section in messages (e.g. 'evaluate.judge')."""

    who: str
    model: str
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"

    @property
    def url(self) -> str:
        return self.base_url or "https://api.openai.com/v1"

    def key_is_set(self) -> bool:
        return bool(os.environ.get(self.api_key_env))

    def api_key(self) -> str:
        key = os.environ.get(self.api_key_env)
        if key:
            return key
        if is_local(self.base_url):
            return DUMMY_KEY  # local servers usually accept any key; the client insists on one
        raise EndpointSetupError(
            f"{self.who}: environment variable {self.api_key_env} is not set (needed for "
            f"{self.url}); export it, or set {self.who}.api_key_env to the variable that "
            "holds the key"
        )

    def refused(self, status: int | None, detail: str) -> EndpointSetupError:
        """The error for a 401/403: names the key variable and whether it was set."""
        if self.key_is_set():
            why = f"the key in {self.api_key_env} was refused"
        else:
            why = f"environment variable {self.api_key_env} is not set and the server wants a key"
        return EndpointSetupError(f"{self.who}: {self.url} answered HTTP {status}: {why} ({detail[:200]})")


def model_ids(listing: Any) -> list[str]:
    """Model ids of a `/models` reply (OpenAI format: {"data": [{"id": ...}, ...]})."""
    data = listing.get("data") if isinstance(listing, dict) else None
    return [str(m.get("id")) for m in data or [] if isinstance(m, dict) and m.get("id") is not None]


def check_model_listed(endpoint: Endpoint, ids: list[str]) -> None:
    if ids and endpoint.model not in ids:
        raise EndpointSetupError(
            f"{endpoint.who}: model '{endpoint.model}' is not served by {endpoint.url} "
            f"(it lists {ids[:10]}); set {endpoint.who}.model to one of these"
        )
