"""The failure-modes section: language mixing, verbosity, repetition and truncation per model, with examples."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from definemed.artifacts import read_json, read_jsonl
from definemed.report import plots
from definemed.report.contract import ReportInputs
from definemed.report.document import Example, Figure, Section, Table, fmt
from definemed.stage import StageContext

if TYPE_CHECKING:
    from definemed.analyze.metrics import AnalyzeMetrics

# Columns of the failure-modes table: fields of each model's summary, read by name.
COLUMNS = [
    "n",
    "mixing_rate",
    "foreign_line_share",
    "word_mixing_rate",
    "english_word_share",
    "words_mean",
    "words_median",
    "words_mean_untruncated",
    "length_ratio_untruncated",
    "length_ratio_to_reference_model",
    "length_ratio_to_reference_answers",
    "repetition_mean",
    "truncation_rate",
    "empty_rate",
]


def section(inputs: ReportInputs, ctx: StageContext) -> Section:
    m: AnalyzeMetrics = ctx.metrics("analyze")
    rows = [[model, *[getattr(s, k) for k in COLUMNS]] for model, s in m.models.items()]
    blocks: list[Any] = [Table(["model", *COLUMNS], rows, caption="failure modes per model")]
    words: dict[str, list[float]] = {}
    for r in read_jsonl(ctx.input_path("analyze", "per_answer")):
        words.setdefault(r["model"], []).append(r["words"])
    if words:
        blocks.append(Figure("answer_words", plots.boxplot(words, "Answer length", "words"), "words per answer"))
    examples = read_json(ctx.input_path("analyze", "examples"))
    for mode, by_model in examples.items():
        for model, items in by_model.items():
            for ex in items[:1]:
                spans = [f["line"] for f in ex.get("foreign_lines", [])] + list(ex.get("english_spans", []))
                blocks.append(
                    Example(
                        f"{mode} - {model} - {ex['prompt_id']} (score {fmt(ex['score'])})", ex.get("answer", ""), spans
                    )
                )
    return Section("Failure modes", "analyze", blocks)
