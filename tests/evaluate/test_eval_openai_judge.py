"""The async OpenAI-compatible judge against the shared fake server (real HTTP on 127.0.0.1, scripted replies)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from definemed.evaluate.config import OpenAIJudgeConfig
from definemed.evaluate.judges import JudgeItem, OpenAIJudge
from tests.openai_fake import FakeOpenAIServer, ScriptedResponder, fail, ok

SECRET = "sk-test-SECRET-0123456789"
SCRIPT = {
    "<<valid_a>>": [ok("A ist korrekt und sicher.\nUrteil: [[A]]")],
    "<<valid_c>>": [ok("Beide gleichwertig.\n[[C]]")],
    "<<garbage>>": [ok("Ich kann das nicht beurteilen.")],
    "<<empty>>": [ok("")],
    "<<bad_letter>>": [ok("Urteil: [[D]]")],
    "<<garbage_then_b>>": [ok("Hmm."), ok("Urteil: [[B]]")],
    "<<flaky500>>": [fail(500), ok("Urteil: [[B]]")],
    "<<ratelimit>>": [fail(429, headers={"Retry-After": "0.3"}), ok("Urteil: [[A]]")],
    "<<down>>": [fail(503)],
    "<<slow>>": [ok("Urteil: [[A]]", delay_s=3.0)],
    "<<auth>>": [fail(401, "bad key")],
    "<<paced>>": [ok("Urteil: [[B]]", delay_s=0.2)],
}
MARKERS = [
    "valid_a",
    "valid_c",
    "garbage",
    "empty",
    "bad_letter",
    "garbage_then_b",
    "flaky500",
    "ratelimit",
    "down",
    "slow",
]


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(ScriptedResponder(SCRIPT)) as srv:
        yield srv


def item(marker: str, other: str = "Eine andere Antwort {answer_b}") -> JudgeItem:
    return JudgeItem(
        prompt="Was hilft bei Fieber?",
        reference="Ruhe und Flüssigkeit.",
        answer_a=f"Antwort <<{marker}>>",
        answer_b=other,
    )


def make_judge(server: FakeOpenAIServer, workdir: Path, **overrides: object) -> OpenAIJudge:
    settings: dict[str, object] = {
        "model": "judge-model",
        "base_url": server.base_url,
        "api_key_env": "DEFINEMED_TEST_JUDGE_KEY",
        "concurrency": 4,
        "max_retries": 2,
        "backoff_s": 0.01,
        "timeout_s": 0.5,
        "timeout_per_token_s": 0,
        "parse_retries": 1,
        "temperature": 0.5,
        "max_invalid_share": 1.0,
    }
    cfg = OpenAIJudgeConfig.model_validate({"kind": "openai", **settings, **overrides})
    return OpenAIJudge(cfg, workdir)


def hits(server: FakeOpenAIServer) -> dict[str, int]:
    return {m.strip("<>"): n for m, n in server.responder.hits.items()}  # type: ignore[attr-defined]


def test_bad_replies_and_failures_are_retried_then_invalid(
    server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DEFINEMED_TEST_JUDGE_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    judge = make_judge(server, tmp_path)
    verdicts = judge.judge_batch([item(m) for m in MARKERS])

    assert [v.winner for v in verdicts] == [
        "A",
        "tie",
        "invalid",
        "invalid",
        "invalid",
        "B",
        "B",
        "A",
        "invalid",
        "invalid",
    ]
    assert verdicts[8].error.startswith("server_error") and verdicts[9].error.startswith("timeout")
    assert [v.cause for v in verdicts[2:5]] == ["unparsed"] * 3 and verdicts[9].cause == "timeout"
    assert verdicts[5].requests == 2 and verdicts[9].requests == 3  # every attempt is counted
    assert all(v.error is None for v in verdicts[:8])
    assert verdicts[2].raw == "Ich kann das nicht beurteilen."  # raw replies are kept
    # unparseable replies are asked once more (temperature > 0); transport failures 1 + max_retries times
    assert hits(server) == {
        "valid_a": 1,
        "valid_c": 1,
        "garbage": 2,
        "empty": 2,
        "bad_letter": 2,
        "garbage_then_b": 2,
        "flaky500": 2,
        "ratelimit": 2,
        "down": 3,
        "slow": 3,
    }
    assert judge.requests == server.hits == 20
    assert server.authorization_headers() == {f"Bearer {SECRET}"}
    limited = [r.received_at for r in server.requests if "<<ratelimit>>" in str(r.body)]
    assert limited[1] - limited[0] >= 0.28  # Retry-After: 0.3 beat the 0.01 s back-off

    # a second run with the same folder asks again only for the requests that never got a reply
    before = dict(hits(server))
    again = make_judge(server, tmp_path).judge_batch([item(m) for m in MARKERS])
    assert [v.winner for v in again] == [v.winner for v in verdicts]
    assert [v.cached for v in again] == [True] * 8 + [False] * 2
    assert {k: v - before.get(k, 0) for k, v in hits(server).items() if v != before.get(k, 0)} == {"down": 3, "slow": 3}

    stored = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    assert "Urteil: [[A]]" in stored
    assert SECRET not in stored and SECRET not in caplog.text


def test_requests_run_concurrently_up_to_the_limit(server: FakeOpenAIServer, tmp_path: Path) -> None:
    judge = make_judge(server, tmp_path, concurrency=4, timeout_s=5)
    verdicts = judge.judge_batch([item("paced", other=f"Antwort {i}") for i in range(24)])
    assert [v.winner for v in verdicts] == ["B"] * 24
    # the limit starts at 1 and grows while throughput grows (this fake serves requests in parallel)
    assert 1 < server.max_in_flight <= 4 and judge.stats["capacity"]["peak_limit"] == server.max_in_flight


def test_at_temperature_zero_an_unparseable_reply_is_not_asked_again(server: FakeOpenAIServer, tmp_path: Path) -> None:
    judge = make_judge(server, tmp_path, temperature=0.0)
    verdicts = judge.judge_batch([item("garbage_then_b")])
    assert (
        verdicts[0].winner == "invalid" and verdicts[0].cause == "unparsed" and hits(server) == {"garbage_then_b": 1}
    )  # the same request would get the same reply: no second, paid attempt


def test_cache_key_covers_order_template_and_decoding(server: FakeOpenAIServer, tmp_path: Path) -> None:
    judge = make_judge(server, tmp_path)
    base = item("valid_a")
    swapped = JudgeItem(base.prompt, base.reference, base.answer_b, base.answer_a)
    assert judge.cache_key(base) != judge.cache_key(swapped)
    assert judge.cache_key(base) != make_judge(server, tmp_path, temperature=0.7).cache_key(base)
    assert judge.cache_key(base) != make_judge(server, tmp_path, max_tokens=9).cache_key(base)
    assert judge.cache_key(base) != make_judge(server, tmp_path, model="other").cache_key(base)
    template = tmp_path / "t.md"
    template.write_text("{prompt}\n{answer_a}\n{answer_b}\nUrteil?", encoding="utf-8")
    assert judge.cache_key(base) != make_judge(server, tmp_path, template=str(template)).cache_key(base)


def test_template_is_filled_without_touching_braces_in_answers(server: FakeOpenAIServer, tmp_path: Path) -> None:
    from definemed.evaluate.openai_judge import render

    judge = make_judge(server, tmp_path)
    text = render(judge.template, item("valid_a"))
    assert "Antwort <<valid_a>>" in text and "Eine andere Antwort {answer_b}" in text
    assert "Was hilft bei Fieber?" in text and "Ruhe und Flüssigkeit." in text and "[[C]]" in text
    assert "{" not in text.replace("{answer_b}", "")  # every placeholder of the shipped template is filled


def test_local_endpoint_without_key_uses_dummy(
    server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEFINEMED_TEST_JUDGE_KEY", raising=False)
    assert make_judge(server, tmp_path).judge_batch([item("valid_a")])[0].winner == "A"
    assert server.authorization_headers() == {"Bearer EMPTY"}


def test_remote_endpoint_without_key_fails_naming_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEFINEMED_TEST_JUDGE_KEY", raising=False)
    cfg = OpenAIJudgeConfig(
        kind="openai", model="m", base_url="https://judge.example.org/v1", api_key_env="DEFINEMED_TEST_JUDGE_KEY"
    )
    with pytest.raises(RuntimeError, match="DEFINEMED_TEST_JUDGE_KEY"):
        OpenAIJudge(cfg, tmp_path).judge_batch([item("valid_a")])


def test_refused_key_aborts(server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFINEMED_TEST_JUDGE_KEY", SECRET)
    with pytest.raises(RuntimeError, match="HTTP 401: the key in DEFINEMED_TEST_JUDGE_KEY was refused"):
        make_judge(server, tmp_path).judge_batch([item("auth")])
    assert hits(server) == {"auth": 1}
