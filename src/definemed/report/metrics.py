"""Metrics of the report stage (manifest.json `metrics`), read as attributes downstream."""

from __future__ import annotations

from pydantic import ConfigDict

from definemed.stage import Metrics


class ReportMetrics(Metrics):
    model_config = ConfigDict(extra="allow")  # PLACEHOLDER: typed fields come next (#12)
