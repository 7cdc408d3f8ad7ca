"""The cpt stage's contract: the section, the model it trains, the seed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from definemed.schema import ModelSpec
from definemed.stage import InputPath, Inputs, Stage, listing
from definemed.train.config import CptConfig
from definemed.train.metrics import CptMetrics

if TYPE_CHECKING:
    from definemed.config import DefinemedConfig


class CptInputs(Inputs):
    cpt: CptConfig
    model: ModelSpec  # models[cpt.model]
    seed: int

    def fingerprints(self) -> dict[str, Any]:
        """Also the shards of local replay folders (named as strings; 'corpus:general' is the corpus stage's)."""
        local = [src for src in self.cpt.replay.sources if ":" not in src]
        return {**super().fingerprints(), "replay": listing(local, "**/*.jsonl*")}


def bind(cfg: DefinemedConfig) -> CptInputs:
    return CptInputs(cpt=cfg.cpt, model=cfg.models[cfg.cpt.model], seed=cfg.run.seed)


def check(cfg: DefinemedConfig) -> None:
    if cfg.cpt.model not in cfg.models:
        raise ValueError(f"cpt.model: '{cfg.cpt.model}' is not defined under models: {sorted(cfg.models)}")


def paths(cfg: DefinemedConfig) -> list[InputPath]:
    out = [InputPath("cpt.init_from", cfg.cpt.init_from, "dir")] if cfg.cpt.init_from is not None else []
    return out + [
        InputPath(f"cpt.replay.sources.{i}", Path(src).expanduser(), "dir")
        for i, src in enumerate(cfg.cpt.replay.sources)
        if ":" not in src
    ]


STAGE = Stage(
    name="cpt",
    help="continual pre-training with packing (transformers Trainer)",
    upstream=("corpus",),
    resumable=True,
    section="cpt",
    config=CptConfig,
    bind=bind,
    metrics=CptMetrics,
    run="definemed.train.stage:run",
    report_section="definemed.report.sections.cpt:section",
    check=check,
    paths=paths,
)
