"""LLM judge behind any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama, hosted APIs).

Requests run in a thread pool (`concurrency`), time-outs / 429 / 5xx are retried with exponential back-off
(`max_retries`, `backoff_s`, honouring a short Retry-After), and every reply that came back is cached in a
JSONL file keyed on everything that determines it: judge model, template text, decoding settings, prompt,
reference and both answers in their order. Failed requests are not cached, so a rerun asks again. Setup
errors (bad key, unknown model or URL) abort instead of turning every verdict invalid. The API key is read
from the environment and is never written or logged.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from definemed.config import OpenAIJudgeConfig, stable_hash
from definemed.evaluate.verdicts import JudgeItem, Verdict, parse_verdict

logger = logging.getLogger("definemed")

CACHE_FILE = "judge_cache.jsonl"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
_FIELDS = re.compile(r"\{(prompt|reference|answer_a|answer_b)\}")


def load_template(name: str) -> str:
    """A judge prompt: a file path, or a file name under `definemed/assets/prompts/`."""
    path = Path(name).expanduser()
    if path.is_file():
        return path.read_text(encoding="utf-8")
    return resources.files("definemed").joinpath("assets", "prompts", name).read_text(encoding="utf-8")


def render(template: str, item: JudgeItem) -> str:
    """Fill the four fields in one pass, so braces inside an answer are never substituted."""
    values = {"prompt": item.prompt, "reference": item.reference or "(keine Referenz)",
              "answer_a": item.answer_a, "answer_b": item.answer_b}
    return _FIELDS.sub(lambda m: values[m.group(1)], template)


class VerdictCache:
    """Append-only JSONL of judge replies. A torn last line (crash mid-write) is ignored when reading."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._rows: dict[str, dict[str, Any]] = {}
        if path is not None and path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                self._rows[row["key"]] = row

    def get(self, key: str) -> dict[str, Any] | None:
        return self._rows.get(key)

    def put(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._rows[row["key"]] = row
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")


class OpenAIJudge:
    kind = "openai"

    def __init__(self, config: OpenAIJudgeConfig, workdir: Path | None = None) -> None:
        self.config = config
        self.model = config.model
        self.template = load_template(config.template)
        self.cache = VerdictCache(Path(workdir) / CACHE_FILE if workdir is not None else None)
        self.requests = 0  # HTTP requests sent, retries included
        self._count_lock = threading.Lock()
        self._client: Any = None

    def _api_key(self) -> str:
        key = os.environ.get(self.config.api_key_env)
        if key:
            return key
        host = urlparse(self.config.base_url).hostname if self.config.base_url else None
        if host in LOCAL_HOSTS:
            return "EMPTY"  # local servers (vLLM, llama.cpp) accept any key but the client insists on one
        raise RuntimeError(f"judge: environment variable {self.config.api_key_env} is not set "
                           f"(needed for {self.config.base_url or 'the OpenAI API'})")

    def client(self) -> Any:
        if self._client is None:
            try:
                import openai
            except ImportError:
                raise RuntimeError("the openai judge needs the 'openai' package: pip install openai") \
                    from None
            # Retries are ours (counted, logged, backed off); the client's own would hide them.
            self._client = openai.OpenAI(api_key=self._api_key(), base_url=self.config.base_url,
                                         timeout=self.config.timeout_s, max_retries=0)
        return self._client

    def cache_key(self, item: JudgeItem) -> str:
        c = self.config
        return stable_hash({"model": c.model, "template": self.template, "temperature": c.temperature,
                            "max_tokens": c.max_tokens, "prompt": item.prompt, "reference": item.reference,
                            "answer_a": item.answer_a, "answer_b": item.answer_b, "order": "a_shown_first"})

    def _retry_wait(self, exc: Exception, attempt: int) -> float | None:
        """Seconds to wait before retrying `exc`, or None when it is not worth retrying."""
        import openai

        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError | openai.NotFoundError):
            raise RuntimeError(f"judge endpoint refused the setup: {type(exc).__name__}: {exc}") from None
        retryable = isinstance(exc, openai.APIConnectionError | openai.RateLimitError
                               | openai.InternalServerError)
        if not retryable or attempt >= self.config.max_retries:
            return None
        wait = self.config.backoff_s * 2**attempt
        response = getattr(exc, "response", None)
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after and retry_after.replace(".", "", 1).isdigit():
            wait = max(wait, min(float(retry_after), 60.0))
        return wait

    def _ask(self, item: JudgeItem) -> Verdict:
        import openai

        messages = [{"role": "user", "content": render(self.template, item)}]
        for attempt in range(self.config.max_retries + 1):
            try:
                with self._count_lock:
                    self.requests += 1
                resp = self.client().chat.completions.create(
                    model=self.config.model, messages=messages, temperature=self.config.temperature,
                    max_tokens=self.config.max_tokens)
                text = resp.choices[0].message.content or ""
                return Verdict(winner=parse_verdict(text), raw=text)
            except openai.APIError as exc:  # anything else is a bug or a setup error: let it surface
                wait = self._retry_wait(exc, attempt)
                if wait is None:
                    logger.warning("judge request failed for good after %d attempt(s): %s", attempt + 1,
                                   type(exc).__name__)
                    return Verdict(winner="invalid", error=f"{type(exc).__name__}: {exc}")
                logger.info("judge request failed (%s); retry %d/%d in %.1f s", type(exc).__name__,
                            attempt + 1, self.config.max_retries, wait)
                time.sleep(wait)
        raise AssertionError("unreachable")

    def _judge_one(self, item: JudgeItem) -> Verdict:
        key = self.cache_key(item)
        hit = self.cache.get(key)
        if hit is not None:
            return Verdict(winner=parse_verdict(hit["raw"]), raw=hit["raw"], cached=True)
        verdict = self._ask(item)
        if verdict.error is None:  # a reply came back: keep it, even if it did not parse
            self.cache.put({"key": key, "model": self.config.model, "raw": verdict.raw,
                            "winner": verdict.winner})
        return verdict

    def judge_batch(self, items: list[JudgeItem]) -> list[Verdict]:
        from tqdm.auto import tqdm

        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            verdicts = pool.map(self._judge_one, items)
            return list(tqdm(verdicts, total=len(items), desc="judge", unit="verdict"))
