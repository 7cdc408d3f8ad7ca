"""Multiple-choice accuracy through lm-evaluation-harness: local JSONL tasks, shipped hub tasks, drop-in folders.

Which tasks exist and how their YAML is built lives in `lm_tasks`. lm-eval scores each question by the
log-likelihood of the letters " A".." D" after the prompt (`acc`) and the same normalised by byte length
(`acc_norm`). Per configured task (or group) we keep lm-eval's aggregate, its per-sample log (with the exact
prompt the model saw, chat template included) and a per-subject table recomputed from the samples.
"""

from __future__ import annotations

import gc
import logging
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from definemed.artifacts import write_json, write_jsonl
from definemed.evaluate.config import McqConfig
from definemed.evaluate.lm_tasks import build_task_manager, local_task_yaml, task_files
from definemed.evaluate.resolve import ModelRef
from definemed.runfolder import safe_join

logger = logging.getLogger("definemed")

__all__ = ["evaluate_mcq", "local_task_yaml", "per_subject", "summarize", "task_files"]


def per_subject(samples: list[dict[str, Any]]) -> dict[str, dict[str, float | int]]:
    """Accuracy and count per `subject` (rows without one count as 'all')."""
    groups: dict[str, list[float]] = defaultdict(list)
    for row in samples:
        groups[str(row.get("subject") or "all")].append(float(row["acc"]))
    return {s: {"acc": sum(v) / len(v), "n": len(v)} for s, v in sorted(groups.items())}


def _prompt(sample: dict[str, Any]) -> str | None:
    """The context of the sample's first request: what the model saw before the answer letter."""
    args = sample.get("arguments")
    if isinstance(args, dict):  # older lm-eval: {"gen_args_0": {"arg_0": context, "arg_1": continuation}}
        first = next(iter(args.values()), {})
        return first.get("arg_0") if isinstance(first, dict) else None
    if isinstance(args, list) and args and isinstance(args[0], list | tuple):
        return str(args[0][0])
    return None


def _sample_row(task: str, leaf: str, subject: str | None, sample: dict[str, Any]) -> dict[str, Any]:
    doc = sample.get("doc", {})
    loglik = [float(r[0]) for r in sample.get("filtered_resps", [])]
    doc_subject = doc.get("subject") if isinstance(doc.get("subject"), str) else None
    return {
        "task": task,
        "subtask": leaf,
        "doc_id": sample.get("doc_id"),
        "id": doc.get("id", doc.get("sample_id")),
        "subject": doc_subject or subject or leaf,
        "target": sample.get("target"),
        "pred": max(range(len(loglik)), key=loglik.__getitem__) if loglik else None,
        "acc": float(sample["acc"]),
        "acc_norm": float(sample.get("acc_norm", float("nan"))),
        "loglikelihoods": loglik,
        "prompt": _prompt(sample),
    }


def _leaf_tasks(name: str, results: dict[str, Any]) -> list[str]:
    """Leaf tasks of a configured name: itself, or (for a group, recursively) its members that have samples."""
    members = results.get("group_subtasks", {}).get(name)
    if not members:
        return [name]
    return [leaf for m in members for leaf in _leaf_tasks(m, results)]


def _task_metrics(name: str, results: dict[str, Any], rows: list[dict[str, Any]], leaves: list[str]) -> dict[str, Any]:
    agg = results["results"][name]
    metrics = {
        "acc": agg["acc,none"],
        "acc_stderr": agg.get("acc_stderr,none"),
        "acc_norm": agg.get("acc_norm,none"),
        "acc_norm_stderr": agg.get("acc_norm_stderr,none"),
        "n": len(rows),
        "num_fewshot": results.get("n-shot", {}).get(leaves[0]),
        "per_subject": per_subject(rows),
        # Small models often pick one letter whatever the question: accuracy near chance with all "A".
        "pred_letters": dict(
            sorted(Counter("ABCD"[r["pred"]] for r in rows if r["pred"] is not None and r["pred"] < 4).items())
        ),
    }
    if leaves != [name]:
        metrics["subtasks"] = {
            leaf: {"acc": results["results"][leaf]["acc,none"], "n": sum(r["subtask"] == leaf for r in rows)}
            for leaf in leaves
        }
    return metrics


def summarize(results: dict[str, Any], task_names: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Our per-task metrics (a group: lm-eval's size-weighted aggregate plus `subtasks`) and flat sample rows."""
    metrics: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    configs = results.get("configs", {})
    for name in task_names:
        leaves = _leaf_tasks(name, results)
        task_rows = []
        for leaf in leaves:
            subject = (configs.get(leaf, {}).get("metadata") or {}).get("subject")
            task_rows += [_sample_row(name, leaf, subject, s) for s in results["samples"][leaf]]
        rows.extend(task_rows)
        metrics[name] = _task_metrics(name, results, task_rows, leaves)
    return metrics, rows


def _run_lm_eval(model: ModelRef, cfg: McqConfig, task_dir: Path, seed: int) -> dict[str, Any]:
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    manager, names = build_task_manager(cfg, task_dir)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    lm = HFLM(
        pretrained=model.path,
        revision=model.revision or "main",
        batch_size=cfg.batch_size,
        device=device,
        dtype=model.dtype,
    )
    try:
        results = simple_evaluate(
            model=lm,
            tasks=names,
            task_manager=manager,
            log_samples=True,
            limit=cfg.limit,
            random_seed=seed,
            fewshot_random_seed=seed,
            apply_chat_template=cfg.apply_chat_template,
            fewshot_as_multiturn=cfg.fewshot_as_multiturn,
            system_instruction=cfg.system_instruction,
        )
    finally:
        del lm  # free weights before the next model is loaded
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    if results is None:
        raise RuntimeError("lm-eval returned no results (is this a non-zero rank of a distributed run?)")
    return results


def evaluate_mcq(model: ModelRef, cfg: McqConfig, out_dir: Path, seed: int = 0) -> dict[str, Any]:
    """Run every configured task on one model; write `<model>_samples.jsonl`, then `<model>.json` (last, so its
    presence marks a finished model for a resumed stage)."""
    task_dir = out_dir / "tasks"
    t0 = time.perf_counter()
    results = _run_lm_eval(model, cfg, task_dir, seed)
    metrics, rows = summarize(results, [t.name for t in cfg.tasks])
    seconds = round(time.perf_counter() - t0, 2)
    write_jsonl(safe_join(out_dir, model.name, "_samples.jsonl"), rows)
    write_json(
        safe_join(out_dir, model.name, ".json"),
        {
            "model": model.name,
            "path": model.path,
            "tasks": metrics,
            "seconds": seconds,
            "limit": cfg.limit,
            "lm_eval_version": results.get("lm_eval_version"),
            "task_dir": str(task_dir),
            "apply_chat_template": cfg.apply_chat_template,
            "fewshot_as_multiturn": cfg.fewshot_as_multiturn,
        },
    )
    logger.info(
        "[evaluate] mcq %s: %s (%.1f s)",
        model.name,
        ", ".join(f"{t}={m['acc']:.3f}" for t, m in metrics.items()),
        seconds,
    )
    return {"tasks": metrics, "seconds": seconds}
