"""A run deletes only folders it created: a foreign run_dir or stage folder is refused and left untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from definemed import registry
from definemed.config import DefinemedConfig, load_config, resolve_paths
from definemed.errors import DefinemedError
from definemed.pipeline import run_pipeline
from definemed.yamlio import ConfigError
from tests import fake_stages
from tests.helpers import minimal_config_dict


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(registry, "_ENTRIES", {k: dict(v) for k, v in registry._ENTRIES.items()})
    fake_stages.install()
    fake_stages.CALLS.clear()
    return fake_stages.CALLS


def _cfg(tmp_path: Path, run_dir: Path) -> DefinemedConfig:
    data = minimal_config_dict(tmp_path)
    (tmp_path / "shards").mkdir(exist_ok=True)
    data["run"]["run_dir"] = str(run_dir)
    return resolve_paths(DefinemedConfig.model_validate(data), tmp_path)


def test_existing_foreign_run_dir_is_refused_and_untouched(tmp_path: Path, fakes: list[str]) -> None:
    foreign = tmp_path / "projects"
    (foreign / "corpus").mkdir(parents=True)
    (foreign / "corpus" / "important.txt").write_text("keep me")
    with pytest.raises(DefinemedError, match="not created by definemed"):
        run_pipeline(_cfg(tmp_path, foreign))
    assert (foreign / "corpus" / "important.txt").read_text() == "keep me"
    assert sorted(p.name for p in foreign.iterdir()) == ["corpus"]  # no marker, no lock file left behind
    assert fakes == []


def test_foreign_stage_folder_inside_our_run_is_refused(tmp_path: Path, fakes: list[str]) -> None:
    cfg = _cfg(tmp_path, tmp_path / "run")
    run_pipeline(cfg)
    # someone replaces the cpt folder by their own; a forced rerun must not delete it
    import shutil

    shutil.rmtree(cfg.run.run_dir / "cpt")
    (cfg.run.run_dir / "cpt").mkdir()
    (cfg.run.run_dir / "cpt" / "notes.txt").write_text("mine")
    with pytest.raises(DefinemedError, match="stage folder 'cpt'.*not created by definemed"):
        run_pipeline(cfg, force=True)
    assert (cfg.run.run_dir / "cpt" / "notes.txt").read_text() == "mine"


def test_symlinked_stage_folder_is_never_followed(tmp_path: Path, fakes: list[str]) -> None:
    cfg = _cfg(tmp_path, tmp_path / "run")
    run_pipeline(cfg, stages=["corpus"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    from definemed.runfolder import MARKER

    (elsewhere / MARKER).write_text("{}")  # even a marker behind a symlink is not ours
    (elsewhere / "data.txt").write_text("x")
    (cfg.run.run_dir / "cpt").symlink_to(elsewhere)
    with pytest.raises(DefinemedError, match="symlink"):
        run_pipeline(cfg, stages=["corpus", "cpt"])
    assert (elsewhere / "data.txt").exists()


def test_our_own_stage_folder_is_replaced_on_rerun(tmp_path: Path, fakes: list[str]) -> None:
    from definemed.runfolder import MARKER

    cfg = _cfg(tmp_path, tmp_path / "run")
    run_pipeline(cfg)
    assert (cfg.run.run_dir / MARKER).is_file() and (cfg.run.run_dir / "merge" / MARKER).is_file()
    (cfg.run.run_dir / "merge" / "stale.txt").write_text("old attempt")
    run_pipeline(cfg, stages=["merge"], force=True)
    assert not (cfg.run.run_dir / "merge" / "stale.txt").exists()


def test_empty_existing_run_dir_is_adopted(tmp_path: Path, fakes: list[str]) -> None:
    run_dir = tmp_path / "fresh"
    run_dir.mkdir()
    run_pipeline(_cfg(tmp_path, run_dir), stages=["corpus"])
    from definemed.runfolder import MARKER

    assert (run_dir / MARKER).is_file()


@pytest.mark.parametrize("value", ["", "   "])
def test_blank_run_dir_is_a_config_error(tmp_path: Path, value: str) -> None:
    path = tmp_path / "c.yaml"
    import yaml

    path.write_text(yaml.safe_dump(minimal_config_dict(tmp_path)))
    with pytest.raises(ConfigError, match=r"run\.run_dir.*(command line).*empty"):
        load_config(path, [f"run.run_dir={value}"])
    data = minimal_config_dict(tmp_path)
    data["run"]["run_dir"] = value
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"run\.run_dir \(line 2?\d*\).*empty"):
        load_config(path)


def test_unmarked_cwd_corpus_survives_blank_run_dir_via_cli(
    tmp_path: Path, monkeypatch, capsys, fakes: list[str]
) -> None:
    """The original report: `run.run_dir=` (an unset shell variable) resolved to the cwd and deleted ./corpus."""
    import yaml

    from definemed.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "important.txt").write_text("keep")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(minimal_config_dict(tmp_path)))
    assert main(["run", "c.yaml", "run.run_dir=", "--stages", "corpus"]) == 2
    assert "error:" in capsys.readouterr().err
    assert (tmp_path / "corpus" / "important.txt").read_text() == "keep"
    assert fakes == []
