"""The OpenAI-compatible judge against a real HTTP server on 127.0.0.1 with scripted replies."""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from definemed.config import OpenAIJudgeConfig
from definemed.evaluate.judges import JudgeItem, OpenAIJudge

SECRET = "sk-test-SECRET-0123456789"
# marker in answer A -> list of (status, reply text) served on successive requests (the last one repeats)
SCRIPT: dict[str, list[tuple[int, str]]] = {
    "valid_a": [(200, "A ist korrekt und sicher.\nUrteil: [[A]]")],
    "valid_c": [(200, "Beide gleichwertig.\n[[C]]")],
    "garbage": [(200, "Ich kann das nicht beurteilen.")],
    "empty": [(200, "")],
    "bad_letter": [(200, "Urteil: [[D]]")],
    "flaky500": [(500, "boom"), (200, "Urteil: [[B]]")],
    "ratelimit": [(429, "slow down"), (200, "Urteil: [[A]]")],
    "down": [(503, "unavailable")],
    "auth": [(401, "bad key")],
}


class FakeServer:
    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.auth_headers: list[str] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                content = body["messages"][-1]["content"]
                marker = next(m for m in SCRIPT if f"<<{m}>>" in content)
                with server.lock:
                    server.hits[marker] += 1
                    server.auth_headers.append(self.headers.get("Authorization", ""))
                    step = SCRIPT[marker][min(server.hits[marker], len(SCRIPT[marker])) - 1]
                status, text = step
                payload = ({"id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                            "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": text}}],
                            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
                           if status == 200 else {"error": {"message": text, "type": "server_error"}})
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

        return Handler


@pytest.fixture
def server() -> Iterator[FakeServer]:
    srv = FakeServer()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def item(marker: str) -> JudgeItem:
    return JudgeItem(prompt="Was hilft bei Fieber?", reference="Ruhe und Flüssigkeit.",
                     answer_a=f"Antwort <<{marker}>>", answer_b="Eine andere Antwort {answer_b}")


def make_judge(server: FakeServer, workdir: Path, **overrides: object) -> OpenAIJudge:
    settings: dict[str, object] = {
        "model": "judge-model", "base_url": server.base_url, "api_key_env": "DEFINEMED_TEST_JUDGE_KEY",
        "concurrency": 4, "max_retries": 2, "backoff_s": 0.01, "timeout_s": 5}
    cfg = OpenAIJudgeConfig.model_validate({"kind": "openai", **settings, **overrides})
    return OpenAIJudge(cfg, workdir)


MARKERS = ["valid_a", "valid_c", "garbage", "empty", "bad_letter", "flaky500", "ratelimit", "down"]


def test_verdicts_retries_cache_and_secret(server: FakeServer, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("DEFINEMED_TEST_JUDGE_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    judge = make_judge(server, tmp_path)
    verdicts = judge.judge_batch([item(m) for m in MARKERS])

    assert [v.winner for v in verdicts] == ["A", "tie", "invalid", "invalid", "invalid", "B", "A", "invalid"]
    assert verdicts[-1].error and "InternalServerError" in verdicts[-1].error
    assert all(v.error is None for v in verdicts[:-1])
    assert verdicts[2].raw == "Ich kann das nicht beurteilen."  # raw replies are kept
    # retries: one failure then success; the dead endpoint is tried 1 + max_retries times
    assert server.hits["flaky500"] == 2 and server.hits["ratelimit"] == 2 and server.hits["down"] == 3
    assert judge.requests == sum(server.hits.values()) == 12
    assert set(server.auth_headers) == {f"Bearer {SECRET}"}

    # a second run with the same folder asks again only for the request that never got a reply
    before = Counter(server.hits)
    again = make_judge(server, tmp_path).judge_batch([item(m) for m in MARKERS])
    assert [v.winner for v in again] == [v.winner for v in verdicts]
    assert [v.cached for v in again] == [True] * 7 + [False]
    assert server.hits - before == Counter({"down": 3})

    stored = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    assert "Urteil: [[A]]" in stored
    assert SECRET not in stored and SECRET not in caplog.text


def test_cache_key_covers_order_template_and_decoding(server: FakeServer, tmp_path: Path) -> None:
    judge = make_judge(server, tmp_path)
    base = item("valid_a")
    swapped = JudgeItem(base.prompt, base.reference, base.answer_b, base.answer_a)
    assert judge.cache_key(base) != judge.cache_key(swapped)
    assert judge.cache_key(base) != make_judge(server, tmp_path, temperature=0.7).cache_key(base)
    assert judge.cache_key(base) != make_judge(server, tmp_path, model="other").cache_key(base)
    template = tmp_path / "t.md"
    template.write_text("{prompt}\n{answer_a}\n{answer_b}\nUrteil?", encoding="utf-8")
    assert judge.cache_key(base) != make_judge(server, tmp_path, template=str(template)).cache_key(base)


def test_template_is_filled_without_touching_braces_in_answers(server: FakeServer, tmp_path: Path) -> None:
    from definemed.evaluate.openai_judge import render

    judge = make_judge(server, tmp_path)
    text = render(judge.template, item("valid_a"))
    assert "Antwort <<valid_a>>" in text and "Eine andere Antwort {answer_b}" in text
    assert "Was hilft bei Fieber?" in text and "Ruhe und Flüssigkeit." in text and "[[C]]" in text
    assert "{" not in text.replace("{answer_b}", "")  # every placeholder of the shipped template is filled


def test_local_endpoint_without_key_uses_dummy(server: FakeServer, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEFINEMED_TEST_JUDGE_KEY", raising=False)
    assert make_judge(server, tmp_path).judge_batch([item("valid_a")])[0].winner == "A"
    assert server.auth_headers == ["Bearer EMPTY"]


def test_remote_endpoint_without_key_fails_naming_the_variable(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEFINEMED_TEST_JUDGE_KEY", raising=False)
    cfg = OpenAIJudgeConfig(kind="openai", model="m", base_url="https://judge.example.org/v1",
                            api_key_env="DEFINEMED_TEST_JUDGE_KEY")
    with pytest.raises(RuntimeError, match="DEFINEMED_TEST_JUDGE_KEY"):
        OpenAIJudge(cfg, tmp_path).judge_batch([item("valid_a")])


def test_refused_key_aborts(server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFINEMED_TEST_JUDGE_KEY", SECRET)
    with pytest.raises(RuntimeError, match="AuthenticationError"):
        make_judge(server, tmp_path).judge_batch([item("auth")])
    assert server.hits["auth"] == 1
