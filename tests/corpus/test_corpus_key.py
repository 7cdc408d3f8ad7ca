"""The corpus stage's key is the hash of what it reads: the CPT model's tokenizer counts its tokens, so another CPT
model reruns it (issue #12: SmolLM2 -> Qwen2.5-7B used to keep the old counts and card); plan-only and report
settings do not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.conftest import REPO

from definemed import pipeline
from definemed.artifacts import write_json
from definemed.cli import main
from definemed.config import DefinemedConfig, load_config
from definemed.corpus.contract import bind
from definemed.runfolder import mark_owned
from definemed.schema import ModelSpec

DEMO = REPO / "configs" / "demo.yaml"
QWEN = "Qwen/Qwen2.5-7B-Instruct"


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """`demo(*overrides)`: the demo config (its relative paths resolved from the repository) in a fresh run folder."""
    monkeypatch.chdir(REPO)
    run_dir = tmp_path / "run"
    return lambda *overrides: load_config(DEMO, [f"run.run_dir={run_dir}", *overrides])


def _key(cfg: DefinemedConfig) -> str:
    return pipeline.stage_key(cfg, "corpus", {})


def test_cpt_model_id_is_part_of_the_corpus_key_plan_and_report_settings_are_not(demo: Any) -> None:
    base = demo()
    assert base.corpus.card.tokenizer is None  # the demo counts tokens with the CPT model's tokenizer
    assert bind(base).tokenizer == ModelSpec(id="HuggingFaceTB/SmolLM2-135M-Instruct")
    assert _key(demo(f"models.instruct.id={QWEN}")) != _key(base)
    assert _key(demo("models.instruct.revision=main")) != _key(base)
    assert _key(demo("models.instruct.dtype=bfloat16")) == _key(base)  # no token count depends on it
    assert _key(demo("plan.mfu=0.3")) == _key(base)
    assert _key(demo("plan.gpu_peak_tflops=500")) == _key(base)
    assert _key(demo("report.title=Another title")) == _key(base)
    # decontamination reads the benchmarks' data, not how the evaluate stage prompts them
    fewshot = base.model_copy(deep=True)
    fewshot.evaluate.mcq.tasks[0].num_fewshot = 3
    assert _key(fewshot) == _key(base)
    assert _key(demo("corpus.decontamination.ngram=8")) != _key(base)


def test_a_pinned_tokenizer_makes_the_corpus_independent_of_the_cpt_model(demo: Any) -> None:
    words = demo("corpus.card.tokenizer=whitespace")
    assert bind(words).tokenizer == "whitespace"
    assert _key(demo("corpus.card.tokenizer=whitespace", f"models.instruct.id={QWEN}")) == _key(words)
    pinned = demo("corpus.card.tokenizer=HuggingFaceTB/SmolLM2-135M-Instruct")
    assert (
        isinstance(bind(demo()).tokenizer, ModelSpec)
        and bind(pinned).tokenizer == "HuggingFaceTB/SmolLM2-135M-Instruct"
    )
    assert _key(
        demo("corpus.card.tokenizer=HuggingFaceTB/SmolLM2-135M-Instruct", f"models.instruct.id={QWEN}")
    ) == _key(pinned)


def _finished_corpus(cfg: DefinemedConfig) -> None:
    """A corpus stage folder as the runner leaves it: its ownership marker and a manifest with the current key."""
    stage_dir = cfg.run.run_dir / "corpus"
    mark_owned(stage_dir, "stage:corpus")
    write_json(
        stage_dir / "manifest.json",
        {
            "stage": "corpus",
            "key": _key(cfg),
            "run_id": "r1",
            "finished_at": "2026-01-01T00:00:00+00:00",
            "metrics": {},
        },
    )


def test_plan_reruns_the_corpus_after_the_cpt_model_changes(
    demo: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _finished_corpus(demo())
    [step] = pipeline.plan(demo(), ["corpus"])
    assert (step.action, step.reason) == ("cached", "finished 2026-01-01T00:00:00+00:00")
    [step] = pipeline.plan(demo(f"models.instruct.id={QWEN}"), ["corpus"])
    assert (step.action, step.reason) == ("run", "config or inputs changed")
    [step] = pipeline.plan(demo("plan.mfu=0.3", "report.title=Another title"), ["corpus"])
    assert step.action == "cached"

    run_dir = f"run.run_dir={tmp_path / 'run'}"
    assert main(["plan", str(DEMO), run_dir, "--stages", "corpus"]) == 0
    assert "corpus     cached" in capsys.readouterr().out
    assert main(["plan", str(DEMO), run_dir, f"models.instruct.id={QWEN}", "--stages", "corpus"]) == 0
    assert "corpus     run     config or inputs changed" in capsys.readouterr().out
