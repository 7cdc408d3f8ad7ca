"""Valid, demo-like metrics of the corpus stage, built from `CorpusMetrics` and its parts: a labelling step with
two audited labellers and one disqualified, five classifier families (one not run), the real test set with a
cascade, filter costs, decontamination and deduplication. Every optional block is set, so the report's corpus
section renders all of its parts."""

from __future__ import annotations

from typing import Any

from definemed.corpus.labelling.metrics import (
    AuditInfo,
    AuditMetrics,
    AuditSummary,
    Confusion,
    Interval,
    Labelling,
    LabellingCounts,
    LabelSample,
    LabelShares,
    RankRow,
    Selection,
)
from definemed.corpus.metrics import (
    CascadeOnReal,
    ClassifierSummary,
    ComparisonRow,
    CorpusMetrics,
    CorruptFile,
    Decontamination,
    Dedup,
    FilterCosts,
    GeneralDedup,
    GoldCheck,
    InputProblems,
    MedicalRecall,
    RealTest,
    RealTestFamily,
    RealTestRow,
    Scores,
    StepCost,
    Support,
    TokenizerInfo,
    TokenRetention,
)

LONG_REASON = (
    "labelling failed for 9 of 32 documents (28.1% > max_failure_share 5.0%): ok=23, timeout=9. "
    "the 9 failed requests are not cached and are asked again on a rerun."
)


def _interval(value: float, low: float, high: float) -> Interval:
    return Interval(value=value, ci_low=low, ci_high=high)


def _audit(kind: str, f1: tuple[float, float, float], docs_per_s: float, model: str | None = None) -> AuditSummary:
    value = _interval(*f1)
    return AuditSummary(
        kind=kind,
        model=model,
        n=32,
        metrics=AuditMetrics(precision=value, recall=value, f1=value, accuracy=value),
        confusion=Confusion(tp=10, fp=2, fn=3, tn=17),
        coverage=1.0,
        disagreements=5,
        failed=0,
        failure_share=0.0,
        cached=0,
        seconds=round(32 / docs_per_s, 2),
        docs_per_s=docs_per_s,
    )


def labelling() -> Labelling:
    audits = {
        "precomputed": _audit("file", (0.95, 0.9, 1.0), 12000.0),
        "smollm2-135m": _audit("hf", (0.444, 0.242, 0.634), 0.75, "HuggingFaceTB/SmolLM2-135M-Instruct"),
    }
    ranking = [
        RankRow(
            labeller=name,
            value=a.metrics.f1.value,
            ci_low=a.metrics.f1.ci_low,
            ci_high=a.metrics.f1.ci_high,
            accuracy=a.metrics.accuracy.value,
            coverage=1.0,
        )
        for name, a in audits.items()
    ]
    counts = LabellingCounts(
        total=450,
        ok=450,
        invalid_json=0,
        schema_error=0,
        http_error=0,
        timeout=0,
        missing=0,
        failed=0,
        failure_share=0.0,
        cached=0,
        requests=0,
        prompt_tokens=0,
        completion_tokens=0,
    )
    return Labelling(
        labellers=["precomputed", "smollm2-135m", "flaky-api"],
        chosen="precomputed",
        select_by="f1",
        max_failure_share=0.05,
        sample=LabelSample(requested=1000, seed=0, survivors=450, docs=450),
        audit=AuditInfo(
            gold="demo/gold_labels.jsonl",
            gold_rows=1186,
            gold_in_survivors=450,
            heldout_excluded=135,
            docs=32,
            medical=14,
            seed=0,
            max_docs=32,
        ),
        audits=audits,
        disqualified={"flaky-api": LONG_REASON},
        selection=Selection(
            best="precomputed",
            metric="f1",
            clearly_better=True,
            reason="precomputed has the highest f1",
            ranking=ranking,
        ),
        counts=counts,
        sample_s=12.5,
        docs_per_s=36.0,
        labels=LabelShares(docs=450, medical=239, medical_share=0.53),
        seconds=43.0,
    )


def real_scores(f1: float, low: float, high: float, precision: float, recall: float) -> dict[str, Any]:
    return {
        "real_n": 370,
        "real_precision": precision,
        "real_recall": recall,
        "real_f1": f1,
        "real_f1_lo": low,
        "real_f1_hi": high,
        "real_fpr_technical": 0.0,
        "real_recall_short": 0.868,
    }


FASTTEXT_REAL = real_scores(0.944, 0.911, 0.97, 0.992, 0.901)
CASCADE_REAL = real_scores(0.962, 0.936, 0.983, 0.985, 0.94)


def comparison_rows() -> list[ComparisonRow]:
    return [
        ComparisonRow(
            kind="tfidf_logreg",
            status="ok",
            main=False,
            threshold=0.42,
            precision=0.9,
            recall=0.89,
            f1=0.895,
            ap=0.96,
            docs_per_s=8800.0,
            heldout_docs=147,
            gold_f1=0.91,
            **real_scores(0.921, 0.884, 0.952, 0.97, 0.877),
        ),
        ComparisonRow(
            kind="fasttext",
            status="ok",
            main=True,
            note="main classifier",
            threshold=0.5,
            precision=0.93,
            recall=0.92,
            f1=0.927,
            ap=0.98,
            docs_per_s=2005.7,
            heldout_docs=147,
            gold_f1=0.936,
            written_f1=0.95,
            **FASTTEXT_REAL,
        ),
        ComparisonRow(
            kind="embedding",
            status="ok",
            main=False,
            threshold=0.37,
            precision=0.94,
            recall=0.93,
            f1=0.935,
            ap=0.985,
            docs_per_s=14.2,
            heldout_docs=147,
            gold_f1=0.94,
            **real_scores(0.955, 0.925, 0.979, 0.98, 0.931),
        ),
        ComparisonRow(kind="finetune", status="not run", main=False, note="no encoder offline"),
        ComparisonRow(
            kind="cascade",
            status="ok",
            main=False,
            threshold=0.5,
            precision=0.95,
            recall=0.91,
            f1=0.931,
            ap=0.98,
            docs_per_s=6.8,
            heldout_docs=147,
            pass_share=0.8027,
            cost_saved=0.195,
            f1_lost=-0.0053,
            **CASCADE_REAL,
        ),
    ]


def real_test() -> RealTest:
    gate = CascadeOnReal(
        stage2_kind="embedding",
        stage2_alone=RealTestRow(**real_scores(0.955, 0.925, 0.979, 0.98, 0.931)),
        routed_share=0.47,
        f1_gap_vs_stage2=-0.007,
        projection_docs=428_000_000,
        stage1_cpu_hours=29.0,
        stage2_cpu_hours=12620.7,
        stage2_alone_cpu_hours=26837.1,
        stage2_gpu_hours=5.82,
        stage2_alone_gpu_hours=12.38,
        gpu_docs_per_s=9600.0,
        cpu_note="2-core laptop throughput",
    )
    families = {
        "fasttext": RealTestFamily(folder="classifier", **FASTTEXT_REAL),
        "cascade": RealTestFamily(folder="compare/cascade", cascade=gate, **CASCADE_REAL),
    }
    return RealTest(path="demo/real_test.jsonl", n=370, medical=131, bad_lines=0, families=families)


def filter_costs() -> FilterCosts:
    steps = {
        "language": StepCost(dropped=412, medical_dropped=4, real_medical_dropped=2),
        "gopher_repetition": StepCost(dropped=21, medical_dropped=0, real_medical_dropped=0),
        "gopher_quality": StepCost(dropped=7, medical_dropped=1, real_medical_dropped=1),
        "fineweb_quality": StepCost(dropped=33, medical_dropped=0, real_medical_dropped=2),
    }
    return FilterCosts(
        source="gold",
        steps=steps,
        medical_recall=MedicalRecall(docs=338, dropped=5, recall=0.985),
        real_medical_recall=MedicalRecall(docs=88, dropped=5, recall=0.943),
    )


def classifier() -> ClassifierSummary:
    gold = GoldCheck(
        n=147,
        gold="demo/gold_labels.jsonl",
        classifier=Scores(precision=0.96, recall=0.911, f1=0.935),
        training_labels=Scores(precision=0.95, recall=0.932, f1=0.941),
    )
    return ClassifierSummary(
        kind="fasttext",
        threshold=0.5,
        precision=0.93,
        recall=0.92,
        f1=0.927,
        accuracy=0.932,
        support=Support(medical=78, other=69),
        confusion=Confusion(tp=72, fp=5, fn=6, tn=64),
        n_train=303,
        n_heldout=147,
        n_unlabelled=0,
        label_lines_malformed=0,
        vs_gold=gold,
        real_test=RealTestFamily(folder="classifier", **FASTTEXT_REAL),
    )


def corpus_metrics() -> CorpusMetrics:
    dropped = {
        "language": 412,
        "gopher_repetition": 21,
        "gopher_quality": 7,
        "fineweb_quality": 33,
        "medical": 211,
        "decontamination": 2,
        "dedup": 9,
    }
    return CorpusMetrics(
        docs_in=1186,
        docs_kept=228,
        kept_fraction=0.1922,
        filter_survivors=450,
        general_docs=211,
        classifier_kept=239,
        dropped=dropped,
        dropped_by_reason={"language:en": 301, "language:low_score": 111},
        corrupt_files=1,
        missing_text=3,
        input_problems=InputProblems(missing_text=3, empty_text=0, malformed_lines=0, invalid_utf8=0, too_long=0),
        input_files=3,
        kept_words=41_250,
        corrupt_file_list=[CorruptFile(file="demo/fineweb2-deu/broken.parquet", error="Parquet magic bytes not found")],
        classifier=classifier(),
        classifier_comparison=comparison_rows(),
        labelling=labelling(),
        real_test=real_test(),
        filter_costs=filter_costs(),
        tokenizer=TokenizerInfo(
            name="HuggingFaceTB/SmolLM2-135M-Instruct",
            path="runs/demo/corpus/tokenizer.json",
            note="the CPT model's tokenizer",
            kind="model",
        ),
        tokens_in=612_400,
        tokens_kept=88_310,
        kept_tokens_share=0.1442,
        tokens_per_doc_mean=387.3,
        token_retention=TokenRetention(
            filter_survivors_tokens=171_500, classifier_kept_tokens=91_020, classifier_token_share=0.5307
        ),
        decontam_removed=2,
        dedup_removed=9,
        decontamination=Decontamination(
            items=144,
            sources={"demo_medmcq_de": 120, "prompts": 24},
            indexed_ngrams=5230,
            items_too_short=3,
            ngram=13,
            min_matches=1,
            min_item_words=13,
            removed=2,
            matched_sources={"demo_medmcq_de": 2},
        ),
        dedup=Dedup(
            enabled=True,
            n_grams=5,
            num_buckets=14,
            hashes_per_bucket=8,
            seed=0,
            removed=9,
            duplicate_pairs=11,
            clusters=7,
            docs_in_clusters=16,
            similarity_threshold=0.72,
        ),
        general_dedup=GeneralDedup(
            docs_in=211, docs_kept=205, duplicates_removed=6, output="general", removed_to="rejected/general_dedup"
        ),
        subdomains={"innere_medizin": 61, "pharmakologie": 44, "pflege": 38, "notfall": 29, "other": 56},
        timings_s={"pipeline_s": 41.2, "labelling_s": 43.0, "classifier_s": 3.1, "card_s": 0.9},
    )
