"""YAML that would make `validate` hang or crash: an alias bomb, deep nesting. Both end as one ConfigError."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from definemed.yamlio import ConfigError, apply_overrides, load_yaml

REPO = Path(__file__).resolve().parents[2]


def _bomb(levels: int = 9, fan: int = 9) -> str:
    lines = ["a0: &a0 [" + ",".join(["lol"] * fan) + "]"]
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * fan) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_naming_the_line(tmp_path: Path) -> None:
    # six levels (9**6 values once expanded) keep a regression quick here; the CLI test below runs all nine
    with pytest.raises(ConfigError, match=r"bomb\.yaml:6: YAML aliases expand the config to more than"):
        load_yaml(_bomb(levels=6), "bomb.yaml")


def test_validate_on_an_alias_bomb_ends_promptly_with_one_error_line(tmp_path: Path) -> None:
    """The original report: `definemed validate` ran for over 120 s. In a subprocess, so a regression fails by
    its time-out instead of hanging the test session."""
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb())
    out = subprocess.run(
        [sys.executable, "-m", "definemed.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO / "src")), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "YAML aliases expand" in out.stderr


def test_too_many_aliases_are_refused() -> None:
    text = "a: &x 1\nb: [" + ", ".join(["*x"] * 101) + "]\n"
    with pytest.raises(ConfigError, match=r"c\.yaml:2: more than 100 YAML aliases"):
        load_yaml(text, "c.yaml")


def test_a_few_aliases_still_work() -> None:
    data, lines = load_yaml("base: &b {id: m}\nother: *b\n", "ok.yaml")
    assert data == {"base": {"id": "m"}, "other": {"id": "m"}} and lines[("other",)] == 2


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "[" * 3000 + "]" * 3000,
        "a: " + "{b: " * 100 + "1" + "}" * 100,
        "\n".join(" " * (2 * i) + f"k{i}:" for i in range(200)) + " 1\n",
    ],
)
def test_deep_nesting_is_a_config_error_not_a_recursion_error(text: str) -> None:
    with pytest.raises(ConfigError, match="nested deeper than 64 levels"):
        load_yaml(text, "deep.yaml")


def test_override_values_have_the_same_bounds() -> None:
    with pytest.raises(ConfigError, match="command-line override.*nested deeper"):
        apply_overrides({}, ["x=" + "[" * 500 + "]" * 500])
