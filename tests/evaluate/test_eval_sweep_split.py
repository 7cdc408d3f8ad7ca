"""The merge sweep's dev questions are not scored again by the evaluate stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from definemed.artifacts import read_jsonl
from definemed.config import DefinemedConfig
from definemed.evaluate import stage as evaluate_stage
from definemed.evaluate.contract import bind
from definemed.stage import StageContext
from tests.evaluate.test_eval_mcq import write_questions
from tests.evaluate.test_eval_stage import merge_metrics as valid_merge_metrics
from tests.helpers import minimal_config_dict


def setup(tmp_path: Path, merge_metrics: dict[str, Any] | None) -> tuple[DefinemedConfig, StageContext, Path]:
    questions = write_questions(tmp_path / "mcq", n=10)
    data = minimal_config_dict(tmp_path)
    data["evaluate"] = {
        "models": ["instruct"],
        "baseline": "instruct",
        "mcq": {"tasks": [{"name": "mini_de", "path": str(questions)}, {"name": "other_de", "path": str(questions)}]},
    }
    cfg = DefinemedConfig.model_validate(data)
    upstream = (
        {}
        if merge_metrics is None
        else {"merge": {"run_id": "m", "key": "m", "outputs": {"model": "model"}, "metrics": merge_metrics}}
    )
    ctx = StageContext(run_dir=cfg.run.run_dir, stage="evaluate", upstream=upstream)
    ctx.stage_dir.mkdir(parents=True)
    return cfg, ctx, questions


def test_dev_questions_are_excluded_from_their_task_only(tmp_path: Path) -> None:
    sweep = valid_merge_metrics({"proxy": {"mcq_task": "mini_de", "mcq_limit": 3}, "dev_ids": ["q1", "q4", "q7"]})
    cfg, ctx, questions = setup(tmp_path, sweep)
    metrics: dict[str, Any] = {}
    mcq = evaluate_stage.held_out_mcq(cfg.evaluate.mcq, ctx, metrics)
    mini, other = mcq.tasks
    assert [r["id"] for r in read_jsonl(mini.path)] == ["q0", "q2", "q3", "q5", "q6", "q8", "q9"]
    assert other.path == questions  # a task the sweep did not use keeps all its questions
    assert metrics["mcq_split"] == {
        "mini_de": {"questions": 10, "excluded_dev": 3, "evaluated": 7, "reason": "merge.sweep.proxy dev split"}
    }
    assert cfg.evaluate.mcq.tasks[0].path == questions  # the config itself is not changed


@pytest.mark.parametrize(
    "merge_metrics", [None, valid_merge_metrics(), valid_merge_metrics({"proxy": {"mcq_task": None}, "dev_ids": []})]
)
def test_without_a_sweep_on_a_task_everything_is_evaluated(tmp_path: Path, merge_metrics: Any) -> None:
    cfg, ctx, _ = setup(tmp_path, merge_metrics)
    metrics: dict[str, Any] = {}
    assert evaluate_stage.held_out_mcq(cfg.evaluate.mcq, ctx, metrics) == cfg.evaluate.mcq and metrics == {}


def test_a_dev_split_covering_the_whole_task_is_a_clear_error(tmp_path: Path) -> None:
    sweep = valid_merge_metrics({"proxy": {"mcq_task": "mini_de"}, "dev_ids": [f"q{i}" for i in range(10)]})
    cfg, ctx, _ = setup(tmp_path, sweep)
    with pytest.raises(ValueError, match=r"evaluate.mcq.tasks\[mini_de\]: every question is in the merge sweep"):
        evaluate_stage.held_out_mcq(cfg.evaluate.mcq, ctx, {})


def test_run_mcq_scores_the_test_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sweep = valid_merge_metrics({"proxy": {"mcq_task": "mini_de"}, "dev_ids": ["q0", "q1"]})
    cfg, ctx, _ = setup(tmp_path, sweep)
    seen: list[int] = []

    def fake_evaluate(ref: Any, mcq: Any, out: Path, seed: int = 0) -> dict[str, Any]:
        seen.append(len(read_jsonl(mcq.tasks[0].path)))
        return {"tasks": {"mini_de": {"acc": 0.5, "n": seen[-1]}}, "seconds": 0.0}

    monkeypatch.setattr(evaluate_stage, "evaluate_mcq", fake_evaluate)
    metrics: dict[str, Any] = {"resumed": {"mcq": []}, "seconds": {}}
    evaluate_stage.run_mcq(bind(cfg), ctx, {"instruct": object()}, metrics)
    assert seen == [8] and metrics["mcq"]["instruct"]["mini_de"]["n"] == 8
