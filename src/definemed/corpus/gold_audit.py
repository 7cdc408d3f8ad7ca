"""A saved classifier against gold documents: the corpus stage's real test set and `definemed audit`.

`load_classifier(dir)` reads the family from the folder's `meta.json` and the threshold the stage chose from its
`report.json`. `read_gold(path)` reads JSONL gold documents (`id`, `text`, boolean `medical`, optional `genre`,
`source`, `subdomain`, `origin`); malformed lines are counted with their line numbers, never fatal.
`audit_scores` gives precision/recall/F1/accuracy with percentile-bootstrap 95 % intervals (documents
resampled), the confusion matrix, per-value breakdowns of the descriptive fields, recall on short medical
documents, the false-positive rate on technical text, and the worst misclassifications.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from definemed.artifacts import iter_json_lines

BREAKDOWN_FIELDS = ("genre", "source", "subdomain", "origin")
# Medical documents up to this many characters count as short (a paragraph, not a page).
SHORT_CHARS = 300
# Gold subdomains counted as technical text (false-positive rate on technical text).
TECHNICAL = frozenset({"technical"})
REPORT = "report.json"


@dataclass
class GoldSet:
    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    labels: list[bool] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)  # descriptive fields only (no text)
    bad_lines: list[int] = field(default_factory=list)


def read_gold(path: str | Path) -> GoldSet:
    """Gold documents of a JSONL file; a line that is not a JSON object with a string `text` and a boolean
    `medical` is counted in `bad_lines` (1-based line numbers) and skipped."""
    gold = GoldSet()
    for lineno, row in iter_json_lines(path):
        if not (isinstance(row, dict) and isinstance(row.get("text"), str) and isinstance(row.get("medical"), bool)):
            gold.bad_lines.append(lineno)
            continue
        gold.ids.append(str(row.get("id", f"line-{lineno}")))
        gold.texts.append(row["text"])
        gold.labels.append(row["medical"])
        gold.rows.append(
            {k: row[k] for k in BREAKDOWN_FIELDS if isinstance(row.get(k), str)} | {"chars": len(row["text"])}
        )
    return gold


def load_classifier(model_dir: str | Path) -> tuple[Any, float, dict[str, Any]]:
    """(classifier, saved threshold, meta) of a classifier folder written by the corpus stage."""
    from definemed import registry
    from definemed.errors import DefinemedError

    model_dir = Path(model_dir)
    meta_file, report_file = model_dir / "meta.json", model_dir / REPORT
    if not meta_file.is_file():
        raise DefinemedError(
            f"{model_dir}: no meta.json; give a classifier folder written by the corpus stage "
            "(<run>/corpus/classifier or classifier/compare/<kind>)"
        )
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    if not report_file.is_file():
        raise DefinemedError(
            f"{model_dir}: no {REPORT} with the chosen threshold; the stage writes it last, so "
            "the folder holds an interrupted training: rerun the corpus stage"
        )
    threshold = float(json.loads(report_file.read_text(encoding="utf-8"))["threshold"])
    try:
        cls = registry.get("classifier", meta.get("kind", "?"))
    except KeyError as exc:
        raise DefinemedError(f"{meta_file}: unknown classifier kind {meta.get('kind')!r}") from exc
    return cls.load(model_dir), threshold, meta


def _metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from definemed.corpus.scores import binary_scores

    return {k: round(float(v), 4) for k, v in binary_scores(y, pred).items()}


def _intervals(y: np.ndarray, pred: np.ndarray, rounds: int, seed: int) -> dict[str, list[float]]:
    from definemed.corpus.labelling.audit import bootstrap_intervals

    return {k: [round(lo, 4), round(hi, 4)] for k, (lo, hi) in bootstrap_intervals(y, pred, rounds, seed).items()}


def _rate(mask: np.ndarray, values: np.ndarray) -> float | None:
    return round(float(values[mask].mean()), 4) if mask.any() else None


def audit_scores(
    gold: GoldSet, scores: Any, threshold: float, rounds: int = 1000, seed: int = 0, worst: int = 10
) -> dict[str, Any]:
    """Everything `definemed audit` prints and the stage's real-test rows hold, for scores at `threshold`."""
    s = np.asarray(scores, dtype=np.float64)
    y, pred = np.asarray(gold.labels, dtype=bool), s >= threshold
    tp, fp = int((y & pred).sum()), int((~y & pred).sum())
    fn, tn = int((y & ~pred).sum()), int((~y & ~pred).sum())
    chars = np.array([r["chars"] for r in gold.rows])
    technical = np.array([r.get("subdomain") in TECHNICAL for r in gold.rows], dtype=bool)
    short = y & (chars <= SHORT_CHARS)
    breakdown = {}
    for name in BREAKDOWN_FIELDS:
        values = [r.get(name) for r in gold.rows]
        if not any(values):
            continue
        table = {}
        for value in sorted({v for v in values if v}):
            m = np.array([v == value for v in values])
            table[value] = {
                "n": int(m.sum()),
                "medical": int(y[m].sum()),
                "recall": _rate(m & y, pred),
                "false_positive_rate": _rate(m & ~y, pred),
                "accuracy": round(float((pred[m] == y[m]).mean()), 4),
            }
        breakdown[name] = table
    wrong = np.flatnonzero(pred != y)
    # Worst: the most confident mistakes (a false positive scoring 0.99, a missed medical text scoring 0.01).
    order = wrong[np.argsort(-np.abs(s[wrong] - threshold), kind="stable")][:worst]
    return {
        "n": len(y),
        "threshold": round(float(threshold), 6),
        **_metrics(y, pred),
        "intervals_95": _intervals(y, pred, rounds, seed) if len(y) else {},
        "bootstrap": {"resamples": rounds, "seed": seed},
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
        "support": {"medical": int(y.sum()), "other": int((~y).sum())},
        "false_positive_rate": _rate(~y, pred),
        "technical_false_positive_rate": _rate(technical & ~y, pred),
        "technical_docs": int(technical.sum()),
        "short_medical_recall": _rate(short, pred),
        "short_medical_docs": int(short.sum()),
        "short_chars": SHORT_CHARS,
        "breakdown": breakdown,
        "worst": [
            {
                "id": gold.ids[i],
                "gold": bool(y[i]),
                "score": round(float(s[i]), 4),
                **{k: v for k, v in gold.rows[i].items() if k != "chars"},
                "text": " ".join(gold.texts[i].split())[:160],
            }
            for i in order
        ],
    }


def real_test_row(audit: dict[str, Any]) -> dict[str, Any]:
    """The few real-test figures a comparison row carries."""
    lo, hi = audit["intervals_95"].get("f1", [None, None])
    return {
        "real_n": audit["n"],
        "real_precision": audit["precision"],
        "real_recall": audit["recall"],
        "real_f1": audit["f1"],
        "real_f1_lo": lo,
        "real_f1_hi": hi,
        "real_fpr_technical": audit["technical_false_positive_rate"],
        "real_recall_short": audit["short_medical_recall"],
    }


# Encoder scoring throughput on one GPU at 512 tokens, measured by benchmarks/gpu_check.py (H200, see
# docs/scale.md); used to project GPU-hours of a cascade's stage 2. Families not listed run on CPUs.
GPU_DOCS_PER_S = {"finetune": 9_605.0, "embedding": 9_605.0}
FINEWEB2_DE_DOCS = 428_000_000


def cascade_scores(model: Any, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cascade scores, stage-2-alone scores, routed mask) with stage 2 run once on every text."""
    from definemed.corpus.cascade import REJECT_SCORE

    _, passed = model.route(texts)
    alone = np.asarray(model.stage2.predict_proba(texts), dtype=np.float64)
    return np.where(passed, alone, REJECT_SCORE), alone, passed


def cascade_on_real(
    model: Any,
    folder: Path,
    gold: GoldSet,
    scores: np.ndarray,
    threshold: float,
    alone_scores: np.ndarray,
    passed: np.ndarray,
    seed: int,
) -> dict[str, Any]:
    """The cascade against its stage 2 alone (stage 2's own saved cut) on the real test set, the share routed to
    stage 2 and the projected hours for FineWeb2's German split at that share."""
    from definemed.corpus.training import seconds_per_doc

    report = json.loads((folder / REPORT).read_text(encoding="utf-8"))
    alone_threshold = float(report["cascade"]["stage2_alone"]["threshold"])
    alone = audit_scores(gold, alone_scores, alone_threshold, seed=seed, worst=0)
    share = float(passed.mean()) if len(passed) else 0.0
    c1, c2 = seconds_per_doc(model.stage1, gold.texts), seconds_per_doc(model.stage2, gold.texts)
    gpu = GPU_DOCS_PER_S.get(model.stage2.kind)
    return {
        "stage2_kind": model.stage2.kind,
        "stage2_alone": real_test_row(alone),
        "routed_share": round(share, 4),
        "routed_medical_recall": _rate(np.asarray(gold.labels, dtype=bool), passed),
        "f1_gap_vs_stage2": round(alone["f1"] - audit_scores(gold, scores, threshold, rounds=1, worst=0)["f1"], 4),
        "projection_docs": FINEWEB2_DE_DOCS,
        "stage1_cpu_hours": round(c1 * FINEWEB2_DE_DOCS / 3600, 1),
        "stage2_cpu_hours": round(c2 * share * FINEWEB2_DE_DOCS / 3600, 1),
        "stage2_alone_cpu_hours": round(c2 * FINEWEB2_DE_DOCS / 3600, 1),
        "stage2_gpu_hours": round(share * FINEWEB2_DE_DOCS / gpu / 3600, 2) if gpu else None,
        "stage2_alone_gpu_hours": round(FINEWEB2_DE_DOCS / gpu / 3600, 2) if gpu else None,
        "gpu_docs_per_s": gpu,
        "cpu_note": "one core of this machine; stage-1/2 seconds per document measured "
        "on the real test set without caches",
    }


def real_test_in_stage(path: Path, classifier_dir: Path, kinds: dict[str, Path], seed: int) -> dict[str, Any]:
    """Score every trained family (kind -> folder) on the real test set at its saved threshold; each folder gets
    `real_test.json`. Returns the summary the stage keeps in its metrics."""
    from definemed.artifacts import write_json

    gold = read_gold(path)
    families: dict[str, Any] = {}
    for kind, folder in kinds.items():
        model, threshold, _ = load_classifier(folder)
        if hasattr(model, "use_cache"):
            model.use_cache = False  # the real test set stays out of the training caches
        if kind == "cascade":
            scores, alone, passed = cascade_scores(model, gold.texts)
        else:
            scores = np.asarray(model.predict_proba(gold.texts), dtype=np.float64)
        audit = audit_scores(gold, scores, threshold, seed=seed)
        if kind == "cascade":
            audit["cascade"] = cascade_on_real(model, folder, gold, scores, threshold, alone, passed, seed)
        write_json(folder / "real_test.json", audit)
        families[kind] = {
            **real_test_row(audit),
            "folder": str(folder.relative_to(classifier_dir.parent)),
            "breakdown_genre": audit["breakdown"].get("genre"),
            "cascade": audit.get("cascade"),
        }
    return {
        "path": str(path),
        "n": len(gold.ids),
        "medical": int(sum(gold.labels)),
        "bad_lines": len(gold.bad_lines),
        "families": families,
    }
