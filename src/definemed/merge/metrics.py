"""Metrics of the merge stage (manifest.json `metrics`): what the report and the evaluate stage read as attributes.

The evaluate stage reads `sweep.proxy.mcq_task` and `sweep.dev_ids` (the questions the sweep chose its factor on,
which it leaves out of that task); `sweep` is also the content of the stage's `sweep.json`.
"""

from __future__ import annotations

from typing import Any

from definemed.merge.config import SlerpFactor, SweepProxyConfig
from definemed.stage import Metrics


class SweepRow(Metrics):
    """One sweep candidate: its factor, every proxy score (None: proxy switched off or without data), the
    objective and each of its terms (weight x score)."""

    candidate: int
    t: SlerpFactor
    mcq_acc: float | None
    medical_loss: float | None
    medical_ppl: float | None
    general_loss: float | None
    general_ppl: float | None
    mixing_rate: float | None
    objective: float
    terms: dict[str, float]
    seconds: float


class SweepObjective(Metrics):
    maximize: dict[str, float]  # proxy name -> weight


class SweepMetrics(Metrics):
    rows: list[SweepRow]  # in grid order
    chosen: SweepRow  # the objective's argmax (ties: the earlier candidate)
    objective: SweepObjective
    proxy: SweepProxyConfig  # the proxy settings the candidates were scored with
    dev_ids: list[str]  # ids of the multiple-choice dev questions (empty without an mcq proxy)


class MergeMetrics(Metrics):
    method: str  # the merge section's kind
    base: str  # model id of the instruct model (tokenizer and chat-template donor)
    # SLERP's factor as the report plots it (a per-module mapping: its default curve; the sweep's chosen one);
    # None for other methods. The full setting is under `parameters`.
    t: float | list[float] | None
    seconds: float
    parameters: dict[str, Any]  # the method-specific part of the merge section (free-form: any method's fields)
    inputs: dict[str, str]  # model name ('cpt' included) -> the local folder merged
    sweep: SweepMetrics | None = None
