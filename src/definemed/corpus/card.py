"""The dataset card (`README.md` in the corpus stage folder, next to `medical/`), in the Hugging Face format.

A YAML header the hub reads (licence, language, size category, data files), then provenance, the pipeline with
the counts of every step, where the labels come from (with the labeller audit), the classifier with its held-out
metrics and the family comparison, decontamination and deduplication results, distributions, limitations and how
to rebuild. Everything comes from the stage's metrics (`CorpusMetrics`, read as attributes) and its inputs: the
card is rewritten on every build, never edited by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from definemed.artifacts import write_text
from definemed.schema import ModelSpec

if TYPE_CHECKING:
    from pathlib import Path

    from definemed.corpus.contract import CorpusInputs
    from definemed.corpus.metrics import CorpusMetrics, Interval
    from definemed.corpus.pipelines import CorpusLayout

FINEWEB2 = "HuggingFaceFW/fineweb-2"
_SIZES = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
]


def size_category(n: int) -> str:
    """The hub's `size_categories` value for a dataset of n examples."""
    return next((label for bound, label in _SIZES if n < bound), "n>1B")


def _header(inputs: CorpusInputs, m: CorpusMetrics, layout: CorpusLayout) -> str:
    import yaml

    meta = {
        "license": "odc-by",
        "language": ["de"],
        "task_categories": ["text-generation"],
        "size_categories": [size_category(m.docs_kept)],
        "pretty_name": inputs.corpus.card.pretty_name,
        "source_datasets": [FINEWEB2],
        "tags": ["medical", "german", "fineweb-2", "continual-pretraining"],
        "configs": [
            {"config_name": "default", "data_files": [{"split": "train", "path": f"{layout.medical.name}/*.jsonl.gz"}]}
        ],
    }
    return f"---\n{yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)}---\n"


def _n(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _pct(value: float) -> str:
    return f"{100 * value:.2f} %"


def _intro(inputs: CorpusInputs, m: CorpusMetrics) -> str:
    return (
        f"# {inputs.corpus.card.pretty_name}\n\n"
        f"{_n(m.docs_kept)} German medical web documents ({_n(m.tokens_kept)} tokens, "
        f"{_pct(m.kept_tokens_share)} of the input tokens; tokenizer: {m.tokenizer.name}) selected from "
        f"{_n(m.docs_in)} documents, following FineMed-de (Doll et al., 2026, arXiv 2604.19394): language "
        f"and quality filters, a medical relevance classifier trained on labelled documents, benchmark "
        f"decontamination and MinHash deduplication. Built by DeFineMed on "
        f"{datetime.now(UTC).date().isoformat()}; `manifest.json` next to this card records the config hash, "
        f"package versions and git revision.\n"
    )


def _provenance(inputs: CorpusInputs) -> str:
    paths = inputs.corpus.input.paths
    lines = [
        "## Provenance and licence",
        f"- Source: FineWeb2 (`{FINEWEB2}`), German split `deu_Latn`: CommonCrawl pages, language-identified "
        "with GlotLID, heuristically filtered and MinHash-deduplicated by FineWeb2, e-mail and IP addresses "
        "anonymised.",
        "- Licence: FineWeb2 is released under the Open Data Commons Attribution licence (ODC-By 1.0); this "
        "subset keeps it. Use is also subject to the CommonCrawl Terms of Use.",
        "- Input read by this build: " + ", ".join(f"`{p}`" for p in paths) + ".",
    ]
    if not any("fineweb-2" in p for p in paths):
        lines.append(
            "- This input is not the hub copy of FineWeb2: the documents carry its schema, but their "
            "provenance is that of the files above (the demo's are written for the project, see "
            "`demo/DATA_CARD.md`)."
        )
    return "\n".join(lines) + "\n"


def _pipeline(m: CorpusMetrics, steps: list[dict[str, Any]]) -> str:
    rows = [
        "| step | in | kept | dropped | reasons |",
        "|---|---:|---:|---:|---|",
        f"| read | {_n(m.input_files)} files | {_n(m.docs_in)} | - | {m.corrupt_files} corrupt "
        f"files skipped, {m.missing_text} records without text |",
    ]
    for row in steps:
        reasons = ", ".join(f"{k} {_n(v)}" for k, v in sorted(row["reasons"].items(), key=lambda kv: -kv[1]))
        rows.append(f"| {row['step']} | {_n(row['in'])} | {_n(row['kept'])} | {_n(row['dropped'])} | {reasons} |")
    if m.corrupt_file_list:  # named here, not only counted: the reader knows which shard to fetch again
        rows += ["", "Corrupt input files (skipped; documents read before the damage are kept):", ""]
        rows += [f"- `{bad.file}`: {bad.error}" for bad in m.corrupt_file_list]
    balance = "balances" if m.docs_in == m.docs_kept + sum(m.dropped.values()) else "DOES NOT balance"
    return (
        "## Pipeline and counts\n\nOrder: language -> Gopher repetition -> Gopher quality -> FineWeb quality "
        "-> medical classifier -> decontamination -> deduplication (steps that are off are absent). Every "
        f"document read is kept or dropped by exactly one step; the table {balance}. Dropped documents "
        "are under `rejected/<step>/` with `metadata.filter_reason`.\n\n" + "\n".join(rows) + "\n"
    )


def _ci(metric: Interval) -> str:
    return f"{metric.value:.3f} [{metric.ci_low:.3f}, {metric.ci_high:.3f}]"


def _labels(inputs: CorpusInputs, m: CorpusMetrics) -> str:
    lab = m.labelling
    if lab is None:
        labels = inputs.corpus.labels
        path = labels.path if labels is not None else "?"
        return f"## Labels\n\nThe classifier learned the precomputed labels in `{path}` (`corpus.labels`).\n"
    c, s = lab.counts, lab.sample
    drawn = "" if s.requested is None else f" (a random sample, seed {s.seed})"
    parts = [
        "## Labels\n",
        f"`{lab.chosen}` labelled {_n(s.docs)} of the {_n(s.survivors)} filter "
        f"survivors{drawn}: "
        f"{_n(lab.labels.docs)} got valid labels, {_n(lab.labels.medical)} of them medical "
        f"({_pct(lab.labels.medical_share)}); {c.failed} failed, {c.cached} came from the cache. "
        f"Files: `labelling/`.\n",
    ]
    if (a := lab.audit) is not None:
        parts.append(
            f"Every candidate labelled the same {a.docs} gold documents ({a.medical} medical) of "
            f"`{a.gold}` that survived the filters outside the classifier's held-out split "
            f"({a.heldout_excluded} held-out gold documents left out). Precision, recall and F1 of "
            "the medical class with percentile-bootstrap 95 % intervals:\n"
        )
        parts += [
            "| labeller | kind | precision | recall | F1 | accuracy | failed | docs/s |",
            "|---|---|---|---|---|---|---:|---:|",
        ]
        for name, x in lab.audits.items():
            mark = " (chosen)" if name == lab.chosen else ""
            parts.append(
                f"| {name}{mark} | {x.kind} | {_ci(x.metrics.precision)} | "
                f"{_ci(x.metrics.recall)} | {_ci(x.metrics.f1)} | "
                f"{x.metrics.accuracy.value:.3f} | {x.failed} | {x.docs_per_s or '-'} |"
            )
        parts += [f"| {name} | disqualified | {why[:120]} | | | | | |" for name, why in lab.disqualified.items()]
        if lab.selection is not None:
            parts.append(f"\nChoice: {lab.selection.reason}.")
    return "\n".join(parts) + "\n"


def _comparison(m: CorpusMetrics, plots: dict[str, str]) -> str:
    rows = m.classifier_comparison
    if not rows:
        return ""
    fmt = lambda v: "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = [
        "\nFamilies trained and scored on the same split (`classifier/compare/`); cascade: stage-2 share, cost "
        "saved against stage 2 alone and the F1 it gives up:\n",
        "| family | status | precision | recall | F1 | AP | threshold | docs/s | cascade pass share | cost saved "
        "| F1 lost | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.kind} | {r.status} | "
        + " | ".join(
            fmt(getattr(r, k))
            for k in (
                "precision",
                "recall",
                "f1",
                "ap",
                "threshold",
                "docs_per_s",
                "pass_share",
                "cost_saved",
                "f1_lost",
            )
        )
        + f" | {r.note or ''} |"
        for r in rows
    ]
    if "pr_curves" in plots:
        lines.append(f"\n![precision-recall curves]({plots['pr_curves']})")
    return "\n".join(lines) + "\n"


def _classifier(m: CorpusMetrics, plots: dict[str, str]) -> str:
    c, r = m.classifier, m.token_retention
    conf, gold = c.confusion, c.vs_gold
    gold_text = (
        ""
        if gold is None
        else (
            f"Against gold (`{gold.gold}`) on the {gold.n} held-out documents that have a gold label: classifier "
            f"F1 {gold.classifier.f1:.3f} (P {gold.classifier.precision:.3f}, R "
            f"{gold.classifier.recall:.3f}); the labels it learned score F1 {gold.training_labels.f1:.3f} "
            "there. The audit did not use these documents.\n\n"
        )
    )
    unit = r.unit or "tokens"
    return (
        "## Medical classifier\n\n"
        f"`{c.kind}` trained on {_n(c.n_train)} labelled documents and scored on {_n(c.n_heldout)} "
        f"held-out ones (split by a hash of the id): precision {c.precision:.3f}, recall "
        f"{c.recall:.3f}, F1 {c.f1:.3f}, accuracy {c.accuracy:.3f} (tp {conf.tp}, fp "
        f"{conf.fp}, fn {conf.fn}, tn {conf.tn}). The paper reports precision 0.95 and "
        f"recall 0.80 for its XLM-RoBERTa classifier.\n\n"
        f"Threshold {c.threshold}: it kept {_n(m.classifier_kept)} of {_n(m.filter_survivors)} "
        f"filtered documents and {_n(r.classifier_kept_tokens)} of {_n(r.filter_survivors_tokens)} "
        f"{unit} ({_pct(r.classifier_token_share)} of the {unit} that "
        "passed the filters; the paper kept "
        "about 1.7 % of the German documents).\n\n" + gold_text + _real_text(m) + _comparison(m, plots)
    )


def _real_text(m: CorpusMetrics) -> str:
    """The main classifier on the real test set and what the filters cost the medical class."""
    parts = []
    real, costs = m.classifier.real_test, m.filter_costs
    if real is not None and m.real_test is not None:
        parts.append(
            f"On {real.real_n} real documents no training or threshold saw (`{m.real_test.path}`): "
            f"F1 {real.real_f1:.3f} (95 % interval {real.real_f1_lo:.3f}-{real.real_f1_hi:.3f}), "
            f"precision {real.real_precision:.3f}, recall {real.real_recall:.3f}; false-positive "
            f"rate on technical text {real.real_fpr_technical}, recall on short medical documents "
            f"{real.real_recall_short}."
        )
    if costs is not None:
        lost = ", ".join(f"{step} {v.medical_dropped}" for step, v in costs.steps.items() if v.medical_dropped)
        parts.append(
            f"The language and quality filters kept {costs.medical_recall.recall} of the "
            f"{costs.medical_recall.docs} known medical documents ({costs.source}); real ones: "
            f"{costs.real_medical_recall.recall} of {costs.real_medical_recall.docs}. Medical "
            f"documents dropped per step: {lost or 'none'}."
        )
    return "".join(p + "\n\n" for p in parts)


def _decontam_dedup(m: CorpusMetrics) -> str:
    parts = ["## Decontamination and deduplication\n"]
    if (d := m.decontamination) is None:
        parts.append("- Decontamination: off. Documents were not checked against the evaluation benchmarks.")
    else:
        hits = ", ".join(f"{k} {v}" for k, v in d.matched_sources.items()) or "none"
        sources = ", ".join(f"{k}: {v}" for k, v in d.sources.items())
        parts.append(
            f"- Decontamination: {_n(d.removed)} documents removed. A document goes when it shares at "
            f"least {d.min_matches} word {d.ngram}-gram(s) (case-folded, punctuation stripped) with "
            f"one of {_n(d.items)} benchmark items ({sources}; {_n(d.indexed_ngrams)} n-grams; "
            f"benchmark texts of {d.min_item_words} to {d.ngram - 1} words match as a whole, "
            f"{d.items_too_short} items too short to check). Hits by benchmark: {hits}. Each removed "
            "document names its item in `metadata.decontam_item`."
        )
    if (x := m.dedup) is None:
        parts.append("- Deduplication: off (FineWeb2 itself is MinHash-deduplicated across all crawls).")
    else:
        parts.append(
            f"- MinHash deduplication: {x.n_grams}-word shingles, {x.num_buckets} buckets x "
            f"{x.hashes_per_bucket} hashes (pairs above a Jaccard similarity of about "
            f"{x.similarity_threshold} are caught); {_n(x.duplicate_pairs or 0)} duplicate pairs, "
            f"{_n(x.clusters or 0)} clusters, {_n(x.removed)} documents removed, one kept per "
            "cluster."
        )
    return "\n".join(parts) + "\n"


def _estimated(m: CorpusMetrics) -> str:
    if not m.tokens_in_estimated or m.single_pass is None:
        return ""
    sp = m.single_pass
    return (
        f" (estimated: single pass, input tokens counted on the {_n(sp.sample_docs_in)} documents of the "
        f"sampled {_pct(sp.sample_files_share)} of input files and scaled to all {_n(m.docs_in)})"
    )


def _distributions(m: CorpusMetrics, plots: dict[str, str]) -> str:
    tok = m.tokenizer
    note = f" {tok.note}." if tok.note else ""
    parts = [
        "## Size and distributions\n",
        f"{_n(m.tokens_kept)} tokens ({tok.kind} counts: {tok.name}), {m.tokens_per_doc_mean} "
        f"per document on average, {_pct(m.kept_tokens_share)} of the {_n(m.tokens_in)} input tokens"
        f"{_estimated(m)}; {_n(m.kept_words)} whitespace words.{note}\n",
    ]
    if "token_lengths" in plots:
        parts.append(f"![tokens per document]({plots['token_lengths']})\n")
    if subs := m.subdomains:
        parts.append(
            f"Subdomains of the {_n(sum(subs.values()))} kept documents that the labels file assigns "
            "one (a sample, not the whole corpus):\n\n| subdomain | documents |\n|---|---:|"
        )
        parts += [f"| {k} | {_n(v)} |" for k, v in sorted(subs.items(), key=lambda kv: (-kv[1], kv[0]))]
        parts.append(f"\n![subdomains]({plots['subdomains']})\n" if "subdomains" in plots else "")
    return "\n".join(parts) + "\n"


LIMITATIONS = """## Limitations
- Selection is only as good as the classifier and its labels: at the recall above, a share of medical pages is
  missing, and at the precision above some kept pages are not medical. Labels (LLM or hand) carry their own noise.
- Web text, not reviewed by clinicians: it holds outdated guidance, advertising (supplements, clinics) and
  misinformation. It is pre-training data, not a source of medical advice.
- FineWeb2 anonymises e-mail and IP addresses only; forum posts may describe identifiable people's health.
- Decontamination covers only the benchmarks configured for this run and only verbatim word n-grams; paraphrases
  and translations of benchmark items are not caught.
- Deduplication is within this subset; FineWeb2's own deduplication covers the rest.
"""


def _rebuild(inputs: CorpusInputs, run_name: str) -> str:
    """A config section that rebuilds this corpus: the run's seed, the corpus section, the benchmarks that
    decontamination read, and the tokenizer that counted the tokens (pinned in `corpus.card.tokenizer` when it was
    the CPT model's, so the section stands alone)."""
    import yaml

    corpus = inputs.corpus.model_dump(mode="json")
    pinned = ""
    if isinstance(inputs.tokenizer, ModelSpec):
        corpus["card"]["tokenizer"] = inputs.tokenizer.id
        revision = f" at revision {inputs.tokenizer.revision}" if inputs.tokenizer.revision else ""
        pinned = f"; `corpus.card.tokenizer` names the CPT model whose tokenizer counted the tokens{revision}"
    section: dict[str, Any] = {"run": {"name": run_name, "seed": inputs.seed}, "corpus": corpus}
    if inputs.benchmarks is not None:
        bench = inputs.benchmarks  # local copies of the tasks it checked (a hub task without files was not checked)
        section["evaluate"] = {
            "mcq": {"tasks": [{"name": t.name, "path": str(t.path)} for t in bench.tasks if t.path is not None]},
            "prompts": None if bench.prompts is None else str(bench.prompts),
        }
    return (
        "## How to rebuild\n\nWith a config holding these sections (paths as resolved for this build; the "
        f"evaluate section matters only for decontamination{pinned}):\n\n```bash\n"
        f"definemed run CONFIG.yaml --stages corpus\n```\n\n```yaml\n"
        f"{yaml.safe_dump(section, sort_keys=False, allow_unicode=True)}```\n"
    )


def write_card(
    inputs: CorpusInputs,
    run_name: str,
    layout: CorpusLayout,
    metrics: CorpusMetrics,
    steps: list[dict[str, Any]],
    plots: dict[str, str],
) -> Path:
    """Write `README.md` (atomically) into the stage folder and return its path."""
    body = "\n".join(
        [
            _header(inputs, metrics, layout),
            _intro(inputs, metrics),
            _provenance(inputs),
            _pipeline(metrics, steps),
            _labels(inputs, metrics),
            _classifier(metrics, plots),
            _decontam_dedup(metrics),
            _distributions(metrics, plots),
            LIMITATIONS,
            _rebuild(inputs, run_name),
        ]
    )
    return write_text(layout.card, body)
