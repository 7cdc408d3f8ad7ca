"""The corpus section shows the document flow, the labeller audit (intervals, the whole disqualification reason,
the chosen labeller's own time), the family comparison with the real-test columns and PR curves, what each filter
cost the medical class, and the cascade's hours at scale."""

from __future__ import annotations

import re
from pathlib import Path

from tests.report.corpus_fixtures import LONG_REASON
from tests.report.metrics_fixtures import render_report


def _corpus_section(md: str) -> str:
    return md.split("## Corpus (FineMed-de)")[1].split("\n## ")[0]


def test_corpus_section_has_flow_audit_comparison_and_pr_curves(tmp_path: Path) -> None:
    metrics, ctx = render_report(tmp_path)
    assert metrics.failed_sections == []
    html = (ctx.stage_dir / "report.html").read_text()
    md = _corpus_section((ctx.stage_dir / "report.md").read_text())
    assert (
        "Kept 0.192 of the documents read (41250 words; 88310 tokens with HuggingFaceTB/SmolLM2-135M-Instruct, "
        "0.144 of the input tokens)."
    ) in md
    assert "| read | 1186 |" in md and "| dropped: language | 412 |" in md and "| kept (medical) | 228 |" in md
    assert "| corrupt files skipped | 1 |" in md and "| records without text | 3 |" in md
    assert "| demo/fineweb2-deu/broken.parquet | Parquet magic bytes not found |" in md
    assert "| fasttext | 0.500 | 0.930 | 0.920 | 0.927 | 0.932 | 303 | 147 |" in md
    assert 'id="labeller-audit"' in html and 'id="family-comparison"' in html
    assert "| precomputed (chosen) | file | 32 | 0.950 [0.900, 1.000] |" in md
    assert "| smollm2-135m | hf | 32 | 0.444 [0.242, 0.634] |" in md
    # the whole reason (report.md escapes HTML), not a truncated one
    assert f"| flaky-api | disqualified | n/a | {LONG_REASON.replace('>', '&gt;')} |" in md
    # the audits' time is not credited to the chosen labeller
    assert (
        "'precomputed' labelled 450 filter survivors (450 valid, 0.530 medical; 0 failed, 0 from the cache) "
        "in 12.5 s (audits before it: 30.5 s)." in md
    )
    assert "Chosen by f1: precomputed has the highest f1." in md
    assert "classifier F1 0.935 (P 0.960, R 0.911); the labels it learned: F1 0.941." in md
    assert "| cascade | ok | 0.950 | 0.910 | 0.931 |" in md and "| 0.803 | 0.195 | -0.005 | n/a |" in md
    assert "| finetune | not run |" in md and "no encoder offline" in md
    assert "[Dataset card of the corpus](../corpus/README.md)" in md
    figures = re.findall(r'<img class="plot"[^>]*data-name="([a-z_]+)"', html)
    assert "classifier_pr" in figures
    assert (ctx.stage_dir / "figures" / "classifier_pr.png").stat().st_size > 5_000


def test_corpus_section_shows_real_test_columns_filter_costs_and_cascade_hours(tmp_path: Path) -> None:
    _, ctx = render_report(tmp_path)
    md = _corpus_section((ctx.stage_dir / "report.md").read_text())
    assert (
        "| fasttext | ok | 0.930 | 0.920 | 0.927 | 0.936 | 0.950 | 0.944 | 0.911 | 0.970 | 0.992 | 0.901 | 0.000 "
        "| 0.868 |" in md
    )
    assert "| gopher_quality | 7 | 1 | 1 |" in md and "real clinical text: 0.943 of 88." in md
    assert "Medical recall of the language and quality filters: 0.985 of 338 known medical documents" in md
    assert "F1 0.962 against 0.955 for its stage 2 (embedding) alone; 0.470 of the documents routed" in md
    assert (
        "For 428,000,000 documents at that share: stage 1 29.0 CPU-core-hours, stage 2 5.8 GPU-hours (alone: "
        "12.4) or 12,620.7 CPU-core-hours (alone: 26,837.1)." in md
    )
    assert "370 real documents (131 medical)" in md
    # the real-test sentence follows the filter-cost table and its recall sentence
    assert md.index("Medical recall of the language") < md.index("Real held-out test set") < md.index("Cascade on")
