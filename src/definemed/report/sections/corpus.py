"""The corpus section: the document flow, the medical classifier, where its labels came from, every classifier
family on the same labels and on the real test set, and what each filter cost the medical class."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from definemed.artifacts import read_json
from definemed.report import plots
from definemed.report.contract import ReportInputs
from definemed.report.document import Figure, Link, Section, Table, fmt
from definemed.stage import StageContext

if TYPE_CHECKING:
    from definemed.corpus.labelling.metrics import Interval, Labelling
    from definemed.corpus.metrics import (
        ComparisonRow,
        CorpusMetrics,
        FilterCosts,
        GoldCheck,
        RealTest,
        RealTestFamily,
    )

# (header, field of a classifier-comparison row)
COMPARISON_COLUMNS = [
    ("family", "kind"),
    ("status", "status"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("F1", "f1"),
    ("F1 vs gold", "gold_f1"),
    ("written F1 vs gold", "written_f1"),
    ("real F1", "real_f1"),
    ("real F1 low", "real_f1_lo"),
    ("real F1 high", "real_f1_hi"),
    ("real P", "real_precision"),
    ("real R", "real_recall"),
    ("real FPR technical", "real_fpr_technical"),
    ("real R short", "real_recall_short"),
    ("AP", "ap"),
    ("threshold", "threshold"),
    ("docs/s", "docs_per_s"),
    ("held-out docs", "heldout_docs"),
    ("cascade pass share", "pass_share"),
    ("cost saved vs stage 2", "cost_saved"),
    ("F1 lost vs stage 2", "f1_lost"),
    ("note", "note"),
]
CASCADE_HOURS = (
    "stage1_cpu_hours",
    "stage2_gpu_hours",
    "stage2_alone_gpu_hours",
    "stage2_cpu_hours",
    "stage2_alone_cpu_hours",
)


def section(inputs: ReportInputs, ctx: StageContext) -> Section:
    m: CorpusMetrics = ctx.metrics("corpus")
    clf, docs_in = m.classifier, m.docs_in
    counts = Table(
        ["step", "documents"],
        [
            ["read", docs_in],
            *[[f"dropped: {k}", v] for k, v in m.dropped.items()],
            ["corrupt files skipped", m.corrupt_files],
            ["records without text", m.missing_text],
            ["kept (medical)", m.docs_kept],
        ],
        caption="document flow",
    )
    corrupt = Table(
        ["corrupt input file", "error"],
        [[b.file, b.error] for b in m.corrupt_file_list],
        caption="input files skipped as corrupt (documents read before the damage are kept)",
    )
    quality = Table(
        ["classifier", "threshold", "precision", "recall", "F1", "accuracy", "train", "held-out"],
        [[clf.kind, clf.threshold, clf.precision, clf.recall, clf.f1, clf.accuracy, clf.n_train, clf.n_heldout]],
        caption="medical classifier on held-out labels",
    )
    fig = plots.bars(
        ["read", *m.dropped, "kept"], [docs_in, *m.dropped.values(), m.docs_kept], "Corpus filtering", "documents"
    )
    text = (
        f"Kept {fmt(m.docs_kept / docs_in if docs_in else None)} of the documents read "
        f"({fmt(m.kept_words)} words; {fmt(m.tokens_kept)} tokens with {m.tokenizer.name}, "
        f"{fmt(m.kept_tokens_share)} of the input tokens)."
    )
    blocks: list[Any] = [
        text,
        counts,
        *([corrupt] if corrupt.rows else []),
        quality,
        Figure("corpus_flow", fig, "documents read, dropped per reason, kept"),
    ]
    blocks += _labelling_blocks(m.labelling, clf.vs_gold)
    blocks += _comparison_blocks(ctx, m.classifier_comparison)
    blocks += _real_text_blocks(m.real_test, m.filter_costs)
    outputs = ctx.outputs("corpus")
    if "card" in outputs:
        blocks.append(Link("Dataset card of the corpus", f"../corpus/{outputs['card']}"))
    return Section("Corpus (FineMed-de)", "corpus", blocks)


def _ci(metric: Interval) -> str:
    """A value with its 95 % bootstrap interval."""
    return f"{fmt(metric.value)} [{fmt(metric.ci_low)}, {fmt(metric.ci_high)}]"


def _labelling_blocks(lab: Labelling | None, vs_gold: GoldCheck | None) -> list[Any]:
    """Where the labels came from: the audit of each candidate labeller (95 % bootstrap intervals), the choice."""
    if lab is None:
        return []
    # the chosen labeller's own time; the audits of every candidate ran before it
    audits_s = f" (audits before it: {fmt(lab.seconds - lab.sample_s, 1)} s)" if lab.audit else ""
    blocks: list[Any] = [
        f"Labels: '{lab.chosen}' labelled {fmt(lab.sample.docs)} filter survivors ({fmt(lab.labels.docs)} valid, "
        f"{fmt(lab.labels.medical_share)} medical; {fmt(lab.counts.failed)} failed, {fmt(lab.counts.cached)} from "
        f"the cache) in {fmt(lab.sample_s, 1)} s{audits_s}."
    ]
    audit = lab.audit
    if audit is not None:
        rows = [
            [
                name + (" (chosen)" if name == lab.chosen else ""),
                a.kind,
                a.n,
                _ci(a.metrics.precision),
                _ci(a.metrics.recall),
                _ci(a.metrics.f1),
                a.metrics.accuracy.value,
                a.failed,
                a.docs_per_s,
            ]
            for name, a in lab.audits.items()
        ]
        rows += [
            [name, "disqualified", None, why, None, None, None, None, None]  # the whole reason
            for name, why in lab.disqualified.items()
        ]
        blocks.append(
            Table(
                [
                    "labeller",
                    "kind",
                    "gold docs",
                    "precision [95% CI]",
                    "recall [95% CI]",
                    "F1 [95% CI]",
                    "accuracy",
                    "failed",
                    "docs/s",
                ],
                rows,
                caption=f"labeller audit on {audit.docs} gold documents outside the classifier's "
                f"held-out split ({audit.gold})",
                css_id="labeller-audit",
            )
        )
        if lab.selection is not None:
            blocks.append(f"Chosen by {lab.select_by}: {lab.selection.reason}.")
    if vs_gold is not None:
        c, t = vs_gold.classifier, vs_gold.training_labels
        blocks.append(
            f"Against gold on the {vs_gold.n} held-out documents with a gold label (unused by the "
            f"audit): classifier F1 {fmt(c.f1)} (P {fmt(c.precision)}, R {fmt(c.recall)}); the labels it "
            f"learned: F1 {fmt(t.f1)}."
        )
    return blocks


def _comparison_blocks(ctx: StageContext, rows: list[ComparisonRow] | None) -> list[Any]:
    """The classifier families on one split, and their PR curves (from the corpus stats.json)."""
    if not rows:
        return []
    blocks: list[Any] = [
        Table(
            [h for h, _ in COMPARISON_COLUMNS],
            [[getattr(r, k) for _, k in COMPARISON_COLUMNS] for r in rows],
            caption="classifier families on the same held-out labels",
            css_id="family-comparison",
        )
    ]
    if "stats" in ctx.outputs("corpus"):
        curves = read_json(ctx.input_path("corpus", "stats")).get("comparison_curves") or {}
        if curves:
            series = {
                f"{k} (AP {fmt(c.get('average_precision'))})": (c["recall"], c["precision"]) for k, c in curves.items()
            }
            blocks.append(
                Figure(
                    "classifier_pr",
                    plots.lines(
                        series, "Classifier families: precision vs recall", "recall (medical)", "precision (medical)"
                    ),
                    "held-out precision-recall curve of each family",
                )
            )
    return blocks


def _real_text_blocks(real: RealTest | None, costs: FilterCosts | None) -> list[Any]:
    """What the filters cost the medical class, and every family and the cascade on the real test set."""
    blocks: list[Any] = []
    if costs is not None:
        rec, real_rec = costs.medical_recall, costs.real_medical_recall
        rows = [[step, v.dropped, v.medical_dropped, v.real_medical_dropped] for step, v in costs.steps.items()]
        blocks.append(
            Table(
                ["step", "dropped", f"medical ({costs.source}) dropped", "real medical dropped"],
                rows,
                caption="what each step cost the medical class",
                css_id="filter-costs",
            )
        )
        blocks.append(
            f"Medical recall of the language and quality filters: {fmt(rec.recall)} of "
            f"{fmt(rec.docs)} known medical documents; real clinical text: "
            f"{fmt(real_rec.recall)} of {fmt(real_rec.docs)}."
        )
    if real is not None:
        for fam in real.families.values():
            if fam.cascade is not None:
                blocks.append(_cascade_text(fam))
        blocks.insert(
            0 if costs is None else 2,
            f"Real held-out test set ({real.path}): {fmt(real.n)} real documents "
            f"({fmt(real.medical)} medical) that no labelling, training or threshold choice saw; "
            "each family at its saved threshold (columns 'real ...' above; 95 % bootstrap intervals).",
        )
    return blocks


def _cascade_text(fam: RealTestFamily) -> str:
    """The cascade against its stage 2 alone on the real test set, and the hours each would take at scale."""
    gate = fam.cascade
    assert gate is not None
    h = {k: "n/a" if getattr(gate, k) is None else f"{getattr(gate, k):,.1f}" for k in CASCADE_HOURS}
    return (
        f"Cascade on the real test set: F1 {fmt(fam.real_f1)} against {fmt(gate.stage2_alone.real_f1)} "
        f"for its stage 2 ({gate.stage2_kind}) alone; {fmt(gate.routed_share)} of the "
        f"documents routed to stage 2. For {gate.projection_docs:,} documents at that share: "
        f"stage 1 {h['stage1_cpu_hours']} CPU-core-hours, stage 2 {h['stage2_gpu_hours']} GPU-hours "
        f"(alone: {h['stage2_alone_gpu_hours']}) or {h['stage2_cpu_hours']} CPU-core-hours (alone: "
        f"{h['stage2_alone_cpu_hours']})."
    )
