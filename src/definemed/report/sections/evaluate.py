"""The evaluation section: multiple choice, pairwise win-rates, Bradley-Terry ratings and the judge audit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from definemed.artifacts import read_json
from definemed.report import plots
from definemed.report.contract import ReportInputs
from definemed.report.document import Figure, Section, Table
from definemed.stage import StageContext

if TYPE_CHECKING:
    from definemed.evaluate.metrics import (
        EvaluateMetrics,
        JudgeAudit,
        JudgeMetrics,
        McqTaskMetrics,
        RatingMetrics,
    )


def mean_acc(tasks: dict[str, McqTaskMetrics]) -> float | None:
    """Mean accuracy over one model's multiple-choice tasks."""
    accs = [t.acc for t in tasks.values()]
    return sum(accs) / len(accs) if accs else None


def section(inputs: ReportInputs, ctx: StageContext) -> Section:
    m: EvaluateMetrics = ctx.metrics("evaluate")
    mcq = m.mcq or {}
    rows, names, accs, errs = [], [], [], []
    for model, tasks in mcq.items():
        for task, r in tasks.items():
            rows.append([model, task, r.acc, r.acc_stderr, r.n])
        names.append(model)
        accs.append(mean_acc(tasks) or 0)
        errs.append(max((r.acc_stderr or 0) for r in tasks.values()) if tasks else 0)
    caption = "multiple choice" + "".join(
        f"; {task}: {v.excluded_dev} of {v.questions} questions excluded (the merge sweep chose its factor on them)"
        for task, v in (m.mcq_split or {}).items()
    )
    blocks: list[Any] = [Table(["model", "task", "accuracy", "stderr", "questions"], rows, caption=caption)]
    if names:
        blocks.append(
            Figure(
                "mcq_accuracy",
                plots.bars(names, accs, "Multiple-choice accuracy", "accuracy", errs),
                "accuracy with standard error",
            )
        )
    blocks.extend(_subject_table(mcq))
    blocks.extend(_pairwise_blocks(inputs, ctx, m.judge))
    blocks.extend(_rating_blocks(m.ratings))
    blocks.extend(_audit_blocks(m.judge_audit))
    return Section("Evaluation", "evaluate", blocks)


def _subject_table(mcq: dict[str, dict[str, McqTaskMetrics]]) -> list[Any]:
    subjects = sorted({s for tasks in mcq.values() for r in tasks.values() for s in r.per_subject})
    if not subjects:
        return []
    rows = []
    for subject in subjects:
        row: list[Any] = [subject]
        for tasks in mcq.values():
            vals = [r.per_subject[subject] for r in tasks.values() if subject in r.per_subject]
            row.append(vals[0].acc if vals else None)
        rows.append(row)
    return [Table(["subject", *mcq], rows, caption="accuracy per subject")]


def _pairwise_blocks(inputs: ReportInputs, ctx: StageContext, judge: JudgeMetrics | None) -> list[Any]:
    """Win-rates of every ordered pair (pairwise.json); nothing when evaluate judged no pair (one model)."""
    if judge is None:
        return []
    pairs = read_json(ctx.input_path("evaluate", "pairwise"))["pairs"]
    blocks: list[Any] = [
        f"Judge: {judge.kind} {judge.model or ''}; judgments: {judge.n_judgments}; "
        f"invalid: {judge.invalid}." + judge_failures(judge)
    ]
    blocks.append(
        Table(
            ["model", "opponent", "wins", "ties", "losses", "invalid", "win-rate"],
            [
                [p["model"], p["opponent"], p["wins"], p["ties"], p["losses"], p["invalid"], p["win_rate"]]
                for p in pairs
            ],
            caption="pairwise results (both orders per prompt)",
            css_id="winrate-table",
        )
    )
    models = list(inputs.models)
    matrix: list[list[float | None]] = [[None] * len(models) for _ in models]
    for p in pairs:
        if p["model"] in models and p["opponent"] in models:
            matrix[models.index(p["model"])][models.index(p["opponent"])] = p["win_rate"]
    if pairs:
        blocks.append(
            Figure(
                "winrate_matrix", plots.heatmap(models, matrix, "Win-rate (row vs column)"), "pairwise win-rate matrix"
            )
        )
    return blocks


def judge_failures(judge: JudgeMetrics) -> str:
    """Invalid verdicts by cause and the requests behind them (retries included), for an HTTP judge."""
    causes, endpoint = judge.invalid_by_cause, judge.endpoint
    parts = []
    if causes:
        parts.append("invalid verdicts by cause: " + ", ".join(f"{c} {n}" for c, n in causes.items()))
    if endpoint is not None:
        retries = endpoint.retries
        parts.append(
            f"{endpoint.requests} requests for {judge.n_judgments} judgments"
            + ("; retried: " + ", ".join(f"{c} {n}" for c, n in retries.items()) if retries else "")
            + (f"; log-probabilities via {endpoint.logprobs}" if endpoint.logprobs else "")
        )
    return (" " + "; ".join(parts) + ".") if parts else ""


def _rating_blocks(ratings: RatingMetrics | None) -> list[Any]:
    """Bradley-Terry scores with bootstrap intervals, length-controlled win-rates and win-rate fold changes."""
    if ratings is None:
        return []
    blocks: list[Any] = []
    bt = ratings.bradley_terry or {}
    if bt:
        names = list(bt)
        blocks.append(
            Table(
                ["model", "Bradley-Terry score", "95% lower", "95% upper"],
                [[n, bt[n].score, bt[n].lower, bt[n].upper] for n in names],
                caption=f"Bradley-Terry scores (Elo scale, anchor {ratings.anchor} = 1000), "
                f"{ratings.bootstrap_rounds} bootstrap rounds over "
                f"{ratings.n_battles} battles",
                css_id="bt-table",
            )
        )
        errs = [[bt[n].score - bt[n].lower for n in names], [bt[n].upper - bt[n].score for n in names]]
        blocks.append(
            Figure(
                "bradley_terry",
                plots.intervals(names, [bt[n].score for n in names], errs, "Bradley-Terry scores", "score"),
                "Bradley-Terry scores with 95% bootstrap intervals",
            )
        )
        if ratings.bradley_terry_note:
            blocks.append(ratings.bradley_terry_note)
    lc = {k: v for k, v in ratings.lc_winrate.items() if v is not None}
    if lc:
        blocks.append(
            Table(
                ["model", "opponent", "raw win-rate", "length-controlled", "length coefficient", "n"],
                [[k, v.opponent, v.raw, v.lc, v.length_coef, v.n] for k, v in lc.items()],
                caption="length-controlled win-rate (AlpacaEval-2 style)",
                css_id="lc-table",
            )
        )
    if ratings.fold_change:
        blocks.append(
            Table(
                ["comparison", "win-rate fold change"],
                [[k, v] for k, v in ratings.fold_change.items()],
                caption="ratio of win-rates against the same opponent (the paper's 3.5x)",
            )
        )
    return blocks


def _audit_blocks(audit: JudgeAudit | None) -> list[Any]:
    """How far the win-rates can be trusted: position consistency, ties, length bias, agreement with humans."""
    if audit is None:
        return []
    pos, length, kappa = audit.position_consistency, audit.length_bias, audit.kappa
    rows = [
        ["position consistency (both orders agree)", pos.consistency],
        ["first-position win share", pos.first_position_win_share],
        ["invalid verdict share", pos.invalid_share],
        ["tie share", audit.tie_share],
        ["longer answer wins (decisive, unequal length)", length.longer_wins_share if length else None],
        ["length coefficient (logistic, per-model strengths controlled)", length.length_coef if length else None],
        ["Cohen's kappa vs human labels", kappa.kappa if kappa else None],
    ]
    return [
        "Judge audit: how far the win-rates above can be trusted.",
        Table(["judge audit", "value"], rows, caption="judge audit", css_id="judge-audit"),
    ]
