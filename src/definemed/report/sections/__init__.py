"""The report's sections, in report order: the summary, one section per stage (each `Stage` names its builder in
`report_section`, so the order follows `definemed.stages`), and the provenance.

Each builder takes the report's inputs and the stage context and reads upstream metrics as attributes of their
typed models (`ctx.metrics("corpus").docs_kept`): a renamed field raises instead of printing "n/a", and the
section is replaced by a note that names the error (report `failed_sections`).
"""

from __future__ import annotations

from collections.abc import Callable

from definemed.report.contract import ReportInputs
from definemed.report.document import Section
from definemed.report.sections import provenance, summary
from definemed.stage import StageContext
from definemed.stages import STAGES

Builder = Callable[[ReportInputs, StageContext], Section]

# (name, builder): the name labels a section that could not be built.
BUILDERS: tuple[tuple[str, Builder], ...] = (
    ("summary", summary.section),
    *((stage.name, stage.load_report_section()) for stage in STAGES if stage.report_section is not None),
    ("provenance", provenance.section),
)
