"""Build the datatrove executor named by `corpus.executor` and run a pipeline on it to completion.

Local runs in worker processes on this machine; Slurm submits a job array and we wait for its completion
markers; Ray runs on an existing or local Ray cluster. Every executor keeps datatrove's logging folder (logs,
per-rank stats, completion markers), which is what makes a rerun skip finished ranks.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from definemed import registry

if TYPE_CHECKING:
    from datatrove.executor.base import PipelineExecutor

    from definemed.corpus.config import LocalExecutorConfig, RayExecutorConfig, SlurmExecutorConfig

logger = logging.getLogger("definemed")
# How often to look at the completion markers of a submitted Slurm array.
POLL_SECONDS = 60


def build_local(cfg: LocalExecutorConfig, pipeline: list[Any], logging_dir: str, job_name: str) -> PipelineExecutor:
    from datatrove.executor import LocalPipelineExecutor

    return LocalPipelineExecutor(
        pipeline=pipeline, tasks=cfg.tasks, workers=min(cfg.workers, cfg.tasks), logging_dir=logging_dir
    )


def build_slurm(cfg: SlurmExecutorConfig, pipeline: list[Any], logging_dir: str, job_name: str) -> PipelineExecutor:
    from datatrove.executor import SlurmPipelineExecutor

    # Jobs start in the same Python environment as the submitting process.
    activate = Path(sys.prefix) / "bin" / "activate"
    extra = {"qos": cfg.qos} if cfg.qos else {}
    return SlurmPipelineExecutor(
        pipeline=pipeline,
        tasks=cfg.tasks,
        time=cfg.time,
        partition=cfg.partition,
        cpus_per_task=cfg.cpus_per_task,
        mem_per_cpu_gb=cfg.mem_per_cpu_gb,
        workers=cfg.workers,
        job_name=job_name,
        sbatch_args=dict(cfg.sbatch_args),
        logging_dir=logging_dir,
        venv_path=str(activate) if activate.exists() else None,
        **extra,
    )


def build_ray(cfg: RayExecutorConfig, pipeline: list[Any], logging_dir: str, job_name: str) -> PipelineExecutor:
    try:
        import ray
    except ImportError:
        raise RuntimeError(
            "corpus.executor.kind=ray needs Ray: pip install 'ray[default]' (or pip install 'definemed[ray]')"
        ) from None
    from datatrove.executor import RayPipelineExecutor

    if not ray.is_initialized():
        ray.init(address=cfg.address)  # None starts a local Ray on this machine
    return RayPipelineExecutor(
        pipeline=pipeline,
        tasks=cfg.tasks,
        workers=cfg.workers,
        cpus_per_task=cfg.cpus_per_task,
        logging_dir=logging_dir,
    )


def run_to_completion(executor_cfg: Any, pipeline: list[Any], logging_dir: Path, job_name: str) -> None:
    """Run `pipeline` on the configured executor and return once every rank has its completion marker.

    Finished ranks of an earlier, interrupted attempt are skipped by datatrove itself. A failed local or Ray rank
    makes this raise instead of returning with missing output. On Slurm it waits for the markers (datatrove
    requeues preempted tasks); if an array task died, cancel the stage and rerun it: only unfinished ranks are
    submitted again.
    """
    build = registry.get("executor", executor_cfg.kind)
    executor = build(executor_cfg, pipeline, str(logging_dir), job_name)
    try:
        executor.run()
    except FileNotFoundError as exc:
        if executor_cfg.kind == "slurm" and exc.filename == "sbatch":
            raise RuntimeError(
                f"corpus.executor.kind=slurm needs Slurm's `sbatch` on PATH: run the stage on a "
                f"login node of the cluster. The job script it would have submitted is "
                f"{logging_dir / 'launch_script.slurm'}"
            ) from None
        raise
    if executor_cfg.kind == "slurm":
        while incomplete := executor.get_incomplete_ranks():
            logger.info("[corpus] %s: %d/%d Slurm tasks still running", job_name, len(incomplete), executor.world_size)
            time.sleep(POLL_SECONDS)
    incomplete = executor.get_incomplete_ranks()
    if incomplete:
        raise RuntimeError(
            f"{job_name}: ranks {incomplete[:10]} did not complete; see the task logs in {logging_dir / 'logs'}"
        )
