"""The report's sections, in report order: one module per stage, plus the summary and the provenance.

Each builder takes the report's inputs and the stage context and reads upstream metrics as attributes of their
typed models (`ctx.metrics("corpus").docs_kept`): a renamed field raises instead of printing "n/a", and the
section is replaced by a note that names the error (report `failed_sections`).
"""

from __future__ import annotations

from collections.abc import Callable

from definemed.report.contract import ReportInputs
from definemed.report.document import Section
from definemed.report.sections import analyze, corpus, cpt, evaluate, merge, provenance, summary
from definemed.stage import StageContext

Builder = Callable[[ReportInputs, StageContext], Section]

# (name, builder): the name labels a section that could not be built.
BUILDERS: tuple[tuple[str, Builder], ...] = (
    ("summary", summary.section),
    ("corpus", corpus.section),
    ("cpt", cpt.section),
    ("merge", merge.section),
    ("evaluate", evaluate.section),
    ("analyze", analyze.section),
    ("provenance", provenance.section),
)
