"""The corpus stage: FineWeb2 German shards in, a medical subset (FineMed-de style), its statistics and card out.

`run(inputs, ctx)` reads nothing but its `CorpusInputs` (the corpus section, the run seed, the tokenizer that counts
tokens, the benchmarks decontamination checks against) and returns `CorpusMetrics`.

1. Pipeline A counts tokens (the CPT model's tokenizer) and filters the input (language, German quality
   heuristics) into `filtered/`.
2. Labels: `corpus.labels` (a precomputed file), or `corpus.labelling`: a sample of the survivors labelled by an
   LLM labeller, chosen among candidates by their audit on gold documents (`labelling/`, see
   `corpus/labelling/corpus_step.py`).
3. The medical classifier is trained on the labelled survivors and scored on held-out ids (`classifier/`); the
   families in `corpus.classifier.compare` are trained on the same split (`classifier/compare/`).
4. Pipeline B keeps documents the classifier scores as medical, then drops those sharing n-grams with the
   evaluation benchmarks (`corpus.decontamination`); the rest, German but not medical, stays in
   `rejected/not_medical/`, which the CPT stage uses to measure general-German loss.
5. Optional MinHash near-deduplication (`corpus.dedup`) of what B kept. `medical/` is always the final set.
6. Per-step counts from datatrove's stats, the classifier report, plots and a dataset card (`README.md`).

With `corpus.single_pass`, step 1 filters only a seeded share of the input files (the sample for steps 2-3) and
step 4 reads the input itself, filters and classifies in one pass: no second copy of the corpus in `filtered/`.

Rerunning an interrupted attempt resumes: finished ranks of every pipeline are skipped via datatrove's completion
markers, cached labeller replies are not asked again, and trained classifiers with their reports are reused.
"""

from __future__ import annotations

import logging
import shutil
import time
from typing import Any

from definemed.artifacts import write_json
from definemed.corpus import stats as corpus_stats
from definemed.corpus.config import CorpusConfig, FileLabels
from definemed.corpus.contract import CorpusInputs
from definemed.corpus.executors import run_to_completion
from definemed.corpus.gold_checks import filter_costs_of, real_test_of, versus_gold
from definemed.corpus.metrics import ClassifierSummary, CorpusMetrics
from definemed.corpus.pipelines import (
    DECONTAM_STEP,
    DEDUP_STEP,
    GENERAL,
    GENERAL_DUPLICATES,
    INPUT_STEP,
    MEDICAL_STEP,
    CorpusLayout,
    Pipeline,
    build_classify_pipeline,
    build_dedup_pipelines,
    build_filter_pipeline,
    build_general_dedup_pipelines,
    training_labels,
)
from definemed.corpus.readers import corrupt_file_list, sample_input_files
from definemed.corpus.training import REPORT, train_classifier
from definemed.documents import is_heldout
from definemed.stage import StageContext, StageResult

logger = logging.getLogger("definemed")
# The main classifier's report keys that the metrics keep (the rest of ClassifierSummary is added by the checks).
CLASSIFIER_KEYS = tuple(k for k in ClassifierSummary.model_fields if k not in ("vs_gold", "real_test"))


def _dedup_general(
    corpus: CorpusConfig, layout: CorpusLayout, run_name: str, timings: dict[str, float]
) -> dict[str, Any] | None:
    """Deduplicate the general output CPT replays (see build_general_dedup_pipelines); None when dedup is off."""
    pipelines = build_general_dedup_pipelines(corpus, layout)
    if not pipelines:
        return None
    t0 = time.perf_counter()
    for pipeline in pipelines:
        _run_pipeline(corpus, layout, pipeline, run_name)
    (layout.root / GENERAL).mkdir(parents=True, exist_ok=True)
    timings["general_dedup_s"] = time.perf_counter() - t0
    row = corpus_stats.filter_row("general_dedup", corpus_stats.step_counters(layout.logs(pipelines[-1].name))[1])
    return {
        "docs_in": row["in"],
        "docs_kept": row["kept"],
        "duplicates_removed": row["dropped"],
        "output": GENERAL,
        "removed_to": GENERAL_DUPLICATES,
    }


def _run_pipeline(corpus: CorpusConfig, layout: CorpusLayout, pipeline: Pipeline, run_name: str) -> None:
    executor = corpus.executor
    if pipeline.tasks is not None:
        executor = executor.model_copy(update={"tasks": pipeline.tasks})
    run_to_completion(executor, pipeline.blocks, layout.logs(pipeline.name), f"{run_name}-corpus-{pipeline.name}")


def _prepare_decontamination(inputs: CorpusInputs, layout: CorpusLayout) -> dict[str, Any] | None:
    """Collect the benchmark items the workers index; None when decontamination is off."""
    decontam = inputs.corpus.decontamination
    if decontam is None or not decontam.enabled:
        return None
    if inputs.benchmarks is None:
        raise ValueError(
            "corpus.decontamination is on but the inputs carry no benchmarks (bind them with "
            "definemed.corpus.contract.bind)"
        )
    from definemed.corpus.decontam import write_benchmark_items

    info = write_benchmark_items(inputs.benchmarks, decontam, layout.benchmark_items)
    if not info["items"]:
        logger.warning("[corpus] decontamination is on but evaluate.mcq.tasks and evaluate.prompts hold no items")
    return {
        **info,
        "ngram": decontam.ngram,
        "min_matches": decontam.min_matches,
        "min_item_words": decontam.min_item_words,
    }


def run(inputs: CorpusInputs, ctx: StageContext) -> StageResult[CorpusMetrics]:
    """Filter, train the classifier, classify, decontaminate, deduplicate; return outputs and every step's counts."""
    corpus, name = inputs.corpus, ctx.run_name
    layout = CorpusLayout(ctx.stage_dir)
    timings: dict[str, float] = {}
    tokenizer = corpus_stats.choose_tokenizer(inputs.tokenizer, layout.tokenizer)
    decontam = _prepare_decontamination(inputs, layout)
    sample_paths = None
    if (single := corpus.single_pass) is not None:
        sample_paths = sample_input_files(
            corpus.input, single.sample_files, inputs.seed if single.seed is None else single.seed, layout.sample
        )
    filter_pipeline = build_filter_pipeline(corpus, layout, tokenizer, sample_paths)
    t0 = time.perf_counter()
    _run_pipeline(corpus, layout, filter_pipeline, name)
    timings["filter_s"] = time.perf_counter() - t0

    labels, labelling = _labels(inputs, layout, timings)
    t0 = time.perf_counter()
    report = _train(inputs, layout, labels, filter_pipeline.name)
    timings["classifier_s"] = time.perf_counter() - t0
    comparison = _compare(inputs, layout, labels, report, timings)

    t0 = time.perf_counter()
    classify_pipeline = build_classify_pipeline(corpus, layout, tokenizer)
    _run_pipeline(corpus, layout, classify_pipeline, name)
    timings["classify_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    dedup_pipelines = build_dedup_pipelines(corpus, layout, tokenizer)
    if dedup_pipelines:
        layout.classified.mkdir(parents=True, exist_ok=True)  # the MinHash readers need it even if B kept nothing
        for pipeline in dedup_pipelines:
            _run_pipeline(corpus, layout, pipeline, name)
        timings["dedup_s"] = time.perf_counter() - t0
    # Writers create folders lazily; downstream stages expect both outputs even when one of them is empty.
    for folder in (layout.medical, layout.rejected_for(MEDICAL_STEP)):
        folder.mkdir(parents=True, exist_ok=True)
    general = _dedup_general(corpus, layout, name, timings)

    whole_corpus = [classify_pipeline, *dedup_pipelines]  # single pass: the filter drops are in B's stats
    counts = corpus_stats.collect(whole_corpus if single else [filter_pipeline, *whole_corpus], layout.root / "logs")
    if not counts["balanced"]:
        logger.warning(
            "[corpus] docs in (%d) != kept + dropped (%d): a step lost documents; see stats.json",
            counts["docs_in"],
            counts["docs_kept"] + sum(counts["dropped"].values()),
        )
    metrics = _metrics(corpus, counts, report, tokenizer, decontam, timings)
    # Named, not only counted: which shard is damaged and why (the card and the report list them).
    metrics["corrupt_file_list"] = corrupt_file_list(layout.rejected_for(INPUT_STEP))
    for bad in metrics["corrupt_file_list"]:
        logger.warning("[corpus] corrupt input file skipped: %s (%s)", bad["file"], bad["error"])
    if single is not None:
        _single_pass_metrics(metrics, corpus_stats.sample_counts(filter_pipeline, layout.root / "logs"), single)
    metrics["classifier"]["vs_gold"] = versus_gold(corpus, layout, report)
    metrics["filter_costs"] = filter_costs_of(corpus, layout)
    metrics["labelling"] = labelling
    metrics["classifier_comparison"] = None if comparison is None else comparison["rows"]
    metrics["general_dedup"] = general
    t0 = time.perf_counter()
    metrics["real_test"] = real_test_of(corpus, inputs.seed, layout, metrics)
    if metrics["real_test"] is not None:
        metrics["timings_s"]["real_test_s"] = round(time.perf_counter() - t0, 2)
    return _finish(inputs, name, layout, counts, report, CorpusMetrics.model_validate(metrics), comparison)


def _labels(
    inputs: CorpusInputs, layout: CorpusLayout, timings: dict[str, float]
) -> tuple[FileLabels, dict[str, Any] | None]:
    """The labels the classifier learns, and the labelling step's metrics when the stage labels them itself."""
    settings = inputs.corpus.labelling
    if settings is None:
        return training_labels(inputs.corpus, layout), None
    from definemed.corpus.labelling.corpus_step import label_survivors

    t0 = time.perf_counter()
    fraction, seed = inputs.corpus.classifier.holdout_fraction, inputs.seed
    # The classifier's own split (salted with the seed, as training.load_split draws it), so the audit documents
    # stay outside the documents the classifier is scored on.
    outcome = label_survivors(
        settings, layout.filtered, layout.labelling, heldout=lambda doc_id: is_heldout(doc_id, fraction, seed)
    )
    timings["labelling_s"] = time.perf_counter() - t0
    return outcome.labels, outcome.metrics


def _train(inputs: CorpusInputs, layout: CorpusLayout, labels: FileLabels, keep: str) -> dict[str, Any]:
    """Train (or reuse) the classifier. A newly trained one invalidates what an interrupted attempt classified with
    an older one (its labels can differ: failed labelling requests are retried), so the completion markers of the
    pipelines after the filter pipeline (`keep`) go."""
    report_file = layout.classifier / REPORT
    before = report_file.stat().st_mtime_ns if report_file.exists() else None
    report = train_classifier(layout.filtered, labels, inputs.corpus.classifier, inputs.seed, layout.classifier)
    if before is not None and report_file.stat().st_mtime_ns != before:
        for logs in (layout.root / "logs").glob("*/completions"):
            if logs.parent.name != keep:
                shutil.rmtree(logs)
    return report


def _compare(
    inputs: CorpusInputs, layout: CorpusLayout, labels: FileLabels, report: dict[str, Any], timings: dict[str, float]
) -> dict[str, Any] | None:
    from definemed.corpus.comparison import compare_in_stage

    t0 = time.perf_counter()
    comparison = compare_in_stage(
        inputs.corpus.classifier, layout.filtered, labels, inputs.seed, report, layout.classifier
    )
    if comparison is not None:
        timings["compare_s"] = time.perf_counter() - t0
    return comparison


def _finish(
    inputs: CorpusInputs,
    run_name: str,
    layout: CorpusLayout,
    counts: dict[str, Any],
    report: dict[str, Any],
    metrics: CorpusMetrics,
    comparison: dict[str, Any] | None,
) -> StageResult:
    """stats.json, plots and the dataset card; the outputs the later stages read."""
    from definemed.corpus.card import write_card
    from definemed.corpus.plots import write_plots

    t0 = time.perf_counter()
    curves = comparison["curves"] if comparison else None
    plots = write_plots(counts["profiles"]["kept"], metrics.tokenizer.name, layout.plots, curves)
    write_json(
        layout.root / "stats.json",
        {
            **metrics.model_dump(mode="json"),
            "steps": counts["steps"],
            "profiles": counts["profiles"],
            "classifier_report": report,
            "comparison_curves": curves,
        },
    )
    write_card(inputs, run_name, layout, metrics, counts["steps"], plots)
    metrics.timings_s["card_s"] = round(time.perf_counter() - t0, 2)
    logger.info(_summary(metrics))
    general = GENERAL if metrics.general_dedup else f"rejected/{MEDICAL_STEP}"
    outputs = {
        "medical": "medical",
        "general": general,
        "rejected": "rejected",
        "classifier": "classifier",
        "stats": "stats.json",
        "card": layout.card.name,
        "plots": layout.plots.name,
    }
    if inputs.corpus.labelling is not None:
        outputs["labelling"] = layout.labelling.name
    return StageResult(outputs=outputs, metrics=metrics)


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _metrics(
    corpus: CorpusConfig,
    counts: dict[str, Any],
    report: dict[str, Any],
    tokenizer: corpus_stats.TokenizerChoice,
    decontam: dict[str, Any] | None,
    timings: dict[str, float],
) -> dict[str, Any]:
    docs_in, dropped, profiles = counts["docs_in"], counts["dropped"], counts["profiles"]
    kept, survivors, classified = profiles["kept"], profiles["survivors"], profiles["classified"]
    rows = {row["step"]: row for row in counts["steps"]}
    dedup_cfg = corpus.dedup if DEDUP_STEP in rows else None
    return {
        "docs_in": docs_in,
        "docs_kept": counts["docs_kept"],
        "kept_fraction": _share(counts["docs_kept"], docs_in),
        "filter_survivors": counts["filter_survivors"],
        "general_docs": dropped.get(MEDICAL_STEP, 0),
        "classifier_kept": classified["docs"],
        "dropped": dropped,
        "dropped_by_reason": counts["dropped_by_reason"],
        "corrupt_files": counts["corrupt_files"],
        "missing_text": counts["missing_text"],
        "input_problems": counts["input_problems"],
        "input_files": counts["input_files"],
        "kept_words": counts["kept_words"],
        "classifier": {k: report[k] for k in CLASSIFIER_KEYS if k in report},
        "tokenizer": corpus_stats.tokenizer_info(tokenizer),
        "tokens_in": counts["tokens_in"],
        "tokens_kept": kept["tokens"],
        "kept_tokens_share": _share(kept["tokens"], counts["tokens_in"]),
        "tokens_per_doc_mean": round(kept["tokens"] / kept["docs"], 1) if kept["docs"] else 0.0,
        "token_retention": {
            "filter_survivors_tokens": survivors["tokens"],
            "classifier_kept_tokens": classified["tokens"],
            "classifier_token_share": _share(classified["tokens"], survivors["tokens"]),
        },
        "decontam_removed": dropped.get(DECONTAM_STEP, 0),
        "dedup_removed": dropped.get(DEDUP_STEP, 0),
        "decontamination": None
        if decontam is None
        else {
            **decontam,
            "removed": dropped.get(DECONTAM_STEP, 0),
            "matched_sources": rows.get(DECONTAM_STEP, {}).get("sources", {}),
        },
        "dedup": None
        if dedup_cfg is None
        else {
            **dedup_cfg.model_dump(),
            "removed": dropped[DEDUP_STEP],
            **(counts["minhash"] or {}),
            "similarity_threshold": _threshold(dedup_cfg),
        },
        "subdomains": kept["subdomains"],
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }


def _single_pass_metrics(metrics: dict[str, Any], sample: dict[str, int], single: Any) -> None:
    """Single pass: input tokens estimated from the sample pass (tokens per document x documents in); the
    survivor/classified profiles of pipeline B count whitespace words (only kept documents are tokenized)."""
    per_doc = sample["tokens_in"] / sample["docs_in"] if sample["docs_in"] else 0.0
    metrics["tokens_in"] = round(per_doc * metrics["docs_in"])
    metrics["tokens_in_estimated"] = True
    metrics["kept_tokens_share"] = _share(metrics["tokens_kept"], metrics["tokens_in"])
    metrics["token_retention"]["unit"] = "words"
    metrics["single_pass"] = {
        "sample_files_share": single.sample_files,
        **{f"sample_{k}": v for k, v in sample.items()},
    }


def _threshold(dedup_cfg: Any) -> float:
    from definemed.corpus.dedup import similarity_threshold

    return similarity_threshold(dedup_cfg)


def _summary(m: CorpusMetrics) -> str:
    clf = m.classifier
    drops = ", ".join(f"{k} {v}" for k, v in m.dropped.items())
    return (
        f"[corpus] {m.docs_in} documents from {m.input_files} files ({m.corrupt_files} corrupt files "
        f"skipped, {m.missing_text} records without text); quality and language filters kept "
        f"{m.filter_survivors}; the {clf.kind} classifier (held-out P {clf.precision:.3f} / "
        f"R {clf.recall:.3f} / F1 {clf.f1:.3f} on {clf.n_heldout} docs, threshold "
        f"{clf.threshold}) kept {m.classifier_kept} medical "
        f"documents; after decontamination ({m.decontam_removed} removed) and deduplication "
        f"({m.dedup_removed} removed) {m.docs_kept} remain ({m.kept_fraction:.1%} of documents, "
        f"{m.tokens_kept} {m.tokenizer.name} tokens = {m.kept_tokens_share:.1%} of input tokens), "
        f"and {m.general_docs} general German ones. Dropped: {drops}."
    )
