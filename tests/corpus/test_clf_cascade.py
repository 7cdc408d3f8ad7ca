"""The cascade: stage 2 sees only stage-1 survivors, rejects score 0, gate and cost report on held-out data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from definemed.corpus.cascade import REJECT_SCORE, CascadeClassifier
from definemed.corpus.classifier_config import ThresholdConfig
from definemed.corpus.classifiers import TfidfLogRegClassifier
from definemed.corpus.training import binary_metrics


class CountingStage:
    """A stage-2 stand-in that records every text it scores; its score is 0.9 for texts containing 'Patient'."""

    kind = "counting"

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.fitted = 0

    def fit(self, texts: list[str], labels: list[bool]) -> CountingStage:
        self.fitted += 1
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        self.seen.extend(texts)
        return np.array([0.9 if "Patient" in t else 0.2 for t in texts])


def _data(german_texts: dict[str, list[str]]) -> tuple[list[str], list[bool]]:
    texts = german_texts["medical"] + german_texts["general"]
    return texts, [True] * len(german_texts["medical"]) + [False] * len(german_texts["general"])


def _cascade(german_texts, target_recall: float = 0.9) -> tuple[CascadeClassifier, CountingStage]:
    stage2 = CountingStage()
    model = CascadeClassifier(TfidfLogRegClassifier(), stage2, target_recall=target_recall, folds=2)
    return model.fit(*_data(german_texts)), stage2


def test_stage2_scores_only_stage1_survivors(german_texts) -> None:
    model, stage2 = _cascade(german_texts)
    assert stage2.fitted == 1
    probe = [*german_texts["medical"], *german_texts["general"], "Der Patient hat Fieber.", "Die Bahn streikt."]
    stage2.seen.clear()
    s1 = model.stage1.predict_proba(probe)
    scores = model.predict_proba(probe)
    survivors = [t for t, s in zip(probe, s1, strict=True) if s >= model.stage1_threshold]
    assert stage2.seen == survivors and 0 < len(survivors) < len(probe)
    assert model.counts["stage2_docs"] == len(survivors) and model.counts["docs"] == len(probe)
    rejected = s1 < model.stage1_threshold
    assert (scores[rejected] == REJECT_SCORE).all()
    assert set(scores[~rejected]) <= {0.9, 0.2}


def test_stage1_threshold_reaches_target_recall_out_of_fold(german_texts) -> None:
    texts, labels = _data(german_texts)
    model, _ = _cascade(german_texts, target_recall=1.0)
    oof = model.out_of_fold_scores(texts, labels)
    y = np.asarray(labels)
    assert (oof[y] >= model.stage1_threshold).all()  # recall 1.0 on out-of-fold scores
    assert model.fit_info["oof_recall"] == 1.0
    # the largest such threshold: the lowest-scoring medical document sits exactly on it
    assert oof[y].min() == model.stage1_threshold


def test_heldout_report_has_f1_share_and_cost(german_texts) -> None:
    model, _ = _cascade(german_texts)
    texts, labels = _data(german_texts)
    scores = model.predict_proba(texts)
    report = model.heldout_report(texts, labels, scores, 0.5, ThresholdConfig(by="score", value=0.5))
    share = float(np.mean(model.stage1.predict_proba(texts) >= model.stage1_threshold))
    assert report["pass_share"] == round(share, 4)
    alone = binary_metrics(labels, ["Patient" in t for t in texts])  # the stand-in's 0.9 vs 0.2 at cut 0.5
    assert report["stage2_alone"] == {"threshold": 0.5, **{k: alone[k] for k in ("precision", "recall", "f1")}}
    cascade = binary_metrics(labels, (scores >= 0.5).tolist())
    assert report["cascade"] == {k: cascade[k] for k in ("precision", "recall", "f1")}
    # the stand-in has no false positives: the gate can only lose recall
    assert 0 < report["cascade"]["f1"] <= report["stage2_alone"]["f1"]
    c1, c2 = report["stage1_s_per_doc"], report["stage2_s_per_doc"]
    assert report["cost_saved"] == round(1 - (c1 + share * c2) / c2, 4)


def test_cascade_config_round_trip_through_the_registry(tmp_path: Path, german_texts) -> None:
    from definemed import registry
    from definemed.corpus.classifier_config import ClassifierConfig
    from definemed.corpus.classifiers import build_classifier

    cfg = ClassifierConfig(
        kind="cascade",
        cascade={"stage1": "tfidf_logreg", "stage2": "fasttext", "folds": 2},
        fasttext={"bucket": 20_000, "cutoff": 2_000},
    )
    model = build_classifier(cfg, workdir=tmp_path).fit(*_data(german_texts))
    model.save(tmp_path)
    loaded = registry.get("classifier", "cascade").load(tmp_path)
    assert (loaded.stage1.kind, loaded.stage2.kind) == ("tfidf_logreg", "fasttext")
    assert loaded.stage1_threshold == model.stage1_threshold
    probe = german_texts["medical"][:3] + german_texts["general"][:3]
    np.testing.assert_array_equal(loaded.predict_proba(probe), model.predict_proba(probe))
