"""The merge section: the method and its parameters, the SLERP factor across depth, the merge-factor sweep."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from definemed.report import plots
from definemed.report.contract import ReportInputs
from definemed.report.document import Figure, Link, Section, Table
from definemed.stage import StageContext

if TYPE_CHECKING:
    from definemed.merge.metrics import MergeMetrics

SWEEP_COLUMNS = ["t", "mcq_acc", "medical_loss", "general_loss", "mixing_rate", "objective"]


def section(inputs: ReportInputs, ctx: StageContext) -> Section:
    m: MergeMetrics = ctx.metrics("merge")
    table = Table(
        ["method", "base", "parameters", "seconds"],
        [[m.method, m.base, json.dumps(m.parameters or {"t": m.t}), m.seconds]],
    )
    blocks: list[Any] = [table, Link("Model card of the merged model", "../merge/model/README.md")]
    t = m.t
    if isinstance(t, int | float | list):
        anchors = t if isinstance(t, list) else [t, t]
        xs = [i / (len(anchors) - 1) for i in range(len(anchors))]
        fig = plots.lines(
            {"t": (xs, anchors)}, "SLERP factor across depth (weight of CPT model)", "relative layer depth", "t"
        )
        blocks.append(Figure("merge_t", fig, "interpolation factor from first to last layer"))
    sweep = m.sweep
    if sweep is not None:
        rows = [[json.dumps(r.t) if k == "t" else getattr(r, k) for k in SWEEP_COLUMNS] for r in sweep.rows]
        blocks.append(
            f"Merge-factor sweep; chosen: t = {json.dumps(sweep.chosen.t)} "
            f"(objective: maximize {json.dumps(sweep.objective.maximize)})."
        )
        blocks.append(
            Table(SWEEP_COLUMNS, rows, caption="sweep candidates and their proxy scores", css_id="sweep-table")
        )
        objectives = [r.objective for r in sweep.rows]
        blocks.append(
            Figure(
                "merge_sweep",
                plots.bars(
                    [f"#{i}" for i in range(len(objectives))], objectives, "Sweep objective per candidate", "objective"
                ),
                "objective of each candidate (higher is better)",
            )
        )
    return Section("Merge", "merge", blocks)
