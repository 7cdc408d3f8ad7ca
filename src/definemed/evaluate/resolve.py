"""Which checkpoint each name in `evaluate.models` stands for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from definemed import models
from definemed.evaluate.config import STAGE_MODELS
from definemed.schema import ModelSpec
from definemed.stage import StageContext


@dataclass(frozen=True)
class ModelRef:
    """A loadable checkpoint: local folder or hub id, with the dtype and revision to load it with."""

    name: str
    path: str
    dtype: str = "auto"
    revision: str | None = None


def resolve_models(names: list[str], specs: Mapping[str, ModelSpec], ctx: StageContext) -> dict[str, ModelRef]:
    """Names under `models:` (`specs`, as bound into the stage's inputs) resolve through `definemed.models.resolve`
    (bundled ids become local folders); 'cpt' and 'merged' are the `model` outputs of the finished upstream
    stages."""
    refs: dict[str, ModelRef] = {}
    for name in names:
        if name in STAGE_MODELS:
            refs[name] = ModelRef(name, str(ctx.input_path(STAGE_MODELS[name], "model")))
        else:
            spec = specs[name]
            refs[name] = ModelRef(name, models.resolve(spec.id), spec.dtype, spec.revision)
    return refs
