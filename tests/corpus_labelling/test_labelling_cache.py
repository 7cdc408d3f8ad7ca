"""Cache, crash recovery, reparse and the failure budget of a labelling run."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from definemed.corpus.labelling.cache import LabelCache, reparse
from definemed.corpus.labelling.openai_backend import OpenAILabeller
from definemed.corpus.labelling.runner import FailureBudgetExceeded, label_documents
from definemed.corpus.labelling.schema import Document
from tests.corpus_labelling.test_labelling_openai import KEY_ENV, SECRET, VALID, doc, make_settings
from tests.openai_fake import FakeOpenAIServer, ScriptedResponder, fail, ok


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)


def cache_rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "label_cache.jsonl").read_text().splitlines() if line.strip()]


def test_second_run_asks_nothing_and_equal_texts_are_asked_once(tmp_path: Path) -> None:
    docs = [doc("c", i) for i in range(6)] + [Document(id="twin", text=doc("c", 0).text)]
    with FakeOpenAIServer(lambda request, hit: ok(VALID)) as server:
        first = label_documents(docs, OpenAILabeller(make_settings(server)), tmp_path)
        assert server.hits == 6 and first.counts["cached"] == 0 and first.counts["requests"] == 6
        assert first.results[-1].labels == first.results[0].labels and first.results[-1].doc_id == "twin"
        second = label_documents(docs, OpenAILabeller(make_settings(server)), tmp_path)
        assert server.hits == 6  # zero new requests
        assert second.counts["cached"] == 7 and second.counts["requests"] == 0
        assert [r.doc_id for r in second.results] == [d.id for d in docs]
        assert [r.labels for r in second.results] == [r.labels for r in first.results]
        label_documents(docs, OpenAILabeller(make_settings(server, temperature=0.7)), tmp_path)
        assert server.hits == 12  # decoding settings are part of the key
    assert len(cache_rows(tmp_path)) == 12


class Crash(RuntimeError):
    pass


def test_crash_then_rerun_labels_every_document_exactly_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = [doc("k", i) for i in range(20)]
    with FakeOpenAIServer(lambda request, hit: ok(VALID, delay_s=0.02)) as server:
        labeller = OpenAILabeller(make_settings(server, concurrency=4))
        original = labeller.label_many

        def crash_after_five(batch: list, on_result: object = None) -> list:
            seen = []

            def counting(result: object) -> None:
                on_result(result)  # the cache write happens first, as in a real run
                seen.append(result)
                if len(seen) == 5:
                    raise Crash("simulated kill")

            return original(batch, on_result=counting)

        monkeypatch.setattr(labeller, "label_many", crash_after_five)
        with pytest.raises(Crash):
            label_documents(docs, labeller, tmp_path)
        saved = len(cache_rows(tmp_path))
        assert 5 <= saved <= 5 + 3  # replies already received by the 3 other workers may still be stored
        hits_before = server.hits
        rerun = label_documents(docs, OpenAILabeller(make_settings(server)), tmp_path)
    assert server.hits - hits_before == 20 - saved  # only what the crash lost is asked again
    assert rerun.counts["cached"] == saved and rerun.counts["ok"] == 20
    assert Counter(row["doc_id"] for row in cache_rows(tmp_path)) == {d.id: 1 for d in docs}


def test_torn_last_line_is_skipped_and_not_glued_to_the_next_row(tmp_path: Path) -> None:
    with FakeOpenAIServer(lambda request, hit: ok(VALID)) as server:
        label_documents([doc("t", 0), doc("t", 1)], OpenAILabeller(make_settings(server)), tmp_path)
        with (tmp_path / "label_cache.jsonl").open("a") as fh:
            fh.write('{"key": "abc", "doc_id": "t-9", "sta')  # killed mid-write
        label_documents([doc("t", i) for i in range(3)], OpenAILabeller(make_settings(server)), tmp_path)
        assert server.hits == 3
    cache = LabelCache(tmp_path / "label_cache.jsonl")
    assert len(cache) == 3 and cache.skipped_lines == 1


def test_reparse_rereads_raw_replies_without_requests(tmp_path: Path) -> None:
    responder = ScriptedResponder({"<<good>>": [ok(VALID)], "<<bad>>": [ok("nur Text")]})
    with FakeOpenAIServer(responder) as server:
        label_documents(
            [doc("good"), doc("bad")], OpenAILabeller(make_settings(server)), tmp_path, max_failure_share=1.0
        )
        path = tmp_path / "label_cache.jsonl"
        rows = cache_rows(tmp_path)
        # an older, buggier parser had rejected the good reply; the same row written twice (dedupe on load)
        stale = {**next(r for r in rows if r["doc_id"] == "good-0"), "status": "invalid_json", "labels": None}
        path.write_text("".join(json.dumps(r) + "\n" for r in [*rows, stale, stale]))
        assert reparse(path) == {"ok": 1, "invalid_json": 1}
        assert len(cache_rows(tmp_path)) == 2  # compacted
        run = label_documents(
            [doc("good"), doc("bad")], OpenAILabeller(make_settings(server)), tmp_path, max_failure_share=1.0
        )
        assert server.hits == 2 and run.counts["cached"] == 2
    assert {r.doc_id: r.status for r in run.results} == {"good-0": "ok", "bad-0": "invalid_json"}


def test_failure_budget(tmp_path: Path) -> None:
    responder = ScriptedResponder(
        {"<<ok>>": [ok(VALID)], "<<junk>>": [ok("weiß nicht")], "<<gone>>": [fail(400, "too long")]}
    )
    docs = [doc("junk", 0), doc("junk", 1), doc("gone", 0)] + [doc("ok", i) for i in range(7)]
    with FakeOpenAIServer(responder) as server:
        with pytest.raises(FailureBudgetExceeded) as info:
            label_documents(docs, OpenAILabeller(make_settings(server)), tmp_path, max_failure_share=0.05)
        message = str(info.value)
        # 5 % of 10 documents allows none: the batch stops at the first failure instead of asking the rest
        assert "stopped early after" in message and "> max_failure_share 5.0%" in message
        assert "reparse()" in message or "asked again on a rerun" in message
        first_hits = server.hits
        assert first_hits <= 3 and info.value.counts["failed"] == 1  # the first answer already broke it
        assert not (tmp_path / "labels.jsonl").exists()
        report = json.loads((tmp_path / "labelling_report.json").read_text())
        assert report["within_budget"] is False and report["complete"] is False

        with pytest.raises(FailureBudgetExceeded) as info:  # the whole batch, over budget at the end
            label_documents(docs, OpenAILabeller(make_settings(server)), tmp_path, max_failure_share=0.2)
        message = str(info.value)
        assert "3 of 10 documents" in message and "30.0% > max_failure_share 20.0%" in message
        assert "invalid_json=2" in message and "http_error=1" in message  # the cached junk counts too
        assert "the 1 failed requests are not cached and are asked again on a rerun" in message
        report = json.loads((tmp_path / "labelling_report.json").read_text())
        assert report["errors"]["http_error"][0]["id"] == "gone-0"

        answered = len(cache_rows(tmp_path))
        hits = server.hits
        run = label_documents(docs, OpenAILabeller(make_settings(server)), tmp_path, max_failure_share=0.3)
    assert answered < 10 and run.counts["cached"] == answered  # the 400 is not cached: asked again
    assert server.hits - hits == 10 - answered
    assert len((tmp_path / "labels.jsonl").read_text().splitlines()) == 7


KILL_SCRIPT = """
import sys
from definemed.corpus.labelling.openai_backend import OpenAILabeller
from definemed.corpus.labelling.runner import label_documents
from definemed.corpus.labelling.schema import Document
from definemed.corpus.labelling.settings import OpenAILabellerSettings
settings = OpenAILabellerSettings(model="label-model", base_url=sys.argv[1], api_key_env="{env}", concurrency=2,
                                  structured_output="plain")
docs = [Document(id=f"k-{{i}}", text=f"Dokument <<kill>> {{i}}") for i in range(30)]
label_documents(docs, OpenAILabeller(settings), sys.argv[2])
"""


def test_sigkill_mid_run_loses_only_requests_in_flight(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    with FakeOpenAIServer(lambda request, hit: ok(VALID, delay_s=0.1)) as server:
        proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT.format(env=KEY_ENV), server.base_url, str(tmp_path)])
        deadline = time.monotonic() + 60
        cache = tmp_path / "label_cache.jsonl"
        while time.monotonic() < deadline and (not cache.exists() or len(cache.read_text().splitlines()) < 6):
            time.sleep(0.02)
        proc.kill()
        proc.wait()
        saved = len(cache_rows(tmp_path))
        assert 6 <= saved < 30
        hits_before = server.hits
        docs = [Document(id=f"k-{i}", text=f"Dokument <<kill>> {i}") for i in range(30)]
        run = label_documents(docs, OpenAILabeller(make_settings(server, concurrency=2)), tmp_path)
    assert server.hits - hits_before == 30 - saved and run.counts["ok"] == 30
    assert Counter(row["doc_id"] for row in cache_rows(tmp_path)) == {d.id: 1 for d in docs}
