"""One report shape for every family, threshold rules through training, reuse by config hash, comparisons."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from definemed.artifacts import write_jsonl
from definemed.corpus.classifier_config import ClassifierConfig
from definemed.corpus.config import FileLabels
from definemed.corpus.training import (
    REPORT,
    Split,
    chosen_threshold,
    compare_families,
    comparison_table,
    fit_and_evaluate,
    train_classifier,
)

FAST = {"fasttext": {"bucket": 20_000, "cutoff": 2_000, "epoch": 30, "lr": 0.5}}
REPORT_KEYS = {
    "kind",
    "threshold",
    "threshold_method",
    "precision",
    "recall",
    "f1",
    "accuracy",
    "support",
    "confusion",
    "average_precision",
    "pr_curve",
    "retention",
    "heldout_score_s",
    "docs_per_s",
    "cascade",
    "n_train",
    "n_heldout",
    "n_unlabelled",
    "label_lines_malformed",
    "label_duplicates",
    "train_seconds",
    "config_hash",
    "model",
}


def _documents(german_texts: dict[str, list[str]]) -> list[tuple[str, bool]]:
    """90 short documents: every pair of medical sentences and every pair of general ones."""
    medical, general = (
        [(" ".join(pair), kind == "medical") for pair in itertools.combinations(german_texts[kind], 2)]
        for kind in ("medical", "general")
    )
    return [doc for pair in zip(medical, general, strict=True) for doc in pair]  # classes interleaved


@pytest.fixture
def split(german_texts) -> Split:
    docs = _documents(german_texts)
    train, test = docs[::3] + docs[1::3], docs[2::3]
    return Split(
        train_x=[t for t, _ in train],
        train_y=[y for _, y in train],
        test_x=[t for t, _ in test],
        test_y=[y for _, y in test],
    )


@pytest.mark.parametrize(
    "section",
    [
        {"kind": "tfidf_logreg"},
        {"kind": "fasttext", **FAST},
        {"kind": "cascade", "cascade": {"stage1": "tfidf_logreg", "stage2": "fasttext", "folds": 2}, **FAST},
    ],
)
def test_every_family_writes_the_same_report_shape(section: dict, split: Split, tmp_path: Path) -> None:
    report = fit_and_evaluate(ClassifierConfig.model_validate(section), split, tmp_path, seed=0)
    assert set(report) == REPORT_KEYS
    assert json.loads((tmp_path / REPORT).read_text()) == json.loads(json.dumps(report))
    assert report["n_train"] == 60 and report["n_heldout"] == 30
    assert sum(report["confusion"].values()) == 30
    assert len(report["pr_curve"]["threshold"]) <= 100 and report["docs_per_s"] > 0
    assert (report["cascade"] is None) == (section["kind"] != "cascade")
    if report["cascade"]:
        assert {"pass_share", "cost_saved", "stage1_threshold", "cascade", "stage2_alone"} <= set(report["cascade"])


def test_precision_and_quantile_rules_through_training(split: Split, tmp_path: Path) -> None:
    by_precision = fit_and_evaluate(
        ClassifierConfig(threshold={"by": "precision", "value": 0.9}), split, tmp_path / "p", seed=0
    )
    assert by_precision["threshold_method"]["reached"] is True and by_precision["precision"] >= 0.9
    assert chosen_threshold(tmp_path / "p") == by_precision["threshold"]
    by_quantile = fit_and_evaluate(
        ClassifierConfig(threshold={"by": "quantile", "value": 0.2}), split, tmp_path / "q", seed=0
    )
    assert by_quantile["retention"]["docs"] == pytest.approx(0.2, abs=1 / 30)
    assert sum(by_quantile["confusion"][k] for k in ("tp", "fp")) == 6


def test_train_classifier_reuses_only_the_same_config(tmp_path: Path, german_texts) -> None:
    import gzip

    docs = _documents(german_texts)
    survivors = tmp_path / "filtered"
    survivors.mkdir()
    with gzip.open(survivors / "00000.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, (t, _) in enumerate(docs))
    write_jsonl(tmp_path / "labels.jsonl", [{"id": f"d{i}", "medical": y} for i, (_, y) in enumerate(docs)])
    spec = FileLabels(path=tmp_path / "labels.jsonl")
    first = train_classifier(survivors, spec, ClassifierConfig(holdout_fraction=0.3), 0, tmp_path / "clf")
    (tmp_path / "clf" / "weights.npz").write_bytes(b"")  # reuse must not touch the model
    assert train_classifier(survivors, spec, ClassifierConfig(holdout_fraction=0.3), 0, tmp_path / "clf") == first
    changed = train_classifier(
        survivors, spec, ClassifierConfig(holdout_fraction=0.3, threshold=0.7), 0, tmp_path / "clf"
    )
    assert changed["threshold"] == 0.7 and changed["config_hash"] != first["config_hash"]
    assert (tmp_path / "clf" / "weights.npz").stat().st_size > 0
    assert first["n_train"] + first["n_heldout"] == 90


def test_compare_families_tabulates_each_kind(split: Split, tmp_path: Path) -> None:
    base = ClassifierConfig.model_validate({"kind": "fasttext", **FAST})  # the sections; kinds come from the list
    rows = compare_families(split, base, ["tfidf_logreg", "fasttext"], tmp_path)
    assert [r["kind"] for r in rows] == ["tfidf_logreg", "fasttext"]
    assert all((tmp_path / r["kind"] / REPORT).is_file() for r in rows)
    table = comparison_table(rows).splitlines()
    assert table[0].split()[:5] == ["kind", "threshold", "precision", "recall", "f1"]
    assert len(table) == 3 and table[1].startswith("tfidf_logreg")
