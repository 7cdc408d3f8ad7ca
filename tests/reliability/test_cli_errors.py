"""Every failure a user can cause ends as one `error: ...` line, non-zero exit, no traceback (--debug shows it)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import yaml

from definemed import cli
from definemed.errors import DefinemedError
from tests.helpers import minimal_config_dict


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        (errno.ENOSPC, "disk is full"),
        (errno.EROFS, "read-only"),
        (errno.EACCES, "permissions"),
        (errno.ENOENT, "check the path"),
    ],
)
def test_user_caused_os_errors_are_one_line(monkeypatch, capsys, code: int, hint: str) -> None:
    def fail(args):
        raise OSError(code, __import__("os").strerror(code), "/data/run/corpus/00000.jsonl.gz")

    monkeypatch.setattr(cli, "_cmd_ls", fail)
    assert cli.main(["ls"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "/data/run/corpus/00000.jsonl.gz" in line and hint in line


def test_definemed_errors_are_one_line_and_debug_shows_the_traceback(monkeypatch, capsys) -> None:
    def fail(args):
        raise DefinemedError("endpoint http://x/v1 refused the request (401): set OPENAI_API_KEY")

    monkeypatch.setattr(cli, "_cmd_ls", fail)
    assert cli.main(["ls"]) == 2
    assert "401" in _one_error_line(capsys.readouterr().err)
    assert cli.main(["ls", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("error: ")
    monkeypatch.setenv("DEFINEMED_DEBUG", "1")
    assert cli.main(["ls"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback(monkeypatch) -> None:
    monkeypatch.setattr(cli, "_cmd_ls", lambda args: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        cli.main(["ls"])


def test_missing_config_file_is_one_line(capsys, tmp_path: Path) -> None:
    assert cli.main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in _one_error_line(capsys.readouterr().err)


def test_missing_input_paths_fail_validate_and_run_before_any_stage(tmp_path: Path, capsys, monkeypatch) -> None:
    data = minimal_config_dict(tmp_path)
    data["evaluate"] = {"prompts": str(tmp_path / "prompts.jsonl")}
    (tmp_path / "shards").rmdir()
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    assert cli.main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "corpus.input.paths.0" in err and "evaluate.prompts" in err
    assert cli.main(["validate", "--schema-only", str(path)]) == 0
    capsys.readouterr()
    calls: list[str] = []
    from definemed import registry

    monkeypatch.setattr(registry, "get", lambda kind, name: calls.append(name))
    assert cli.main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "corpus.input.paths.0" in err
    assert calls == [] and not (tmp_path / "run").exists()  # nothing ran, nothing was created


def test_read_only_run_dir_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root ignores file permissions")
    data = minimal_config_dict(tmp_path)
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    data["run"]["run_dir"] = str(locked / "run")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    assert cli.main(["run", str(path), "--stages", "corpus"]) == 2
    assert "permissions" in _one_error_line(capsys.readouterr().err)
