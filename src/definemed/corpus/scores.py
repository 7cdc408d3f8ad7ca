"""Precision, recall, F1 and accuracy of the medical class, from scikit-learn (one helper for the classifier
reports, the labeller audits and their bootstrap intervals).

Undefined ratios (no predicted or no gold positives) are 0, scikit-learn's `zero_division=0`.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def binary_scores(gold: Any, pred: Any) -> dict[str, Any]:
    """P/R/F1/accuracy of boolean vectors; for 2-D input (bootstrap resamples x documents) one value per row.

    All rows are scored in one scikit-learn call: transposed, each row becomes one label of a multilabel problem,
    and `average=None` returns that label's figures.
    """
    from sklearn.metrics import multilabel_confusion_matrix, precision_recall_fscore_support

    g, p = np.asarray(gold, dtype=bool), np.asarray(pred, dtype=bool)
    if g.shape != p.shape or g.ndim not in (1, 2):
        raise ValueError(f"gold {g.shape} and predictions {p.shape} must be equal-shaped vectors or matrices")
    rows_g, rows_p = (g[None], p[None]) if g.ndim == 1 else (g, p)
    n = rows_g.shape[1]
    if n == 0:  # nothing scored: every figure 0 (scikit-learn refuses empty input)
        zeros = np.zeros(rows_g.shape[0])
        precision, recall, f1, tp_tn = zeros, zeros, zeros, zeros
    elif rows_g.shape[0] == 1:  # a single column would be read as a binary target, not as one label
        precision, recall, f1, _ = precision_recall_fscore_support(
            rows_g[0], rows_p[0], average="binary", pos_label=True, zero_division=0
        )
        tp_tn = np.array([(rows_g[0] == rows_p[0]).sum()])
        precision, recall, f1 = np.array([precision]), np.array([recall]), np.array([f1])
    else:
        precision, recall, f1, _ = precision_recall_fscore_support(rows_g.T, rows_p.T, average=None, zero_division=0)
        mcm = multilabel_confusion_matrix(rows_g.T, rows_p.T)  # per row: [[tn, fp], [fn, tp]]
        tp_tn = mcm[:, 0, 0] + mcm[:, 1, 1]
    accuracy = np.divide(tp_tn, n, out=np.zeros(len(tp_tn), dtype=float), where=n > 0)
    out = {"precision": precision, "recall": recall, "f1": f1, "accuracy": accuracy}
    return {k: float(v[0]) for k, v in out.items()} if g.ndim == 1 else out


def binary_metrics(truth: Any, pred: Any) -> dict[str, Any]:
    """The report form: P/R/F1/accuracy rounded to 4 places, support and confusion matrix (plain JSON types)."""
    from sklearn.metrics import confusion_matrix

    y, p = np.asarray(truth, dtype=bool), np.asarray(pred, dtype=bool)
    scores = binary_scores(y, p)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, p, labels=[False, True]).ravel()) if y.size else (0,) * 4
    return {
        **{k: round(v, 4) for k, v in scores.items()},
        "support": {"medical": tp + fn, "other": tn + fp},
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
    }
