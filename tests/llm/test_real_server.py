"""Labeller, judge and generator against a real OpenAI-compatible server: llama-cpp-python serving SmolLM2-135M
(see conftest.py). Short prompts and small max_tokens keep each request to about a second on 2 cores.

Each numbered finding of issue 13 that a real server can show is tested here; 429 and 500 storms, which it
cannot produce on demand, are in test_llm_layer_fake.py against the fake server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
from definemed.llm import EndpointSetupError
from definemed.llm.local_server import LocalServer, free_port
from tests.llm.conftest import MODEL, SERVER_KEY, SERVER_KEY_ENV

PROMPTS = Path(__file__).parent / "prompts"
LABEL_TEMPLATE = str(PROMPTS / "label_short_en.md")
JUDGE_TEMPLATE = str(PROMPTS / "judge_short_de.md")
TEXTS = [
    "Bluthochdruck wird mit ACE-Hemmern behandelt; die Dosis richtet sich nach dem Blutdruck.",
    "Die Zinsen für Sparkonten steigen im nächsten Jahr, sagt die Bank.",
    "Die Grippeimpfung wird für Menschen über 60 Jahre empfohlen.",
    "Der Fußballverein gewann das Spiel mit drei zu eins.",
    "Metformin ist das Mittel der ersten Wahl bei Diabetes Typ 2.",
    "Das neue Smartphone hat eine bessere Kamera.",
]
ITEMS = [
    JudgeItem("Was hilft bei Kopfschmerzen?", "Ibuprofen oder Paracetamol.", "Ibuprofen hilft.", "Ich weiß es nicht."),
    JudgeItem("Was hilft bei Kopfschmerzen?", "Ibuprofen oder Paracetamol.", "Ich weiß es nicht.", "Ibuprofen hilft."),
]


def docs(n: int = len(TEXTS), prefix: str = "d") -> list[Document]:
    return [Document(id=f"{prefix}-{i}", text=f"{TEXTS[i % len(TEXTS)]} ({i})") for i in range(n)]


def labeller(server: LocalServer, **overrides: object) -> OpenAILabeller:
    values: dict[str, object] = {
        "model": MODEL,
        "base_url": server.base_url,
        "template": LABEL_TEMPLATE,
        "max_tokens": 32,
        "api_key_env": "DEFINEMED_TEST_UNSET_KEY",
    }
    return OpenAILabeller(OpenAILabellerSettings(**{**values, **overrides}))


def judge(server: LocalServer, workdir: Path | None, **overrides: object) -> OpenAIJudge:
    values: dict[str, object] = {
        "kind": "openai",
        "model": MODEL,
        "base_url": server.base_url,
        "template": JUDGE_TEMPLATE,
        "api_key_env": "DEFINEMED_TEST_UNSET_KEY",
        "method": "logprob",
    }
    return OpenAIJudge(OpenAIJudgeConfig.model_validate({**values, **overrides}), workdir)


# ----------------------------------------------------------------------------------------- findings 2, 3
def test_logprob_labelling_with_the_defaults_scores_every_document_in_one_request_each(
    real_server: LocalServer, tmp_path: Path
) -> None:
    lab = labeller(real_server, method="logprob", positive="yes", negative="no")  # defaults: 8 in flight
    run = label_documents(docs(), lab, tmp_path, max_failure_share=0.0)
    assert run.counts["ok"] == len(TEXTS)  # every document scored: yes/no are among the top log-probabilities
    assert all(0 < r.labels.p_medical < 1 and r.attempts == 1 for r in run.results)
    stats = lab.stats
    # one request per document: no time-out, no retry, on a server that computes one request at a time
    assert stats["requests"] == len(TEXTS) and stats["retries"] == {} and stats["failed"] == {}
    assert stats["logprobs"] == "/chat/completions" and stats["served_models"] == [MODEL]
    assert stats["prompt_tokens"] == run.counts["prompt_tokens"] > 0 and stats["completion_tokens"] == len(TEXTS)


def test_json_schema_is_refused_once_and_json_object_with_the_schema_gives_valid_labels(
    real_server: LocalServer, tmp_path: Path
) -> None:
    lab = labeller(real_server, structured_output="auto")
    run = label_documents(docs(4), lab, tmp_path, max_failure_share=0.5)
    # llama-cpp-python answers json_schema with HTTP 500: asked once while negotiating, never per document
    assert [(t["mode"], t["status"]) for t in lab.stats["negotiation"]] == [("json_schema", 500), ("json_object", 200)]
    assert lab.stats["structured_output"] == "json_object"
    assert lab.stats["requests"] == 4 and lab.stats["retries"] == {}
    assert run.counts["ok"] >= 3  # the schema grammar makes SmolLM2 write valid labels (free text: 0-3 %)
    rows = [json.loads(line) for line in (tmp_path / "label_cache.jsonl").read_text().splitlines()]
    assert all(row["raw"].lstrip().startswith("{") and row["finish_reason"] in ("stop", "length") for row in rows)


def test_a_forced_unsupported_response_format_fails_each_document_once_not_four_times(
    real_server: LocalServer, tmp_path: Path
) -> None:
    lab = labeller(real_server, structured_output="json_schema", max_retries=4)
    run = label_documents(docs(3), lab, tmp_path, max_failure_share=1.0)
    assert [r.status for r in run.results] == ["http_error"] * 3
    assert all(r.attempts == 1 and r.error.startswith("unsupported: HTTP 500") for r in run.results)
    assert lab.stats["requests"] == 3 and lab.stats["failed"] == {"unsupported": 3}


# ----------------------------------------------------------------------------------------- finding 6
def test_judge_both_orders_in_logprob_mode_counts_tokens_and_requests(real_server: LocalServer, tmp_path: Path) -> None:
    j = judge(real_server, tmp_path)
    verdicts = j.judge_batch(ITEMS)
    assert [v.winner in ("A", "B", "tie") for v in verdicts] == [True, True]
    assert all(v.requests == 1 and v.prompt_tokens > 0 and v.completion_tokens == 1 for v in verdicts)
    assert j.stats["requests"] == 2 and j.stats["logprobs"] == "/chat/completions"
    probs = [json.loads(v.raw) for v in verdicts]
    assert all(abs(sum(p.values()) - 1) < 1e-6 for p in probs)
    again = judge(real_server, tmp_path).judge_batch(ITEMS)  # cached, with finish_reason and usage
    assert [v.cached for v in again] == [True, True] and [v.winner for v in again] == [v.winner for v in verdicts]


def test_generating_judge_records_cut_replies_and_does_not_resend_at_temperature_zero(
    real_server: LocalServer, tmp_path: Path
) -> None:
    j = judge(real_server, tmp_path, method="generate", max_tokens=4, parse_retries=2, max_invalid_share=1.0)
    verdicts = j.judge_batch(ITEMS)
    for v in verdicts:
        if v.winner == "invalid":
            assert v.cause == "cut" and v.finish_reason == "length"  # not "invalid JSON"
        assert v.requests == 1 and v.completion_tokens > 0  # at temperature 0 a re-ask returns the same reply
    assert j.stats["requests"] == 2


# ----------------------------------------------------------------------------------------- finding 1
def test_an_invalid_judge_fails_with_one_line_naming_causes_and_where_replies_are(
    real_server: LocalServer, tmp_path: Path
) -> None:
    from definemed.llm import FailureBudgetExceeded

    j = judge(real_server, tmp_path, method="generate", max_tokens=2, max_invalid_share=0.1)
    with pytest.raises(FailureBudgetExceeded) as err:
        j.judge_batch(ITEMS * 3)
    message = str(err.value)
    assert message.startswith("evaluate.judge (generate judge smollm2): ") and "cut=" in message
    assert str(tmp_path / "judge_cache.jsonl") in message and "\n" not in message


# ----------------------------------------------------------------------------------------- generation
def test_generation_counts_tokens_requests_and_cut_answers(real_server: LocalServer) -> None:
    cfg = OpenAIGenerationConfig(
        kind="openai",
        model=MODEL,
        base_url=real_server.base_url,
        max_new_tokens=6,
        api_key_env="DEFINEMED_TEST_UNSET_KEY",
    )
    gen = OpenAIGenerator("/unused", cfg, seed=1, name="instruct")
    out = gen.generate(["Was ist Fieber?", "Nenne drei Symptome einer Grippe."])
    assert all(g.text and g.requests == 1 and 0 < g.n_tokens <= 6 and g.prompt_tokens > 0 for g in out)
    assert any(g.hit_limit for g in out)  # finish_reason "length" at 6 tokens
    assert gen.stats["requests"] == 2 and gen.stats["completion_tokens"] == sum(g.n_tokens for g in out)


# ----------------------------------------------------------------------------------------- findings 4, 5
def test_endpoint_down_fails_in_the_probe_without_sending_documents(tmp_path: Path) -> None:
    down = LocalServer(port=free_port())  # never started: nothing listens there
    with pytest.raises(EndpointSetupError, match="cannot reach .* is the server running") as err:
        label_documents(docs(40), labeller(down), tmp_path)  # the probe fails: no document request is sent
    assert "corpus.labelling.labeller" in str(err.value)
    assert not (tmp_path / "label_cache.jsonl").exists()


def test_misspelled_model_is_an_error_naming_the_served_ones(real_server: LocalServer, tmp_path: Path) -> None:
    # the server itself would answer with its default model and echo the wrong name back
    with pytest.raises(EndpointSetupError, match=r"model 'smollm3' is not served .* \['smollm2'\]"):
        label_documents(docs(2), labeller(real_server, model="smollm3"), tmp_path)
    with pytest.raises(EndpointSetupError, match="evaluate.judge.model"):
        judge(real_server, tmp_path, model="gpt-4o").judge_batch(ITEMS)


def test_unset_and_refused_keys_name_the_variable(
    keyed_server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEFINEMED_TEST_CLIENT_KEY", raising=False)
    lab = labeller(keyed_server, api_key_env="DEFINEMED_TEST_CLIENT_KEY")
    with pytest.raises(EndpointSetupError, match="DEFINEMED_TEST_CLIENT_KEY is not set and the server wants a key"):
        label_documents(docs(2), lab, tmp_path)
    monkeypatch.setenv("DEFINEMED_TEST_CLIENT_KEY", "sk-wrong-key-000000")
    with pytest.raises(EndpointSetupError, match="HTTP 401: the key in DEFINEMED_TEST_CLIENT_KEY was refused"):
        judge(keyed_server, tmp_path, api_key_env="DEFINEMED_TEST_CLIENT_KEY").judge_batch(ITEMS)
    monkeypatch.setenv("DEFINEMED_TEST_CLIENT_KEY", SERVER_KEY)
    run = label_documents(
        docs(2),
        labeller(
            keyed_server, api_key_env="DEFINEMED_TEST_CLIENT_KEY", method="logprob", positive="yes", negative="no"
        ),
        tmp_path / "ok",
    )
    assert run.counts["ok"] == 2
    stored = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    assert SERVER_KEY not in stored and "sk-wrong-key" not in stored
    assert os.environ[SERVER_KEY_ENV] == SERVER_KEY


# ----------------------------------------------------------------------------------------- kill and resume
KILL_SCRIPT = """
import sys
from definemed.corpus.labelling.openai_backend import OpenAILabeller
from definemed.corpus.labelling.runner import label_documents
from definemed.corpus.labelling.schema import Document
from definemed.corpus.labelling.settings import OpenAILabellerSettings
settings = OpenAILabellerSettings(model="smollm2", base_url=sys.argv[1], template=sys.argv[3], method="logprob",
                                  positive="yes", negative="no", api_key_env="DEFINEMED_TEST_UNSET_KEY")
docs = [Document(id=f"k-{i}", text=f"Dokument Nummer {i} über Bluthochdruck und Blutdrucksenker.") for i in range(16)]
label_documents(docs, OpenAILabeller(settings), sys.argv[2])
"""


@pytest.mark.slow
def test_killed_labelling_resumes_asking_exactly_the_remaining_documents(
    real_server: LocalServer, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, real_server.base_url, str(tmp_path), LABEL_TEMPLATE], env=env
    )
    cache = tmp_path / "label_cache.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not cache.exists() or len(cache.read_text().splitlines()) < 4):
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    saved = {json.loads(line)["doc_id"] for line in cache.read_text().splitlines() if line.strip()}
    assert 4 <= len(saved) < 16
    docs16 = [
        Document(id=f"k-{i}", text=f"Dokument Nummer {i} über Bluthochdruck und Blutdrucksenker.") for i in range(16)
    ]
    lab = labeller(real_server, method="logprob", positive="yes", negative="no")
    run = label_documents(docs16, lab, tmp_path)
    assert lab.stats["requests"] == 16 - len(saved) and run.counts["cached"] == len(saved)
    assert run.counts["ok"] == 16
    rows = [json.loads(line) for line in cache.read_text().splitlines() if line.strip()]
    assert sorted(r["doc_id"] for r in rows) == sorted(d.id for d in docs16)  # no duplicates


# ----------------------------------------------------------------------------------------- finding 1, stage level
def test_evaluate_stage_with_the_real_judge_fails_when_verdicts_are_invalid_and_records_it_when_valid(
    real_server: LocalServer, tmp_path: Path, tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from definemed import registry
    from definemed.errors import DefinemedError
    from definemed.evaluate.stage import run
    from tests.evaluate.test_eval_stage import make_setup
    from tests.evaluate.test_eval_stage_resume import NoGenerator, write_answers

    monkeypatch.setitem(registry._ENTRIES["generator"], "hf", (NoGenerator, "test double"))
    judge_cfg = {
        "kind": "openai",
        "model": MODEL,
        "base_url": real_server.base_url,
        "template": JUDGE_TEMPLATE,
        "api_key_env": "DEFINEMED_TEST_UNSET_KEY",
    }
    (tmp_path / "bad").mkdir()
    (tmp_path / "good").mkdir()
    inputs, ctx = make_setup(
        tmp_path / "bad",
        tiny_llama_dir,
        tiny_llama_dir,
        tiny_llama_dir,
        {"judge": judge_cfg | {"method": "generate", "max_tokens": 2}},
    )
    write_answers(ctx)
    with pytest.raises(DefinemedError) as err:  # the CLI prints it as one error: line and exits 2
        run(inputs, ctx)
    assert "evaluate.judge" in str(err.value) and "cut=" in str(err.value)

    inputs, ctx = make_setup(
        tmp_path / "good", tiny_llama_dir, tiny_llama_dir, tiny_llama_dir, {"judge": judge_cfg | {"method": "logprob"}}
    )
    write_answers(ctx)
    judge = run(inputs, ctx).metrics.judge
    assert judge.kind == "openai" and judge.model == MODEL and judge.invalid_by_cause == {}
    assert judge.endpoint is not None
    assert judge.requests == judge.endpoint.requests == judge.n_judgments - judge.cached
    assert judge.prompt_tokens > 0 and judge.endpoint.logprobs == "/chat/completions"
    rows = [json.loads(line) for line in (ctx.stage_dir / "judgments.jsonl").read_text().splitlines()]
    assert {r["order"] for r in rows} == {"ab", "ba"} and all(r["winner"] in ("A", "B", "tie") for r in rows)
