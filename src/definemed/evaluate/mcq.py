"""Multiple-choice accuracy through lm-evaluation-harness, from local JSONL files.

Benchmarks are data: each configured task becomes an lm-eval task YAML (filled from
`assets/lm_eval/mcq_de.yaml.tmpl`) in the stage folder, pointing at absolute local files, so nothing touches
the hub. lm-eval scores each question by the log-likelihood of the letters " A".." D" after the prompt
(`acc`) and the same normalised by byte length (`acc_norm`). We keep lm-eval's aggregate, its per-sample
log, and a per-subject table recomputed from the samples.
"""

from __future__ import annotations

import gc
import json
import logging
import time
from collections import Counter, defaultdict
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from definemed.artifacts import write_json, write_jsonl, write_text
from definemed.config import McqConfig, McqTaskConfig
from definemed.evaluate.resolve import ModelRef

logger = logging.getLogger("definemed")

TEMPLATE = "mcq_de.yaml.tmpl"


def task_files(path: Path) -> list[Path]:
    """The JSONL files of a task: the file itself, or every `*.jsonl` in a folder (sorted, absolute)."""
    path = Path(path).expanduser().resolve()
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise FileNotFoundError(
            f"multiple-choice task data not found: {path} (expected a .jsonl file or a folder of them)")
    return files


def write_task_yamls(tasks: list[McqTaskConfig], folder: Path) -> list[str]:
    """Write one lm-eval task YAML per configured task into `folder`; return the task names."""
    source = resources.files("definemed").joinpath("assets", "lm_eval", TEMPLATE)
    template = Template(source.read_text(encoding="utf-8"))
    for task in tasks:
        files = [str(f) for f in task_files(task.path)]
        text = template.substitute(task=task.name, data_files=json.dumps(files, ensure_ascii=False),
                                   num_fewshot=task.num_fewshot)
        write_text(folder / f"{task.name}.yaml", text)
    return [t.name for t in tasks]


def per_subject(samples: list[dict[str, Any]]) -> dict[str, dict[str, float | int]]:
    """Accuracy and count per `subject` (rows without one count as 'all')."""
    groups: dict[str, list[float]] = defaultdict(list)
    for row in samples:
        groups[str(row.get("subject") or "all")].append(float(row["acc"]))
    return {s: {"acc": sum(v) / len(v), "n": len(v)} for s, v in sorted(groups.items())}


def _sample_row(task: str, sample: dict[str, Any]) -> dict[str, Any]:
    doc = sample.get("doc", {})
    loglik = [float(r[0]) for r in sample.get("filtered_resps", [])]
    return {"task": task, "doc_id": sample.get("doc_id"), "id": doc.get("id"), "subject": doc.get("subject"),
            "target": sample.get("target"),
            "pred": max(range(len(loglik)), key=loglik.__getitem__) if loglik else None,
            "acc": float(sample["acc"]), "acc_norm": float(sample.get("acc_norm", float("nan"))),
            "loglikelihoods": loglik}


def summarize(results: dict[str, Any], task_names: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Turn lm-eval's output into our per-task metrics and flat per-sample rows."""
    metrics: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    for name in task_names:
        agg = results["results"][name]
        task_rows = [_sample_row(name, s) for s in results["samples"][name]]
        rows.extend(task_rows)
        metrics[name] = {
            "acc": agg["acc,none"], "acc_stderr": agg.get("acc_stderr,none"),
            "acc_norm": agg.get("acc_norm,none"), "acc_norm_stderr": agg.get("acc_norm_stderr,none"),
            "n": len(task_rows), "num_fewshot": results.get("n-shot", {}).get(name),
            "per_subject": per_subject(task_rows),
            # Small models often pick one letter whatever the question: accuracy near chance with all "A".
            "pred_letters": dict(sorted(Counter("ABCD"[r["pred"]] for r in task_rows
                                                if r["pred"] is not None and r["pred"] < 4).items())),
        }
    return metrics, rows


def evaluate_mcq(model: ModelRef, cfg: McqConfig, out_dir: Path, seed: int = 0) -> dict[str, Any]:
    """Run every configured task on one model; write `<model>.json` and `<model>_samples.jsonl`."""
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    task_dir = out_dir / "tasks"
    names = write_task_yamls(cfg.tasks, task_dir)
    # include_defaults=False: skip indexing lm-eval's thousands of built-in tasks (and their hub datasets).
    manager = TaskManager(include_path=str(task_dir), include_defaults=False)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.perf_counter()
    lm = HFLM(pretrained=model.path, revision=model.revision or "main", batch_size=cfg.batch_size,
              device=device, dtype=model.dtype)
    try:
        results = simple_evaluate(model=lm, tasks=names, task_manager=manager, log_samples=True,
                                  limit=cfg.limit, random_seed=seed, fewshot_random_seed=seed)
    finally:
        del lm  # free weights before the next model is loaded
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    if results is None:
        raise RuntimeError("lm-eval returned no results (is this a non-zero rank of a distributed run?)")
    metrics, rows = summarize(results, names)
    seconds = round(time.perf_counter() - t0, 2)
    write_jsonl(out_dir / f"{model.name}_samples.jsonl", rows)
    write_json(out_dir / f"{model.name}.json", {
        "model": model.name, "path": model.path, "tasks": metrics, "seconds": seconds, "limit": cfg.limit,
        "lm_eval_version": results.get("lm_eval_version"),
        "task_dir": str(task_dir),
    })
    logger.info("[evaluate] mcq %s: %s (%.1f s)", model.name,
                ", ".join(f"{t}={m['acc']:.3f}" for t, m in metrics.items()), seconds)
    return {"tasks": metrics, "seconds": seconds}
