"""The OpenAI-compatible labeller against a real local HTTP server: parsing, retries, concurrency, secrets."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from definemed.corpus.labelling.openai_backend import LabellingSetupError, OpenAILabeller
from definemed.corpus.labelling.runner import label_documents
from definemed.corpus.labelling.schema import Document
from definemed.corpus.labelling.settings import OpenAILabellerSettings
from tests.openai_fake import FakeOpenAIServer, Reply, ScriptedResponder, fail, ok

SECRET = "sk-labelling-SECRET-4242"
KEY_ENV = "DEFINEMED_TEST_LABEL_KEY"
VALID = '{"medical": true, "edu_score": 4, "subdomain": "clinical"}'


def make_settings(server: FakeOpenAIServer, **overrides: object) -> OpenAILabellerSettings:
    values: dict[str, object] = {
        "model": "label-model",
        "base_url": server.base_url,
        "api_key_env": KEY_ENV,
        "concurrency": 4,
        "max_retries": 2,
        "backoff_s": 0.01,
        "max_backoff_s": 2.0,
        "timeout_s": 5,
        "timeout_per_token_s": 0,
        "structured_output": "plain",
    }
    return OpenAILabellerSettings(**{**values, **overrides})


def doc(marker: str, i: int = 0) -> Document:
    return Document(id=f"{marker}-{i}", text=f"Ein Testdokument <<{marker}>> Nummer {i} über Bluthochdruck.")


def by_id(results: list) -> dict:
    return {r.doc_id: r for r in results}


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)


def test_replies_are_parsed_strictly_and_raw_text_is_kept(tmp_path: Path) -> None:
    script = {
        "<<valid>>": [ok(VALID)],
        "<<fenced>>": [ok(f"Hier ist das Ergebnis:\n```json\n{VALID}\n```")],
        "<<garbage>>": [ok("Ich kann das nicht beurteilen.")],
        "<<truncated>>": [ok('{"medical": true, "edu_score": 4')],
        "<<types>>": [ok('{"medical": "ja", "edu_score": 7, "subdomain": "clinical"}')],
        "<<extra>>": [ok('{"medical": true, "edu_score": 2, "subdomain": "nursing", "reason": "x"}')],
        "<<contradiction>>": [ok('{"medical": true, "edu_score": 2, "subdomain": "veterinary"}')],
        "<<proxy>>": [Reply(200, "<html>Bad gateway page</html>")],
    }
    with FakeOpenAIServer(ScriptedResponder(script)) as server:
        run = label_documents(
            [doc(m.strip("<>")) for m in script], OpenAILabeller(make_settings(server)), tmp_path, max_failure_share=1.0
        )
    results = by_id(run.results)
    assert results["valid-0"].status == "ok" and results["valid-0"].labels.subdomain == "clinical"
    assert results["fenced-0"].labels.edu_score == 4
    assert results["garbage-0"].status == "invalid_json"
    assert results["garbage-0"].raw == "Ich kann das nicht beurteilen."
    assert results["truncated-0"].status == "invalid_json"
    for name in ("types", "extra", "contradiction"):
        assert results[f"{name}-0"].status == "schema_error" and results[f"{name}-0"].labels is None
    assert "edu_score" in results["types-0"].error and "contradicts" in results["contradiction-0"].error
    assert results["proxy-0"].status == "http_error" and "Bad gateway" in results["proxy-0"].error
    counts = run.counts
    assert (counts["ok"], counts["invalid_json"], counts["schema_error"], counts["http_error"]) == (2, 2, 3, 1)
    assert counts["prompt_tokens"] == 11 * 7 and counts["completion_tokens"] == 7 * 7  # proxy page has no usage
    cached = [json.loads(line) for line in (tmp_path / "label_cache.jsonl").read_text().splitlines()]
    assert {row["doc_id"]: row["raw"] for row in cached}["truncated-0"] == '{"medical": true, "edu_score": 4'
    assert len(cached) == 7  # every reply that parsed or not; the proxy page is a failure, asked again later
    labels = [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert sorted(row["id"] for row in labels) == ["fenced-0", "valid-0"]


def test_request_carries_prompt_and_negotiated_response_format(tmp_path: Path) -> None:
    with FakeOpenAIServer(lambda request, hit: ok(VALID)) as server:
        OpenAILabeller(make_settings(server, seed=3)).label_many([doc("a")])
        labeller = OpenAILabeller(make_settings(server, structured_output="auto", template="label_medical_en.md"))
        labeller.label_many([doc("b")])
    plain, probe, schema = (r.body for r in server.requests if r.method == "POST")
    assert "response_format" not in plain and plain["seed"] == 3 and plain["temperature"] == 0.0
    content = plain["messages"][0]["content"]
    assert "<<a>>" in content and "Tiermedizin" in content and "genau einem JSON-Objekt" in content
    assert "ja“ oder „nein" not in content  # only the json answer section
    assert probe["response_format"]["type"] == "json_schema"  # negotiated once, this server took it
    spec = schema["response_format"]
    assert spec["type"] == "json_schema" and spec["json_schema"]["strict"] is True
    assert spec["json_schema"]["schema"]["properties"]["subdomain"]["enum"][-1] == "none"
    assert "veterinary medicine" in schema["messages"][0]["content"]
    assert labeller.stats["structured_output"] == "json_schema"


def test_response_format_falls_back_once_and_500_is_not_retried_as_transient(tmp_path: Path) -> None:
    def responder(request: dict, hit: int) -> Reply:
        kind = (request.get("response_format") or {}).get("type")
        return fail(500, "Input should be 'text' or 'json_object'") if kind == "json_schema" else ok(VALID)

    with FakeOpenAIServer(responder) as server:
        labeller = OpenAILabeller(make_settings(server, structured_output="auto"))
        results = labeller.label_many([doc("x", i) for i in range(5)])
    assert [r.status for r in results] == ["ok"] * 5
    kinds = [r.body.get("response_format", {}).get("type") for r in server.requests if r.method == "POST"]
    assert kinds == ["json_schema", "json_object"] + ["json_object"] * 5  # one refusal, never resent
    assert server.requests[-1].body["response_format"]["schema"]["required"] == ["medical", "edu_score", "subdomain"]
    assert labeller.stats["structured_output"] == "json_object"
    assert [t["status"] for t in labeller.stats["negotiation"]] == [500, 200]


def test_retries_on_5xx_429_and_timeouts_but_not_on_400(tmp_path: Path) -> None:
    responder = ScriptedResponder(
        {
            "<<flaky>>": [fail(500), ok(VALID)],
            "<<ratelimit>>": [fail(429, headers={"Retry-After": "0.4"}), ok(VALID)],
            "<<slow>>": [ok(VALID, delay_s=2.0)],
            "<<bad>>": [fail(400, "context too long")],
            "<<down>>": [fail(503)],
        }
    )
    with FakeOpenAIServer(responder) as server:
        labeller = OpenAILabeller(make_settings(server, timeout_s=0.3))
        results = by_id(labeller.label_many([doc(m) for m in ("flaky", "ratelimit", "slow", "bad", "down")]))
    assert results["flaky-0"].status == "ok" and results["flaky-0"].attempts == 2
    assert results["ratelimit-0"].status == "ok" and results["ratelimit-0"].attempts == 2
    assert results["slow-0"].status == "timeout" and results["slow-0"].attempts == 3
    assert results["bad-0"].status == "http_error" and "bad_request: HTTP 400" in results["bad-0"].error
    assert results["down-0"].status == "http_error" and results["down-0"].attempts == 3
    assert dict(responder.hits) == {"<<flaky>>": 2, "<<ratelimit>>": 2, "<<slow>>": 3, "<<bad>>": 1, "<<down>>": 3}
    assert labeller.requests == server.hits == 11
    limited = [r.received_at for r in server.requests if "<<ratelimit>>" in str(r.body)]
    assert limited[1] - limited[0] >= 0.4  # Retry-After beats the 0.01 s back-off


def test_setup_errors_abort_instead_of_failing_every_document(monkeypatch: pytest.MonkeyPatch) -> None:
    with (
        FakeOpenAIServer(lambda request, hit: fail(401, "invalid api key")) as server,
        pytest.raises(LabellingSetupError, match=f"HTTP 401: the key in {KEY_ENV} was refused"),
    ):
        OpenAILabeller(make_settings(server)).label_many([doc("x", i) for i in range(20)])
    assert server.hits == 1  # the first refusal stops the batch (this fake has no /models to probe)
    monkeypatch.delenv(KEY_ENV)
    remote = OpenAILabellerSettings(model="m", base_url="https://api.example.com/v1", api_key_env=KEY_ENV)
    with pytest.raises(LabellingSetupError, match=KEY_ENV):
        OpenAILabeller(remote).label_many([doc("x")])


def test_local_endpoint_without_key_gets_a_dummy_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    with FakeOpenAIServer(lambda request, hit: ok(VALID)) as server:
        assert OpenAILabeller(make_settings(server)).label_many([doc("x")])[0].status == "ok"
    assert server.authorization_headers() == {"Bearer EMPTY"}


def test_concurrency_adapts_up_to_the_limit_and_keeps_input_order() -> None:
    with FakeOpenAIServer(lambda request, hit: ok(VALID, delay_s=0.1)) as server:
        labeller = OpenAILabeller(make_settings(server, concurrency=3))
        results = labeller.label_many([doc("c", i) for i in range(30)])
    assert [r.doc_id for r in results] == [f"c-{i}" for i in range(30)]  # input order kept
    assert server.max_in_flight == 3  # starts at 1, grows while throughput grows, never past the limit
    assert labeller.stats["capacity"]["peak_limit"] == 3


def test_api_key_goes_to_the_header_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    responder = ScriptedResponder(
        {"<<ok>>": [ok(VALID)], "<<bad>>": [fail(400, "nope")], "<<retry>>": [fail(500), ok("kein json")]}
    )
    with FakeOpenAIServer(responder) as server:
        label_documents(
            [doc("ok"), doc("bad"), doc("retry")],
            OpenAILabeller(make_settings(server)),
            tmp_path,
            max_failure_share=1.0,
        )
    assert server.authorization_headers() == {f"Bearer {SECRET}"}
    assert "retry 1/2" in caplog.text  # logging did happen
    assert SECRET not in caplog.text
    for path in tmp_path.iterdir():
        assert SECRET not in path.read_text(), path.name
