"""Metrics of the report stage (manifest.json `metrics`): what was written and which sections could not be built."""

from __future__ import annotations

from definemed.stage import Metrics


class ReportMetrics(Metrics):
    sections: list[str]  # section titles, in report order
    figures: int
    # "<section>: <error>" for each section that could not be built (the report shows a note in its place).
    failed_sections: list[str]
