"""Audit of a labeller against a human-checked gold file, and the choice among several labellers.

The paper reports its Mixtral labels at F1 91.1 +- 2.5 against a human-checked reference; we report precision,
recall, F1 and accuracy with percentile-bootstrap 95 % intervals (documents resampled with replacement), the
confusion matrix, every disagreement with a text snippet, and subdomain accuracy where both sides have one.
Gold subdomains outside the label schema (`general`, `fitness`, `pharma_business`, ... in the demo) count as
`none` for non-medical gold documents and are skipped for medical ones (e.g. `non_german`). Gold documents
without a prediction are left out of the metrics and counted under `coverage`. A labeller without a single
disagreement gets a `note`: its bootstrap interval is a point, and the rule of three bounds what it may miss.
The report is plain JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from definemed.artifacts import read_jsonl
from definemed.corpus.labelling.schema import SUBDOMAINS, DocLabels
from definemed.corpus.scores import binary_scores

METRICS = ("precision", "recall", "f1", "accuracy")


def load_gold(path: str | Path) -> dict[str, dict[str, Any]]:
    """Gold rows by id; every row needs a boolean `medical`."""
    gold = {}
    for i, row in enumerate(read_jsonl(path), 1):
        if not isinstance(row.get("medical"), bool) or "id" not in row:
            raise ValueError(f"{path}: row {i} needs an 'id' and a boolean 'medical'")
        gold[str(row["id"])] = row
    return gold


def load_predictions(source: str | Path | Mapping[str, DocLabels | dict[str, Any]]) -> dict[str, DocLabels]:
    """Predictions from a `labels.jsonl` (id + label fields) or a mapping id -> labels."""
    if isinstance(source, str | Path):
        return {str(r.pop("id")): DocLabels.model_validate(r) for r in read_jsonl(source)}
    return {str(k): v if isinstance(v, DocLabels) else DocLabels.model_validate(v) for k, v in source.items()}


def bootstrap_intervals(
    gold: Any, pred: Any, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile-bootstrap interval per metric, resampling documents with replacement."""
    import numpy as np

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(gold), size=(resamples, len(gold)))
    sampled = binary_scores(gold[idx], pred[idx])
    tail = (1 - level) / 2 * 100
    return {m: (float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))) for m, v in sampled.items()}


def _expected_subdomain(row: dict[str, Any]) -> str | None:
    value = row.get("subdomain")
    if value in SUBDOMAINS:
        return value
    return "none" if value is not None and not row["medical"] else None


def subdomain_accuracy(gold: dict[str, dict[str, Any]], preds: dict[str, DocLabels]) -> dict[str, Any] | None:
    """Share of documents whose predicted subdomain equals the gold one (None when nothing is comparable)."""
    pairs = [(_expected_subdomain(row), preds[i].subdomain) for i, row in gold.items() if i in preds]
    compared = [(g, p) for g, p in pairs if g is not None and p is not None]
    if not compared:
        return None
    correct = sum(g == p for g, p in compared)
    return {"accuracy": correct / len(compared), "n": len(compared), "skipped": len(pairs) - len(compared)}


def audit_labels(
    predictions: str | Path | Mapping[str, Any],
    gold_path: str | Path,
    texts: Mapping[str, str] | None = None,
    *,
    name: str = "labeller",
    resamples: int = 1000,
    seed: int = 0,
    snippet_chars: int = 200,
) -> dict[str, Any]:
    """The audit report of one labeller: metrics with intervals, confusion, disagreements, coverage."""
    import numpy as np

    gold, preds = load_gold(gold_path), load_predictions(predictions)
    ids = [i for i in gold if i in preds]
    if not ids:
        raise ValueError(f"no prediction matches an id in {gold_path} ({len(preds)} predictions)")
    g = np.array([gold[i]["medical"] for i in ids])
    p = np.array([preds[i].medical for i in ids])
    point = binary_scores(g, p)
    intervals = bootstrap_intervals(g, p, resamples, seed)
    texts = texts or {}
    disagreements = [
        {
            "id": i,
            "gold": gold[i]["medical"],
            "predicted": preds[i].medical,
            "p_medical": preds[i].p_medical,
            "gold_subdomain": gold[i].get("subdomain"),
            "predicted_subdomain": preds[i].subdomain,
            "snippet": " ".join(texts.get(i, "").split())[:snippet_chars],
        }
        for i in ids
        if gold[i]["medical"] != preds[i].medical
    ]
    return {
        "labeller": name,
        "gold": str(gold_path),
        "n": len(ids),
        "coverage": {
            "gold": len(gold),
            "labelled": len(ids),
            "share": len(ids) / len(gold),
            "missing_ids": [i for i in gold if i not in preds][:20],
            "not_in_gold": sum(i not in gold for i in preds),
        },
        "metrics": {
            m: {"value": float(point[m]), "ci_low": intervals[m][0], "ci_high": intervals[m][1]} for m in METRICS
        },
        "confusion": {
            "tp": int((g & p).sum()),
            "fp": int((~g & p).sum()),
            "fn": int((g & ~p).sum()),
            "tn": int((~g & ~p).sum()),
        },
        "bootstrap": {"resamples": resamples, "seed": seed, "level": 0.95},
        "subdomain": subdomain_accuracy(gold, preds),
        "disagreements": disagreements,
        "note": _no_error_note(len(ids)) if not disagreements else None,
    }


def _no_error_note(n: int) -> str:
    """Without a single disagreement every bootstrap resample scores 1, so the interval says nothing."""
    return (
        f"no disagreement on {n} documents: the bootstrap interval collapses to a point; by the rule of three "
        f"the disagreement rate may still be up to {min(3 / n, 1):.0%} (95 %)"
    )


def select_labeller(audits: Mapping[str, dict[str, Any]], metric: str = "f1") -> dict[str, Any]:
    """Pick the labeller with the best `metric` (ties: accuracy, then coverage) and say why."""
    if not audits:
        raise ValueError("select_labeller needs at least one audit")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got '{metric}'")

    def row(name: str, audit: dict[str, Any]) -> dict[str, Any]:
        m = audit["metrics"][metric]
        return {
            "labeller": name,
            "value": m["value"],
            "ci_low": m["ci_low"],
            "ci_high": m["ci_high"],
            "accuracy": audit["metrics"]["accuracy"]["value"],
            "coverage": audit["coverage"]["share"],
        }

    ranking = sorted(
        (row(n, a) for n, a in audits.items()), key=lambda r: (r["value"], r["accuracy"], r["coverage"]), reverse=True
    )
    best = ranking[0]
    reason = (
        f"{best['labeller']} has the highest {metric}: {best['value']:.3f} "
        f"[{best['ci_low']:.3f}, {best['ci_high']:.3f}] on {best['coverage']:.0%} of the gold set"
    )
    clearly_better = True
    if len(ranking) > 1:
        second = ranking[1]
        clearly_better = best["ci_low"] > second["ci_high"]
        reason += (
            f"; runner-up {second['labeller']}: {second['value']:.3f} "
            f"[{second['ci_low']:.3f}, {second['ci_high']:.3f}]; "
            + (
                "the 95 % intervals do not overlap"
                if clearly_better
                else "the 95 % intervals overlap, so the lead may be noise"
            )
        )
    if best["coverage"] < 1:
        reason += f"; note: {1 - best['coverage']:.0%} of the gold documents have no label from it"
    if note := audits[best["labeller"]].get("note"):
        reason += f"; {note}"
    return {
        "best": best["labeller"],
        "metric": metric,
        "clearly_better": clearly_better,
        "reason": reason,
        "ranking": ranking,
    }
