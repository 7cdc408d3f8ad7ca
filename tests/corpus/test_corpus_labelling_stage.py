"""LLM labelling and the family comparison inside the corpus stage, on the synthetic shards of conftest.py.

The OpenAI labeller talks to the local fake server (tests/openai_fake.py); the responder answers by whether the
prompt holds one of the session's medical sentences, so the labels are right unless a test scripts otherwise.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import GERMAN_MEDICAL
from tests.openai_fake import FakeOpenAIServer, Reply, fail, last_message_text, ok

from definemed.artifacts import read_jsonl, write_jsonl
from definemed.corpus.contract import bind
from definemed.corpus.labelling.runner import FailureBudgetExceeded
from definemed.corpus.stage import run
from definemed.stage import StageContext

FAST = {"bucket": 20_000, "cutoff": 2_000, "epoch": 30, "lr": 0.5}
GERMAN_IDS = [f"<urn:uuid:{kind}-{i:02d}>" for kind in ("medical", "general") for i in range(14)]


def _run(cfg: Any) -> tuple[Any, Path]:
    ctx = StageContext(run_dir=cfg.run.run_dir, stage="corpus")
    ctx.stage_dir.mkdir(parents=True, exist_ok=True)
    return run(bind(cfg), ctx), ctx.stage_dir


def _is_medical(prompt: str) -> bool:
    return any(sentence in prompt for sentence in GERMAN_MEDICAL)


def _reply(prompt: str) -> Reply:
    medical = _is_medical(prompt)
    return ok(
        json.dumps(
            {"medical": medical, "edu_score": 3 if medical else 0, "subdomain": "clinical" if medical else "none"}
        )
    )


class FlakyResponder:
    """Right answers, except: the 1st distinct document gets a 500 first, the 2nd a 429 first, the 3rd only
    prose (never JSON). Counts requests per document text."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.asked: Counter[str] = Counter()

    def __call__(self, request: dict[str, Any], hit: int) -> Reply:
        prompt = last_message_text(request)
        key = hashlib.sha256(prompt.encode()).hexdigest()
        if key not in self.order:
            self.order.append(key)
        self.asked[key] += 1
        rank, attempt = self.order.index(key), self.asked[key]
        if rank == 0 and attempt == 1:
            return fail(500, "upstream exploded")
        if rank == 1 and attempt == 1:
            return fail(429, "slow down", headers={"Retry-After": "0.05"})
        if rank == 2:
            return ok("Das ist eine schwierige Frage, ich bin mir nicht sicher.")
        return _reply(prompt)


def _openai(server: FakeOpenAIServer, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "openai",
        "model": "fake-labeller",
        "base_url": server.base_url,
        "concurrency": 1,
        "structured_output": "plain",
        "max_retries": 2,
        "backoff_s": 0.01,
        "max_backoff_s": 0.5,
        "timeout_s": 10,
        **extra,
    }


def _gold(tmp_path: Path, corpus_inputs: dict) -> Path:
    path = tmp_path / "gold.jsonl"
    write_jsonl(
        path,
        [
            {"id": i, "medical": "medical-" in i, "subdomain": "clinical" if "medical-" in i else "none"}
            for i in GERMAN_IDS
        ],
    )
    return path


def test_openai_labeller_in_the_stage_counts_errors_and_completes(
    tmp_path: Path, corpus_inputs: dict, make_config: Any
) -> None:
    responder = FlakyResponder()
    with FakeOpenAIServer(responder) as server:
        cfg = make_config(corpus_inputs, labels=None, labelling={"labeller": _openai(server), "max_failure_share": 0.1})
        result, stage_dir = _run(cfg)
    lab = result.metrics.labelling
    counts = lab.counts
    assert counts.total == 28 and counts.ok == 27 and counts.invalid_json == 1
    assert counts.http_error == counts.timeout == 0
    # 28 documents, two of them retried once (500, 429); the prose reply is final (asked again only on a rerun)
    assert counts.requests == 30 == server.hits
    report = json.loads((stage_dir / "labelling" / "labelling_report.json").read_text())
    assert report["errors"]["invalid_json"][0]["error"].startswith("invalid JSON")
    labels = read_jsonl(stage_dir / "labelling" / "labels.jsonl")
    assert len(labels) == 27 == lab.labels.docs
    assert all(row["medical"] == ("medical-" in row["id"]) for row in labels)
    clf = result.metrics.classifier
    assert clf.n_train + clf.n_heldout == 27 and clf.f1 >= 0.8
    assert result.outputs["labelling"] == "labelling"
    # Pipeline B's profile reads the produced labels: kept documents get the labeller's subdomains
    assert set(result.metrics.subdomains) <= {"clinical", "none"} and result.metrics.subdomains["clinical"] >= 8
    assert lab.audit is None and lab.selection is None and lab.chosen == "openai:fake-labeller"


def test_failure_budget_stops_the_stage_with_a_clear_message(
    tmp_path: Path, corpus_inputs: dict, make_config: Any
) -> None:
    def responder(request: dict, hit: int) -> Reply:
        prompt = last_message_text(request)
        return ok("keine Ahnung") if "Impfung" in prompt or "Zinsen" in prompt else _reply(prompt)

    with FakeOpenAIServer(responder) as server:
        cfg = make_config(
            corpus_inputs, labels=None, labelling={"labeller": _openai(server), "max_failure_share": 0.05}
        )
        with pytest.raises(FailureBudgetExceeded) as err:
            _run(cfg)
    message = str(err.value)
    assert message.startswith("corpus.labelling: labeller 'openai:fake-labeller' on the sample of 28 documents")
    assert "max_failure_share 5.0%" in message and "invalid_json=" in message
    assert err.value.counts["invalid_json"] >= 2
    assert not (tmp_path / "run" / "corpus" / "labelling" / "labels.jsonl").exists()


def test_the_better_labeller_wins_the_audit(tmp_path: Path, corpus_inputs: dict, make_config: Any) -> None:
    gold = _gold(tmp_path, corpus_inputs)
    good, poor = tmp_path / "good.jsonl", tmp_path / "poor.jsonl"
    write_jsonl(good, [{"id": i, "medical": ("medical-" in i) != (i == GERMAN_IDS[0])} for i in GERMAN_IDS])
    write_jsonl(poor, [{"id": i, "medical": "medical-" in i and int(i[-3:-1]) % 3 == 0} for i in GERMAN_IDS])
    labelling = {
        "labellers": [
            {"name": "poor", "kind": "file", "path": str(poor)},
            {"name": "good", "kind": "file", "path": str(good)},
        ],
        "audit": {"gold": str(gold), "resamples": 200},
    }
    result, stage_dir = _run(make_config(corpus_inputs, labels=None, labelling=labelling))
    lab = result.metrics.labelling
    assert lab.chosen == "good" and lab.selection.best == "good"
    assert [r.labeller for r in lab.selection.ranking] == ["good", "poor"]
    audits = lab.audits
    assert audits["poor"].metrics.recall.value < 0.6 < audits["good"].metrics.f1.value
    for audit in audits.values():
        f1 = audit.metrics.f1
        assert f1.ci_low <= f1.value <= f1.ci_high and sum(audit.confusion.model_dump().values()) == audit.n
    # the classifier learned the chosen labeller's labels
    learned = {r["id"]: r["medical"] for r in read_jsonl(stage_dir / "labelling" / "labels.jsonl")}
    assert learned == {r["id"]: r["medical"] for r in read_jsonl(good)}
    # audit documents and the classifier's held-out documents are disjoint; every held-out one is scored vs gold
    audited = {r["id"] for r in read_jsonl(stage_dir / "labelling" / "audit" / "gold.jsonl")}
    heldout = {r["id"] for r in read_jsonl(stage_dir / "classifier" / "heldout_scores.jsonl")}
    assert audited and heldout and not audited & heldout
    assert len(audited) + len(heldout) == 28 == lab.audit.docs + lab.audit.heldout_excluded
    vs_gold = result.metrics.classifier.vs_gold
    assert vs_gold.n == len(heldout) == result.metrics.classifier.n_heldout
    card = (stage_dir / "README.md").read_text()
    assert "| good (chosen) | file |" in card and "## Labels" in card


def test_a_labeller_reading_the_gold_file_is_refused(tmp_path: Path, corpus_inputs: dict, make_config: Any) -> None:
    gold = _gold(tmp_path, corpus_inputs)
    labelling = {"labeller": {"kind": "file", "path": str(gold)}, "audit": {"gold": str(gold)}}
    with pytest.raises(ValueError, match="reads the audit's gold file.*trivially perfect"):
        _run(make_config(corpus_inputs, labels=None, labelling=labelling))


def test_interrupted_labelling_resumes_without_asking_twice(
    tmp_path: Path, corpus_inputs: dict, make_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from definemed.corpus.labelling.cache import LabelCache

    asked: Counter[str] = Counter()

    def responder(request: dict, hit: int) -> Reply:
        prompt = last_message_text(request)
        asked[prompt] += 1
        return _reply(prompt)

    real_append, appended = LabelCache.append, []

    def append_then_die(self: LabelCache, *args: Any) -> None:
        real_append(self, *args)  # the row is flushed, then the process "dies"
        appended.append(1)
        if len(appended) == 12:
            raise RuntimeError("simulated kill")

    gold = _gold(tmp_path, corpus_inputs)
    with FakeOpenAIServer(responder) as server:
        cfg = make_config(
            corpus_inputs,
            labels=None,
            labelling={"labeller": _openai(server), "audit": {"gold": str(gold), "max_docs": 5, "resamples": 100}},
        )
        monkeypatch.setattr(LabelCache, "append", append_then_die)
        with pytest.raises(RuntimeError, match="simulated kill"):
            _run(cfg)
        monkeypatch.setattr(LabelCache, "append", real_append)
        cache = tmp_path / "run" / "corpus" / "labelling" / "label_cache.jsonl"
        assert len(cache.read_text().splitlines()) == 12
        result, _ = _run(cfg)
    assert max(asked.values()) == 1 and len(asked) == server.hits == 28  # each text asked once over both runs
    lab = result.metrics.labelling
    assert lab.counts.total == lab.labels.docs == 28
    assert lab.counts.cached == 12 and lab.counts.requests == 16
    assert lab.audits["openai:fake-labeller"].cached == 5
    m = result.metrics
    assert m.docs_in == m.docs_kept + sum(m.dropped.values()) == corpus_inputs["n_rows"] - 1
    assert m.classifier.n_train + m.classifier.n_heldout == 28


def test_compare_trains_every_listed_family_on_the_same_split(
    tmp_path: Path, corpus_inputs: dict, make_config: Any
) -> None:
    classifier = {
        "kind": "tfidf_logreg",
        "holdout_fraction": 0.3,
        "compare": ["fasttext", "cascade"],
        "not_compared": {"finetune": "no encoder offline"},
        "fasttext": FAST,
        "cascade": {"stage1": "fasttext", "stage2": "tfidf_logreg", "target_recall": 0.95},
    }
    result, stage_dir = _run(make_config(corpus_inputs, classifier=classifier))
    rows = result.metrics.classifier_comparison
    assert [(r.kind, r.status) for r in rows] == [
        ("tfidf_logreg", "ok"),
        ("fasttext", "ok"),
        ("cascade", "ok"),
        ("finetune", "not run"),
    ]
    assert rows[0].main and rows[0].f1 == result.metrics.classifier.f1
    assert rows[3].note == "no encoder offline"
    heldout = result.metrics.classifier.n_heldout
    for row in rows[:3]:
        assert row.heldout_docs == heldout and 0 <= row.f1 <= 1 and row.docs_per_s > 0
    cascade = rows[2]
    assert 0 < cascade.pass_share <= 1 and cascade.cost_saved is not None and cascade.f1_lost is not None
    for kind in ("fasttext", "cascade"):
        assert (stage_dir / "classifier" / "compare" / kind / "report.json").is_file()
    assert not (stage_dir / "classifier" / "compare" / "tfidf_logreg").exists()  # the main one is not retrained
    curves = json.loads((stage_dir / "stats.json").read_text())["comparison_curves"]
    assert set(curves) == {"tfidf_logreg", "fasttext", "cascade"}
    assert (stage_dir / "plots" / "pr_curves.png").stat().st_size > 5_000
    card = (stage_dir / "README.md").read_text()
    assert "| finetune | not run |" in card and "pr_curves.png" in card


def test_a_retrained_classifier_reclassifies_an_interrupted_attempt(
    tmp_path: Path, corpus_inputs: dict, make_config: Any
) -> None:
    """Labels that change between attempts (retried requests) retrain the classifier; what the earlier attempt
    classified with the old model must not survive through datatrove's completion markers."""
    import gzip

    labels = tmp_path / "llm_labels.jsonl"
    write_jsonl(labels, [{"id": i, "medical": "medical-" in i} for i in GERMAN_IDS])
    cfg = make_config(corpus_inputs, labels={"kind": "file", "path": str(labels)})
    _, stage_dir = _run(cfg)

    def kept() -> set[str]:
        return {
            json.loads(line)["id"]
            for f in (stage_dir / "medical").glob("*.jsonl.gz")
            for line in gzip.open(f, "rt", encoding="utf-8")
        }

    assert kept() and all("medical-" in i for i in kept())
    write_jsonl(labels, [{"id": i, "medical": "general-" in i} for i in GERMAN_IDS])  # the other way round
    result, _ = _run(cfg)
    assert kept() and all("general-" in i for i in kept())
    assert result.metrics.docs_kept == len(kept())


def test_single_pass_labels_the_sample_and_classifies_everything(
    tmp_path: Path, corpus_inputs: dict, make_config: Any, german_texts: dict
) -> None:
    """The paper config's mode: the labeller sees only the sample pipeline's survivors (two of four files); one
    pass classifies the whole input, and the kept profile still reads the labeller's subdomains."""
    from tests.corpus.conftest import _document, fineweb2_row, write_parquet

    rows = [
        fineweb2_row(f"<urn:uuid:{kind}-{i:02d}>", _document(german_texts[kind], seed=i))
        for kind in ("medical", "general")
        for i in range(14)
    ]
    for k in range(4):
        write_parquet(rows[k::4], tmp_path / "four" / f"{k:03d}_00000.parquet")
    inputs = {**corpus_inputs, "shards": tmp_path / "four"}
    with FakeOpenAIServer(FlakyResponder()) as server:
        cfg = make_config(
            inputs,
            labels=None,
            single_pass={"sample_files": 0.5},
            labelling={"labeller": _openai(server), "max_failure_share": 0.2},
        )
        result, stage_dir = _run(cfg)
    m = result.metrics
    assert len((stage_dir / "sample" / "paths_0.txt").read_text().split()) == 2
    assert m.single_pass.sample_docs_in == 14 and m.docs_in == 28
    assert m.labelling.counts.total == 14  # the sample survivors only, not the 28 documents
    assert m.docs_in == m.docs_kept + sum(m.dropped.values())
    assert m.subdomains.get("clinical", 0) >= 1 and m.tokens_in_estimated
