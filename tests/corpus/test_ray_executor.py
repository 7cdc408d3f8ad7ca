"""The corpus pipelines on datatrove's Ray executor (a local Ray started by the test) and the Slurm executor's
job script (built without a cluster): same output as the local executor, finished ranks skipped on relaunch."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.corpus.conftest import corpus_config

from definemed.corpus.config import RayExecutorConfig, SlurmExecutorConfig
from definemed.corpus.executors import run_to_completion
from definemed.stage import StageContext


def _docs(folder: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line) for f in sorted(folder.glob("*.jsonl.gz")) for line in gzip.open(f, "rt", encoding="utf-8")
    ]


def _outputs(stage_dir: Path) -> dict[str, list[str]]:
    """Document ids per output folder (medical/, each rejected/<step>/), order-free."""
    folders = [stage_dir / "medical", *sorted((stage_dir / "rejected").iterdir())]
    return {str(f.relative_to(stage_dir)): sorted(d["id"] for d in _docs(f)) for f in folders}


@pytest.fixture(scope="module")
def local_ray() -> Any:
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'definemed[ray]' (or the dev extra)")
    # Memory is a scheduling resource here: datatrove reserves 2 GB per task, declared so that two tasks fit on
    # any machine; the small object store keeps Ray off a small /dev/shm in containers.
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=80 * 2**20, _memory=6 * 2**30
    )
    yield ray
    ray.shutdown()


def _run_stage(cfg: Any) -> tuple[Any, Path]:
    from definemed.corpus.contract import bind
    from definemed.corpus.stage import run

    ctx = StageContext(run_dir=cfg.run.run_dir, stage="corpus")
    ctx.stage_dir.mkdir(parents=True, exist_ok=True)
    return run(bind(cfg), ctx).metrics, ctx.stage_dir


@pytest.mark.slow
def test_corpus_stage_on_ray_equals_local(local_ray: Any, tmp_path: Path, corpus_inputs: dict) -> None:
    local, local_dir = _run_stage(corpus_config(tmp_path / "local", corpus_inputs))
    on_ray, ray_dir = _run_stage(corpus_config(tmp_path / "ray", corpus_inputs, executor={"kind": "ray", "tasks": 2}))
    assert _outputs(ray_dir) == _outputs(local_dir)
    assert _outputs(ray_dir)["medical"]  # the comparison is not between two empty folders
    for key in (
        "docs_in",
        "docs_kept",
        "dropped",
        "dropped_by_reason",
        "corrupt_files",
        "missing_text",
        "input_files",
        "tokens_in",
        "tokens_kept",
        "classifier",
    ):
        assert getattr(on_ray, key) == getattr(local, key), key
    assert sorted(p.name for p in (ray_dir / "logs" / "classify" / "completions").iterdir()) == ["00000", "00001"]


def test_ray_relaunch_skips_completed_ranks(local_ray: Any, tmp_path: Path, corpus_inputs: dict) -> None:
    from datatrove.pipeline.writers import JsonlWriter

    from definemed.corpus.readers import RobustParquetReader

    def pipeline() -> list[Any]:
        return [
            RobustParquetReader(str(corpus_inputs["shards"])),
            JsonlWriter(str(tmp_path / "out"), output_filename="${rank}.jsonl.gz", compression="gzip"),
        ]

    cfg, logs = RayExecutorConfig(kind="ray", tasks=2), tmp_path / "logs"
    run_to_completion(cfg, pipeline(), logs, "relaunch")
    outputs = {name: tmp_path / "out" / f"{name}.jsonl.gz" for name in ("00000", "00001")}
    first = {name: (path.stat().st_mtime_ns, path.read_bytes()) for name, path in outputs.items()}
    stats_0 = (logs / "stats" / "00000.json").stat().st_mtime_ns

    (logs / "completions" / "00001").unlink()  # rank 1 as if its worker died before finishing
    run_to_completion(cfg, pipeline(), logs, "relaunch")
    assert (logs / "stats" / "00000.json").stat().st_mtime_ns == stats_0  # rank 0 was not run again
    assert outputs["00000"].stat().st_mtime_ns == first["00000"][0]
    assert outputs["00001"].stat().st_mtime_ns > first["00001"][0]  # rank 1 was, and rewrote its own file
    assert gzip.decompress(outputs["00001"].read_bytes()) == gzip.decompress(first["00001"][1])
    assert (logs / "completions" / "00001").exists()


def test_slurm_without_sbatch_writes_the_job_script_and_says_what_is_missing(
    tmp_path: Path, corpus_inputs: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dill

    from definemed.corpus.pipelines import CorpusLayout, build_filter_pipeline
    from definemed.corpus.stats import TokenizerChoice

    monkeypatch.setenv("PATH", str(tmp_path / "no-slurm"))  # no sbatch on PATH, as on a laptop
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    cfg = corpus_config(tmp_path, corpus_inputs)
    pipeline = build_filter_pipeline(cfg.corpus, CorpusLayout(tmp_path / "stage"), TokenizerChoice("whitespace", None))
    slurm = SlurmExecutorConfig(
        kind="slurm",
        tasks=8,
        partition="cpu",
        time="02:00:00",
        cpus_per_task=2,
        mem_per_cpu_gb=3,
        workers=4,
        qos="normal",
        sbatch_args={"account": "med"},
    )
    logs = tmp_path / "logs"
    with pytest.raises(RuntimeError, match=r"needs Slurm's `sbatch` on PATH.*launch_script\.slurm"):
        run_to_completion(slurm, pipeline.blocks, logs, "t-corpus-filter")

    script = (logs / "launch_script.slurm").read_text()
    assert script.startswith("#!/bin/bash\n")
    directives = dict(
        line.removeprefix("#SBATCH --").split("=", 1)
        for line in script.splitlines()
        if line.startswith("#SBATCH --") and "=" in line
    )
    assert {
        k: directives[k]
        for k in ("partition", "job-name", "time", "cpus-per-task", "mem-per-cpu", "array", "qos", "account")
    } == {
        "partition": "cpu",
        "job-name": "t-corpus-filter",
        "time": "02:00:00",
        "cpus-per-task": "2",
        "mem-per-cpu": "3G",
        "array": "0-7%4",
        "qos": "normal",
        "account": "med",
    }
    assert f"launch_pickled_pipeline {logs / 'executor.pik'}" in script
    if (activate := Path(sys.prefix) / "bin" / "activate").exists():
        assert f"source {activate}" in script  # the array tasks start in this environment
    assert json.loads((logs / "ranks_to_run.json").read_text()) == list(range(8))
    # what each array task loads: the whole pipeline, our steps included, survives pickling by value
    executor = dill.loads((logs / "executor.pik").read_bytes())
    assert [type(step).__name__ for step in executor.pipeline] == [type(s).__name__ for s in pipeline.blocks]
    assert executor.pipeline[0].max_doc_chars == 1_000_000
