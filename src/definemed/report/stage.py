"""report stage: report.md and a self-contained report.html from every stage's metrics and artifacts."""

from __future__ import annotations

import logging

from definemed.artifacts import write_text
from definemed.stage import StageContext, StageResult
from definemed.config import DefinemedConfig
from definemed.report.document import Section, render_html, render_markdown
from definemed.report.sections import BUILDERS

logger = logging.getLogger("definemed")


def build_sections(cfg: DefinemedConfig, ctx: StageContext) -> tuple[list[Section], list[str]]:
    """Every section; one that cannot be built becomes a visible note instead of sinking the whole report."""
    sections, failures = [], []
    for builder in BUILDERS:
        try:
            sections.append(builder(cfg, ctx))
        except Exception as exc:  # a report with one broken section is still worth writing
            logger.warning("[report] section '%s' failed: %s", builder.__name__, exc)
            failures.append(f"{builder.__name__}: {exc}")
            sections.append(Section(builder.__name__, builder.__name__,
                                    [f"This section could not be built: {type(exc).__name__}: {exc}"]))
    return sections, failures


def run(cfg: DefinemedConfig, ctx: StageContext) -> StageResult:
    sections, failures = build_sections(cfg, ctx)
    outputs = {}
    if "md" in cfg.report.formats:
        md = render_markdown(cfg.report.title, sections, ctx.stage_dir / "figures")
        write_text(ctx.stage_dir / "report.md", md)
        outputs["markdown"] = "report.md"
    if "html" in cfg.report.formats:
        write_text(ctx.stage_dir / "report.html", render_html(cfg.report.title, sections))
        outputs["html"] = "report.html"
    figures = sum(1 for s in sections for b in s.blocks if type(b).__name__ == "Figure")
    logger.info("[report] %d sections, %d figures -> %s", len(sections), figures, ctx.stage_dir)
    return StageResult(outputs=outputs, metrics={"sections": [s.title for s in sections], "figures": figures,
                                                 "failed_sections": failures})
