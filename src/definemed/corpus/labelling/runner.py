"""Label a document sample through the cache, count outcomes and enforce the failure budget.

`label_documents` asks the labeller only for documents whose key is not cached (equal texts are asked once),
appends every reply to the cache as it arrives, then writes `labels.jsonl` (id + labels of the documents that
got valid labels; the `file` labels format the corpus classifier reads) and `labelling_report.json`. When more
than `max_failure_share` of the documents have no valid labels it raises `FailureBudgetExceeded` instead of
writing `labels.jsonl`: the report and the cache (raw replies included) stay for inspection and `reparse`.
The budget is also checked as results stream in: once more documents have failed than the budget allows in the
whole sample, the batch stops (a dead endpoint costs a few requests, not the whole sample).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from definemed.artifacts import write_json, write_jsonl
from definemed.corpus.labelling.cache import CACHE_FILE, LabelCache, cache_key
from definemed.corpus.labelling.schema import ANSWERED, STATUSES, Document, LabelResult
from definemed.llm.errors import FailureBudgetExceeded

logger = logging.getLogger("definemed")

LABELS_FILE = "labels.jsonl"
REPORT_FILE = "labelling_report.json"


class Labeller(Protocol):
    backend: str
    parser: str  # how cached raw text is read back ("json_reply" rows can be reparsed)

    def identity(self) -> dict[str, Any]: ...

    def label_many(
        self, docs: Sequence[Document], on_result: Callable[[LabelResult], None] | None = None
    ) -> list[LabelResult]: ...


@dataclass
class LabellingRun:
    results: list[LabelResult]
    counts: dict[str, Any]
    outputs: dict[str, str] = field(default_factory=dict)


def build_labeller(settings: Any) -> Labeller:
    """The labeller for one `kind:` settings object: the registry's `labeller` family, built-in or a plugin's,
    called with its settings (imported lazily: torch only for `hf`)."""
    from definemed import registry

    return registry.get("labeller", settings.kind)(settings)


def summarize(results: Sequence[LabelResult]) -> dict[str, Any]:
    """Outcome counts per status, cache hits, failure share and token use."""
    by_status = Counter(r.status for r in results)
    total = len(results)
    failed = total - by_status["ok"]
    return {
        "total": total,
        **{s: by_status[s] for s in STATUSES},
        "failed": failed,
        "failure_share": failed / total if total else 0.0,
        "cached": sum(r.cached for r in results),
        "requests": sum(r.attempts for r in results if not r.cached),
        "prompt_tokens": sum(r.prompt_tokens for r in results if not r.cached),
        "completion_tokens": sum(r.completion_tokens for r in results if not r.cached),
    }


def budget_message(counts: dict[str, Any], max_failure_share: float, where: str = "") -> str:
    """One line: how many failed out of how many, by cause, and where the replies that came back are."""
    detail = ", ".join(f"{s}={counts[s]}" for s in STATUSES if s != "ok" and counts.get(s))
    answered = sum(counts.get(s, 0) for s in ANSWERED if s != "ok")
    transport = counts.get("timeout", 0) + counts.get("http_error", 0)
    hints = []
    if answered:
        hints.append(
            f"the {answered} replies that came back are cached with their raw text{where}: fix the "
            "prompt or parser and call reparse()"
        )
    if transport:
        hints.append(f"the {transport} failed requests are not cached and are asked again on a rerun")
    stopped = (
        f" (stopped early after {counts['done']} of {counts['total']})"
        if counts.get("done", counts["total"]) < counts["total"]
        else ""
    )
    return (
        f"labelling failed for {counts['failed']} of {counts['total']} documents "
        f"({counts['failure_share']:.1%} > max_failure_share {max_failure_share:.1%}){stopped}: "
        f"ok={counts['ok']}, {detail}. " + "; ".join(hints) + "."
    )


def check_budget(counts: dict[str, Any], max_failure_share: float, where: str = "") -> None:
    """Raise `FailureBudgetExceeded` with every count when the failure share is over budget."""
    if counts["failure_share"] <= max_failure_share:
        return
    raise FailureBudgetExceeded(budget_message(counts, max_failure_share, where), counts)


class _BudgetStop(Exception):
    """Raised from the result callback to stop a batch that can no longer meet its budget."""


def _unique_ids(docs: Sequence[Document]) -> None:
    seen: set[str] = set()
    dupes = {d.id for d in docs if d.id in seen or seen.add(d.id)}
    if dupes:
        raise ValueError(f"document ids must be unique; repeated: {sorted(dupes)[:5]}")


def _label_through_cache(
    docs: Sequence[Document], labeller: Labeller, cache: LabelCache, max_failure_share: float = 1.0
) -> tuple[list[LabelResult], bool]:
    """(results, complete): complete is False when the batch stopped early, over its failure budget."""
    identity = labeller.identity()
    keys = [cache_key(identity, d.text) for d in docs]
    todo: dict[str, Document] = {}  # one representative per uncached key
    for doc, key in zip(docs, keys, strict=True):
        if key not in cache.rows:
            todo.setdefault(key, doc)
    key_of = {doc.id: key for key, doc in todo.items()}
    copies = Counter(keys)
    meta = {"backend": labeller.backend, "model": identity.get("model"), "parser": labeller.parser}
    allowed = int(max_failure_share * len(docs) + 1e-9)
    failed = sum(copies[k] for k in set(keys) - set(todo) if cache.rows[k].get("status") != "ok")

    from tqdm.auto import tqdm

    logger.info(
        "labelling %d documents: %d cached, %d to ask", len(docs), len(docs) - sum(k in todo for k in keys), len(todo)
    )
    fresh: dict[str, LabelResult] = {}
    complete = True
    with tqdm(total=len(todo), desc=f"label ({labeller.backend})", unit="doc", disable=None) as progress:

        def store(result: LabelResult) -> None:
            nonlocal failed
            key = key_of[result.doc_id]
            fresh[key] = result
            if result.status in ANSWERED:  # failures are not cached: a rerun asks again
                cache.append(key, result, meta)
            progress.update(1)
            failed += copies[key] * (result.status != "ok")
            if failed > allowed:
                raise _BudgetStop

        try:
            labeller.label_many(list(todo.values()), on_result=store)
        except _BudgetStop:
            complete = False
    results = []
    for doc, key in zip(docs, keys, strict=True):
        if key in fresh:
            result = fresh[key]
            if result.doc_id != doc.id:  # an equal text under another id: same reply, no request of its own
                result = result.model_copy(
                    update={"doc_id": doc.id, "attempts": 0, "prompt_tokens": 0, "completion_tokens": 0}
                )
            results.append(result)
        elif key in cache.rows:
            results.append(cache.get(key, doc.id))
    return results, complete


def label_documents(
    docs: Sequence[Document],
    labeller: Labeller,
    out_dir: str | Path,
    max_failure_share: float = 0.05,
    cache_path: str | Path | None = None,
) -> LabellingRun:
    """Label `docs` (cached where possible), write labels and report to `out_dir`, enforce the budget.

    `cache_path` (default `out_dir/label_cache.jsonl`) may be shared by several runs and labellers: keys hold
    the labeller identity, so one file serves an audit and the later run on the sample without asking twice.
    """
    out_dir = Path(out_dir)
    cache_path = Path(cache_path) if cache_path is not None else out_dir / CACHE_FILE
    _unique_ids(docs)
    complete = True
    if getattr(labeller, "cacheable", True):
        with LabelCache(cache_path) as cache:
            results, complete = _label_through_cache(docs, labeller, cache, max_failure_share)
    else:
        results = labeller.label_many(list(docs))
    counts = summarize(results)
    if not complete:  # the share of the whole sample that is certain to fail already
        counts |= {"done": counts["total"], "total": len(docs), "failure_share": counts["failed"] / len(docs)}
    stats = getattr(labeller, "stats", None)
    report = {
        "backend": labeller.backend,
        "model": labeller.identity().get("model"),
        "max_failure_share": max_failure_share,
        "within_budget": counts["failure_share"] <= max_failure_share,
        "counts": counts,
        "errors": _error_examples(results),
        "complete": complete,
        **({"endpoint": stats} if stats else {}),
    }
    write_json(out_dir / REPORT_FILE, report)
    logger.info("labelling outcome: %s", {k: v for k, v in counts.items() if v})
    check_budget(counts, max_failure_share, where=f" in {cache_path}")
    write_jsonl(
        out_dir / LABELS_FILE,
        ({"id": r.doc_id, **r.labels.model_dump()} for r in results if r.status == "ok" and r.labels is not None),
    )
    return LabellingRun(
        results=results,
        counts=counts,
        outputs={"labels": LABELS_FILE, "report": REPORT_FILE, "cache": os.path.relpath(cache_path, out_dir)},
    )


def _error_examples(results: Sequence[LabelResult], per_status: int = 5) -> dict[str, list[dict[str, str]]]:
    """A few failed documents per status with their error, for the report."""
    examples: dict[str, list[dict[str, str]]] = {}
    for r in results:
        if r.status != "ok" and len(examples.setdefault(r.status, [])) < per_status:
            examples[r.status].append({"id": r.doc_id, "error": r.error or ""})
    return examples
