"""The corpus stage: FineWeb2 German shards in, a medical subset (FineMed-de style) and its statistics out.

1. Pipeline A filters the input (language, German quality heuristics) into `filtered/`.
2. The medical classifier is trained on the labelled survivors and scored on held-out ids (`classifier/`).
3. Pipeline B keeps documents the classifier scores as medical (`medical/`); the rest, German but not
   medical, stays in `rejected/not_medical/`, which the CPT stage uses to measure general-German loss.
4. Per-step counts from datatrove's stats plus the classifier report go to `stats.json` and the metrics.

Rerunning an interrupted attempt resumes: finished ranks are skipped via datatrove's completion markers and a
trained classifier with its report is reused.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from definemed.artifacts import StageContext, StageResult, write_json
from definemed.config import DefinemedConfig
from definemed.corpus import stats as corpus_stats
from definemed.corpus.executors import run_to_completion
from definemed.corpus.pipelines import (
    MEDICAL_STEP,
    CorpusLayout,
    build_classify_pipeline,
    build_filter_pipeline,
    filter_steps,
)
from definemed.corpus.training import train_classifier

logger = logging.getLogger("definemed")
CLASSIFIER_KEYS = ("kind", "threshold", "precision", "recall", "f1", "accuracy", "support", "confusion",
                   "n_train", "n_heldout", "n_unlabelled", "label_lines_malformed")


def run(cfg: DefinemedConfig, ctx: StageContext) -> StageResult:
    """Filter, train the classifier, classify; return output folders and the counts of every step."""
    layout = CorpusLayout(ctx.stage_dir)
    corpus, timings = cfg.corpus, {}
    t0 = time.perf_counter()
    run_to_completion(corpus.executor, build_filter_pipeline(cfg, layout), layout.logs("filter"),
                      f"{cfg.run.name}-corpus-filter")
    timings["filter_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    report = train_classifier(layout.filtered, corpus.labels, corpus.classifier, cfg.run.seed, layout.classifier)
    timings["classifier_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    run_to_completion(corpus.executor, build_classify_pipeline(cfg, layout), layout.logs("classify"),
                      f"{cfg.run.name}-corpus-classify")
    timings["classify_s"] = time.perf_counter() - t0
    # Writers create folders lazily; downstream stages expect both outputs even when one of them is empty.
    for folder in (layout.medical, layout.rejected_for(MEDICAL_STEP)):
        folder.mkdir(parents=True, exist_ok=True)

    counts = corpus_stats.collect(layout.logs("filter"), layout.logs("classify"), len(corpus.input.paths),
                                  [name for name, _ in filter_steps(cfg, layout)], MEDICAL_STEP)
    if not counts["balanced"]:
        logger.warning("[corpus] docs in (%d) != kept + dropped (%d): a step lost documents; see stats.json",
                       counts["docs_in"], counts["docs_kept"] + sum(counts["dropped"].values()))
    metrics = _metrics(counts, report, timings)
    write_json(ctx.stage_dir / "stats.json", {**metrics, "steps": counts["steps"],
                                              "classifier_report": report})
    logger.info(_summary(metrics))
    return StageResult(
        outputs={"medical": "medical", "general": f"rejected/{MEDICAL_STEP}", "rejected": "rejected",
                 "classifier": "classifier", "stats": "stats.json"},
        metrics=metrics,
    )


def _metrics(counts: dict[str, Any], report: dict[str, Any], timings: dict[str, float]) -> dict[str, Any]:
    docs_in = counts["docs_in"]
    return {
        "docs_in": docs_in, "docs_kept": counts["docs_kept"],
        "kept_fraction": round(counts["docs_kept"] / docs_in, 4) if docs_in else 0.0,
        "filter_survivors": counts["filter_survivors"], "general_docs": counts["dropped"].get(MEDICAL_STEP, 0),
        "dropped": counts["dropped"], "dropped_by_reason": counts["dropped_by_reason"],
        "corrupt_files": counts["corrupt_files"], "missing_text": counts["missing_text"],
        "input_files": counts["input_files"], "kept_words": counts["kept_words"],
        "classifier": {k: report[k] for k in CLASSIFIER_KEYS if k in report},
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }


def _summary(m: dict[str, Any]) -> str:
    clf = m["classifier"]
    drops = ", ".join(f"{k} {v}" for k, v in m["dropped"].items())
    return (f"[corpus] {m['docs_in']} documents from {m['input_files']} files ({m['corrupt_files']} corrupt files "
            f"skipped, {m['missing_text']} records without text); quality and language filters kept "
            f"{m['filter_survivors']}; the {clf['kind']} classifier (held-out P {clf['precision']:.3f} / "
            f"R {clf['recall']:.3f} / F1 {clf['f1']:.3f} on {clf['n_heldout']} docs, threshold "
            f"{clf['threshold']}) kept {m['docs_kept']} medical documents ({m['kept_fraction']:.1%}, "
            f"{m['kept_words']} words) and left {m['general_docs']} general German ones. Dropped: {drops}.")
