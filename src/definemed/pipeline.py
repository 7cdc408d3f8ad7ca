"""The resumable runner: decides which stages are current, runs the rest in order, writes manifests.

A stage's key hashes its own config slice, the input files it reads and the run ids of the upstream stage
executions it consumed. A stage is skipped when its manifest carries the same key; rerunning any stage gives it a
new run id, so every stage after it reruns too.
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

from definemed import __version__, registry
from definemed.artifacts import (
    MANIFEST,
    StageContext,
    git_revision,
    host_info,
    package_versions,
    read_json,
    read_manifest,
    tree_fingerprint,
    write_json,
)
from definemed.config import STAGE_MODELS, CorpusConfig, DefinemedConfig, check_paths, stable_hash
from definemed.errors import DefinemedError
from definemed.runfolder import MARKER, mark_owned, remove_owned, run_lock

logger = logging.getLogger("definemed")

STAGES = ("corpus", "cpt", "merge", "evaluate", "analyze", "report")
DEPENDS: dict[str, tuple[str, ...]] = {
    "corpus": (),
    "cpt": ("corpus",),
    "merge": ("corpus", "cpt"),  # corpus: held-out documents for the merge sweep's loss proxy
    "evaluate": ("cpt", "merge"),
    "analyze": ("evaluate",),
    "report": ("corpus", "cpt", "merge", "evaluate", "analyze"),
}
# Stages that resume from their own partial output (datatrove completion markers, Trainer checkpoints) when an
# interrupted attempt had the same key. Others restart from an empty folder.
RESUMABLE = {"corpus", "cpt", "evaluate"}
ATTEMPT = ".attempt.json"


class PipelineError(DefinemedError, RuntimeError):
    pass


def _local_listing(paths: list[str], glob: str) -> dict[str, list[int]]:
    """Cheap fingerprint of local input shards (size, mtime): hashing terabytes of parquet is not an option."""
    listing: dict[str, list[int]] = {}
    for p in paths:
        if "://" in p:
            continue
        root = Path(p)
        files = sorted(root.glob(glob)) if root.is_dir() else [root]
        for f in files:
            if f.is_file():
                st = f.stat()
                listing[str(f)] = [st.st_size, st.st_mtime_ns]
    return listing


def _file_digest(path: Path | None) -> str | dict[str, str] | None:
    """sha256 of a small input file, or of every file in a small input folder (tasks, prompts, labels)."""
    if path is None or not Path(path).exists():
        return None
    return stable_hash(tree_fingerprint([path]))


def _label_inputs(corpus: CorpusConfig) -> Any:
    """Digests of the label files the corpus stage reads: `labels`, or the labellers' files (labels of a file
    labeller, prompt templates given as paths) and the audit's gold file."""
    if corpus.labelling is None:
        return _file_digest(corpus.labels.path if corpus.labels is not None else None)
    lab = corpus.labelling
    files = {c.label: _file_digest(c.path if c.kind == "file" else Path(c.template)) for c in lab.candidates}
    return {"labellers": files, "gold": _file_digest(lab.audit.gold) if lab.audit is not None else None}


def config_slice(cfg: DefinemedConfig, stage: str) -> dict[str, Any]:
    """The part of the config (and of the input data) that a stage's output depends on."""
    seed = cfg.run.seed
    if stage == "corpus":
        key = {"corpus": cfg.section("corpus"), "seed": seed,
               "input_files": _local_listing(cfg.corpus.input.paths, cfg.corpus.input.glob),
               "labels": _label_inputs(cfg.corpus)}
        decontam = cfg.corpus.decontamination
        if decontam is not None and decontam.enabled:
            # The corpus is decontaminated against the evaluation benchmarks: changed benchmark files change it.
            key["benchmarks"] = {"mcq": {t.name: _file_digest(t.path) for t in cfg.evaluate.mcq.tasks},
                                 "prompts": _file_digest(cfg.evaluate.prompts)}
        return key
    if stage == "cpt":
        # mfu and gpu_peak_tflops only feed `definemed plan`'s estimate; changing them must not retrain.
        cpt = {k: v for k, v in cfg.section("cpt").items() if k not in {"mfu", "gpu_peak_tflops"}}
        return {"cpt": cpt, "model": cfg.models[cfg.cpt.model].model_dump(mode="json"), "seed": seed}
    if stage == "merge":
        mg = cfg.merge
        used = {m: cfg.models[m].model_dump(mode="json") for m in mg.model_names() if m in cfg.models}
        out = {"merge": cfg.section("merge"), "models": used}
        if getattr(mg, "sweep", None) is not None:  # the sweep's proxies read these too
            out |= {"cpt": cfg.section("cpt"), "analyze": cfg.section("analyze"), "seed": cfg.run.seed,
                    "system_prompt": cfg.evaluate.generation.system_prompt,
                    "task_files": {t.name: _file_digest(t.path) for t in cfg.evaluate.mcq.tasks
                                   if getattr(t, "path", None)},
                    "prompts": _file_digest(cfg.evaluate.prompts)}
        return out
    if stage == "evaluate":
        ev = cfg.evaluate
        used = {m: cfg.models[m].model_dump(mode="json") for m in ev.models if m not in STAGE_MODELS}
        files = {t.name: _file_digest(t.path) for t in ev.mcq.tasks}
        return {"evaluate": cfg.section("evaluate"), "models": used, "seed": seed, "task_files": files,
                "prompts": _file_digest(ev.prompts)}
    return {stage: cfg.section(stage)}


def stage_key(cfg: DefinemedConfig, stage: str, upstream: dict[str, dict[str, Any]]) -> str:
    inputs = {name: upstream[name]["run_id"] for name in DEPENDS[stage]}
    return stable_hash({"stage": stage, "config": config_slice(cfg, stage), "inputs": inputs,
                        "version": __version__})


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
    for stage in STAGES:
        if stage not in selected and not any(s in selected for s in _downstream(stage)):
            continue
        stage_dir = cfg.run.run_dir / stage
        # A folder we did not create is never trusted as finished output (running it then refuses to touch it).
        manifest = read_manifest(stage_dir) if (stage_dir / MARKER).is_file() else None
        rerun_up = [d for d in DEPENDS[stage] if d in will_run]
        if stage in selected and force:
            action, reason = "run", "forced"
        elif rerun_up:
            action, reason = "run", f"upstream reruns ({', '.join(rerun_up)})"
        elif manifest is None:
            action, reason = "run", "no finished output"
        elif any(d not in manifests for d in DEPENDS[stage]):
            action, reason = "run", "upstream missing"
        elif manifest.get("key") != stage_key(cfg, stage, manifests):
            action, reason = "run", "config or inputs changed"
        else:
            action, reason = "cached", f"finished {manifest.get('finished_at', '?')}"
        if stage not in selected:
            if action == "run":
                raise PipelineError(
                    f"stage '{stage}' is needed by {sorted(s for s in selected if stage in _upstream(s))} but is "
                    f"not current ({reason}); include it in --stages or run without --stages")
            action = "cached"
        if action == "run":
            will_run.add(stage)
        elif manifest is not None:
            manifests[stage] = manifest
        out.append(StagePlan(stage, action, reason))
    return [p for p in out if p.stage in selected]


def _select(stages: list[str] | None) -> list[str]:
    if not stages:
        return list(STAGES)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise PipelineError(f"unknown stage(s) {unknown}; stages are {list(STAGES)}")
    return list(stages)


def _upstream(stage: str) -> set[str]:
    found: set[str] = set()
    for dep in DEPENDS[stage]:
        found |= {dep} | _upstream(dep)
    return found


def _downstream(stage: str) -> set[str]:
    return {s for s in STAGES if stage in _upstream(s)}


def _prepare_stage_dir(stage_dir: Path, stage: str, key: str) -> None:
    """Start a stage attempt: keep resumable partial output of the same key, otherwise start clean.

    Only a folder carrying our ownership marker is ever removed; a foreign `<run_dir>/<stage>` is refused.
    """
    attempt = stage_dir / ATTEMPT
    keep = False
    if stage in RESUMABLE and (stage_dir / MARKER).is_file() and attempt.exists() \
            and not (stage_dir / MANIFEST).exists():
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
    run_dir = cfg.run.run_dir
    key = stage_key(cfg, stage, upstream)
    stage_dir = run_dir / stage
    if stage_dir.exists() and not (stage_dir / MARKER).is_file():
        remove_owned(stage_dir, f"stage folder '{stage}'")  # refuses: a foreign folder is never touched
    (stage_dir / MANIFEST).unlink(missing_ok=True)
    _prepare_stage_dir(stage_dir, stage, key)
    ctx = StageContext(run_dir=run_dir, stage=stage, upstream={d: upstream[d] for d in DEPENDS[stage]})
    started, t0 = _now(), time.perf_counter()
    logger.info("[%s] running -> %s", stage, stage_dir)
    result = registry.get("stage", stage)(cfg, ctx)
    manifest = {
        "stage": stage, "run_id": uuid.uuid4().hex, "key": key,
        "config": config_slice(cfg, stage), "config_hash": stable_hash(config_slice(cfg, stage)),
        "inputs": {d: {"run_id": upstream[d]["run_id"], "key": upstream[d]["key"]} for d in DEPENDS[stage]},
        "outputs": result.outputs, "metrics": result.metrics,
        "versions": package_versions(), "git_revision": git_revision(), "host": host_info(),
        "started_at": started, "finished_at": _now(), "duration_s": round(time.perf_counter() - t0, 3),
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
    with run_lock(cfg.run.run_dir, STAGES):
        manifests: dict[str, dict[str, Any]] = {}
        for stage in STAGES:
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
            summary.append({"stage": step.stage, "status": status, "duration_s": manifest["duration_s"],
                            "dir": str(cfg.run.run_dir / step.stage)})
    return summary
