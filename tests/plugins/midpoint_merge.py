"""A merge-method plugin: `midpoint`, the plain average of the instruct model and the CPT checkpoint.

Like mergekit's "create a merge method", a method is a config model (its `kind` literal and parameters) plus a
builder that turns it into the YAML-able dict mergekit runs; here the builder emits mergekit's `linear` method.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from definemed import registry
from definemed.merge.config import CPT_MODEL, MergeMethodConfig


class MidpointMergeConfig(MergeMethodConfig):
    """`merge.kind: midpoint`: `share` of the CPT checkpoint, the rest of `base` (0.5: the midpoint)."""

    kind: Literal["midpoint"] = "midpoint"
    share: float = Field(0.5, gt=0, lt=1)


def midpoint_config(cfg: MidpointMergeConfig, paths: Mapping[str, str | Path]) -> dict[str, Any]:
    """The mergekit config: a weighted average of `base` and the CPT checkpoint."""
    return {
        "merge_method": "linear",
        "models": [
            {"model": str(Path(paths[cfg.base]).resolve()), "parameters": {"weight": 1 - cfg.share}},
            {"model": str(Path(paths[CPT_MODEL]).resolve()), "parameters": {"weight": cfg.share}},
        ],
        "parameters": {"normalize": True},
        "dtype": cfg.dtype,
    }


registry.register(
    "merge_method", "midpoint", midpoint_config, "demo plugin: average of instruct and CPT", config=MidpointMergeConfig
)
