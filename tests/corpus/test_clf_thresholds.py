"""Threshold rules (score, target precision, quantile), the PR curve and implied retention."""

from __future__ import annotations

import numpy as np
import pytest

from definemed.corpus.classifier_config import ThresholdConfig
from definemed.corpus.thresholds import (
    pr_curve,
    precision_recall_at,
    retention,
    select_threshold,
    threshold_for_precision,
    threshold_for_quantile,
    threshold_for_recall,
)


@pytest.fixture
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.random(400) < 0.3
    scores = np.clip(0.35 * labels + 0.65 * rng.random(400), 0, 1)
    return scores, labels


def _precision(scores: np.ndarray, labels: np.ndarray, t: float) -> float:
    kept = scores >= t
    return float(labels[kept].mean())


@pytest.mark.parametrize("target", [0.6, 0.8, 0.9, 0.95])
def test_precision_rule_reaches_the_target_at_the_smallest_threshold(scored, target: float) -> None:
    scores, labels = scored
    t, reached = threshold_for_precision(scores, labels, target)
    assert reached and _precision(scores, labels, t) >= target
    # every lower distinct score misses the target
    assert all(_precision(scores, labels, s) < target for s in np.unique(scores[scores < t]))


def test_unreachable_precision_is_flagged(scored) -> None:
    scores, labels = scored
    t, reached = threshold_for_precision(scores, ~labels & (scores > 0.9), 0.99)
    assert reached is False and 0 <= t <= 1


@pytest.mark.parametrize("share", [0.01, 0.1, 0.25, 0.5, 1.0])
def test_quantile_keeps_the_requested_share(scored, share: float) -> None:
    scores, _ = scored
    t = threshold_for_quantile(scores, share)
    assert (scores >= t).sum() == max(int(np.ceil(share * len(scores))), 1)  # continuous scores: no ties


def test_recall_rule_is_the_largest_threshold_reaching_recall(scored) -> None:
    scores, labels = scored
    t = threshold_for_recall(scores, labels, 0.98)
    assert (scores[labels] >= t).mean() >= 0.98
    assert (scores[labels] >= np.min(scores[scores > t])).mean() < 0.98


def test_select_threshold_describes_the_rule(scored) -> None:
    scores, labels = scored
    assert select_threshold(scores, labels, ThresholdConfig(by="score", value=0.4)) == (
        0.4,
        {"by": "score", "value": 0.4},
    )
    t, info = select_threshold(scores, labels, ThresholdConfig(by="precision", value=0.9))
    assert info == {"by": "precision", "value": 0.9, "reached": True} and _precision(scores, labels, t) >= 0.9


def test_pr_arrays_match_brute_force_and_are_monotone(scored) -> None:
    scores, labels = scored
    thresholds, precision, recall = precision_recall_at(scores, labels)
    for i in (0, 17, 200, len(thresholds) - 1):
        kept = scores >= thresholds[i]
        assert precision[i] == pytest.approx(labels[kept].mean())
        assert recall[i] == pytest.approx(labels[kept].sum() / labels.sum())
    curve = pr_curve(scores, labels)
    assert len(curve["threshold"]) == len(curve["precision"]) == len(curve["recall"]) == 100
    assert np.all(np.diff(curve["threshold"]) > 0)
    assert np.all(np.diff(curve["recall"]) <= 0)
    assert curve["recall"][0] == 1.0 and curve["threshold"][-1] == round(float(scores.max()), 6)
    assert 0.5 < curve["average_precision"] <= 1.0


def test_retention_counts_words_of_kept_documents() -> None:
    texts = ["eins zwei drei", "vier", "fünf sechs", "sieben acht neun zehn"]
    got = retention(texts, [0.9, 0.2, 0.6, 0.1], threshold=0.5)
    assert got == {"docs": 0.5, "words": 0.5}
