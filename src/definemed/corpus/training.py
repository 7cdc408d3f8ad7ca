"""Train the medical classifier on the labelled survivors of the filter pipeline and score it on held-out ids.

Labels come from a file (LLM labeller output or hand labels). The train/held-out split is a hash of the document
id, so it does not depend on file order, task count or which other documents survived the filters.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from definemed import registry
from definemed.artifacts import read_json, write_json
from definemed.config import ClassifierConfig, FileLabels

logger = logging.getLogger("definemed")
REPORT = "report.json"


@dataclass
class Labels:
    by_id: dict[str, bool] = field(default_factory=dict)
    malformed: int = 0
    duplicates: int = 0


def load_labels(spec: FileLabels) -> Labels:
    """Read `{id, <label_key>: bool}` lines; malformed lines are counted and reported by file:line, not fatal."""
    labels = Labels()
    if not Path(spec.path).is_file():
        raise FileNotFoundError(f"corpus.labels.path: {spec.path} does not exist")
    with Path(spec.path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                doc_id, value = row[spec.id_key], row[spec.label_key]
                if not isinstance(doc_id, str) or not isinstance(value, bool):
                    raise TypeError(f"'{spec.id_key}' must be a string and '{spec.label_key}' a boolean")
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                labels.malformed += 1
                logger.warning("%s:%d: malformed label line skipped (%s: %s)", spec.path, lineno,
                               type(exc).__name__, exc)
                continue
            labels.duplicates += doc_id in labels.by_id
            labels.by_id[doc_id] = value
    return labels


def is_heldout(doc_id: str, fraction: float, seed: int) -> bool:
    """Deterministic split: a document is held out when the hash of (seed, id) falls below `fraction`."""
    digest = hashlib.sha256(f"{seed}\x00{doc_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def iter_documents(folder: Path) -> Iterator[dict[str, Any]]:
    """Documents written by a datatrove JsonlWriter (`*.jsonl.gz`), in file order."""
    for path in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)


def binary_metrics(truth: list[bool], pred: list[bool]) -> dict[str, Any]:
    """Precision, recall, F1 and accuracy of the positive (medical) class, with the confusion matrix."""
    tp = sum(t and p for t, p in zip(truth, pred, strict=True))
    fp = sum(p and not t for t, p in zip(truth, pred, strict=True))
    fn = sum(t and not p for t, p in zip(truth, pred, strict=True))
    tn = len(truth) - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "accuracy": round((tp + tn) / len(truth), 4) if truth else 0.0,
            "support": {"medical": tp + fn, "other": tn + fp},
            "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn}}


def train_classifier(survivors: Path, spec: FileLabels, clf_cfg: ClassifierConfig, seed: int,
                     out_dir: Path) -> dict[str, Any]:
    """Fit the configured classifier on labelled survivors, evaluate on held-out ids, save model and report.

    Skipped when `out_dir` already holds a model and its report (the report is written last).
    """
    if (out_dir / REPORT).exists() and (out_dir / "meta.json").exists():
        report = read_json(out_dir / REPORT)
        if report.get("kind") == clf_cfg.kind:
            logger.info("[corpus] classifier already trained in %s; reusing it", out_dir)
            return report
    labels = load_labels(spec)
    train_x, train_y, test_x, test_y, unlabelled = [], [], [], [], 0
    for doc in iter_documents(survivors):
        label = labels.by_id.get(doc["id"])
        if label is None:
            unlabelled += 1
        elif is_heldout(doc["id"], clf_cfg.holdout_fraction, seed):
            test_x.append(doc["text"])
            test_y.append(label)
        else:
            train_x.append(doc["text"])
            train_y.append(label)
    if not test_x:
        raise RuntimeError(f"no labelled document of {survivors} fell into the held-out split; "
                           "raise corpus.classifier.holdout_fraction or label more documents")
    model = registry.get("classifier", clf_cfg.kind)().fit(train_x, train_y)
    scores = model.predict_proba(test_x)
    model.save(out_dir)
    report = {"kind": clf_cfg.kind, "threshold": clf_cfg.threshold, "n_train": len(train_x),
              "n_heldout": len(test_x), "n_unlabelled": unlabelled, "label_lines_malformed": labels.malformed,
              "label_duplicates": labels.duplicates,
              **binary_metrics(test_y, [bool(s >= clf_cfg.threshold) for s in scores])}
    write_json(out_dir / REPORT, report)
    return report
