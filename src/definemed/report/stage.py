"""report stage: report.md and a self-contained report.html from every stage's metrics and artifacts."""

from __future__ import annotations

import logging

from definemed.artifacts import write_text
from definemed.report.contract import ReportInputs
from definemed.report.document import Figure, Section, render_html, render_markdown
from definemed.report.metrics import ReportMetrics
from definemed.report.sections import BUILDERS
from definemed.stage import StageContext, StageResult

logger = logging.getLogger("definemed")


def build_sections(inputs: ReportInputs, ctx: StageContext) -> tuple[list[Section], list[str]]:
    """Every section; one that cannot be built becomes a visible note instead of sinking the whole report."""
    sections, failures = [], []
    for name, builder in BUILDERS:
        try:
            sections.append(builder(inputs, ctx))
        except Exception as exc:  # a report with one broken section is still worth writing
            logger.warning("[report] section '%s' failed: %s", name, exc)
            failures.append(f"{name}: {exc}")
            sections.append(Section(name, name, [f"This section could not be built: {type(exc).__name__}: {exc}"]))
    return sections, failures


def run(inputs: ReportInputs, ctx: StageContext) -> StageResult[ReportMetrics]:
    sections, failures = build_sections(inputs, ctx)
    title, outputs = inputs.report.title, {}
    if "md" in inputs.report.formats:
        write_text(ctx.stage_dir / "report.md", render_markdown(title, sections, ctx.stage_dir / "figures"))
        outputs["markdown"] = "report.md"
    if "html" in inputs.report.formats:
        write_text(ctx.stage_dir / "report.html", render_html(title, sections))
        outputs["html"] = "report.html"
    figures = sum(1 for s in sections for b in s.blocks if isinstance(b, Figure))
    logger.info("[report] %d sections, %d figures -> %s", len(sections), figures, ctx.stage_dir)
    return StageResult(
        outputs=outputs,
        metrics=ReportMetrics(sections=[s.title for s in sections], figures=figures, failed_sections=failures),
    )
