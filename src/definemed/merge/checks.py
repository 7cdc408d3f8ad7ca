"""Pre-merge checks: two checkpoints can be merged tensor by tensor only if they are the same network.

Everything here reads metadata only (config.json, safetensors headers, tokenizer vocabularies), so a mismatch
is reported in seconds and before anything is written, instead of as a shape error halfway through a merge.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from definemed.errors import DefinemedError


class MergeCompatibilityError(DefinemedError, ValueError):
    """The two models cannot be merged; the message names what differs."""


def local_model_dir(path_or_id: str, revision: str | None = None) -> Path:
    """A local folder for a model: the path itself, or a hub snapshot (works offline from the HF cache)."""
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        return path.resolve()
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]
    return Path(snapshot_download(path_or_id, revision=revision, allow_patterns=patterns))


def read_config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "config.json"
    if not path.exists():
        raise MergeCompatibilityError(f"{model_dir} has no config.json; is it a transformers checkpoint?")
    return json.loads(path.read_text(encoding="utf-8"))


def tensor_shapes(files: Iterable[str | Path]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of safetensors files, from their headers (safetensors maps the file; no tensor is
    read, and the numpy framework keeps torch out of it)."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        with safe_open(str(file), framework="numpy") as fh:
            for name in fh.keys():  # noqa: SIM118 - a safetensors handle is not iterable
                shapes[name] = tuple(fh.get_slice(name).get_shape())
    return shapes


def safetensors_shapes(model_dir: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of a checkpoint folder's safetensors weights, without loading them."""
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise MergeCompatibilityError(f"{model_dir} has no *.safetensors weights (pickled .bin is not merged)")
    return tensor_shapes(files)


def _vocab_size(config: dict[str, Any]) -> int | None:
    return config.get("vocab_size") or config.get("text_config", {}).get("vocab_size")


def _names(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check_architecture(base: Path, other: Path) -> None:
    a, b = read_config(base), read_config(other)
    for key in ("model_type", "architectures"):
        if a.get(key) != b.get(key):
            raise MergeCompatibilityError(
                f"architecture mismatch: {key} is {a.get(key)!r} in {base} but {b.get(key)!r} in {other}"
            )


def check_vocabulary(base: Path, other: Path) -> None:
    """Same vocabulary size in the configs and token-for-token identical tokenizer vocabularies."""
    size_a, size_b = _vocab_size(read_config(base)), _vocab_size(read_config(other))
    if size_a != size_b:
        raise MergeCompatibilityError(
            f"vocabulary size mismatch: vocab_size is {size_a} in {base} but {size_b} in {other}"
        )
    from transformers import AutoTokenizer

    vocab_a = AutoTokenizer.from_pretrained(base).get_vocab()
    vocab_b = AutoTokenizer.from_pretrained(other).get_vocab()
    if vocab_a != vocab_b:
        differ = sorted(t for t in vocab_a.keys() | vocab_b.keys() if vocab_a.get(t) != vocab_b.get(t))
        raise MergeCompatibilityError(
            f"tokenizer vocabulary mismatch between {base} and {other}: {len(differ)} token(s) differ or are "
            f"missing, e.g. {_names([repr(t) for t in differ])}"
        )


def check_tensors(base: Path, other: Path) -> None:
    a, b = safetensors_shapes(base), safetensors_shapes(other)
    only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
    if only_a or only_b:
        parts = [
            f"only in {base}: {_names(only_a)}" if only_a else "",
            f"only in {other}: {_names(only_b)}" if only_b else "",
        ]
        raise MergeCompatibilityError("tensor names differ; " + "; ".join(p for p in parts if p))
    wrong = [f"{n} {a[n]} vs {b[n]}" for n in sorted(a) if a[n] != b[n]]
    if wrong:
        raise MergeCompatibilityError(f"tensor shapes differ ({base} vs {other}): {_names(wrong)}")


def chat_template(model_dir: Path) -> str | None:
    """The chat template a tokenizer folder carries: `chat_template.jinja` (transformers 5 writes it there) or
    `tokenizer_config.json`'s `chat_template` (a string, or a list of named templates: the 'default' one)."""
    jinja = model_dir / "chat_template.jinja"
    if jinja.exists():
        return jinja.read_text(encoding="utf-8")
    config = model_dir / "tokenizer_config.json"
    if not config.exists():
        return None
    template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template or None


def check_chat_template(donor: Path, other: Path) -> None:
    """The merged model keeps the donor's template, so every model that has a template must share it: merging
    weights trained on different chat formats leaves a model that answers in neither. A model without any
    template (a pre-instruct base in task arithmetic) was never trained on one and passes."""
    a, b = chat_template(donor), chat_template(other)
    if b is None or a == b:
        return
    if a is None:
        raise MergeCompatibilityError(
            f"chat template mismatch: the tokenizer donor {donor} has no chat template but {other} has one"
        )
    at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    raise MergeCompatibilityError(
        f"chat template mismatch between {donor} and {other}: they differ from character {at} "
        f"({a[at : at + 40]!r} vs {b[at : at + 40]!r})"
    )


def check_compatible(base: Path, other: Path) -> None:
    """All pre-merge checks of `other` against the tokenizer donor `base`, cheapest and most explanatory first."""
    check_architecture(base, other)
    check_vocabulary(base, other)
    check_chat_template(base, other)
    check_tensors(base, other)
