"""Metrics of the corpus stage's labelling step (`CorpusMetrics.labelling`, written by corpus_step.py): the audit
of every candidate labeller on gold documents, the choice among them, and the outcome of labelling the sample."""

from __future__ import annotations

from typing import Any

from definemed.stage import Metrics


class Confusion(Metrics):
    tp: int
    fp: int
    fn: int
    tn: int


class Interval(Metrics):
    value: float
    ci_low: float
    ci_high: float


class AuditMetrics(Metrics):
    precision: Interval
    recall: Interval
    f1: Interval
    accuracy: Interval


class SubdomainAccuracy(Metrics):
    accuracy: float
    n: int
    skipped: int


class AuditSummary(Metrics):
    """One candidate labeller's audit on the gold documents (corpus_step.audit_summary)."""

    kind: str
    model: str | None = None
    n: int
    metrics: AuditMetrics
    confusion: Confusion
    coverage: float
    subdomain: SubdomainAccuracy | None = None
    disagreements: int
    examples: list[dict[str, Any]] = []  # a few disagreements (id, gold, predicted, snippet, ...)
    note: str | None = None
    failed: int
    failure_share: float
    cached: int
    seconds: float
    docs_per_s: float | None = None


class AuditInfo(Metrics):
    """Which gold documents every candidate labelled."""

    gold: str
    gold_rows: int
    gold_in_survivors: int
    heldout_excluded: int
    docs: int
    medical: int
    seed: int
    max_docs: int | None = None


class RankRow(Metrics):
    labeller: str
    value: float
    ci_low: float
    ci_high: float
    accuracy: float
    coverage: float


class Selection(Metrics):
    best: str
    metric: str
    clearly_better: bool
    reason: str
    ranking: list[RankRow]


class LabellingCounts(Metrics):
    """Outcomes of labelling the sample (runner.summarize): one count per status, cache hits, token use.
    `done` appears when the failure budget stopped the batch early."""

    total: int
    ok: int
    invalid_json: int
    schema_error: int
    http_error: int
    timeout: int
    missing: int
    failed: int
    failure_share: float
    cached: int
    requests: int
    prompt_tokens: int
    completion_tokens: int
    done: int | None = None


class LabelSample(Metrics):
    requested: int | None = None
    seed: int | None = None
    survivors: int
    docs: int


class LabelShares(Metrics):
    docs: int
    medical: int
    medical_share: float


class Labelling(Metrics):
    """The stage's own labelling step (`corpus.labelling`): audits, the choice, the sample's labels."""

    labellers: list[str]
    chosen: str
    select_by: str
    max_failure_share: float
    sample: LabelSample
    audit: AuditInfo | None = None
    audits: dict[str, AuditSummary] = {}
    disqualified: dict[str, str] = {}
    selection: Selection | None = None
    counts: LabellingCounts
    sample_s: float
    docs_per_s: float | None = None
    labels: LabelShares
    seconds: float
