"""Metrics of the train stage (manifest.json `metrics`), read as attributes downstream."""

from __future__ import annotations

from pydantic import ConfigDict

from definemed.stage import Metrics


class CptMetrics(Metrics):
    model_config = ConfigDict(extra="allow")  # PLACEHOLDER: typed fields come next (#12)
