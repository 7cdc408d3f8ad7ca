"""Generation through an OpenAI-compatible server (the shared fake), the vLLM backend's missing-package error,
and the local transformers judge on tiny models."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from definemed.evaluate.config import HfJudgeConfig, OpenAIGenerationConfig, VllmGenerationConfig
from definemed.evaluate.generate_backends import OpenAIGenerator, VllmGenerator
from definemed.evaluate.verdicts import JudgeItem
from definemed.llm import FailureBudgetExceeded
from tests.openai_fake import FakeOpenAIServer, ScriptedResponder, fail, ok

SCRIPT = {
    "<<short>>": [ok(" Kurz. ", completion_tokens=3)],
    "<<cut>>": [ok("Eine sehr lange Antwort", completion_tokens=8, finish_reason="length")],
    "<<flaky>>": [fail(502), fail(429, headers={"Retry-After": "0"}), ok("Geht doch.", completion_tokens=4)],
    "<<down>>": [fail(500)],
}


def generator(server: FakeOpenAIServer, **overrides: object) -> OpenAIGenerator:
    cfg = OpenAIGenerationConfig.model_validate(
        {
            "kind": "openai",
            "base_url": server.base_url,
            "model": "served-{name}",
            "max_new_tokens": 8,
            "system_prompt": "Antworte auf Deutsch.",
            "concurrency": 2,
            "max_retries": 2,
            "backoff_s": 0.01,
            **overrides,
        }
    )
    return OpenAIGenerator("/models/cpt", cfg, seed=7, name="cpt")


def test_openai_generation_tokens_limit_and_retries() -> None:
    with FakeOpenAIServer(ScriptedResponder(SCRIPT)) as server:
        gen = generator(server)
        out = gen.generate(["Frage <<short>>", "Frage <<cut>>", "Frage <<flaky>>"])
        bodies = [r.body for r in server.requests if r.method == "POST"]
    assert [(g.text, g.n_tokens, g.hit_limit) for g in out] == [
        ("Kurz.", 3, False),
        ("Eine sehr lange Antwort", 8, True),
        ("Geht doch.", 4, False),
    ]
    assert gen.requests == server.hits == 5  # two failures of <<flaky>> retried
    assert [g.requests for g in out] == [1, 1, 3] and [g.completion_tokens for g in out] == [3, 8, 4]
    body = bodies[0]
    assert body["model"] == "served-cpt" and body["max_tokens"] == 8 and body["seed"] == 7
    assert body["messages"][0] == {"role": "system", "content": "Antworte auf Deutsch."}
    assert body["messages"][1]["role"] == "user" and body["temperature"] == 0.0


def test_generate_answers_stores_the_endpoint_accounting_in_typed_metrics(tmp_path: Path) -> None:
    from definemed.evaluate.metrics import GenerationStats
    from definemed.evaluate.resolve import ModelRef
    from definemed.evaluate.stage import generate_answers

    prompts = [
        {"id": "p1", "prompt": "Frage <<short>>", "category": "", "reference": None},
        {"id": "p2", "prompt": "Frage <<flaky>>", "category": "", "reference": None},
    ]
    with FakeOpenAIServer(ScriptedResponder(SCRIPT)) as server:
        cfg = generator(server).cfg
        row = generate_answers(cfg, 7, ModelRef("cpt", "/models/cpt"), prompts, tmp_path)
    assert row.pop("seconds") >= 0  # the stage keeps timings under metrics.seconds
    stats = GenerationStats.model_validate(row)
    assert stats.endpoint is not None and stats.endpoint.requests == stats.requests == server.hits == 4
    assert stats.endpoint.retries == {"server_error": 1, "rate_limited": 1} and stats.endpoint.failed == {}
    assert stats.completion_tokens == 3 + 4 and stats.n == 2 and stats.hit_limit == 0


def test_openai_generation_fails_loudly_after_retries() -> None:
    with FakeOpenAIServer(ScriptedResponder(SCRIPT)) as server:
        with pytest.raises(
            FailureBudgetExceeded, match="evaluate.generation .served-cpt.: 1 of 2 failed.*server_error=1"
        ):
            generator(server, max_retries=1).generate(["Frage <<short>>", "Frage <<down>>"])
        assert server.responder.hits["<<down>>"] == 2  # type: ignore[attr-defined]


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_missing_names_the_extra() -> None:
    with pytest.raises(RuntimeError, match=r"pip install 'definemed\[vllm\]'"):
        VllmGenerator("/models/x", VllmGenerationConfig(kind="vllm"))


ITEMS = [
    JudgeItem("Was ist Fieber?", "Erhöhte Körpertemperatur.", "Erhöhte Temperatur.", "Ein Auto."),
    JudgeItem("Was ist Fieber?", "Erhöhte Körpertemperatur.", "Ein Auto.", "Erhöhte Temperatur."),
    JudgeItem("Wofür Metformin?", None, "Diabetes Typ 2.", "Kopfschmerz."),
]


def test_hf_judge_logprob_gives_valid_verdicts_and_caches(tmp_path: Path, tiny_llama_dir: Path) -> None:
    from definemed.evaluate.hf_judge import HfJudge

    cfg = HfJudgeConfig(kind="hf", model=str(tiny_llama_dir), batch_size=2)
    judge = HfJudge(cfg, tmp_path)
    verdicts = judge.judge_batch(ITEMS)
    assert [v.winner in ("A", "B", "tie") for v in verdicts] == [True] * 3
    assert all(v.raw.startswith("logprob A=") and not v.cached for v in verdicts)
    assert judge.prompt_text(ITEMS[0]).endswith("<|im_start|>assistant\nUrteil: ")
    # batching does not change a verdict; a fresh judge on the same folder answers from the cache, unloaded
    alone = [judge.judge_batch([i])[0] for i in ITEMS]
    assert [v.raw for v in alone] == [v.raw for v in verdicts] and all(v.cached for v in alone)
    fresh = HfJudge(cfg, tmp_path)
    assert [v.winner for v in fresh.judge_batch(ITEMS)] == [v.winner for v in verdicts] and fresh._lm is None
    wide = HfJudge(cfg.model_copy(update={"tie_margin": 1e9}), tmp_path)  # new key: judged again
    assert [v.winner for v in wide.judge_batch(ITEMS)] == ["tie"] * 3


def test_hf_judge_generate_parses_strictly(tmp_path: Path, tiny_qwen2_dir: Path) -> None:
    from definemed.evaluate.hf_judge import HfJudge

    judge = HfJudge(HfJudgeConfig(kind="hf", model=str(tiny_qwen2_dir), method="generate", max_new_tokens=3), None)
    verdicts = judge.judge_batch(ITEMS)
    # a random tiny model writes no verdict line: every reply is kept and counted invalid, none dropped
    assert len(verdicts) == 3 and all(v.winner == "invalid" and v.raw is not None for v in verdicts)
