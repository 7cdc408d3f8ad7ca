from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from definemed import registry
from definemed.config import DefinemedConfig, resolve_paths
from definemed.pipeline import PipelineError, plan, run_pipeline
from tests import fake_stages
from tests.helpers import minimal_config_dict

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(registry, "_ENTRIES", {k: dict(v) for k, v in registry._ENTRIES.items()})
    fake_stages.install()
    fake_stages.CALLS.clear()
    return fake_stages.CALLS


def _cfg(tmp_path: Path, **cpt) -> DefinemedConfig:
    data = minimal_config_dict(tmp_path)
    data["cpt"] = {"max_steps": 5, **cpt}
    return resolve_paths(DefinemedConfig.model_validate(data), tmp_path)


def test_second_run_skips_everything(tmp_path: Path, fakes: list[str]) -> None:
    cfg = _cfg(tmp_path)
    first = run_pipeline(cfg)
    assert [r["status"] for r in first] == ["ran"] * 6
    second = run_pipeline(cfg)
    assert [r["status"] for r in second] == ["cached"] * 6
    assert fakes == ["corpus", "cpt", "merge", "evaluate", "analyze", "report"]
    manifest = json.loads((cfg.run.run_dir / "merge" / "manifest.json").read_text())
    for key in ("inputs_bound", "inputs_hash", "inputs", "versions", "git_revision", "host", "duration_s", "metrics"):
        assert key in manifest
    assert (
        manifest["inputs"]["cpt"]["run_id"]
        == json.loads((cfg.run.run_dir / "cpt" / "manifest.json").read_text())["run_id"]
    )


def test_changed_stage_config_reruns_it_and_downstream_only(tmp_path: Path, fakes: list[str]) -> None:
    run_pipeline(_cfg(tmp_path))
    fakes.clear()
    steps = {p.stage: p.action for p in plan(_cfg(tmp_path, max_steps=9))}
    assert steps == {
        "corpus": "cached",
        "cpt": "run",
        "merge": "run",
        "evaluate": "run",
        "analyze": "run",
        "report": "run",
    }
    rows = run_pipeline(_cfg(tmp_path, max_steps=9))
    assert fakes == ["cpt", "merge", "evaluate", "analyze", "report"]
    assert rows[0]["status"] == "cached"
    metrics = json.loads((tmp_path / "run" / "cpt" / "manifest.json").read_text())["metrics"]
    assert metrics["max_steps"] == 9


def test_changed_input_file_reruns_corpus(tmp_path: Path, fakes: list[str]) -> None:
    run_pipeline(_cfg(tmp_path))
    (tmp_path / "labels.jsonl").write_text('{"id": "a", "medical": false}\n')
    assert plan(_cfg(tmp_path))[0].action == "run"


def test_crash_then_rerun_leaves_no_duplicates(tmp_path: Path, fakes: list[str], monkeypatch) -> None:
    cfg = _cfg(tmp_path)
    monkeypatch.setenv("FAKE_CRASH_AT", "merge-2")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_pipeline(cfg)
    assert not (cfg.run.run_dir / "merge" / "manifest.json").exists()
    monkeypatch.delenv("FAKE_CRASH_AT")
    rows = run_pipeline(cfg)
    assert [r["status"] for r in rows] == ["cached", "cached", "ran", "ran", "ran", "ran"]
    lines = (cfg.run.run_dir / "merge" / "items.txt").read_text().splitlines()
    assert lines == [f"merge-{i}" for i in range(5)]


def test_resumable_stage_keeps_partial_output_of_same_key(tmp_path: Path, fakes: list[str], monkeypatch) -> None:
    cfg = _cfg(tmp_path)
    monkeypatch.setenv("FAKE_CRASH_AT", "cpt-3")
    with pytest.raises(RuntimeError):
        run_pipeline(cfg)
    monkeypatch.delenv("FAKE_CRASH_AT")
    run_pipeline(cfg)
    # cpt is resumable: the rerun continued after the 4 lines written before the crash, without repeating them
    assert (cfg.run.run_dir / "cpt" / "items.txt").read_text().splitlines() == [f"cpt-{i}" for i in range(5)]


def test_stage_subset_needs_current_upstream(tmp_path: Path, fakes: list[str]) -> None:
    cfg = _cfg(tmp_path)
    with pytest.raises(PipelineError, match="stage 'corpus' is needed by"):
        run_pipeline(cfg, stages=["cpt"])
    run_pipeline(cfg, stages=["corpus", "cpt"])
    assert fakes == ["corpus", "cpt"]
    with pytest.raises(PipelineError, match="unknown stage"):
        run_pipeline(cfg, stages=["train"])


def test_force_reruns_selected_stage_and_downstream(tmp_path: Path, fakes: list[str]) -> None:
    cfg = _cfg(tmp_path)
    run_pipeline(cfg)
    fakes.clear()
    run_pipeline(cfg, stages=["analyze", "report"], force=True)
    assert fakes == ["analyze", "report"]


def test_sigkill_mid_stage_then_rerun_completes(tmp_path: Path) -> None:
    """A real kill -9 of the CLI while a stage is writing; the rerun finishes with exact outputs."""
    path = tmp_path / "cfg.yaml"
    data = minimal_config_dict(tmp_path)
    path.write_text(yaml.safe_dump(data))
    env = {
        **os.environ,
        "DEFINEMED_PLUGINS": "tests.fake_stages",
        "FAKE_SLEEP_AT": "evaluate-1",
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
    }
    cmd = [sys.executable, "-m", "definemed.cli", "run", str(path)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    items = tmp_path / "run" / "evaluate" / "items.txt"
    deadline = time.time() + 60
    while time.time() < deadline and not (items.exists() and "evaluate-1" in items.read_text()):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert not (tmp_path / "run" / "evaluate" / "manifest.json").exists()
    env.pop("FAKE_SLEEP_AT")
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert items.read_text().splitlines() == [f"evaluate-{i}" for i in range(5)]
    statuses = [
        ln.split()[1]
        for ln in out.stdout.splitlines()
        if ln.split() and ln.split()[0] in ("corpus", "cpt", "merge", "evaluate", "analyze", "report")
    ]
    assert statuses == ["cached", "cached", "cached", "ran", "ran", "ran"]


def test_merge_key_follows_every_merged_model(tmp_path: Path) -> None:
    from definemed.pipeline import stage_key

    data = minimal_config_dict(tmp_path)
    data["models"]["base"] = {"id": "org/base-model"}
    data["merge"] = {
        "kind": "task_arithmetic",
        "base_model": "base",
        "models": [{"model": "cpt", "weight": 1.0}, {"model": "instruct", "weight": 1.0}],
    }
    up = {"corpus": {"run_id": "c"}, "cpt": {"run_id": "t"}}
    before = stage_key(DefinemedConfig.model_validate(data), "merge", up)
    data["models"]["base"] = {"id": "org/other-base"}
    after = stage_key(DefinemedConfig.model_validate(data), "merge", up)
    assert before != after
