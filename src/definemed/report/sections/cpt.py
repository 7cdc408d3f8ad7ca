"""The continual pre-training section: held-out loss before and after, the run's settings, the loss curve."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from definemed.artifacts import read_jsonl
from definemed.report import plots
from definemed.report.contract import ReportInputs
from definemed.report.document import Figure, Section, Table
from definemed.stage import StageContext

if TYPE_CHECKING:
    from definemed.train.metrics import CptMetrics


def section(inputs: ReportInputs, ctx: StageContext) -> Section:
    m: CptMetrics = ctx.metrics("cpt")
    held = m.heldout
    rows = [[name, v.loss_before, v.loss_after, v.ppl_before, v.ppl_after, v.blocks] for name, v in held.items()]
    table = Table(
        ["held-out set", "loss before", "loss after", "ppl before", "ppl after", "blocks"],
        rows,
        caption="token-weighted cross-entropy before and after continual pre-training",
    )
    settings = Table(
        ["steps", "train tokens", "final train loss", "packing efficiency", "seconds"],
        [[m.steps, m.train_tokens, m.final_train_loss, m.packing_efficiency, m.seconds]],
    )
    blocks: list[Any] = [table, settings]
    log = [r for r in read_jsonl(ctx.input_path("cpt", "log")) if "loss" in r and "step" in r]
    if log:
        curve = plots.lines(
            {"train loss": ([r["step"] for r in log], [r["loss"] for r in log])}, "CPT training loss", "step", "loss"
        )
        blocks.append(Figure("cpt_loss", curve, "training loss per logged step"))
    if held:
        series = {
            "before": [v.loss_before or 0 for v in held.values()],
            "after": [v.loss_after or 0 for v in held.values()],
        }
        blocks.append(
            Figure(
                "cpt_heldout",
                plots.grouped_bars(list(held), series, "Held-out loss", "loss"),
                "held-out loss on medical and general German text, before vs after CPT",
            )
        )
    return Section("Continual pre-training", "cpt", blocks)
