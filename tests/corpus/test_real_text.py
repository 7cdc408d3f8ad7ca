"""Issue 14: the real test set through the stage, what filters cost the medical class, configurable length and
n-gram rules, best-F1 thresholds, content-word features and the model card."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from datatrove.data import Document

from definemed.corpus.classifier_config import ClassifierConfig, ThresholdConfig
from definemed.corpus.classifiers import build_classifier, function_words
from definemed.corpus.config import QualityConfig
from definemed.corpus.contract import bind
from definemed.corpus.fasttext_family import _fasttext_line
from definemed.corpus.filter_costs import filter_costs
from definemed.corpus.quality import build_quality_filters
from definemed.corpus.stage import run
from definemed.corpus.thresholds import precision_recall_at, select_threshold
from definemed.stage import StageContext

ROOT = Path(__file__).resolve().parents[2]


def _write_gz(folder: Path, rows: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "00000.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)


def test_filter_costs_count_medical_drops_per_step_and_the_filters_recall(tmp_path: Path) -> None:
    positives = {
        "m1": {"origin": "real", "lang": "de"},
        "m2": {"origin": "written", "lang": "de"},
        "m3": {"origin": "real", "lang": "de"},
        "m4": {"origin": "real", "lang": "de"},
        "en": {"origin": "written", "lang": "en"},
    }
    _write_gz(tmp_path / "language", [{"id": "en"}, {"id": "x1"}])
    _write_gz(tmp_path / "gopher_quality", [{"id": "m1"}, {"id": "x2"}, {"id": "x3"}])
    _write_gz(tmp_path / "not_medical", [{"id": "m3"}, {"id": "x4"}])
    costs = filter_costs(tmp_path, positives, "gold", ["de"])
    assert costs["steps"]["gopher_quality"] == {"dropped": 3, "medical_dropped": 1, "real_medical_dropped": 1}
    assert costs["steps"]["language"] == {"dropped": 2, "medical_dropped": 1, "real_medical_dropped": 0}
    # the classifier's drop (not_medical) is not a filter's; the English medical page is not eligible
    assert costs["medical_recall"] == {"docs": 4, "dropped": 1, "recall": 0.75}
    assert costs["real_medical_recall"] == {"docs": 3, "dropped": 1, "recall": round(2 / 3, 4)}


def _reasons(quality: dict[str, Any], text: str) -> list[Any]:
    steps = build_quality_filters(QualityConfig.model_validate(quality), lambda name: None)
    return [(name, f.filter(Document(text=text, id="d"))) for name, f in steps]


SHORT_CLINICAL = (
    "Zytologisch kein Nachweis von Tumorzellen. Immunzytologisch kein Nachweis von Blasten. "
    "Bildgebung unauffällig, Befund vom 09.10.2033 besprochen."
)


def test_top_ngram_check_and_length_rules_are_configurable() -> None:
    default = dict(_reasons({}, SHORT_CLINICAL))
    assert default["gopher_repetition"] == (False, "top_3_gram")  # datatrove's rule: a length cut here
    off = dict(_reasons({"gopher_repetition": {"top_n_grams": None}}, SHORT_CLINICAL))
    assert off["gopher_repetition"] is True
    assert [name for name, _ in _reasons({"min_doc_chars": 200}, SHORT_CLINICAL)][0] == "min_length"
    assert dict(_reasons({"min_doc_chars": 200}, SHORT_CLINICAL))["min_length"] == (False, "too_short")
    assert dict(_reasons({"min_doc_chars": 100}, SHORT_CLINICAL))["min_length"] is True
    # a bigram that occurs once exceeds 20 % of a tiny text: min_top_ngram_count 2 judges repetition only
    tiny = "Akute Appendizitis bestätigt."
    rep = {"gopher_repetition": {"dup_n_grams": None, "top_n_grams": [[2, 0.2]]}}
    assert dict(_reasons(rep, tiny))["gopher_repetition"] == (False, "top_2_gram")
    rep["gopher_repetition"]["min_top_ngram_count"] = 2
    assert dict(_reasons(rep, tiny))["gopher_repetition"] is True


def test_demo_filters_keep_real_clinical_paragraphs() -> None:
    demo = yaml.safe_load((ROOT / "configs/demo.yaml").read_text(encoding="utf-8"))["corpus"]["quality"]
    text = (ROOT / "demo/sources/real/grascco_paragraphs.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines()]
    kept = [all(r is True for _, r in _reasons(demo, row["text"])) for row in rows]
    assert np.mean(kept) >= 0.9, np.mean(kept)
    assert np.mean([all(r is True for _, r in _reasons({}, row["text"])) for row in rows]) < 0.8  # the old cost


def test_best_f1_threshold_keeps_the_best_f1_set() -> None:
    scores = np.array([0.1, 0.3, 0.35, 0.6, 0.7, 0.9])
    labels = np.array([False, False, True, False, True, True])
    threshold, info = select_threshold(scores, labels, ThresholdConfig(by="f1"))
    thresholds, p, r = precision_recall_at(scores, labels)
    f1 = 2 * p * r / (p + r)
    kept = scores >= threshold
    tp = (kept & labels).sum()
    assert 2 * tp / (kept.sum() + labels.sum()) == pytest.approx(f1.max())
    assert 0.3 < threshold < 0.35 and info["by"] == "f1"


def test_content_words_drop_function_words_in_training_and_scoring(tmp_path: Path) -> None:
    assert (
        _fasttext_line("Der Patient kann bei Fieber (etwa 39 °C) oft zittern.", function_words())
        == "patient fieber 39 °c) zittern."
    )
    med = [f"bei etwa häufig Patient{i} Fieber Therapie kann werden" for i in range(20)]
    gen = [f"für mit wir Verein{i} Fußball Tabelle euro" for i in range(20)]
    cfg = ClassifierConfig.model_validate({"kind": "fasttext", "fasttext": {"bucket": 20_000, "epoch": 20}})
    model = build_classifier(cfg).fit(med + gen, [True] * 20 + [False] * 20)
    style_only = model.predict_proba(["bei etwa häufig kann werden", "für mit wir", ""])
    assert style_only[0] == style_only[1] == style_only[2]  # function words carry no signal at all
    model.save(tmp_path / "m")
    loaded = type(model).load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(med[:3]), model.predict_proba(med[:3]))


def test_stage_scores_every_family_on_the_real_test_set_and_writes_model_cards(
    tmp_path: Path, corpus_inputs: dict, make_config: Any, german_texts
) -> None:
    real = tmp_path / "real_test.jsonl"
    rows = [
        {"id": f"rm{i}", "text": t, "medical": True, "genre": "clinical paragraph", "subdomain": "clinical"}
        for i, t in enumerate(german_texts["medical"][:6])
    ]
    rows += [
        {"id": f"rt{i}", "text": t, "medical": False, "genre": "man page", "subdomain": "technical"}
        for i, t in enumerate(german_texts["general"][:6])
    ]
    real.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + "broken\n", encoding="utf-8")
    cfg = make_config(
        corpus_inputs,
        classifier={
            "kind": "tfidf_logreg",
            "threshold": {"by": "f1"},
            "holdout_fraction": 0.3,
            "compare": ["fasttext"],
            "fasttext": {"bucket": 20_000},
            "real_test": str(real),
        },
    )
    ctx = StageContext(run_dir=cfg.run.run_dir, stage="corpus")
    ctx.stage_dir.mkdir(parents=True, exist_ok=True)
    m = run(bind(cfg), ctx).metrics
    real_m = m.real_test
    assert real_m.n == 12 and real_m.medical == 6 and real_m.bad_lines == 1
    assert set(real_m.families) == {"tfidf_logreg", "fasttext"}
    rows_by_kind = {r.kind: r for r in m.classifier_comparison}
    for kind, folder in (
        ("tfidf_logreg", ctx.stage_dir / "classifier"),
        ("fasttext", ctx.stage_dir / "classifier" / "compare" / "fasttext"),
    ):
        audit = json.loads((folder / "real_test.json").read_text(encoding="utf-8"))
        assert audit["n"] == 12 and sum(audit["confusion"].values()) == 12
        assert rows_by_kind[kind].real_f1 == audit["f1"]
        assert rows_by_kind[kind].real_fpr_technical == audit["technical_false_positive_rate"]
        card = (folder / "README.md").read_text(encoding="utf-8")
        assert card.startswith("---\n") and "## Metrics on real text" in card and f"F1 {audit['f1']:.3f}" in card
        assert f"{json.loads((folder / 'report.json').read_text())['threshold']:.6g}, chosen by `f1`" in card
    assert m.classifier.real_test.real_f1 == rows_by_kind["tfidf_logreg"].real_f1
    dataset_card = (ctx.stage_dir / "README.md").read_text(encoding="utf-8")
    assert "On 12 real documents no training or threshold saw" in dataset_card
    assert f"F1 {m.classifier.real_test.real_f1:.3f}" in dataset_card
    costs = m.filter_costs  # no audit gold file: the training labels say which documents are medical
    assert costs.source == "labels" and costs.medical_recall.model_dump() == {"docs": 14, "dropped": 0, "recall": 1.0}
    # The readers' drops (records without text, bad bytes) sit in rejected/input next to the filters' steps.
    assert costs.steps["input"].model_dump() == {
        "dropped": m.missing_text,
        "medical_dropped": 0,
        "real_medical_dropped": 0,
    }
    assert {step: v.dropped for step, v in costs.steps.items() if v.dropped and step != "input"} == {
        step: n for step, n in m.dropped.items() if n
    }
