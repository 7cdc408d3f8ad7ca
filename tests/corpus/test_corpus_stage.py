"""The corpus stage end to end on synthetic FineWeb2 shards: counts, reject reasons, classifier report, resume."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from definemed.artifacts import write_json
from definemed.corpus.contract import bind
from definemed.corpus.stage import run
from definemed.stage import StageContext


def _docs(folder: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line) for f in sorted(folder.glob("*.jsonl.gz")) for line in gzip.open(f, "rt", encoding="utf-8")
    ]


def _run(cfg: Any) -> tuple[Any, Path]:
    ctx = StageContext(run_dir=cfg.run.run_dir, stage="corpus")
    ctx.stage_dir.mkdir(parents=True, exist_ok=True)
    return run(bind(cfg), ctx), ctx.stage_dir


def test_stage_counts_every_document_and_reason(tmp_path: Path, corpus_inputs: dict, make_config: Any) -> None:
    result, stage_dir = _run(make_config(corpus_inputs))
    m = result.metrics
    assert m.corrupt_files == 1
    assert m.missing_text == 1
    assert m.input_files == 3
    # every readable record with text entered the filters; each left as kept or by exactly one step
    assert m.docs_in == corpus_inputs["n_rows"] - 1
    assert m.docs_in == m.docs_kept + sum(m.dropped.values())
    assert set(m.dropped) == {"language", "gopher_repetition", "gopher_quality", "fineweb_quality", "not_medical"}

    rejected_language = _docs(stage_dir / "rejected" / "language")
    assert [(d["id"], d["metadata"]["filter_reason"]) for d in rejected_language] == [
        ("<urn:uuid:english>", "language")
    ]
    assert rejected_language[0]["metadata"]["lid_language"] == "en"
    survivors = {d["id"] for d in _docs(stage_dir / "filtered")}
    assert "<urn:uuid:boilerplate>" not in survivors
    assert m.dropped["gopher_repetition"] + m.dropped["gopher_quality"] >= 1
    # the synthetic German documents are normal prose: none may be lost to the quality filters
    assert {f"<urn:uuid:{k}-{i:02d}>" for k in ("medical", "general") for i in range(14)} <= survivors

    medical, general = _docs(stage_dir / "medical"), _docs(stage_dir / "rejected" / "not_medical")
    assert len(medical) == m.docs_kept and len(general) == m.dropped["not_medical"]
    assert all(d["metadata"]["medical_score"] >= 0.5 for d in medical)
    assert sum(d["id"].startswith("<urn:uuid:medical") for d in medical) >= 12
    assert m.kept_words == sum(len(d["text"].split()) for d in medical)

    clf = m.classifier
    assert clf.kind == "tfidf_logreg" and clf.threshold == 0.5
    assert clf.n_train + clf.n_heldout == 28
    assert clf.label_lines_malformed == 1
    assert sum(clf.confusion.model_dump().values()) == clf.n_heldout
    for key in ("precision", "recall", "f1", "accuracy"):
        assert isinstance(getattr(clf, key), float) and 0.0 <= getattr(clf, key) <= 1.0
    assert clf.f1 >= 0.8
    assert result.outputs["general"] == "rejected/not_medical"
    assert json.loads((stage_dir / "stats.json").read_text())["docs_kept"] == m.docs_kept


def test_rerun_after_interruption_does_not_duplicate(tmp_path: Path, corpus_inputs: dict, make_config: Any) -> None:
    cfg = make_config(corpus_inputs)
    first, stage_dir = _run(cfg)
    medical_before = sorted(d["id"] for d in _docs(stage_dir / "medical"))
    # as if the process died while rank 0 of the classify pipeline was writing: no marker, report kept
    (stage_dir / "logs" / "classify" / "completions" / "00000").unlink()
    second, _ = _run(cfg)
    assert sorted(d["id"] for d in _docs(stage_dir / "medical")) == medical_before
    assert second.metrics.docs_kept == first.metrics.docs_kept
    assert second.metrics.docs_in == first.metrics.docs_in


def test_runner_resumes_interrupted_attempt(tmp_path: Path, corpus_inputs: dict, make_config: Any) -> None:
    from definemed import pipeline

    cfg = make_config(corpus_inputs)
    manifest = pipeline.run_stage(cfg, "corpus", {})
    stage_dir = cfg.run.run_dir / "corpus"
    kept = len(_docs(stage_dir / "medical"))
    # an attempt that finished its work but died before writing the manifest
    (stage_dir / "manifest.json").unlink()
    write_json(stage_dir / pipeline.ATTEMPT, {"key": manifest["key"]})
    again = pipeline.run_stage(cfg, "corpus", {})
    assert len(_docs(stage_dir / "medical")) == kept == again["metrics"]["docs_kept"]
    assert again["outputs"]["medical"] == "medical"


def test_fasttext_kind_through_the_stage(tmp_path: Path, corpus_inputs: dict, make_config: Any) -> None:
    result, stage_dir = _run(make_config(corpus_inputs, classifier={"kind": "fasttext", "holdout_fraction": 0.3}))
    assert result.metrics.classifier.kind == "fasttext"
    assert (stage_dir / "classifier" / "model.bin").stat().st_size < 16 * 2**20  # float default, 200k buckets
    assert result.metrics.docs_in == result.metrics.docs_kept + sum(result.metrics.dropped.values())


def test_jsonl_input_kind(tmp_path: Path, corpus_inputs: dict, make_config: Any) -> None:
    import pyarrow.parquet as pq

    folder = tmp_path / "jsonl"
    folder.mkdir()
    for shard in sorted(corpus_inputs["shards"].glob("00[01]_*.parquet")):
        rows = pq.read_table(shard).to_pylist()
        with gzip.open(folder / f"{shard.stem}.jsonl.gz", "wt", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
    (folder / "broken.jsonl.gz").write_bytes(gzip.compress(b'{"text": "abc"}\n')[:12])  # cut in the header
    result, _ = _run(make_config(corpus_inputs, input={"kind": "jsonl", "paths": [str(folder)]}))
    m = result.metrics
    assert (m.missing_text, m.corrupt_files, m.input_files) == (1, 1, 3)
    assert m.docs_in == corpus_inputs["n_rows"] - 1 == m.docs_kept + sum(m.dropped.values())


def test_chosen_threshold_reaches_the_classify_step(tmp_path: Path, corpus_inputs: dict, make_config: Any) -> None:
    """A quantile threshold is resolved to a number at training time and that number filters the documents."""
    result, stage_dir = _run(
        make_config(corpus_inputs, classifier={"threshold": {"by": "quantile", "value": 0.25}, "holdout_fraction": 0.3})
    )
    chosen = json.loads((stage_dir / "classifier" / "report.json").read_text())["threshold"]
    assert isinstance(chosen, float) and 0 < chosen < 1
    kept = _docs(stage_dir / "medical")
    assert kept and all(d["metadata"]["medical_score"] >= chosen for d in kept)
    rejected = _docs(stage_dir / "rejected" / "not_medical")
    # scores are stored rounded to 6 decimals, so a document at the threshold may compare equal
    assert all(d["metadata"]["medical_score"] <= chosen for d in rejected)
    assert sum(d["metadata"]["medical_score"] < chosen - 1e-6 for d in rejected) >= len(rejected) - 1


def test_single_pass_keeps_and_rejects_what_two_passes_do(
    tmp_path: Path, corpus_inputs: dict, make_config: Any
) -> None:
    """With every file sampled, one pass over the input gives the two-pass corpus: the same kept and rejected
    documents per reason, the same counts, and input tokens that the estimate reproduces exactly."""
    two, two_dir = _run(make_config(corpus_inputs))
    cfg = make_config(corpus_inputs, single_pass={"sample_files": 1.0})
    cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"run_dir": tmp_path / "single"})})
    one, one_dir = _run(cfg)

    def ids(folder: Path) -> list[str]:
        return sorted(d["id"] for d in _docs(folder))

    assert ids(one_dir / "medical") == ids(two_dir / "medical")
    for reason in two.metrics.dropped:
        assert ids(one_dir / "rejected" / reason) == ids(two_dir / "rejected" / reason), reason
    for key in (
        "docs_in",
        "docs_kept",
        "dropped",
        "missing_text",
        "corrupt_files",
        "input_files",
        "tokens_kept",
        "tokens_in",
        "kept_words",
    ):
        assert getattr(one.metrics, key) == getattr(two.metrics, key), key
    assert one.metrics.tokens_in_estimated and not two.metrics.tokens_in_estimated
    assert one.metrics.single_pass.sample_docs_in == one.metrics.docs_in
    # the sample pipeline wrote no rejects of its own: each rejected document is there once
    assert len(ids(one_dir / "rejected" / "language")) == one.metrics.dropped["language"]
    assert "estimated: single pass" in (one_dir / "README.md").read_text()


def test_single_pass_samples_a_share_of_the_files(
    tmp_path: Path, corpus_inputs: dict, make_config: Any, german_texts: dict
) -> None:
    """Half of four files: the classifier learns from the sampled files only, the classify pass reads them all,
    and dedup (which re-tokenises the kept documents) still balances the counts."""
    from tests.corpus.conftest import _document, fineweb2_row, write_parquet

    rows = [
        fineweb2_row(f"<urn:uuid:{kind}-{i:02d}>", _document(german_texts[kind], seed=i))
        for kind in ("medical", "general")
        for i in range(14)
    ]
    shards = tmp_path / "four"
    for k in range(4):
        write_parquet(rows[k::4], shards / f"{k:03d}_00000.parquet")
    inputs = {**corpus_inputs, "shards": shards}
    result, stage_dir = _run(make_config(inputs, single_pass={"sample_files": 0.5, "seed": 3}, dedup={"n_grams": 3}))
    m = result.metrics
    listed = (stage_dir / "sample" / "paths_0.txt").read_text().split()
    assert len(listed) == 2 and all(name.endswith(".parquet") for name in listed)
    assert m.single_pass.sample_docs_in == 14 and m.docs_in == 28
    assert len(_docs(stage_dir / "filtered")) == 14  # the sample only: no copy of the corpus
    assert m.classifier.n_train + m.classifier.n_heldout == 14
    assert m.docs_in == m.docs_kept + sum(m.dropped.values())
    assert m.tokens_kept > 0 and m.tokens_in > m.tokens_kept
