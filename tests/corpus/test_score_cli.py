"""`definemed classify` and `definemed audit` on a saved classifier of every family, good and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from definemed.cli import main
from definemed.corpus.classifier_config import ClassifierConfig
from definemed.corpus.gold_audit import audit_scores, load_classifier, read_gold
from definemed.corpus.training import Split, fit_and_evaluate

FAMILIES = ["tfidf_logreg", "fasttext", "embedding", "finetune", "cascade"]


def _config(kind: str, bert: str) -> dict[str, Any]:
    return {
        "tfidf_logreg": {"kind": "tfidf_logreg", "threshold": {"by": "f1"}},
        "fasttext": {
            "kind": "fasttext",
            "threshold": {"by": "f1"},
            "fasttext": {"bucket": 20_000, "epoch": 30, "content_words": True},
        },
        "embedding": {"kind": "embedding", "embedding": {"encoder": bert, "max_length": 64}},
        "finetune": {
            "kind": "finetune",
            "finetune": {"encoder": bert, "epochs": 1, "batch_size": 8, "max_length": 64, "learning_rate": 1e-3},
        },
        "cascade": {
            "kind": "cascade",
            "embedding": {"encoder": bert, "max_length": 64},
            "cascade": {"stage1": "tfidf_logreg", "stage2": "embedding", "folds": 2},
        },
    }[kind]


@pytest.fixture(scope="module", params=FAMILIES)
def saved(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, german_texts, tiny_bert_dir
) -> Path:
    """A classifier folder as the corpus stage leaves it: model, meta.json and report.json with the threshold."""
    med, gen = german_texts["medical"], german_texts["general"]
    split = Split(
        train_x=med[::2] + gen[::2],
        train_y=[True] * len(med[::2]) + [False] * len(gen[::2]),
        test_x=med[1::2] + gen[1::2],
        test_y=[True] * len(med[1::2]) + [False] * len(gen[1::2]),
        test_ids=[f"h{i}" for i in range(len(med[1::2]) + len(gen[1::2]))],
    )
    cfg = ClassifierConfig.model_validate(_config(request.param, str(tiny_bert_dir)))
    out = tmp_path_factory.mktemp(f"clf-{request.param}")
    fit_and_evaluate(cfg, split, out, seed=0)
    return out


def _inputs(tmp_path: Path, german_texts) -> tuple[list[Path], list[str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    med, gen = german_texts["medical"][:3], german_texts["general"][:3]
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text(
        "".join(json.dumps({"id": f"j{i}", "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(med + gen))
        + "{not json\n"
        + json.dumps({"id": "x", "text": 5})
        + "\n\n",
        encoding="utf-8",
    )
    parquet = tmp_path / "docs.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": "p0", "text": med[0]}, {"id": "p1", "text": None}]), parquet)
    txt = tmp_path / "page.txt"
    txt.write_text(gen[0], encoding="utf-8")
    return [jsonl, parquet, txt], [*(f"j{i}" for i in range(6)), "p0", str(txt)]


def test_classify_scores_every_input_kind_and_reports_bad_lines(
    saved: Path, tmp_path: Path, german_texts, capsys: pytest.CaptureFixture
) -> None:
    inputs, ids = _inputs(tmp_path, german_texts)
    out = tmp_path / "out" / "scores.jsonl"
    assert main(["classify", str(saved), *map(str, inputs), "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ids
    model, threshold, meta = load_classifier(saved)
    texts = [
        *german_texts["medical"][:3],
        *german_texts["general"][:3],
        german_texts["medical"][0],
        german_texts["general"][0],
    ]
    np.testing.assert_allclose([r["score"] for r in rows], model.predict_proba(texts), atol=1e-6)
    assert [r["medical"] for r in rows] == [r["score"] >= threshold for r in rows]
    err = capsys.readouterr().err
    assert "3 bad input lines skipped" in err and "docs.jsonl:7: not JSON" in err and "row 2: null text" in err
    assert f"{meta['kind']} classifier at threshold" in err and not list(out.parent.glob(".*.tmp"))


def test_audit_prints_intervals_confusion_breakdown_and_worst(
    saved: Path, tmp_path: Path, german_texts, capsys: pytest.CaptureFixture
) -> None:
    med, gen = german_texts["medical"], german_texts["general"]
    gold = tmp_path / "gold.jsonl"
    rows = [{"id": f"m{i}", "text": t, "medical": True, "genre": "clinical", "source": "a"} for i, t in enumerate(med)]
    rows += [
        {"id": f"g{i}", "text": t, "medical": False, "genre": "news", "subdomain": "technical", "source": "b"}
        for i, t in enumerate(gen)
    ]
    gold.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        + '{"id": "bad", "text": "x", "medical": "yes"}\nnot json\n',
        encoding="utf-8",
    )
    report = tmp_path / "audit.json"
    assert main(["audit", str(saved), str(gold), "--rounds", "200", "--json", str(report)]) == 0
    out = capsys.readouterr()
    audit = json.loads(report.read_text(encoding="utf-8"))
    model, threshold, _ = load_classifier(saved)
    pred = model.predict_proba(med + gen) >= threshold
    tp, fp = int(pred[: len(med)].sum()), int(pred[len(med) :].sum())
    assert audit["confusion"] == {"tp": tp, "fp": fp, "fn": len(med) - tp, "tn": len(gen) - fp}
    assert audit["bad_lines"] == {"count": 2, "first": [len(rows) + 1, len(rows) + 2]}
    assert audit["technical_false_positive_rate"] == round(fp / len(gen), 4)
    lo, hi = audit["intervals_95"]["f1"]
    assert lo <= audit["f1"] <= hi
    assert set(audit["breakdown"]["genre"]) == {"clinical", "news"} and set(audit["breakdown"]["source"]) == {"a", "b"}
    assert len(audit["worst"]) == min(10, len(med) - tp + fp)
    assert "[95% CI" in out.out and "by genre:" in out.out and "2 bad gold lines skipped" in out.err


def test_bad_model_folder_and_gold_are_one_line_errors(
    tmp_path: Path, saved: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["classify", str(tmp_path), str(tmp_path / "x.jsonl"), "-o", str(tmp_path / "o.jsonl")]) == 2
    assert "no meta.json" in capsys.readouterr().err
    assert main(["classify", str(saved), str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o.jsonl")]) == 2
    assert "missing.jsonl: no such input file" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()
    empty = tmp_path / "empty.jsonl"
    empty.write_text("nonsense\n", encoding="utf-8")
    assert main(["audit", str(saved), str(empty)]) == 2
    assert "no valid gold line" in capsys.readouterr().err


def test_audit_scores_counts_short_and_technical_groups() -> None:
    gold = read_gold_rows(
        [
            ("a" * 100, True, "clinical"),
            ("a" * 500, True, "clinical"),
            ("b" * 100, False, "technical"),
            ("b" * 100, False, "technical"),
            ("c", False, "news"),
        ]
    )
    audit = audit_scores(gold, [0.2, 0.9, 0.85, 0.1, 0.1], 0.5, rounds=50)
    assert audit["short_medical_recall"] == 0.0 and audit["short_medical_docs"] == 1
    assert audit["technical_false_positive_rate"] == 0.5 and audit["technical_docs"] == 2
    assert audit["confusion"] == {"tp": 1, "fp": 1, "fn": 1, "tn": 2}
    assert [w["id"] for w in audit["worst"]] == ["d2", "d0"]  # the most confident mistake first


def read_gold_rows(rows: list[tuple[str, bool, str]]) -> Any:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as fh:
        for i, (text, medical, sub) in enumerate(rows):
            fh.write(json.dumps({"id": f"d{i}", "text": text, "medical": medical, "subdomain": sub}) + "\n")
    try:
        return read_gold(fh.name)
    finally:
        Path(fh.name).unlink()


def test_window_scoring_gives_a_long_page_its_best_window() -> None:
    from definemed.corpus.score_cli import score, windows

    class Keyword:
        def predict_proba(self, texts: list[str]) -> np.ndarray:
            return np.array([0.9 if "Patient" in t else 0.1 for t in texts])

    page = " ".join(["Fußball Tabelle Verein"] * 60 + ["Der Patient hat Fieber."] + ["Wetter Regen"] * 60)
    assert len(windows(page, 200)) > 5 and " ".join(windows(page, 200)).split() == page.split()
    assert score(Keyword(), [page, "kurz"], window_chars=200).tolist() == [0.9, 0.1]
    assert score(Keyword(), [page[:150]], window_chars=200).tolist() == [0.1]
