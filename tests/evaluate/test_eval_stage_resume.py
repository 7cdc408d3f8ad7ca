"""The evaluate stage resumes from finished per-model outputs, computes ratings and the judge audit on a scripted
judge, and keeps the LLM judge's cache outside the stage folder (a rerun asks the server nothing)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from definemed import registry
from definemed.artifacts import write_json
from definemed.evaluate.judges import JudgeItem, Verdict
from definemed.stage import StageContext
from tests.evaluate.test_eval_stage import PROMPTS, make_setup
from tests.openai_fake import FakeOpenAIServer, ok

# How good each model's answer is per prompt (the scripted judge counts "gut"): merged > cpt ~ instruct.
QUALITY = {"instruct": [1, 1, 3], "cpt": [2, 1, 1], "merged": [3, 3, 2]}


def write_answers(ctx: StageContext) -> None:
    """Answers as an interrupted attempt left them: the stage must not generate them again."""
    for model, scores in QUALITY.items():
        rows = [
            {
                "prompt_id": p["id"],
                "model": model,
                "category": p["category"],
                "prompt": p["prompt"],
                "reference": p["reference"],
                "answer": " ".join(["gut"] * q + ["Text"] * (4 - q)),
                "n_tokens": 4 + q,
                "hit_limit": False,
                "seconds": 0.1,
            }
            for p, q in zip(PROMPTS, scores, strict=True)
        ]
        path = ctx.stage_dir / "answers" / f"{model}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


class GutJudge:
    """Position-blind: more "gut" wins, equal counts tie."""

    model = "gut-counter"

    def __init__(self, config: Any, workdir: Path) -> None:
        pass

    def judge_batch(self, items: list[JudgeItem]) -> list[Verdict]:
        out = []
        for i in items:
            a, b = i.answer_a.count("gut"), i.answer_b.count("gut")
            out.append(Verdict("tie" if a == b else "A" if a > b else "B", raw="scripted"))
        return out


class NoGenerator:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("finished answers must not be generated again")


def test_resume_and_statistics(tmp_path: Path, tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from definemed.evaluate.stage import run

    monkeypatch.setitem(registry._ENTRIES["judge"], "reference", (GutJudge, "test double"))
    monkeypatch.setitem(registry._ENTRIES["generator"], "hf", (NoGenerator, "test double"))
    labels = tmp_path / "human.jsonl"
    labels.write_text(
        '{"prompt_id": "p1", "model_a": "instruct", "model_b": "cpt", "winner": "cpt"}\n'
        '{"prompt_id": "p2", "model_a": "cpt", "model_b": "merged", "winner": "model_b"}\n'
        '{"prompt_id": "p3", "model_a": "merged", "model_b": "instruct", "winner": "instruct"}\n'
    )
    inputs, ctx = make_setup(
        tmp_path,
        tiny_llama_dir,
        tiny_llama_dir,
        tiny_llama_dir,
        {
            "mcq": {"tasks": [{"name": "mini_de", "path": str(tmp_path)}]},
            "fold_change": [["merged", "cpt", "instruct"]],
            "human_labels": str(labels),
            "bootstrap_rounds": 200,
        },
    )
    write_answers(ctx)
    for model in QUALITY:  # finished multiple-choice results, as an interrupted attempt left them
        write_json(
            ctx.stage_dir / "mcq" / f"{model}.json",
            {"tasks": {"mini_de": {"acc": 0.5, "acc_stderr": 0.1, "n": 8, "per_subject": {}}}, "seconds": 1.0},
        )
    m = run(inputs, ctx).metrics

    assert m.resumed.mcq == m.resumed.generation == ["instruct", "cpt", "merged"]
    assert m.seconds.generation == {"instruct": 0.0, "cpt": 0.0, "merged": 0.0}
    assert m.mcq["cpt"]["mini_de"].acc == 0.5
    r = m.ratings
    assert r.n_battles == 9 and r.anchor == "instruct" and r.bradley_terry_note is None
    bt = r.bradley_terry
    assert bt["instruct"].score == pytest.approx(1000)
    assert bt["merged"].score > bt["cpt"].score and bt["merged"].score > 1000
    assert all(v.lower <= v.score <= v.upper for v in bt.values())
    # merged vs instruct: 2 wins 1 loss = 2/3; cpt vs instruct: 1 win, 1 tie, 1 loss = 1/2
    assert r.fold_change == {"merged/cpt vs instruct": pytest.approx((2 / 3) / 0.5)}
    assert set(r.lc_winrate) == {"cpt", "merged"}
    assert r.lc_winrate["merged"].raw == pytest.approx(2 / 3)
    assert r.lc_winrate["merged"].opponent == "instruct"
    audit = m.judge_audit
    assert audit.position_consistency.consistency == 1.0
    assert audit.position_consistency.n_verdicts == 18 and audit.tie_share == pytest.approx(1 / 9)
    assert audit.length_bias.longer_wins_share == 1.0  # more "gut" = more tokens here
    assert audit.kappa.n == 3 and audit.kappa.agreement == 1.0 and audit.kappa.kappa == 1.0


def test_llm_judge_cache_survives_a_stage_rerun(
    tmp_path: Path, tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from definemed.evaluate.stage import run

    monkeypatch.setitem(registry._ENTRIES["generator"], "hf", (NoGenerator, "test double"))
    with FakeOpenAIServer(lambda body, hit: ok("Begründung.\nUrteil: [[A]]")) as server:
        inputs, ctx = make_setup(
            tmp_path,
            tiny_llama_dir,
            tiny_llama_dir,
            tiny_llama_dir,
            {"judge": {"kind": "openai", "model": "judge", "base_url": server.base_url, "concurrency": 4}},
        )
        write_answers(ctx)
        first = run(inputs, ctx).metrics
        asked = server.hits  # identical comparisons (equal answers, same order) are asked once
        assert 12 <= asked < 18 and first.judge.cached == 18 - asked
        assert first.judge.endpoint is not None and first.judge.endpoint.requests == asked
        shutil.rmtree(ctx.stage_dir)  # what the runner does before a rerun; greedy answers come back the same
        ctx.stage_dir.mkdir()
        write_answers(ctx)
        second = run(inputs, ctx).metrics
    assert server.hits == asked and second.judge.cached == 18
    assert (ctx.run_dir / ".cache" / "judge" / "judge_cache.jsonl").exists()
    # slot A always wins: every pair ties after reconciling both orders, and the audit sees the bias
    assert second.pairwise.vs_baseline == {"cpt": 0.5, "merged": 0.5}
    assert second.judge_audit.position_consistency.first_biased_share == 1.0
    assert second.judge_audit.tie_share == 1.0


def test_fold_change_models_must_be_evaluated(tmp_path: Path, tiny_llama_dir: Path) -> None:
    with pytest.raises(ValueError, match="fold_change"):
        make_setup(
            tmp_path,
            tiny_llama_dir,
            tiny_llama_dir,
            tiny_llama_dir,
            {"fold_change": [["merged", "nobody", "instruct"]]},
        )


def test_config_round_trip_keeps_task_kinds(tmp_path: Path) -> None:
    from definemed.evaluate.config import EvaluateConfig, LmEvalMcqTaskConfig, LocalMcqTaskConfig

    ev = EvaluateConfig.model_validate(
        {"mcq": {"tasks": [{"name": "local_de", "path": "x"}, {"kind": "lm_eval", "name": "definemed_mmlux_de_med"}]}}
    )
    assert [type(t) for t in ev.mcq.tasks] == [LocalMcqTaskConfig, LmEvalMcqTaskConfig]
    assert EvaluateConfig.model_validate(ev.model_dump(mode="json")) == ev
