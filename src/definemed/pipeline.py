"""The resumable runner: decides which stages are current, runs the rest in order, writes manifests.

A stage's key hashes exactly what its `Stage.bind` returns (its typed inputs), the fingerprints of the local files
those inputs name, and the run ids of the upstream stage executions it consumed (ADR 0007). A stage is skipped
when its manifest carries the same key; rerunning any stage gives it a new run id, so every stage after it reruns.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from definemed import __version__
from definemed.artifacts import (
    MANIFEST,
    git_revision,
    host_info,
    package_versions,
    read_json,
    read_manifest,
    write_json,
)
from definemed.config import DefinemedConfig, check_paths
from definemed.errors import DefinemedError
from definemed.runfolder import MARKER, mark_owned, remove_owned, run_lock
from definemed.schema import stable_hash
from definemed.stage import Inputs, Metrics, StageContext
from definemed.stages import NAMES, downstream, get_stage, upstream_closure

logger = logging.getLogger("definemed")

ATTEMPT = ".attempt.json"


class PipelineError(DefinemedError, RuntimeError):
    pass


def stage_key(
    cfg: DefinemedConfig, stage: str, upstream: dict[str, dict[str, Any]], inputs: Inputs | None = None
) -> str:
    """Hash of the stage's bound inputs, their files' fingerprints and the upstream run ids."""
    inputs = inputs if inputs is not None else get_stage(stage).bind(cfg)
    return stable_hash(
        {
            "stage": stage,
            "inputs": inputs.model_dump(mode="json"),
            "files": inputs.fingerprints(),
            "upstream": {name: upstream[name]["run_id"] for name in get_stage(stage).upstream},
            "version": __version__,
        }
    )


@dataclass
class StagePlan:
    stage: str
    action: str  # "cached" | "run"
    reason: str


def plan(cfg: DefinemedConfig, stages: list[str] | None = None, force: bool = False) -> list[StagePlan]:
    selected = _select(stages)
    out: list[StagePlan] = []
    manifests: dict[str, dict[str, Any]] = {}
    will_run: set[str] = set()
    for stage in NAMES:
        if stage not in selected and not any(s in selected for s in downstream(stage)):
            continue
        stage_dir = cfg.run.run_dir / stage
        # A folder we did not create is never trusted as finished output (running it then refuses to touch it).
        manifest = read_manifest(stage_dir) if (stage_dir / MARKER).is_file() else None
        rerun_up = [d for d in get_stage(stage).upstream if d in will_run]
        if stage in selected and force:
            action, reason = "run", "forced"
        elif rerun_up:
            action, reason = "run", f"upstream reruns ({', '.join(rerun_up)})"
        elif manifest is None:
            action, reason = "run", "no finished output"
        elif any(d not in manifests for d in get_stage(stage).upstream):
            action, reason = "run", "upstream missing"
        elif manifest.get("key") != stage_key(cfg, stage, manifests):
            action, reason = "run", "config or inputs changed"
        else:
            action, reason = "cached", f"finished {manifest.get('finished_at', '?')}"
        if stage not in selected:
            if action == "run":
                raise PipelineError(
                    f"stage '{stage}' is needed by {sorted(s for s in selected if stage in upstream_closure(s))} "
                    "but is "
                    f"not current ({reason}); include it in --stages or run without --stages"
                )
            action = "cached"
        if action == "run":
            will_run.add(stage)
        elif manifest is not None:
            manifests[stage] = manifest
        out.append(StagePlan(stage, action, reason))
    return [p for p in out if p.stage in selected]


def _select(stages: list[str] | None) -> list[str]:
    if not stages:
        return list(NAMES)
    unknown = [s for s in stages if s not in NAMES]
    if unknown:
        raise PipelineError(f"unknown stage(s) {unknown}; stages are {list(NAMES)}")
    return list(stages)


def _prepare_stage_dir(stage_dir: Path, stage: str, key: str) -> None:
    """Start a stage attempt: keep resumable partial output of the same key, otherwise start clean.

    Only a folder carrying our ownership marker is ever removed; a foreign `<run_dir>/<stage>` is refused.
    """
    attempt = stage_dir / ATTEMPT
    keep = False
    if (
        get_stage(stage).resumable
        and (stage_dir / MARKER).is_file()
        and attempt.exists()
        and not (stage_dir / MANIFEST).exists()
    ):
        with contextlib.suppress(Exception):
            keep = read_json(attempt).get("key") == key
    if not keep:
        remove_owned(stage_dir, f"stage folder '{stage}'")
    mark_owned(stage_dir, f"stage:{stage}")
    if keep:
        logger.info("[%s] resuming an interrupted attempt", stage)
    write_json(attempt, {"key": key, "started_at": _now()})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_stage(cfg: DefinemedConfig, stage: str, upstream: dict[str, dict[str, Any]]) -> dict[str, Any]:
    spec = get_stage(stage)
    run_dir = cfg.run.run_dir
    inputs = spec.bind(cfg)
    key = stage_key(cfg, stage, upstream, inputs)
    stage_dir = run_dir / stage
    if stage_dir.exists() and not (stage_dir / MARKER).is_file():
        remove_owned(stage_dir, f"stage folder '{stage}'")  # refuses: a foreign folder is never touched
    (stage_dir / MANIFEST).unlink(missing_ok=True)
    _prepare_stage_dir(stage_dir, stage, key)
    ctx = StageContext(
        run_dir=run_dir, stage=stage, upstream={d: upstream[d] for d in spec.upstream}, run_name=cfg.run.name
    )
    started, t0 = _now(), time.perf_counter()
    logger.info("[%s] running -> %s", stage, stage_dir)
    result = spec.load_run()(inputs, ctx)
    # Validated here whatever the stage returned: the manifest only ever holds metrics its readers can parse.
    metrics = result.metrics if isinstance(result.metrics, Metrics) else spec.metrics.model_validate(result.metrics)
    bound = inputs.model_dump(mode="json")
    manifest = {
        "stage": stage,
        "run_id": uuid.uuid4().hex,
        "key": key,
        "inputs_bound": bound,
        "inputs_hash": stable_hash(bound),
        "inputs": {d: {"run_id": upstream[d]["run_id"], "key": upstream[d]["key"]} for d in spec.upstream},
        "outputs": result.outputs,
        "metrics": metrics.model_dump(mode="json"),
        "versions": package_versions(),
        "git_revision": git_revision(),
        "host": host_info(),
        "started_at": started,
        "finished_at": _now(),
        "duration_s": round(time.perf_counter() - t0, 3),
    }
    write_json(stage_dir / MANIFEST, manifest)
    (stage_dir / ATTEMPT).unlink(missing_ok=True)
    return manifest


def run_pipeline(cfg: DefinemedConfig, stages: list[str] | None = None, force: bool = False) -> list[dict[str, Any]]:
    """Run the selected stages (all by default), skipping current ones. Returns one summary row per stage."""
    steps = plan(cfg, stages, force)
    # Inputs of the stages about to run are checked now, not after an hour of corpus filtering.
    check_paths(cfg, "config", {s.stage for s in steps if s.action == "run"})
    summary = []
    with run_lock(cfg.run.run_dir, NAMES):
        manifests: dict[str, dict[str, Any]] = {}
        for stage in NAMES:
            if stage not in {s.stage for s in steps}:
                m = read_manifest(cfg.run.run_dir / stage)
                if m is not None:
                    manifests[stage] = m
        for step in steps:
            if step.action == "cached":
                manifest = read_manifest(cfg.run.run_dir / step.stage)
                assert manifest is not None
                logger.info("[%s] skipped: %s", step.stage, step.reason)
                status = "cached"
            else:
                manifest = run_stage(cfg, step.stage, manifests)
                status = "ran"
            manifests[step.stage] = manifest
            summary.append(
                {
                    "stage": step.stage,
                    "status": status,
                    "duration_s": manifest["duration_s"],
                    "dir": str(cfg.run.run_dir / step.stage),
                }
            )
    return summary
