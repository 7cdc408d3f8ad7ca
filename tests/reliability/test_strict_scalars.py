"""Booleans where numbers belong, inf/nan and absurd counts are errors, from YAML and from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from definemed.config import load_config
from definemed.yamlio import ConfigError
from tests.helpers import minimal_config_dict


def _write(tmp_path: Path, **sections) -> Path:
    data = minimal_config_dict(tmp_path)
    data.update(sections)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("section", "value", "message"),
    [
        ({"cpt": {"max_steps": True}}, "cpt.max_steps", "expected a number, got a boolean"),
        ({"cpt": {"learning_rate": float("inf")}}, "cpt.learning_rate", "finite number"),
        ({"cpt": {"weight_decay": float("nan")}}, "cpt.weight_decay", "finite number"),
        ({"cpt": {"epochs": False}}, "cpt.epochs", "expected a number, got a boolean"),
        ({"evaluate": {"bootstrap_rounds": 10**12}}, "evaluate.bootstrap_rounds", "less than or equal to 100000"),
        ({"run": {"seed": True}}, "run.seed", "expected a number, got a boolean"),
    ],
)
def test_yaml_values(tmp_path: Path, section: dict, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"{value} \(line \d+\): .*{message}"):
        load_config(_write(tmp_path, **section))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("cpt.max_steps=true", "expected a number, got a boolean"),
        ("cpt.learning_rate=.inf", "finite number"),
        ("cpt.learning_rate=.nan", "finite number"),
        ("evaluate.bootstrap_rounds=1000000000", "less than or equal to 100000"),
    ],
)
def test_command_line_overrides_say_where_they_came_from(tmp_path: Path, override: str, message: str) -> None:
    field = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"{field} \(from the command line: '{override}'\): .*{message}"):
        load_config(_write(tmp_path), [override])


def test_bools_stay_valid_where_bools_belong(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path), ["cpt.gradient_checkpointing=true", "cpt.bf16=false", "cpt.max_steps=3"])
    assert cfg.cpt.gradient_checkpointing is True and cfg.cpt.bf16 is False and cfg.cpt.max_steps == 3
