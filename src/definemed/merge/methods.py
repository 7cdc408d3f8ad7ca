"""Merge methods as mergekit configurations. Each builder returns the YAML-able dict mergekit reads.

Registered under `merge_method` in the registry; the stage looks the builder up by `cfg.merge.kind`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from definemed.config import SlerpMergeConfig


def slerp_config(cfg_merge: SlerpMergeConfig, base_path: str | Path, other_path: str | Path) -> dict[str, Any]:
    """Layer-wise SLERP between the instruct model (base, t=0) and the CPT checkpoint (t=1).

    A list `t` is mergekit's gradient form: the anchors are spread evenly over the layers and interpolated
    linearly in between. Tensors outside the layer stack (embeddings, final norm, LM head) take the first anchor.
    Paths are made absolute: mergekit treats relative one-slash paths as hub ids.
    """
    base, other = str(Path(base_path).resolve()), str(Path(other_path).resolve())
    return {
        "merge_method": "slerp",
        "base_model": base,
        "models": [{"model": base}, {"model": other}],
        "parameters": {"t": list(cfg_merge.t) if isinstance(cfg_merge.t, list) else float(cfg_merge.t)},
        "dtype": cfg_merge.dtype,
    }


def layer_factors(t: float | list[float], num_layers: int) -> list[float]:
    """The factor each layer gets, exactly as mergekit resolves a gradient (for the model card and tests)."""
    if not isinstance(t, list):
        return [float(t)] * num_layers
    out = []
    for idx in range(num_layers):
        pos = idx / (num_layers - 1) if num_layers > 1 else 1.0
        scaled = pos * (len(t) - 1)
        i0 = int(scaled)
        i1 = min(len(t) - 1, i0 + 1)
        out.append((1 - (scaled - i0)) * t[i0] + (scaled - i0) * t[i1])
    return out
