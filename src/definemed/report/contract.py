"""The report stage's contract: its section and the few settings of other sections its text names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from definemed.report.config import ReportConfig
from definemed.report.metrics import ReportMetrics
from definemed.stage import Inputs, Stage

if TYPE_CHECKING:
    from definemed.config import DefinemedConfig


class ReportInputs(Inputs):
    report: ReportConfig
    models: tuple[str, ...]  # evaluate.models, in config order (the tables' rows)
    baseline: str | None
    expected_language: str


def bind(cfg: DefinemedConfig) -> ReportInputs:
    return ReportInputs(
        report=cfg.report,
        models=tuple(cfg.evaluate.models),
        baseline=cfg.evaluate.baseline,
        expected_language=cfg.analyze.expected_language,
    )


STAGE = Stage(
    name="report",
    help="write report.md and a self-contained report.html",
    upstream=("corpus", "cpt", "merge", "evaluate", "analyze"),
    resumable=False,
    section="report",
    config=ReportConfig,
    bind=bind,
    metrics=ReportMetrics,
    run="definemed.report.stage:run",
)
