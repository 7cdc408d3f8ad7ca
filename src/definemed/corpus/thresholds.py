"""Choosing the medical/non-medical cut on held-out scores, and what a cut costs in kept documents and words.

Four rules (`corpus.classifier.threshold`): a fixed score; the smallest threshold whose held-out precision reaches
a target (the most recall at that precision); the best held-out F1; or the top-q share of documents (a budget, as
in FineWeb-Edu/JQL).
Held-out documents are a random sample of the labelled sample, which is a random sample of the corpus, so the
quantile cut and the implied token retention estimate what the cut keeps of the full corpus.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from definemed.corpus.classifier_config import ThresholdConfig

logger = logging.getLogger("definemed")
# PR-curve points kept in reports: enough to draw the curve, small enough for a JSON report.
MAX_CURVE_POINTS = 100


def _as_arrays(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores {s.shape} and labels {y.shape} must be equal-length vectors")
    return s, y


def precision_recall_at(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds ascending = the distinct scores, precision, recall) of the rule `score >= threshold`:
    scikit-learn's `precision_recall_curve` without its closing (recall 0, precision 1) point. Without a positive
    label the recall is 0 at every threshold (scikit-learn says 1 and warns)."""
    from sklearn.metrics import precision_recall_curve

    s, y = _as_arrays(scores, labels)
    if not y.any():
        thresholds = np.unique(s)
        return thresholds, np.zeros(thresholds.size), np.zeros(thresholds.size)
    precision, recall, thresholds = precision_recall_curve(y, s, drop_intermediate=False)
    return thresholds, precision[:-1], recall[:-1]


def threshold_for_precision(scores: Any, labels: Any, target: float) -> tuple[float, bool]:
    """The smallest threshold whose precision on (scores, labels) is >= target; (threshold, reached).

    When no threshold reaches the target, the threshold of the highest precision is returned with reached=False.
    """
    thresholds, precision, _ = precision_recall_at(scores, labels)
    ok = np.flatnonzero(precision >= target)
    if ok.size:
        return float(thresholds[ok[0]]), True
    best = int(np.argmax(precision))
    logger.warning(
        "no threshold reaches precision %.3f on %d held-out documents (best %.3f at %.4f)",
        target,
        len(thresholds),
        precision[best],
        thresholds[best],
    )
    return float(thresholds[best]), False


def threshold_for_recall(scores: Any, labels: Any, target: float) -> float:
    """The largest threshold whose recall is >= target (a high-recall gate keeps as little as it can)."""
    thresholds, _, recall = precision_recall_at(scores, labels)
    ok = np.flatnonzero(recall >= target)
    return float(thresholds[ok[-1]]) if ok.size else float(thresholds[0])


def threshold_for_best_f1(scores: Any, labels: Any) -> float:
    """The cut of the highest held-out F1 (the largest threshold among ties), placed midway to the next lower
    held-out score: it keeps the same held-out documents without sitting on one document's score."""
    thresholds, precision, recall = precision_recall_at(scores, labels)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    best = int(np.flatnonzero(f1 == f1.max())[-1])
    return float((thresholds[best] + thresholds[best - 1]) / 2) if best > 0 else float(thresholds[best])


def threshold_for_quantile(scores: Any, share: float) -> float:
    """The threshold that keeps the top `share` of documents (ties at the cut are kept, so a little more)."""
    s = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    if s.size == 0:
        raise ValueError("no scores to take a quantile of")
    k = max(int(np.ceil(share * s.size)), 1)
    return float(s[k - 1])


def select_threshold(scores: Any, labels: Any, spec: ThresholdConfig) -> tuple[float, dict[str, Any]]:
    """Apply the configured rule to held-out scores; returns (threshold, description for the report)."""
    info: dict[str, Any] = {"by": spec.by, "value": spec.value}
    if spec.by == "score":
        threshold = spec.value
    elif spec.by == "precision":
        threshold, info["reached"] = threshold_for_precision(scores, labels, spec.value)
    elif spec.by == "f1":
        threshold = threshold_for_best_f1(scores, labels)
        info["value"] = None
    else:
        threshold = threshold_for_quantile(scores, spec.value)
    return float(threshold), info


def retention(texts: list[str], scores: Any, threshold: float) -> dict[str, float]:
    """Share of documents and of whitespace words (a proxy for tokens) that the cut keeps."""
    kept = np.asarray(scores, dtype=np.float64) >= threshold
    words = np.array([len(t.split()) for t in texts], dtype=np.float64)
    return {
        "docs": round(float(kept.mean()) if kept.size else 0.0, 4),
        "words": round(float(words[kept].sum() / words.sum()) if words.sum() else 0.0, 4),
    }


def pr_curve(scores: Any, labels: Any, max_points: int = MAX_CURVE_POINTS) -> dict[str, Any]:
    """Precision-recall curve (thresholds ascending, recall non-increasing) and average precision.

    Downsampled to at most `max_points` by keeping evenly spaced points and both ends.
    """
    from sklearn.metrics import average_precision_score

    s, y = _as_arrays(scores, labels)
    thresholds, precision, recall = precision_recall_at(s, y)
    if len(thresholds) > max_points:
        keep = np.unique(np.linspace(0, len(thresholds) - 1, max_points).round().astype(int))
        thresholds, precision, recall = thresholds[keep], precision[keep], recall[keep]
    ap = float(average_precision_score(y, s)) if 0 < y.sum() < len(y) else float("nan")
    return {
        "precision": [round(float(v), 4) for v in precision],
        "recall": [round(float(v), 4) for v in recall],
        "threshold": [round(float(v), 6) for v in thresholds],
        "average_precision": round(ap, 4),
    }
