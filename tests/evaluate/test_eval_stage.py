"""The whole evaluate stage on tiny models, with a fake upstream (cpt / merged point at tiny checkpoints)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from definemed import registry
from definemed.artifacts import read_json, read_jsonl
from definemed.config import DefinemedConfig
from definemed.evaluate.contract import EvaluateInputs, bind
from definemed.evaluate.judges import JudgeItem, Verdict
from definemed.evaluate.metrics import EvaluateMetrics, JudgeMetrics
from definemed.stage import StageContext
from tests.evaluate.test_eval_mcq import write_questions
from tests.helpers import minimal_config_dict

PROMPTS = [
    {
        "id": "p1",
        "category": "patient_question",
        "prompt": "Wann sollte ich bei Fieber zum Arzt?",
        "reference": "Bei Fieber über 39 Grad oder länger als drei Tage sollten Sie ärztlichen Rat einholen.",
    },
    {
        "id": "p2",
        "category": "pharmacology",
        "prompt": "Wofür wird Metformin eingesetzt?",
        "reference": "Metformin ist das Mittel der ersten Wahl bei Diabetes mellitus Typ 2.",
    },
    {
        "id": "p3",
        "category": "nursing",
        "prompt": "Was ist Dekubitusprophylaxe?",
        "reference": "Maßnahmen, die Druckgeschwüre bei bettlägerigen Patienten verhindern.",
    },
]


def merge_metrics(sweep: dict[str, Any] | None = None) -> dict[str, Any]:
    """Valid merge-stage metrics (`MergeMetrics`), with a sweep when given one (proxy settings and dev ids)."""
    out: dict[str, Any] = {
        "method": "slerp",
        "base": "instruct",
        "t": 0.5,
        "seconds": 0.0,
        "parameters": {},
        "inputs": {},
    }
    if sweep is not None:
        row = {
            "candidate": 0,
            "t": 0.5,
            "mcq_acc": None,
            "medical_loss": None,
            "medical_ppl": None,
            "general_loss": None,
            "general_ppl": None,
            "mixing_rate": None,
            "objective": 0.0,
            "terms": {},
            "seconds": 0.0,
        }
        out["sweep"] = {"rows": [row], "chosen": row, "objective": {"maximize": {"mcq_acc": 1.0}}, **sweep}
    return out


def make_setup(
    tmp_path: Path, instruct: Path, cpt: Path, merged: Path, evaluate: dict[str, Any]
) -> tuple[EvaluateInputs, StageContext]:
    """The stage's bound inputs (what the runner passes) and a context whose cpt / merge outputs are `cpt` and
    `merged`."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in PROMPTS), encoding="utf-8")
    data = minimal_config_dict(tmp_path, model_id=str(instruct))
    data["evaluate"] = {
        "models": ["instruct", "cpt", "merged"],
        "baseline": "instruct",
        "prompts": str(prompts),
        "generation": {"kind": "hf", "max_new_tokens": 4, "batch_size": 2},
        **evaluate,
    }
    cfg = DefinemedConfig.model_validate(data)
    run_dir = cfg.run.run_dir
    for stage, model in (("cpt", cpt), ("merge", merged)):
        (run_dir / stage).mkdir(parents=True)
        (run_dir / stage / "model").symlink_to(model)
    upstream = {
        s: {"run_id": s, "key": s, "outputs": {"model": "model"}, "metrics": m}
        for s, m in (("cpt", {}), ("merge", merge_metrics()))
    }
    ctx = StageContext(run_dir=run_dir, stage="evaluate", upstream=upstream)
    ctx.stage_dir.mkdir(parents=True)
    return bind(cfg), ctx


def test_stage_with_reference_judge(
    tmp_path: Path, tiny_llama_dir: Path, tiny_qwen2_dir: Path, tiny_llama_other_dir: Path
) -> None:
    from definemed.evaluate.stage import run

    questions = write_questions(tmp_path / "mcq", n=8)
    inputs, ctx = make_setup(
        tmp_path,
        tiny_llama_dir,
        tiny_qwen2_dir,
        tiny_llama_other_dir,
        {
            "mcq": {"tasks": [{"name": "mini_de", "path": str(questions)}], "batch_size": 4},
            "judge": {"kind": "reference", "tie_margin": 0.0},
        },
    )
    result = run(inputs, ctx)
    out = ctx.stage_dir

    assert result.outputs == {
        "mcq": "mcq",
        "answers": "answers",
        "judgments": "judgments.jsonl",
        "pairwise": "pairwise.json",
    }
    assert all((out / p).exists() for p in result.outputs.values())
    m = result.metrics
    assert isinstance(m, EvaluateMetrics)
    assert EvaluateMetrics.model_validate(m.model_dump(mode="json")) == m  # what the manifest stores reads back
    assert m.mcq is not None and set(m.mcq) == {"instruct", "cpt", "merged"}
    assert all(0 <= m.mcq[k]["mini_de"].acc <= 1 and m.mcq[k]["mini_de"].n == 8 for k in m.mcq)
    assert m.models["cpt"] == str(ctx.run_dir / "cpt" / "model")
    for name in ("instruct", "cpt", "merged"):
        rows = read_jsonl(out / "answers" / f"{name}.jsonl")
        assert [r["prompt_id"] for r in rows] == ["p1", "p2", "p3"]
        assert all(r["model"] == name and r["n_tokens"] <= 4 and r["reference"] for r in rows)
        assert m.generation is not None and m.generation[name].n == 3 and m.generation[name].endpoint is None
    judgments = read_jsonl(out / "judgments.jsonl")
    assert len(judgments) == 3 * 3 * 2  # pairs x prompts x orders
    assert m.judge is not None and "weak proxy" in (m.judge.note or "")
    assert m.judge == JudgeMetrics(
        kind="reference",
        model="chrF",
        note=m.judge.note,
        n_judgments=18,
        cached=0,
        invalid=0,
        invalid_verdicts=0,
        errors=0,
        invalid_by_cause={},
        requests=0,
        prompt_tokens=0,
        completion_tokens=0,
        endpoint=None,
    )
    assert m.resumed.mcq == [] and m.resumed.generation == []
    assert m.ratings is not None and m.ratings.bradley_terry is not None
    assert set(m.ratings.bradley_terry) == {"instruct", "cpt", "merged"}
    assert m.ratings.bradley_terry["instruct"].score == pytest.approx(1000)  # anchored at the baseline
    assert set(m.ratings.lc_winrate) == {"cpt", "merged"}
    assert m.judge_audit is not None and m.judge_audit.kappa is None
    assert m.judge_audit.position_consistency.consistency == 1.0
    assert m.pairwise is not None
    pairs = m.pairwise.pairs
    assert len(pairs) == 6 and all(p.wins + p.ties + p.losses + p.invalid == 3 for p in pairs)
    assert set(m.pairwise.vs_baseline) == {"cpt", "merged"}
    assert m.pairwise.order_consistency == 1.0  # chrF cannot see the position
    stored = read_json(out / "pairwise.json")
    assert stored["judge"]["n_judgments"] == 18
    # the artifacts feed the statistics modules as they are
    from definemed.evaluate.audit import position_consistency
    from definemed.evaluate.ratings import win_table

    assert position_consistency(judgments)["consistency"] == 1.0
    battles = [b for b in stored["outcomes"] if b["winner"] != "invalid"]
    assert all(b["len_a"] <= 4 and b["len_b"] <= 4 for b in battles)
    theirs = {(r["model"], r["opponent"]): r["win_rate"] for r in win_table(battles)}
    assert theirs == {(p.model, p.opponent): p.win_rate for p in pairs}
    assert set(m.seconds.mcq or {}) == set(m.seconds.generation or {}) == {"instruct", "cpt", "merged"}
    assert m.seconds.judging is not None
    assert sorted(p.name for p in (out / "mcq").glob("*.json")) == ["cpt.json", "instruct.json", "merged.json"]


class SlotAJudge:
    """Always prefers the first answer, except for one prompt where it replies nonsense."""

    model = "slot-a"

    def __init__(self, config: Any, workdir: Path) -> None:
        self.workdir = workdir

    def judge_batch(self, items: list[JudgeItem]) -> list[Verdict]:
        return [Verdict("invalid", raw="???") if "Metformin" in i.prompt else Verdict("A", raw="[[A]]") for i in items]


def test_stage_with_fake_judge_counts_position_bias_and_invalid(
    tmp_path: Path,
    tiny_llama_dir: Path,
    tiny_qwen2_dir: Path,
    tiny_llama_other_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from definemed.evaluate.stage import run

    monkeypatch.setitem(registry._ENTRIES["judge"], "reference", (SlotAJudge, "test double"))
    inputs, ctx = make_setup(tmp_path, tiny_llama_dir, tiny_qwen2_dir, tiny_llama_other_dir, {})
    result = run(inputs, ctx)

    m = result.metrics
    assert "mcq" not in result.outputs and m.mcq is None and m.seconds.mcq is None
    pairs = m.pairwise.pairs
    # slot A wins in both orders -> the two orders disagree -> tie; the Metformin prompt is invalid everywhere
    assert all((p.wins, p.ties, p.losses, p.invalid) == (0, 2, 0, 1) for p in pairs)
    assert m.pairwise.vs_baseline == {"cpt": 0.5, "merged": 0.5}
    assert m.judge.invalid == 3 and m.judge.invalid_verdicts == 6 and m.judge.invalid_by_cause == {"invalid": 6}
    invalid_rows = [r for r in read_jsonl(ctx.stage_dir / "judgments.jsonl") if r["winner"] == "invalid"]
    assert {r["prompt_id"] for r in invalid_rows} == {"p2"} and len(invalid_rows) == 6


def test_missing_upstream_model_is_a_clear_error(tmp_path: Path, tiny_llama_dir: Path) -> None:
    from definemed.evaluate.stage import run

    inputs, ctx = make_setup(tmp_path, tiny_llama_dir, tiny_llama_dir, tiny_llama_dir, {})
    ctx.upstream.pop("merge")
    with pytest.raises(RuntimeError, match="merge"):
        run(inputs, ctx)


def test_duplicate_prompt_ids_are_rejected(tmp_path: Path) -> None:
    from definemed.evaluate.stage import load_prompts

    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="unique"):
        load_prompts(path)
    assert len(load_prompts(path, limit=1)) == 1
