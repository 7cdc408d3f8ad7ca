"""The corpus section shows the labeller audit (with intervals and the choice), the family comparison and the PR
curves when the corpus stage produced them."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import minimal_config_dict
from tests.report.test_report_stage import MODELS, _fake_upstream

from definemed.artifacts import write_json
from definemed.stage import StageContext
from definemed.config import DefinemedConfig
from definemed.report.stage import run


def _metric(value: float, low: float, high: float) -> dict[str, float]:
    return {"value": value, "ci_low": low, "ci_high": high}


def _audit(f1: tuple[float, float, float], kind: str) -> dict:
    return {"kind": kind, "n": 32, "failed": 0, "docs_per_s": 0.75, "metrics": {
        "precision": _metric(*f1), "recall": _metric(*f1), "f1": _metric(*f1), "accuracy": _metric(*f1)},
        "confusion": {"tp": 10, "fp": 2, "fn": 3, "tn": 17}}


LABELLING = {
    "chosen": "precomputed", "select_by": "f1", "seconds": 43.0, "sample": {"docs": 450},
    "labels": {"docs": 450, "medical_share": 0.53}, "counts": {"failed": 0, "cached": 0},
    "audit": {"docs": 32, "gold": "demo/gold_labels.jsonl"},
    "audits": {"precomputed": _audit((0.95, 0.9, 1.0), "file"), "smollm2": _audit((0.444, 0.242, 0.634), "hf")},
    "disqualified": {"flaky-api": "labelling failed for 9 of 32 documents"},
    "selection": {"reason": "precomputed has the highest f1"},
}
ROWS = [{"kind": "fasttext", "status": "ok", "precision": 0.93, "recall": 0.92, "f1": 0.927, "ap": 0.98,
         "threshold": 0.5, "docs_per_s": 2005.7, "heldout_docs": 147, "note": "main classifier"},
        {"kind": "cascade", "status": "ok", "precision": 0.95, "recall": 0.91, "f1": 0.931, "ap": 0.98,
         "threshold": 0.5, "docs_per_s": 6.8, "pass_share": 0.8027, "cost_saved": 0.195, "f1_lost": -0.0053},
        {"kind": "finetune", "status": "not run", "note": "no encoder offline"}]


def test_corpus_section_has_audit_comparison_and_pr_curves(tmp_path: Path) -> None:
    data = minimal_config_dict(tmp_path)
    data["evaluate"] = {"models": MODELS, "baseline": "instruct"}
    cfg = DefinemedConfig.model_validate(data)
    run_dir = tmp_path / "run"
    upstream = _fake_upstream(run_dir)
    corpus = upstream["corpus"]
    corpus["metrics"]["classifier"]["vs_gold"] = {"n": 147, "classifier": {"f1": 0.935}, "training_labels": {"f1": 0.941}}
    corpus["metrics"] |= {"labelling": LABELLING, "classifier_comparison": ROWS}
    corpus["outputs"] = {"stats": "stats.json"}
    curve = {"precision": [0.5, 0.9, 1.0], "recall": [1.0, 0.9, 0.2], "average_precision": 0.98}
    write_json(run_dir / "corpus" / "stats.json", {"comparison_curves": {"fasttext": curve, "cascade": curve}})
    ctx = StageContext(run_dir=run_dir, stage="report", upstream=upstream)
    ctx.stage_dir.mkdir(parents=True)
    result = run(cfg, ctx)
    assert result.metrics["failed_sections"] == []
    md = (ctx.stage_dir / "report.md").read_text()
    html = (ctx.stage_dir / "report.html").read_text()
    assert 'id="labeller-audit"' in html and 'id="family-comparison"' in html
    assert "| precomputed (chosen) | file | 32 | 0.950 [0.900, 1.000] |" in md
    assert "| smollm2 | hf | 32 | 0.444 [0.242, 0.634] |" in md
    assert "| flaky-api | disqualified |" in md
    assert "| cascade | ok | 0.950 | 0.910 | 0.931 |" in md and "| 0.803 | 0.195 | -0.005 |" in md
    assert "| finetune | not run |" in md and "no encoder offline" in md
    assert "classifier F1 0.935" in md and "precomputed has the highest f1" in md
    figures = re.findall(r'<img class="plot"[^>]*data-name="([a-z_]+)"', html)
    assert "classifier_pr" in figures
    assert (ctx.stage_dir / "figures" / "classifier_pr.png").stat().st_size > 5_000


def test_corpus_section_shows_real_test_columns_filter_costs_and_cascade_hours(tmp_path: Path) -> None:
    data = minimal_config_dict(tmp_path)
    data["evaluate"] = {"models": MODELS, "baseline": "instruct"}
    cfg = DefinemedConfig.model_validate(data)
    run_dir = tmp_path / "run"
    upstream = _fake_upstream(run_dir)
    rows = [{**ROWS[0], "gold_f1": 0.936, "written_f1": 0.95, "real_f1": 0.944, "real_f1_lo": 0.911, "real_f1_hi": 0.97,
             "real_precision": 0.992, "real_recall": 0.901, "real_fpr_technical": 0.0, "real_recall_short": 0.868}]
    gate = {"stage2_kind": "embedding", "stage2_alone": {"real_f1": 0.955}, "routed_share": 0.47,
            "projection_docs": 428000000, "stage1_cpu_hours": 29.0, "stage2_gpu_hours": 5.82,
            "stage2_alone_gpu_hours": 12.38, "stage2_cpu_hours": 12620.7, "stage2_alone_cpu_hours": 26837.1}
    upstream["corpus"]["metrics"] |= {
        "classifier_comparison": rows,
        "real_test": {"path": "demo/real_test.jsonl", "n": 370, "medical": 131,
                      "families": {"cascade": {"real_f1": 0.962, "cascade": gate}}},
        "filter_costs": {"source": "gold", "steps": {"gopher_quality": {"dropped": 7, "medical_dropped": 1,
                                                                        "real_medical_dropped": 1}},
                         "medical_recall": {"docs": 338, "recall": 0.985},
                         "real_medical_recall": {"docs": 88, "recall": 0.943}}}
    ctx = StageContext(run_dir=run_dir, stage="report", upstream=upstream)
    ctx.stage_dir.mkdir(parents=True)
    assert run(cfg, ctx).metrics["failed_sections"] == []
    md = (ctx.stage_dir / "report.md").read_text()
    assert "| 0.927 | 0.936 | 0.950 | 0.944 | 0.911 | 0.970 | 0.992 | 0.901 | 0.000 | 0.868 |" in md
    assert "| gopher_quality | 7 | 1 | 1 |" in md and "real clinical text: 0.943 of 88" in md
    assert "F1 0.962 against 0.955 for its stage 2 (embedding) alone; 0.470 of the documents routed" in md
    assert "For 428,000,000 documents at that share: stage 1 29.0 CPU-core-hours, stage 2 5.8 GPU-hours (alone: " \
           "12.4) or 12,620.7 CPU-core-hours (alone: 26,837.1)." in md
    assert "370 real documents (131 medical)" in md
