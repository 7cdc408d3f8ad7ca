"""Train the medical classifier on the labelled survivors of the filter pipeline and score it on held-out ids.

Labels come from a file (LLM labeller output or hand labels). The train/held-out split is a hash of the document
id, so it does not depend on file order, task count or which other documents survived the filters.

Every family gets the same report (`report.json` in its folder): the threshold and how it was chosen, precision,
recall, F1, accuracy, confusion, the PR curve and average precision, implied retention of documents and words,
split sizes, training seconds and scoring docs/s; a cascade adds its gate statistics under `cascade`. Beside it,
`heldout_scores.jsonl` keeps each held-out document's id, label and score (for checks against other labels).
`compare_families` trains several families on one split and tabulates them.

A folder holding the report of the same classifier config, seed and labels file is reused instead of retrained.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from definemed.artifacts import file_sha256, read_json, write_json, write_jsonl
from definemed.corpus.classifier_config import ClassifierConfig
from definemed.corpus.config import FileLabels
from definemed.corpus.scores import binary_metrics
from definemed.documents import is_heldout, iter_documents
from definemed.schema import stable_hash

logger = logging.getLogger("definemed")
REPORT = "report.json"
HELDOUT_SCORES = "heldout_scores.jsonl"
# Settings of the comparison, not of the classifier: changing them must not retrain the main model.
COMPARISON_KEYS = {"compare", "not_compared", "real_test"}
# Documents timed, caches off, for the docs/s figures: enough to average, cheap for slow encoders.
PROBE_DOCS = 32


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
                logger.warning(
                    "%s:%d: malformed label line skipped (%s: %s)", spec.path, lineno, type(exc).__name__, exc
                )
                continue
            labels.duplicates += doc_id in labels.by_id
            labels.by_id[doc_id] = value
    return labels


@dataclass
class Split:
    """Labelled survivors split by `is_heldout`, plus label-file bookkeeping for the report."""

    train_x: list[str] = field(default_factory=list)
    train_y: list[bool] = field(default_factory=list)
    test_x: list[str] = field(default_factory=list)
    test_y: list[bool] = field(default_factory=list)
    test_ids: list[str] = field(default_factory=list)  # may stay empty (a split built in memory)
    unlabelled: int = 0
    malformed: int = 0
    duplicates: int = 0


def load_split(survivors: Path, spec: FileLabels, holdout_fraction: float, seed: int) -> Split:
    """Join the survivors in `survivors` with their labels and split them into train and held-out."""
    labels = load_labels(spec)
    split = Split(malformed=labels.malformed, duplicates=labels.duplicates)
    for doc in iter_documents(survivors):
        label = labels.by_id.get(doc["id"])
        if label is None:
            split.unlabelled += 1
        elif is_heldout(doc["id"], holdout_fraction, seed):  # salted with the seed: definemed.documents says why
            split.test_x.append(doc["text"])
            split.test_y.append(label)
            split.test_ids.append(doc["id"])
        else:
            split.train_x.append(doc["text"])
            split.train_y.append(label)
    if not split.test_x and not split.train_x:  # nothing to split: asking for a larger held-out share cannot help
        raise RuntimeError(
            f"no document of {survivors} has a valid label in {spec.path} "
            f"({split.unlabelled} unlabelled): check the labeller's failures and raw replies "
            "(labelling_report.json, label_cache.jsonl) before training"
        )
    if not split.test_x:
        raise RuntimeError(
            f"no labelled document of {survivors} fell into the held-out split; "
            "raise corpus.classifier.holdout_fraction or label more documents"
        )
    return split


def seconds_per_doc(model: Any, texts: list[str], max_docs: int = PROBE_DOCS) -> float:
    """Scoring cost per document on up to `max_docs` texts, with any embedding cache switched off."""
    probe = texts[:max_docs]
    cached = getattr(model, "use_cache", None)
    if cached is not None:
        model.use_cache = False
    try:
        t0 = time.perf_counter()
        model.predict_proba(probe)
        return (time.perf_counter() - t0) / max(len(probe), 1)
    finally:
        if cached is not None:
            model.use_cache = cached


def evaluate(model: Any, cfg: ClassifierConfig, split: Split) -> tuple[dict[str, Any], np.ndarray]:
    """The family-independent part of the report (threshold, metrics, PR curve, retention, scoring speed) and the
    held-out scores."""
    from definemed.corpus.thresholds import pr_curve, retention, select_threshold

    t0 = time.perf_counter()
    scores = np.asarray(model.predict_proba(split.test_x), dtype=np.float64)
    score_s = time.perf_counter() - t0
    threshold, method = select_threshold(scores, split.test_y, cfg.threshold_spec)
    curve = pr_curve(scores, split.test_y)
    per_doc = seconds_per_doc(model, split.test_x)
    report = {
        "kind": cfg.kind,
        "threshold": round(threshold, 6),
        "threshold_method": method,
        **binary_metrics(split.test_y, (scores >= threshold).tolist()),
        "average_precision": curve.pop("average_precision"),
        "pr_curve": curve,
        "retention": retention(split.test_x, scores, threshold),
        "heldout_score_s": round(score_s, 3),
        "docs_per_s": round(1 / per_doc, 2) if per_doc else None,
    }
    heldout_report = getattr(model, "heldout_report", None)
    report["cascade"] = (
        heldout_report(split.test_x, split.test_y, scores, threshold, cfg.threshold_spec) if heldout_report else None
    )
    return report, scores


def fit_and_evaluate(
    cfg: ClassifierConfig, split: Split, out_dir: Path, seed: int, labels_sha256: str | None = None
) -> dict[str, Any]:
    """Build, fit, save and evaluate one family; writes `report.json` last, returns the report."""
    from definemed.corpus.classifiers import build_classifier, describe

    model = build_classifier(cfg, workdir=out_dir, seed=seed)
    t0 = time.perf_counter()
    model.fit(split.train_x, split.train_y)
    train_s = time.perf_counter() - t0
    model.save(out_dir)
    report, scores = evaluate(model, cfg, split)
    if hasattr(model, "save_cache"):
        model.save_cache()
    if len(split.test_ids) == len(split.test_y):
        write_jsonl(
            out_dir / HELDOUT_SCORES,
            (
                {"id": i, "label": y, "score": round(float(s), 6)}
                for i, y, s in zip(split.test_ids, split.test_y, scores, strict=True)
            ),
        )
    report |= {
        "n_train": len(split.train_x),
        "n_heldout": len(split.test_x),
        "n_unlabelled": split.unlabelled,
        "label_lines_malformed": split.malformed,
        "label_duplicates": split.duplicates,
        "train_seconds": round(train_s, 2),
        "config_hash": config_hash(cfg, seed, labels_sha256),
        "model": describe(out_dir),
    }
    write_json(out_dir / REPORT, report)
    return report


def config_hash(cfg: ClassifierConfig, seed: int, labels_sha256: str | None = None) -> str:
    """What a saved report must match to be reused: classifier settings, seed and the labels it learned."""
    settings = cfg.model_dump(mode="json", exclude=COMPARISON_KEYS)
    return stable_hash({"classifier": settings, "seed": seed, "labels": labels_sha256})


def reusable_report(out_dir: Path, expected_hash: str) -> dict[str, Any] | None:
    """The report in `out_dir` when it was written (last, after the model) for `expected_hash`."""
    if (out_dir / REPORT).exists() and (out_dir / "meta.json").exists():
        report = read_json(out_dir / REPORT)
        if report.get("config_hash") == expected_hash:
            return report
    return None


def train_classifier(
    survivors: Path, spec: FileLabels, clf_cfg: ClassifierConfig, seed: int, out_dir: Path
) -> dict[str, Any]:
    """Fit the configured classifier on labelled survivors, evaluate on held-out ids, save model and report.

    Skipped when `out_dir` already holds a model and the report of the same classifier config, seed and labels.
    """
    labels_sha256 = file_sha256(spec.path) if Path(spec.path).is_file() else None
    if (report := reusable_report(out_dir, config_hash(clf_cfg, seed, labels_sha256))) is not None:
        logger.info("[corpus] classifier already trained in %s; reusing it", out_dir)
        return report
    split = load_split(survivors, spec, clf_cfg.holdout_fraction, seed)
    return fit_and_evaluate(clf_cfg, split, out_dir, seed, labels_sha256)


def chosen_threshold(model_dir: Path) -> float:
    """The threshold `train_classifier` chose (by score, precision or quantile), for the classify pipeline."""
    return float(read_json(Path(model_dir) / REPORT)["threshold"])


def compare_families(
    split: Split,
    base: ClassifierConfig,
    kinds: list[str],
    out_root: Path,
    seed: int = 0,
    labels_sha256: str | None = None,
) -> list[dict[str, Any]]:
    """Train and evaluate each kind on the same split (folders `out_root/<kind>`); one summary row per kind.

    An embedding cache written by an earlier kind is copied into later folders (a cascade's `stage2/` too), so
    each document is embedded once per comparison; the cache's encoder tag keeps mismatched settings apart.
    A folder whose report matches the kind's config, seed and `labels_sha256` is reused (an interrupted stage).
    """
    rows = []
    for kind in kinds:
        cfg = base.model_copy(update={"kind": kind})
        report = reusable_report(out_root / kind, config_hash(cfg, seed, labels_sha256))
        if report is None:
            _share_embedding_cache(out_root, out_root / kind / ("stage2" if kind == "cascade" else ""))
            report = fit_and_evaluate(cfg, split, out_root / kind, seed, labels_sha256)
        rows.append(summary_row(report))
    return rows


def _share_embedding_cache(out_root: Path, target: Path) -> None:
    """Copy the largest embedding cache under `out_root` into `target` unless it has one."""
    import shutil

    from definemed.corpus.encoders import CACHE_FILE

    found = [*out_root.glob(f"*/{CACHE_FILE}"), *out_root.glob(f"*/*/{CACHE_FILE}")]
    if found and not (target / CACHE_FILE).exists():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(max(found, key=lambda p: p.stat().st_size), target / CACHE_FILE)


def summary_row(report: dict[str, Any]) -> dict[str, Any]:
    """The comparison-table row of one report; a cascade adds its gate share, cost saved and the F1 it loses
    against its stage 2 alone (each with its own threshold by the same rule)."""
    gate = report.get("cascade") or {}
    alone, cascade = gate.get("stage2_alone") or {}, gate.get("cascade") or {}
    f1_lost = round(alone["f1"] - cascade["f1"], 4) if "f1" in alone and "f1" in cascade else None
    return {
        "kind": report["kind"],
        "threshold": report["threshold"],
        "precision": report["precision"],
        "recall": report["recall"],
        "f1": report["f1"],
        "ap": report["average_precision"],
        "kept_words": report["retention"]["words"],
        "train_s": report["train_seconds"],
        "docs_per_s": report["docs_per_s"],
        "heldout_docs": report.get("n_heldout"),
        "pass_share": gate.get("pass_share"),
        "cost_saved": gate.get("cost_saved"),
        "f1_lost": f1_lost,
    }


def comparison_table(rows: list[dict[str, Any]]) -> str:
    """A fixed-width text table of `compare_families` rows (the report renders its own markdown)."""
    cols = list(rows[0]) if rows else []
    cells = [
        [("-" if r.get(c) is None else f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c])) for c in cols]
        for r in rows
    ]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)
