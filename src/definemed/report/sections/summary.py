"""The summary: one row per evaluated model, and the sentence that says how to read it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from definemed.report.contract import ReportInputs
from definemed.report.document import Section, Table, fmt
from definemed.report.sections.evaluate import mean_acc
from definemed.stage import StageContext

if TYPE_CHECKING:
    from definemed.analyze.metrics import AnalyzeMetrics, ModelFailureModes
    from definemed.evaluate.metrics import EvaluateMetrics


def section(inputs: ReportInputs, ctx: StageContext) -> Section:
    ev: EvaluateMetrics = ctx.metrics("evaluate")
    an: AnalyzeMetrics = ctx.metrics("analyze")
    baseline = inputs.baseline
    vs = ev.pairwise.vs_baseline if ev.pairwise is not None else {}
    rows = []
    for model in inputs.models:
        rows.append(
            [
                model,
                mean_acc((ev.mcq or {}).get(model, {})),
                vs.get(model) if model != baseline else None,
                *_answer_columns(an.models.get(model)),
            ]
        )
    judge = ev.judge
    kind, judge_model = (judge.kind, judge.model) if judge is not None else ("?", None)
    med = ctx.metrics("cpt").heldout.get("medical")
    intro = (
        f"Accuracy is the mean over the multiple-choice tasks; win-rate is against '{baseline}' "
        f"(wins + ties/2, both answer orders, disagreement counted as a tie); judge: {kind}"
        f"{' (' + str(judge_model) + ')' if judge_model else ''}. Line-level mixing: share of answers "
        f"with at least one non-{inputs.expected_language} line; word-level: share with English spans "
        f"inside otherwise German lines. CPT changed held-out medical loss "
        f"{fmt(med.loss_before if med else None)} -> {fmt(med.loss_after if med else None)}."
    )
    table = Table(
        [
            "model",
            "MCQ accuracy",
            f"win-rate vs {baseline}",
            "line-level mixing",
            "word-level mixing",
            "words / untruncated answer",
            "truncated",
        ],
        rows,
        css_id="summary-table",
    )
    return Section("Summary", "summary", [intro, table])


def _answer_columns(a: ModelFailureModes | None) -> list[Any]:
    """Mixing, verbosity and truncation of one model's answers (None: the model's answers were not analysed)."""
    if a is None:
        return [None] * 4
    return [a.mixing_rate, a.word_mixing_rate, a.words_mean_untruncated, a.truncation_rate]
