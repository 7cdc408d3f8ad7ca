"""Which checkpoint each name in `evaluate.models` stands for."""

from __future__ import annotations

from dataclasses import dataclass

from definemed import models
from definemed.stage import StageContext
from definemed.config import DefinemedConfig
from definemed.evaluate.config import STAGE_MODELS


@dataclass(frozen=True)
class ModelRef:
    """A loadable checkpoint: local folder or hub id, with the dtype and revision to load it with."""

    name: str
    path: str
    dtype: str = "auto"
    revision: str | None = None


def resolve_models(cfg: DefinemedConfig, ctx: StageContext) -> dict[str, ModelRef]:
    """Names under `models:` resolve through `definemed.models.resolve` (bundled ids become local folders);
    'cpt' and 'merged' are the `model` outputs of the finished upstream stages."""
    refs: dict[str, ModelRef] = {}
    for name in cfg.evaluate.models:
        if name in STAGE_MODELS:
            refs[name] = ModelRef(name, str(ctx.input_path(STAGE_MODELS[name], "model")))
        else:
            spec = cfg.models[name]
            refs[name] = ModelRef(name, models.resolve(spec.id), spec.dtype, spec.revision)
    return refs
