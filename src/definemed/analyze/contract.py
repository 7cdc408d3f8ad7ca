"""The analyze stage's contract: its section only (the answers come from the evaluate stage's output)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from definemed.analyze.config import AnalyzeConfig
from definemed.analyze.metrics import AnalyzeMetrics
from definemed.stage import Inputs, Stage

if TYPE_CHECKING:
    from definemed.config import DefinemedConfig


class AnalyzeInputs(Inputs):
    analyze: AnalyzeConfig


def bind(cfg: DefinemedConfig) -> AnalyzeInputs:
    return AnalyzeInputs(analyze=cfg.analyze)


STAGE = Stage(
    name="analyze",
    help="failure modes of the answers: language mixing, verbosity, repetition, truncation",
    upstream=("evaluate",),
    resumable=False,
    section="analyze",
    config=AnalyzeConfig,
    bind=bind,
    metrics=AnalyzeMetrics,
    run="definemed.analyze.stage:run",
    report_section="definemed.report.sections.analyze:section",
)
