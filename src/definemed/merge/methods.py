"""Merge methods as mergekit configurations. Each builder returns the YAML-able dict mergekit reads.

A merge method is a `merge_method` registry entry: a builder `(merge, paths) -> dict` registered with its config
model, `registry.register("merge_method", name, builder, description, config=Model)`, where `Model` subclasses
`merge.config.MergeMethodConfig` with `kind: Literal[name]`. The stage calls the builder of `merge.kind` with the
validated merge section and `paths`: every name of `merge.model_names()` ('cpt' included) mapped to a local
folder. The builder sees nothing else (no root config); the stage runs mergekit, copies the tokenizer of `base`
(the instruct model) and writes the card. Paths are made absolute: mergekit treats relative one-slash paths as
hub ids. No builder sets a tokenizer source, whichever model is mergekit's base.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from definemed.merge.config import (
    CPT_MODEL,
    DareTiesMergeConfig,
    Factor,
    LinearMergeConfig,
    SlerpFactor,
    SlerpMergeConfig,
    TaskArithmeticMergeConfig,
    TiesMergeConfig,
)


def _abs(path: str | Path) -> str:
    return str(Path(path).resolve())


def factor_setting(t: SlerpFactor) -> Any:
    """A SLERP factor as a mergekit parameter setting.

    A number stays a number, a list is mergekit's gradient, and a mapping becomes mergekit's conditional form:
    one `{filter, value}` per key in the order written (mergekit takes the first filter that is a substring of
    the tensor name), `default` last without a filter.
    """
    if isinstance(t, dict):
        rules: list[dict[str, Any]] = [
            {"filter": key, "value": _curve(value)} for key, value in t.items() if key != "default"
        ]
        return [*rules, {"value": _curve(t["default"])}]
    return _curve(t)


def _curve(t: Factor) -> float | list[float]:
    return [float(x) for x in t] if isinstance(t, list) else float(t)


def slerp_config(cfg: SlerpMergeConfig, paths: Mapping[str, str | Path]) -> dict[str, Any]:
    """Layer-wise SLERP between the instruct model (base, t=0) and the CPT checkpoint (t=1).

    A list `t` is spread evenly over the layers and interpolated linearly in between; tensors outside the layer
    stack (embeddings, final norm, LM head) take the first anchor.
    """
    base, other = _abs(paths[cfg.base]), _abs(paths[CPT_MODEL])
    return {
        "merge_method": "slerp",
        "base_model": base,
        "models": [{"model": base}, {"model": other}],
        "parameters": {"t": factor_setting(cfg.t)},
        "dtype": cfg.dtype,
    }


def linear_config(cfg: LinearMergeConfig, paths: Mapping[str, str | Path]) -> dict[str, Any]:
    """Weighted average: sum(w_i * model_i) / sum(w_i) (without the division when `normalize` is off)."""
    return {
        "merge_method": "linear",
        "models": [{"model": _abs(paths[m.model]), "parameters": {"weight": m.weight}} for m in cfg.models],
        "parameters": {"normalize": cfg.normalize},
        "dtype": cfg.dtype,
    }


def task_arithmetic_config(cfg: TaskArithmeticMergeConfig, paths: Mapping[str, str | Path]) -> dict[str, Any]:
    """base_model + scale * sum(w_i * (model_i - base_model)); the chat vector with cpt and instruct at 1."""
    return _delta_config("task_arithmetic", cfg, paths, {})


def ties_config(cfg: TiesMergeConfig, paths: Mapping[str, str | Path]) -> dict[str, Any]:
    """TIES-merging (Yadav et al. 2023): magnitude trim to `density`, sign election, disjoint mean."""
    return _delta_config("ties", cfg, paths, {})


def dare_ties_config(cfg: DareTiesMergeConfig, paths: Mapping[str, str | Path]) -> dict[str, Any]:
    """DARE (Yu et al. 2023) random drop + rescale, then TIES sign election. The seed is a merge option."""
    return _delta_config("dare_ties", cfg, paths, {"rescale": cfg.rescale})


def _delta_config(
    method: str, cfg: TaskArithmeticMergeConfig, paths: Mapping[str, str | Path], extra: dict[str, Any]
) -> dict[str, Any]:
    """The task-vector family: every model is a delta against `base_model` (null: the instruct model)."""
    sparse = isinstance(cfg, TiesMergeConfig)
    models = []
    for m in cfg.models:
        params: dict[str, Any] = {"weight": m.weight}
        if sparse:
            params["density"] = m.density if m.density is not None else cfg.density  # type: ignore[attr-defined]
        models.append({"model": _abs(paths[m.model]), "parameters": params})
    return {
        "merge_method": method,
        "base_model": _abs(paths[cfg.base_model or cfg.base]),
        "models": models,
        "parameters": {"normalize": cfg.normalize, "lambda": cfg.scale, **extra},
        "dtype": cfg.dtype,
    }


def layer_factors(t: Factor, num_layers: int) -> list[float]:
    """The factor each layer gets (for the model card and tests), resolved by mergekit's own `evaluate_setting`
    with its SLERP `t` validator. The layer's position in the gradient, idx / (num_layers - 1) (1 for a single
    layer), is written out inline in mergekit's `MergePlanner.plan_slice`, which offers no function to call."""
    from mergekit.config import evaluate_setting
    from mergekit.merge_methods.registry import get

    spec = next(p for p in get("slerp").spec.shared_parameters if p.name == "t")
    positions = [idx / (num_layers - 1) if num_layers > 1 else 1.0 for idx in range(num_layers)]
    return [evaluate_setting("", _curve(t), pos, validate=spec.validate) for pos in positions]


def module_factors(t: SlerpFactor, num_layers: int) -> dict[str, list[float]]:
    """Per filter ('default' for a single curve), the factor of each layer."""
    curves = t if isinstance(t, dict) else {"default": t}
    return {name: layer_factors(curve, num_layers) for name, curve in curves.items()}


def method_parameters(cfg: Any) -> dict[str, Any]:
    """The method-specific part of a merge config (for metrics and the model card)."""
    common = {"kind", "base", "dtype", "out_shard_params", "sweep"}
    return {k: v for k, v in cfg.model_dump(mode="json").items() if k not in common}
