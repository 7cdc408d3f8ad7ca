"""LLM labelling inside the corpus stage (`corpus.labelling`): sample the filter survivors, audit the candidate
labellers on gold documents, label the sample with the best one, hand the labels to the classifier.

The expensive part runs once: every candidate labels only the audit documents (a few dozen gold documents), and
only the candidate with the best `select_by` metric labels the sample. A candidate over the failure budget on the
audit is disqualified; with a single labeller, or on the sample, the budget stops the run. The audit documents are
gold documents that survived the filters and are *not* in the classifier's held-out split, so choosing a labeller
never looks at the documents the classifier is scored on, and `heldout_vs_gold` (the classifier against gold on
its held-out split) stays an unbiased end-to-end figure.

Files under `<stage>/labelling/`:
  label_cache.jsonl       every reply of every cacheable labeller, keyed by labeller identity and text: a rerun of
                          an interrupted stage asks nothing twice, and the chosen labeller's audit replies are not
                          asked again for the sample
  audit/gold.jsonl        the gold rows audited
  audit/<name>/           labels.jsonl, labelling_report.json and audit.json of each candidate
  labels.jsonl            the chosen labeller's labels of the sample: what the classifier trains on
  labelling_report.json   outcome counts of that run
  selection.json          the audit summaries, the ranking and the choice
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from definemed.artifacts import file_sha256, read_jsonl, write_json, write_jsonl
from definemed.corpus.config import FileLabels
from definemed.corpus.labelling.audit import audit_labels, load_gold, select_labeller
from definemed.corpus.labelling.cache import CACHE_FILE
from definemed.corpus.labelling.runner import (
    LABELS_FILE,
    FailureBudgetExceeded,
    Labeller,
    build_labeller,
    label_documents,
)
from definemed.corpus.labelling.sampling import reservoir_sample, sample_stream
from definemed.corpus.labelling.schema import Document
from definemed.corpus.labelling.settings import AuditSettings, LabellingSettings, SampleSettings

logger = logging.getLogger("definemed")

AUDIT_DIR, GOLD_FILE, AUDIT_FILE, SELECTION_FILE = "audit", "gold.jsonl", "audit.json", "selection.json"
EXAMPLES = 3  # disagreements per labeller kept in the metrics (all of them are in audit.json)


@dataclass
class LabellingOutcome:
    labels: FileLabels  # the labels file the classifier trains on
    metrics: dict[str, Any]


def folder_name(name: str) -> str:
    """A labeller name as one path component (`hf:HuggingFaceTB/SmolLM2` has a slash)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "labeller"


def read_survivors(
    sample: SampleSettings | None, survivors: Path, wanted: set[str]
) -> tuple[list[Document], dict[str, Document], int]:
    """One pass over the survivors: the sample (all of them without `sample`), the documents whose id is in
    `wanted` (the gold ids, in stream order) and the number of survivors."""
    found: dict[str, Document] = {}

    def tap(docs: Iterator[Document]) -> Iterator[Document]:
        for doc in docs:
            if doc.id in wanted:
                found[doc.id] = doc
            yield doc

    stream = tap(sample_stream([survivors]))
    if sample is None:
        docs = list(stream)
        return docs, found, len(docs)
    docs, seen = reservoir_sample(stream, sample.n, sample.seed)
    logger.info("[corpus] labelling sample: %d of %d survivors (seed %d)", len(docs), seen, sample.seed)
    return docs, found, seen


def audit_documents(
    audit: AuditSettings,
    gold: dict[str, dict[str, Any]],
    found: dict[str, Document],
    heldout: Callable[[str], bool],
    folder: Path,
) -> tuple[list[Document], dict[str, Any]]:
    """Gold documents among the survivors outside the held-out split, at most `max_docs` (drawn with `seed`);
    their gold rows go to `folder/gold.jsonl`."""
    eligible = [doc for doc_id, doc in found.items() if not heldout(doc_id)]
    picked = eligible
    if audit.max_docs is not None and len(eligible) > audit.max_docs:
        keep = {d.id for d in random.Random(audit.seed).sample(eligible, audit.max_docs)}
        picked = [d for d in eligible if d.id in keep]
    if not picked:
        raise ValueError(
            f"corpus.labelling.audit.gold: none of the {len(gold)} documents of {audit.gold} is among "
            f"the filter survivors outside the classifier's held-out split ({len(found)} survived); "
            "nothing to audit"
        )
    write_jsonl(folder / GOLD_FILE, (gold[d.id] for d in picked))
    return picked, {
        "gold": str(audit.gold),
        "gold_rows": len(gold),
        "gold_in_survivors": len(found),
        "heldout_excluded": len(found) - len(eligible),
        "docs": len(picked),
        "medical": sum(bool(gold[d.id]["medical"]) for d in picked),
        "seed": audit.seed,
        "max_docs": audit.max_docs,
    }


def refuse_gold_as_labeller(settings: LabellingSettings) -> None:
    """A file labeller that reads the gold file would audit itself: trivially perfect, so an error."""
    audit = settings.audit
    if audit is None or not audit.gold.is_file():
        return
    gold_sha = file_sha256(audit.gold)
    for lab in settings.candidates:
        if lab.kind == "file" and lab.path.is_file() and file_sha256(lab.path) == gold_sha:
            raise ValueError(
                f"corpus.labelling: labeller '{lab.label}' reads the audit's gold file ({audit.gold}); "
                "its audit would be trivially perfect. Put hand-made labels in corpus.labels, or audit "
                "against another gold file"
            )


def _docs_per_s(counts: dict[str, Any], seconds: float) -> float | None:
    asked = counts["total"] - counts["cached"]
    return round(asked / seconds, 2) if asked and seconds > 0 else None


def audit_candidate(
    name: str, labeller: Labeller, docs: list[Document], settings: LabellingSettings, folder: Path, cache: Path
) -> dict[str, Any]:
    """Label the audit documents with one candidate and audit the labels; writes `folder/<name>/audit.json`."""
    audit = settings.audit
    assert audit is not None
    out = folder / folder_name(name)
    t0 = time.perf_counter()
    run = label_documents(docs, labeller, out, settings.max_failure_share, cache_path=cache)
    seconds = time.perf_counter() - t0
    report = audit_labels(
        out / LABELS_FILE,
        folder / GOLD_FILE,
        {d.id: d.text for d in docs},
        name=name,
        resamples=audit.resamples,
        seed=audit.seed,
        snippet_chars=audit.snippet_chars,
    )
    report["labelling"] = {
        "counts": run.counts,
        "seconds": round(seconds, 2),
        "docs_per_s": _docs_per_s(run.counts, seconds),
    }
    write_json(out / AUDIT_FILE, report)
    m = report["metrics"]
    logger.info(
        "[corpus] audit of labeller '%s' on %d gold docs: P %.3f R %.3f F1 %.3f [%.3f, %.3f] (%.1f s)",
        name,
        report["n"],
        m["precision"]["value"],
        m["recall"]["value"],
        m["f1"]["value"],
        m["f1"]["ci_low"],
        m["f1"]["ci_high"],
        seconds,
    )
    return report


def audit_summary(report: dict[str, Any], settings: Any) -> dict[str, Any]:
    """The part of an audit that goes into the stage metrics (the report and card read it)."""
    counts = report["labelling"]["counts"]
    return {
        "kind": settings.kind,
        "model": getattr(settings, "model", None) or str(getattr(settings, "path", "")),
        "n": report["n"],
        "metrics": report["metrics"],
        "confusion": report["confusion"],
        "coverage": report["coverage"]["share"],
        "subdomain": report["subdomain"],
        "disagreements": len(report["disagreements"]),
        "examples": report["disagreements"][:EXAMPLES],
        "note": report.get("note"),
        "failed": counts["failed"],
        "failure_share": round(counts["failure_share"], 4),
        "cached": counts["cached"],
        "seconds": report["labelling"]["seconds"],
        "docs_per_s": report["labelling"]["docs_per_s"],
    }


def run_audits(
    settings: LabellingSettings, labellers: dict[str, Labeller], docs: list[Document], folder: Path, cache: Path
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Audit every candidate; one over the failure budget is disqualified unless it is the only one."""
    audits, disqualified = {}, {}
    for name, labeller in labellers.items():
        try:
            audits[name] = audit_candidate(name, labeller, docs, settings, folder, cache)
        except FailureBudgetExceeded as exc:
            if len(labellers) == 1:
                raise FailureBudgetExceeded(
                    f"corpus.labelling: labeller '{name}' on the audit: {exc}", exc.counts
                ) from None
            logger.warning("[corpus] labeller '%s' disqualified: %s", name, exc)
            disqualified[name] = str(exc)
    if not audits:
        raise RuntimeError(
            "corpus.labelling: every labeller went over max_failure_share on the audit: "
            + "; ".join(f"{n}: {why}" for n, why in disqualified.items())
        )
    return audits, disqualified


def label_survivors(
    settings: LabellingSettings, survivors: Path, out_dir: Path, heldout: Callable[[str], bool]
) -> LabellingOutcome:
    """Audit the candidates (when `audit` is set), label the sample with the chosen one, write `labels.jsonl`."""
    t0 = time.perf_counter()
    refuse_gold_as_labeller(settings)
    gold = load_gold(settings.audit.gold) if settings.audit is not None else {}
    sample, found, n_survivors = read_survivors(settings.sample, survivors, set(gold))
    if not sample:
        raise RuntimeError(f"corpus.labelling: no filter survivors to label in {survivors}")
    labellers = {lab.label: build_labeller(lab) for lab in settings.candidates}
    by_name = {lab.label: lab for lab in settings.candidates}
    cache = out_dir / CACHE_FILE
    audits: dict[str, dict[str, Any]] = {}
    disqualified: dict[str, str] = {}
    audit_info = selection = None
    chosen = next(iter(labellers))
    if settings.audit is not None:
        folder = out_dir / AUDIT_DIR
        docs, audit_info = audit_documents(settings.audit, gold, found, heldout, folder)
        audits, disqualified = run_audits(settings, labellers, docs, folder, cache)
        selection = select_labeller(audits, settings.select_by)
        chosen = selection["best"]
        logger.info("[corpus] labeller chosen: %s", selection["reason"])
    t1 = time.perf_counter()
    try:
        run = label_documents(sample, labellers[chosen], out_dir, settings.max_failure_share, cache_path=cache)
    except FailureBudgetExceeded as exc:
        raise FailureBudgetExceeded(
            f"corpus.labelling: labeller '{chosen}' on the sample of {len(sample)} documents: {exc}", exc.counts
        ) from None
    sample_s = time.perf_counter() - t1
    labelled = read_jsonl(out_dir / LABELS_FILE)
    medical = sum(bool(r["medical"]) for r in labelled)
    metrics = {
        "labellers": list(labellers),
        "chosen": chosen,
        "select_by": settings.select_by,
        "max_failure_share": settings.max_failure_share,
        "sample": {
            "requested": settings.sample.n if settings.sample else None,
            "seed": settings.sample.seed if settings.sample else None,
            "survivors": n_survivors,
            "docs": len(sample),
        },
        "audit": audit_info,
        "audits": {name: audit_summary(report, by_name[name]) for name, report in audits.items()},
        "disqualified": disqualified,
        "selection": None
        if selection is None
        else {k: selection[k] for k in ("best", "metric", "clearly_better", "reason", "ranking")},
        "counts": run.counts,
        "sample_s": round(sample_s, 2),
        "docs_per_s": _docs_per_s(run.counts, sample_s),
        "labels": {
            "docs": len(labelled),
            "medical": medical,
            "medical_share": round(medical / len(labelled), 4) if labelled else 0.0,
        },
        "seconds": round(time.perf_counter() - t0, 2),
    }
    write_json(out_dir / SELECTION_FILE, {**metrics, "selection": selection})
    return LabellingOutcome(FileLabels(path=out_dir / LABELS_FILE), metrics)


def heldout_vs_gold(scores_path: Path, gold_path: Path, threshold: float) -> dict[str, Any] | None:
    """The classifier (score >= threshold) and the labels it learned, each against gold, on the held-out documents
    that have a gold label. None without such documents."""
    from definemed.corpus.scores import binary_metrics

    if not scores_path.is_file():
        return None
    gold = load_gold(gold_path)
    rows = [r for r in read_jsonl(scores_path) if r["id"] in gold]
    if not rows:
        return None
    truth = [bool(gold[r["id"]]["medical"]) for r in rows]
    keys = ("precision", "recall", "f1", "accuracy")
    classifier = binary_metrics(truth, [r["score"] >= threshold for r in rows])
    labels = binary_metrics(truth, [bool(r["label"]) for r in rows])
    return {
        "n": len(rows),
        "gold": str(gold_path),
        "classifier": {k: classifier[k] for k in (*keys, "confusion")},
        "training_labels": {k: labels[k] for k in keys},
    }
