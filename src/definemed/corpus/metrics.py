"""Metrics of the corpus stage (manifest.json `metrics`), read as attributes by the card, the report and CPT."""

from __future__ import annotations

from pydantic import ConfigDict

from definemed.stage import Metrics


class CorpusMetrics(Metrics):
    model_config = ConfigDict(extra="allow")  # PLACEHOLDER: typed fields come next (#12)
