"""Two first runs materialising the same bundled model at once: one waits, no crash, no stray temp folders."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from definemed import models


def test_concurrent_materialisation_runs_once_and_leaves_no_temp(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DEFINEMED_HOME", str(tmp_path))
    model_id = "HuggingFaceTB/SmolLM2-135M-Instruct"
    monkeypatch.setattr(models, "_bundled_file", lambda mid: tmp_path / "fake.gguf")
    builds: list[int] = []

    def slow_build(mid: str, source: Path, out: Path) -> None:
        builds.append(1)
        time.sleep(0.5)  # long enough for the second caller to arrive while the first is writing
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(b"x" * 10)

    monkeypatch.setattr(models, "_save_gguf_checkpoint", slow_build)
    # a crashed earlier attempt left a temp folder behind
    stale = models.local_dir(model_id).parent / f".{models.local_dir(model_id).name}.dead.tmp"
    stale.mkdir(parents=True)
    results: list[Path] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            results.append(models.materialize(model_id))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and len(results) == 2 and results[0] == results[1]
    assert builds == [1]  # the second caller waited and reused the first one's checkpoint
    assert (results[0] / "config.json").exists()
    leftovers = [p.name for p in results[0].parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_failed_build_leaves_no_temp_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DEFINEMED_HOME", str(tmp_path))
    monkeypatch.setattr(models, "_bundled_file", lambda mid: tmp_path / "fake.gguf")

    def broken(mid: str, source: Path, out: Path) -> None:
        (out / "partial.bin").write_bytes(b"x")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(models, "_save_gguf_checkpoint", broken)
    with pytest.raises(OSError):
        models.materialize("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert [p.name for p in (tmp_path / "models").iterdir() if not p.name.endswith(".lock")] == []
