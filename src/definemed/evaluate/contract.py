"""The evaluate stage's contract: the section, the models it evaluates that are not stage outputs, the seed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from definemed.evaluate.config import STAGE_MODELS, EvaluateConfig
from definemed.evaluate.metrics import EvaluateMetrics
from definemed.schema import ModelSpec
from definemed.stage import InputPath, Inputs, Stage

if TYPE_CHECKING:
    from definemed.config import DefinemedConfig


class EvaluateInputs(Inputs):
    evaluate: EvaluateConfig
    models: dict[str, ModelSpec]  # evaluated models under `models:` (cpt and merged come from the stages)
    seed: int


def bind(cfg: DefinemedConfig) -> EvaluateInputs:
    ev = cfg.evaluate
    return EvaluateInputs(
        evaluate=ev, models={m: cfg.models[m] for m in ev.models if m not in STAGE_MODELS}, seed=cfg.run.seed
    )


def check(cfg: DefinemedConfig) -> None:
    ev, evaluable = cfg.evaluate, set(cfg.models) | set(STAGE_MODELS)
    for i, name in enumerate(ev.models):
        if name not in evaluable:
            raise ValueError(f"evaluate.models.{i}: '{name}' is neither under models nor one of {sorted(STAGE_MODELS)}")
    if len(set(ev.models)) != len(ev.models):
        raise ValueError("evaluate.models: names must be unique")
    if ev.baseline is not None and ev.baseline not in ev.models:
        raise ValueError(f"evaluate.baseline: '{ev.baseline}' is not in evaluate.models")


def paths(cfg: DefinemedConfig) -> list[InputPath]:
    from definemed.corpus.contract import benchmark_paths

    ev = cfg.evaluate
    out = benchmark_paths(cfg)
    if ev.mcq.include_path is not None:
        out.append(InputPath("evaluate.mcq.include_path", ev.mcq.include_path, "dir"))
    if ev.human_labels is not None:
        out.append(InputPath("evaluate.human_labels", ev.human_labels, "file"))
    return out


STAGE = Stage(
    name="evaluate",
    help="lm-eval multiple choice, generation, pairwise judging",
    upstream=("cpt", "merge"),
    resumable=True,
    section="evaluate",
    config=EvaluateConfig,
    bind=bind,
    metrics=EvaluateMetrics,
    run="definemed.evaluate.stage:run",
    report_section="definemed.report.sections.evaluate:section",
    check=check,
    paths=paths,
)
