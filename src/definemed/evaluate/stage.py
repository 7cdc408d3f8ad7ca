"""The evaluate stage: multiple choice (lm-eval), answers to open prompts, pairwise judging, win-rates.

Layout of the stage folder:
  mcq/<model>.json, mcq/<model>_samples.jsonl, mcq/tasks/*.yaml   lm-eval results, per-question log, tasks
  answers/<model>.jsonl                                            one row per prompt
  judgments.jsonl                                                  one row per judge call (both orders)
  pairwise.json                                                    per-pair outcomes and win-rates
  <run_dir>/.cache/judge/judge_cache.jsonl    judge replies (openai, hf), outside the stage folder: a rerun of
                                              the stage (which starts from an empty folder) asks nothing twice
Models are loaded one at a time and released before the next, so peak memory is one model.

Resuming: the runner keeps the folder of an interrupted attempt with the same config key. Per-model outputs are
written atomically (mcq/<model>.json last), so one that exists is complete and is read instead of recomputed.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

from definemed import registry
from definemed.artifacts import read_json, read_jsonl, write_json, write_jsonl
from definemed.evaluate import judge_stats, pairwise
from definemed.evaluate.config import EvaluateConfig, McqConfig
from definemed.evaluate.contract import EvaluateInputs
from definemed.evaluate.generate import AnswerGenerator
from definemed.evaluate.lm_tasks import task_files
from definemed.evaluate.mcq import evaluate_mcq
from definemed.evaluate.metrics import EvaluateMetrics
from definemed.evaluate.resolve import ModelRef, resolve_models
from definemed.evaluate.verdicts import PairwiseJudge
from definemed.llm.errors import FailureBudgetExceeded
from definemed.runfolder import safe_join
from definemed.stage import StageContext, StageResult

logger = logging.getLogger("definemed")


def load_prompts(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Open prompts (id, prompt; optional category, reference). Duplicate or missing ids are errors."""
    rows = read_jsonl(path)[:limit] if limit else read_jsonl(path)
    for i, row in enumerate(rows, 1):
        missing = [k for k in ("id", "prompt") if not row.get(k)]
        if missing:
            raise ValueError(f"{path}: prompt {i} lacks {missing}")
    ids = [str(r["id"]) for r in rows]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: prompt ids must be unique")
    return [{**r, "id": str(r["id"]), "category": r.get("category", ""), "reference": r.get("reference")} for r in rows]


def generate_answers(
    gen_cfg: Any, seed: int, model: ModelRef, prompts: list[dict[str, Any]], out_dir: Path
) -> dict[str, Any]:
    """Write answers/<model>.jsonl; return generation metrics for the model. `gen_cfg` is evaluate.generation:
    its `kind` names the registered generator class (see `generate.AnswerGenerator` for what it must provide)."""
    t0 = time.perf_counter()
    generator_cls = registry.get("generator", gen_cfg.kind)
    generator: AnswerGenerator = generator_cls(
        model.path, gen_cfg, seed=seed, dtype=model.dtype, revision=model.revision, name=model.name
    )
    try:
        outputs = generator.generate([p["prompt"] for p in prompts], desc=f"generate {model.name}")
    finally:
        generator.close()
    rows = [
        {
            "prompt_id": p["id"],
            "model": model.name,
            "category": p["category"],
            "prompt": p["prompt"],
            "reference": p["reference"],
            "answer": g.text,
            "n_tokens": g.n_tokens,
            "hit_limit": g.hit_limit,
            "seconds": g.seconds,
            "requests": g.requests,
            "prompt_tokens": g.prompt_tokens,
            "completion_tokens": g.completion_tokens,
        }
        for p, g in zip(prompts, outputs, strict=True)
    ]
    write_jsonl(safe_join(out_dir, model.name, ".jsonl"), rows)
    endpoint = getattr(generator, "stats", None)
    return (
        generation_metrics(rows)
        | {"seconds": round(time.perf_counter() - t0, 2)}
        | ({"endpoint": endpoint} if endpoint else {})
    )


def generation_metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Verbosity is `mean_tokens_untruncated`: answers cut at max_new_tokens measure the budget, not the model."""
    n, cut = len(rows), sum(r["hit_limit"] for r in rows)
    whole = [r["n_tokens"] for r in rows if not r["hit_limit"]]
    return {
        "n": n,
        "mean_tokens": sum(r["n_tokens"] for r in rows) / n if n else 0.0,
        "hit_limit": cut,
        "hit_limit_rate": cut / n if n else 0.0,
        "n_untruncated": len(whole),
        "mean_tokens_untruncated": sum(whole) / len(whole) if whole else None,
        "requests": sum(r.get("requests", 0) for r in rows),
        "prompt_tokens": sum(r.get("prompt_tokens", 0) for r in rows),
        "completion_tokens": sum(r.get("completion_tokens", 0) for r in rows),
    }


def finished_answers(path: Path, prompts: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The rows of an answers file left by an interrupted attempt, if it covers exactly these prompts."""
    if not path.exists():
        return None
    rows = read_jsonl(path)
    return rows if [r["prompt_id"] for r in rows] == [p["id"] for p in prompts] else None


def judge_cache_dir(ctx: StageContext) -> Path:
    """Run-level judge cache: survives the stage folder being wiped on rerun."""
    return ctx.run_dir / ".cache" / "judge"


def judge_pairs(
    ev: EvaluateConfig,
    stage_dir: Path,
    prompts: list[dict[str, Any]],
    answers: dict[str, dict[str, str]],
    lengths: dict[str, dict[str, int]],
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Judge every pair in both orders; write judgments.jsonl and pairwise.json; return the summary.

    The judge is the registered class named by evaluate.judge.kind, built as `Judge(judge_config, cache_dir)`
    (see `verdicts.PairwiseJudge` for what it must provide).
    judgments.jsonl rows follow `audit.position_consistency`: model_a/model_b name the pair, `order` 'ab'
    shows model_a first, 'ba' model_b; `winner` is the slot ('A' = shown first)."""
    jcfg = ev.judge
    judge: PairwiseJudge = registry.get("judge", jcfg.kind)(jcfg, cache_dir)
    comparisons, items = pairwise.build_comparisons(prompts, answers, ev.models)
    t0 = time.perf_counter()
    try:
        verdicts = judge.judge_batch(items)
    finally:
        if hasattr(judge, "close"):
            judge.close()
    if len(verdicts) != len(items):
        raise RuntimeError(f"judge returned {len(verdicts)} verdicts for {len(items)} comparisons")
    seconds = round(time.perf_counter() - t0, 2)
    write_jsonl(
        stage_dir / "judgments.jsonl",
        (
            {
                "prompt_id": c.prompt_id,
                "category": c.category,
                "model_a": c.pair[0],
                "model_b": c.pair[1],
                "order": ("ab", "ba")[c.order],
                "shown_first": c.model_a,
                "winner": v.winner,
                "winner_model": pairwise.slot_to_model(c, v.winner),
                "raw": v.raw,
                "error": v.error,
                "cause": v.cause,
                "finish_reason": v.finish_reason,
                "requests": v.requests,
                "cached": v.cached,
            }
            for c, v in zip(comparisons, verdicts, strict=True)
        ),
    )
    causes = Counter((v.cause or "invalid") for v in verdicts if v.winner == "invalid")
    summary = pairwise.summarize(pairwise.outcomes(comparisons, verdicts, lengths), ev.models, ev.baseline)
    summary["judge"] = {
        "kind": jcfg.kind,
        "model": getattr(judge, "model", None),
        "n_judgments": len(verdicts),
        "invalid_verdicts": sum(v.winner == "invalid" for v in verdicts),
        # invalid because the request failed (time-outs, 5xx after retries), not the reply
        "errors": sum(v.error is not None for v in verdicts),
        "cached": sum(v.cached for v in verdicts),
        "seconds": seconds,
        "note": getattr(judge, "note", None),
        "invalid_by_cause": dict(causes.most_common()),
        "requests": sum(v.requests for v in verdicts if not v.cached),
        "prompt_tokens": sum(v.prompt_tokens for v in verdicts if not v.cached),
        "completion_tokens": sum(v.completion_tokens for v in verdicts if not v.cached),
        "endpoint": getattr(judge, "stats", None) or None,
    }
    write_json(stage_dir / "pairwise.json", summary)
    budget = getattr(jcfg, "max_invalid_share", None)
    invalid = summary["judge"]["invalid_verdicts"]
    if budget is not None and verdicts and invalid / len(verdicts) > budget:
        detail = ", ".join(f"{c}={n}" for c, n in causes.most_common())
        raise FailureBudgetExceeded(
            f"evaluate.judge: {invalid} of {len(verdicts)} verdicts are invalid ({invalid / len(verdicts):.1%} > "
            f"max_invalid_share {budget:.1%}): {detail}; each verdict with its raw reply and cause is in "
            f"{stage_dir / 'judgments.jsonl'}",
            {"invalid": invalid, "total": len(verdicts), "by_cause": dict(causes)},
        )
    if summary["invalid"]:
        logger.warning(
            "[evaluate] %d of %d comparisons are invalid (see judgments.jsonl)",
            summary["invalid"],
            summary["n_comparisons"],
        )
    return summary


def sweep_dev_split(ctx: StageContext) -> tuple[str, set[str]] | None:
    """(task, question ids) the merge sweep chose its factor on, when the merge stage ran a sweep on an MC task."""
    if "merge" not in ctx.upstream:
        return None
    sweep = ctx.metrics("merge").sweep
    task = sweep.proxy.mcq_task if sweep is not None else None
    return (task, set(sweep.dev_ids)) if task else None


def held_out_mcq(mcq: McqConfig, ctx: StageContext, metrics: dict[str, Any]) -> McqConfig:
    """evaluate.mcq with the sweep's dev questions removed from their task, for every model alike.

    The merge factor was chosen by accuracy on those questions, so scoring the merged model on them again would
    flatter it; the remaining questions are written to mcq/test_split/<task>.jsonl and evaluated instead.
    """
    split = sweep_dev_split(ctx)
    if split is None:
        return mcq
    name, dev_ids = split
    task = next((t for t in mcq.tasks if t.name == name and t.kind == "local"), None)
    if task is None or not dev_ids:
        return mcq
    rows = [r for f in task_files(task.path) for r in read_jsonl(f)]
    kept = [r for r in rows if str(r.get("id")) not in dev_ids]
    if not kept:
        raise ValueError(
            f"evaluate.mcq.tasks[{name}]: every question is in the merge sweep's dev split "
            f"(merge.sweep.proxy.mcq_limit={len(dev_ids)}); lower the limit or add questions"
        )
    target = safe_join(ctx.stage_dir / "mcq" / "test_split", name, ".jsonl")
    write_jsonl(target, kept)
    metrics["mcq_split"] = {
        name: {
            "questions": len(rows),
            "excluded_dev": len(rows) - len(kept),
            "evaluated": len(kept),
            "reason": "merge.sweep.proxy dev split",
        }
    }
    tasks = [t.model_copy(update={"path": target}) if t is task else t for t in mcq.tasks]
    return mcq.model_copy(update={"tasks": tasks})


def run_mcq(inputs: EvaluateInputs, ctx: StageContext, refs: dict[str, ModelRef], metrics: dict[str, Any]) -> None:
    """Multiple choice for every model; a model whose mcq/<model>.json exists (an interrupted attempt) is read."""
    out = ctx.stage_dir / "mcq"
    mcq = held_out_mcq(inputs.evaluate.mcq, ctx, metrics)
    results = {}
    for name, ref in refs.items():
        done = safe_join(out, name, ".json")
        if done.exists():
            metrics["resumed"]["mcq"].append(name)
            results[name] = read_json(done)
        else:
            results[name] = evaluate_mcq(ref, mcq, out, seed=inputs.seed)
    keep = ("acc", "acc_stderr", "acc_norm", "n", "per_subject", "pred_letters", "subtasks", "num_fewshot")
    metrics["mcq"] = {
        name: {t: {k: m[k] for k in keep if k in m} for t, m in r["tasks"].items()} for name, r in results.items()
    }
    metrics["seconds"]["mcq"] = {name: r["seconds"] for name, r in results.items()}


def run_generation(
    inputs: EvaluateInputs,
    ctx: StageContext,
    refs: dict[str, ModelRef],
    prompts: list[dict[str, Any]],
    metrics: dict[str, Any],
) -> None:
    """Answers for every model; a complete answers/<model>.jsonl from an interrupted attempt is kept."""
    out = ctx.stage_dir / "answers"
    gen = {}
    for name, ref in refs.items():
        rows = finished_answers(safe_join(out, name, ".jsonl"), prompts)
        if rows is not None:
            metrics["resumed"]["generation"].append(name)
            gen[name] = generation_metrics(rows) | {"seconds": 0.0}
        else:
            gen[name] = generate_answers(inputs.evaluate.generation, inputs.seed, ref, prompts, out)
    metrics["generation"] = {n: {k: v for k, v in g.items() if k != "seconds"} for n, g in gen.items()}
    metrics["seconds"]["generation"] = {n: g["seconds"] for n, g in gen.items()}


def add_statistics(
    ev: EvaluateConfig, seed: int, stage_dir: Path, summary: dict[str, Any], metrics: dict[str, Any]
) -> None:
    """metrics["ratings"] and metrics["judge_audit"] from pairwise.json's battles and judgments.jsonl."""
    metrics["ratings"] = judge_stats.rating_metrics(
        summary["outcomes"], ev.models, ev.baseline, seed, ev.bootstrap_rounds, ev.fold_change
    )
    metrics["judge_audit"] = judge_stats.audit_metrics(
        read_jsonl(stage_dir / "judgments.jsonl"), summary["outcomes"], ev.human_labels
    )


def run(inputs: EvaluateInputs, ctx: StageContext) -> StageResult[EvaluateMetrics]:
    ev = inputs.evaluate
    refs = resolve_models(ev.models, inputs.models, ctx)
    outputs: dict[str, str] = {}
    metrics: dict[str, Any] = {
        "models": {n: r.path for n, r in refs.items()},
        "seconds": {},
        "resumed": {"mcq": [], "generation": []},
    }
    if ev.mcq.tasks:
        run_mcq(inputs, ctx, refs, metrics)
        outputs["mcq"] = "mcq"
    if ev.prompts is None:
        return StageResult(outputs=outputs, metrics=EvaluateMetrics.model_validate(metrics))
    prompts = load_prompts(ev.prompts, ev.prompt_limit)
    run_generation(inputs, ctx, refs, prompts, metrics)
    outputs["answers"] = "answers"
    if len(refs) < 2:
        logger.info("[evaluate] one model only: no pairwise judging")
        return StageResult(outputs=outputs, metrics=EvaluateMetrics.model_validate(metrics))
    rows = {name: read_jsonl(safe_join(ctx.stage_dir / "answers", name, ".jsonl")) for name in refs}
    answers = {name: {r["prompt_id"]: r["answer"] for r in rs} for name, rs in rows.items()}
    lengths = {name: {r["prompt_id"]: r["n_tokens"] for r in rs} for name, rs in rows.items()}
    summary = judge_pairs(ev, ctx.stage_dir, prompts, answers, lengths, judge_cache_dir(ctx))
    judge = summary.pop("judge")
    metrics["pairwise"] = {k: summary[k] for k in ("pairs", "vs_baseline", "baseline", "order_consistency")}
    metrics["judge"] = {k: judge[k] for k in ("kind", "model", "note", "n_judgments", "cached")} | {
        "invalid": summary["invalid"],
        "invalid_verdicts": judge["invalid_verdicts"],
        "errors": judge["errors"],
        "invalid_by_cause": judge["invalid_by_cause"],
        "requests": judge["requests"],
        "prompt_tokens": judge["prompt_tokens"],
        "completion_tokens": judge["completion_tokens"],
        "endpoint": judge["endpoint"],
    }
    metrics["seconds"]["judging"] = judge["seconds"]
    add_statistics(ev, inputs.seed, ctx.stage_dir, summary, metrics)
    outputs |= {"judgments": "judgments.jsonl", "pairwise": "pairwise.json"}
    return StageResult(outputs=outputs, metrics=EvaluateMetrics.model_validate(metrics))
