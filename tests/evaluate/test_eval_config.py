"""Evaluate config rules: mistakes in task and judge settings are errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from definemed.evaluate.config import EvaluateConfig, McqConfig, OpenAIJudgeConfig


def test_duplicate_task_names_rejected() -> None:
    with pytest.raises(ValidationError, match="unique"):
        McqConfig(tasks=[{"name": "a", "path": "x"}, {"name": "a", "path": "y"}])


@pytest.mark.parametrize("name", ["with space", "1starts_with_digit", "dash-ed", "../escape"])
def test_task_name_must_be_a_plain_identifier(name: str) -> None:
    with pytest.raises(ValidationError):
        McqConfig(tasks=[{"name": name, "path": "x"}])


def test_judge_kind_selects_config_and_rejects_typos() -> None:
    cfg = EvaluateConfig.model_validate({"judge": {"kind": "openai", "model": "m", "backoff_s": 0.5}})
    assert isinstance(cfg.judge, OpenAIJudgeConfig) and cfg.judge.backoff_s == 0.5
    with pytest.raises(ValidationError, match="concurency"):
        EvaluateConfig.model_validate({"judge": {"kind": "openai", "model": "m", "concurency": 2}})
