from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from definemed.cli import main
from tests.helpers import minimal_config_dict

REPO = Path(__file__).resolve().parents[1]


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys; from definemed.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'datatrove', 'mergekit', 'lm_eval') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_validate_reports_each_file(tmp_path: Path, capsys) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(minimal_config_dict(tmp_path)))
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text() + "cpt:\n  max_stpes: 3\n")
    assert main(["validate", str(good)]) == 0
    assert main(["validate", str(good), str(bad)]) == 1
    err = capsys.readouterr().err
    assert "cpt.max_stpes" in err and "bad.yaml" in err


def test_ls_lists_components(capsys) -> None:
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    for name in ("corpus", "tfidf_logreg", "slerp", "reference", "openai", "ray"):
        assert name in out


def test_plan_shows_every_stage_for_paper_config(capsys) -> None:
    assert main(["plan", str(REPO / "configs" / "paper-qwen2.5-7b.yaml")]) == 0
    out = capsys.readouterr().out
    for stage in ("corpus", "cpt", "merge", "evaluate", "analyze", "report"):
        assert stage in out


def test_a_plugin_that_cannot_be_imported_is_one_error_line(monkeypatch, capsys) -> None:
    monkeypatch.setenv("DEFINEMED_PLUGINS", "no_such_plugin_module")
    assert main(["ls"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: DEFINEMED_PLUGINS names 'no_such_plugin_module'") and "Traceback" not in err
