"""Metrics of the evaluate stage (manifest.json `metrics`), read as attributes downstream."""

from __future__ import annotations

from pydantic import ConfigDict

from definemed.stage import Metrics


class EvaluateMetrics(Metrics):
    model_config = ConfigDict(extra="allow")  # PLACEHOLDER: typed fields come next (#12)
