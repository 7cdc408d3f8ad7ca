"""The LLM layer against the fake server, for what a real server cannot produce on demand: 429 and 500 storms,
Retry-After, slow replies and a server that dies. The same layer serves labeller, judge and generator."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from definemed.corpus.labelling.openai_backend import OpenAILabeller
from definemed.corpus.labelling.runner import label_documents
from definemed.corpus.labelling.schema import Document
from definemed.corpus.labelling.settings import OpenAILabellerSettings
from definemed.evaluate.config import OpenAIGenerationConfig, OpenAIJudgeConfig
from definemed.evaluate.generate_backends import OpenAIGenerator
from definemed.evaluate.openai_judge import OpenAIJudge
from definemed.evaluate.verdicts import JudgeItem
from definemed.llm import Endpoint, FailureBudgetExceeded, LLMClient, SendPolicy, run_sync, scrub
from definemed.llm.capacity import CapacityLimiter
from tests.openai_fake import FakeOpenAIServer, Reply, fail, ok

VALID = '{"medical": true, "edu_score": 4, "subdomain": "clinical"}'
FAST = {"backoff_s": 0.01, "max_backoff_s": 2.0, "timeout_s": 2, "timeout_per_token_s": 0}


def docs(n: int) -> list[Document]:
    return [Document(id=f"d-{i}", text=f"Dokument {i} über Bluthochdruck.") for i in range(n)]


class Storm:
    """Every request fails with `status` (Retry-After: `retry_after`) while `storming`; then answers `text`."""

    def __init__(self, status: int, text: str, storm_hits: int, retry_after: str | None = None) -> None:
        self.status, self.text, self.storm_hits, self.retry_after = status, text, storm_hits, retry_after
        self.lock = threading.Lock()
        self.hits = 0

    def __call__(self, request: dict, hit: int) -> Reply:
        with self.lock:
            self.hits += 1
            storming = self.hits <= self.storm_hits
        if storming:
            return fail(self.status, "overloaded", {"Retry-After": self.retry_after} if self.retry_after else None)
        return ok(self.text)


def test_a_429_storm_halves_the_limit_honours_retry_after_and_every_document_succeeds(tmp_path: Path) -> None:
    storm = Storm(429, VALID, storm_hits=6, retry_after="0.3")
    with FakeOpenAIServer(storm) as server:
        lab = OpenAILabeller(
            OpenAILabellerSettings(
                model="m", base_url=server.base_url, concurrency=4, structured_output="plain", max_retries=6, **FAST
            )
        )
        run = label_documents(docs(10), lab, tmp_path, max_failure_share=0.0)
    assert run.counts["ok"] == 10
    stats = lab.stats
    assert stats["retries"] == {"rate_limited": 6} and stats["requests"] == server.hits == 16
    assert stats["capacity"]["decreases"] == 6  # each 429 is a multiplicative decrease
    assert run.counts["requests"] == 16  # the labeller counts every attempt, not only the successful one
    posts = sorted(r.received_at for r in server.requests if r.method == "POST")
    assert posts[6] - posts[5] >= 0.28  # Retry-After: 0.3 paused every sender, not one back-off of 0.01 s


def test_a_500_storm_is_retried_and_requests_per_item_stay_counted() -> None:
    storm = Storm(500, "Urteil: [[A]]", storm_hits=3)
    items = [JudgeItem("F?", "R", f"a{i}", f"b{i}") for i in range(5)]
    with FakeOpenAIServer(storm) as server:
        cfg = OpenAIJudgeConfig(
            kind="openai",
            model="j",
            base_url=server.base_url,
            max_retries=3,
            backoff_s=0.01,
            timeout_s=2,
            timeout_per_token_s=0,
        )
        judge = OpenAIJudge(cfg, None)
        verdicts = judge.judge_batch(items)
    assert [v.winner for v in verdicts] == ["A"] * 5
    assert judge.stats["retries"] == {"server_error": 3} and sum(v.requests for v in verdicts) == 8 == server.hits


def test_a_dead_endpoint_mid_run_stops_the_batch_at_the_budget_not_after_every_document(tmp_path: Path) -> None:
    with FakeOpenAIServer(lambda request, hit: fail(500, "dead")) as server:
        lab = OpenAILabeller(
            OpenAILabellerSettings(
                model="m", base_url=server.base_url, concurrency=2, structured_output="plain", max_retries=1, **FAST
            )
        )
        with pytest.raises(FailureBudgetExceeded) as err:
            label_documents(docs(200), lab, tmp_path, max_failure_share=0.05)
    # 5 % of 200 = 10 documents may fail: the 11th failure stops it (the issue saw 200 requests for 40 documents)
    assert err.value.counts["failed"] == 11 and server.hits <= 2 * 11 + 2 * 2
    message = str(err.value)
    assert "stopped early after" in message and "http_error=11" in message
    assert "asked again on a rerun" in message and "reparse()" not in message  # nothing came back to reparse


def test_timeouts_scale_with_max_tokens_and_a_timed_out_request_is_not_resent_at_once() -> None:
    policy = SendPolicy(timeout_s=10, timeout_per_token_s=0.5)
    assert policy.timeout(None) == 10 and policy.timeout(100) == 60 and policy.timeout(100, 1) == 120
    with FakeOpenAIServer(lambda request, hit: ok("spät", delay_s=0.6)) as server:

        async def go() -> tuple:
            async with LLMClient(
                Endpoint("t", "m", server.base_url),
                SendPolicy(timeout_s=0.4, timeout_per_token_s=0, max_retries=1, backoff_s=0.01),
            ) as llm:
                return await llm.send({"model": "m", "messages": [], "max_tokens": 1}), llm.limiter.stats()

        outcome, capacity = run_sync(go)
    # first attempt: 0.4 s, too short; the retry waits as long again (the server may still be computing the
    # first one) and then gets twice the time-out, which suffices
    assert outcome.reply is not None and [a.outcome for a in outcome.attempts] == ["timeout", "ok"]
    posts = [r.received_at for r in server.requests if r.method == "POST"]
    assert posts[1] - posts[0] >= 0.8 and capacity["decreases"] == 1


def test_the_limiter_grows_while_throughput_grows_and_stays_low_on_a_serial_server() -> None:
    import asyncio

    async def drive(serial: bool) -> int:
        limiter, lock = CapacityLimiter(maximum=8), asyncio.Lock()

        async def one() -> None:
            await limiter.acquire()
            t0 = time.monotonic()
            if serial:
                async with lock:  # one request at a time, as llama.cpp's server
                    await asyncio.sleep(0.03)
            else:
                await asyncio.sleep(0.03)
            await limiter.release("ok", latency=time.monotonic() - t0)

        async def worker(n: int) -> None:
            for _ in range(n):
                await one()

        await asyncio.gather(*(worker(15) for _ in range(8)))
        return limiter.peak, limiter.limit

    assert run_sync(lambda: drive(False))[0] == 8  # parallel server: latency holds, grows to the maximum
    peak, final = run_sync(lambda: drive(True))
    assert peak <= 3 and final <= 2  # serial server: the second request queues, growing stops at once


def test_all_three_stages_share_one_setup_check_and_one_error_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFINEMED_TEST_K", "sk-secret-key-777777")
    with FakeOpenAIServer(lambda request, hit: fail(401, "no"), models=None) as server:
        url = server.base_url
        calls = {
            "corpus.labelling.labeller": lambda: OpenAILabeller(
                OpenAILabellerSettings(
                    model="m", base_url=url, api_key_env="DEFINEMED_TEST_K", structured_output="plain"
                )
            ).label_many(docs(2)),
            "evaluate.judge": lambda: OpenAIJudge(
                OpenAIJudgeConfig(kind="openai", model="m", base_url=url, api_key_env="DEFINEMED_TEST_K"), None
            ).judge_batch([JudgeItem("F?", "R", "a", "b")]),
            "evaluate.generation": lambda: OpenAIGenerator(
                "/x", OpenAIGenerationConfig(kind="openai", model="m", base_url=url, api_key_env="DEFINEMED_TEST_K")
            ).generate(["F?"]),
        }
        for who, call in calls.items():
            with pytest.raises(Exception) as err:
                call()
            assert str(err.value).startswith(f"{who}: {url} answered HTTP 401: the key in DEFINEMED_TEST_K was refused")
            assert "sk-secret-key-777777" not in str(err.value)


def test_scrub_removes_keys_and_bearer_tokens() -> None:
    text = 'Authorization: Bearer abc.def-123 failed for sk-proj-ABCDEF123456 and {"api_key": "hunter2"} k=XYZ987'
    clean = scrub(text, ("XYZ987",))
    assert "abc.def-123" not in clean and "sk-proj-ABCDEF123456" not in clean and "hunter2" not in clean
    assert "XYZ987" not in clean and clean.count("***") == 4


def test_identical_requests_per_answered_item_on_a_healthy_server_is_one(tmp_path: Path) -> None:
    with FakeOpenAIServer(lambda request, hit: ok(VALID, delay_s=0.01)) as server:
        lab = OpenAILabeller(
            OpenAILabellerSettings(model="m", base_url=server.base_url, structured_output="plain", **FAST)
        )
        run = label_documents(docs(20), lab, tmp_path)
    assert run.counts["requests"] == 20 == server.hits
