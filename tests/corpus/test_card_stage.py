"""The corpus stage with decontamination, deduplication, token counts and the dataset card, end to end on the
synthetic shards plus planted documents: near-copies of one page, and pages that quote a benchmark item."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from definemed.artifacts import write_json
from definemed.config import DefinemedConfig
from definemed.corpus import stats
from definemed.corpus.contract import bind
from definemed.corpus.metrics import CorpusMetrics
from definemed.corpus.stage import run
from definemed.stage import StageContext

QUESTION = (
    "Eine 67-jährige Patientin mit Vorhofflimmern und einem CHA2DS2-VASc-Score von 4 fragt nach der "
    "Schlaganfallprophylaxe. Welche Behandlung empfehlen die aktuellen Leitlinien in erster Linie?"
)
REFERENCE = (
    "Bei Verdacht auf einen Schlaganfall zählt jede Minute: Rufen Sie sofort den Notruf 112, notieren Sie "
    "den Zeitpunkt der ersten Symptome und geben Sie der Person nichts zu essen oder zu trinken."
)


def _medical_page(sentences: list[str], extra: str = "") -> str:
    lines = [" ".join(sentences[i : i + 2]) for i in range(0, len(sentences), 2)]
    return "\n".join(lines + ([extra] if extra else []))


def _row(doc_id: str, text: str) -> dict[str, Any]:
    return {
        "text": text,
        "id": doc_id,
        "url": f"https://example.de/{doc_id}",
        "language": "deu",
        "language_score": 0.95,
    }


@pytest.fixture
def planted(corpus_inputs: dict[str, Any], german_texts: dict[str, list[str]], tmp_path: Path) -> dict[str, Any]:
    """A third shard with 4 near-copies of one medical page and 2 pages quoting benchmark items; benchmarks."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = _medical_page(german_texts["medical"])
    copies = {
        "near-0": base,
        "near-1": base.replace(".", " .").replace("\n", " \n\n"),
        "near-2": base.replace("Heparin", "niedermolekularem Heparin"),
        "near-3": base + "\nDie Visite beginnt um acht Uhr.",
    }
    leaks = {
        "leak-question": _medical_page(german_texts["medical"][::-1], f"Prüfungsfrage: {QUESTION}"),
        "leak-reference": f"{REFERENCE}\n" + "\n".join(german_texts["medical"][1::2]),
    }
    rows = [_row(f"<urn:uuid:{k}>", v) for k, v in {**copies, **leaks}.items()]
    pq.write_table(pa.Table.from_pylist(rows), corpus_inputs["shards"] / "003_00000.parquet")
    with corpus_inputs["labels"].open("a", encoding="utf-8") as fh:  # subdomains for the card's plot
        fh.writelines(json.dumps({"id": r["id"], "medical": True, "subdomain": "clinical"}) + "\n" for r in rows)
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "mcq.jsonl").write_text(
        json.dumps({"id": "q1", "question": QUESTION, "choices": ["DOAK", "ASS"], "answer": 0}, ensure_ascii=False)
        + "\n",
        encoding="utf-8",
    )
    (bench / "prompts.jsonl").write_text(
        json.dumps({"id": "p1", "prompt": "Was tun bei Schlaganfall?", "reference": REFERENCE}, ensure_ascii=False)
        + "\n",
        "utf-8",
    )
    return {"copies": {f"<urn:uuid:{k}>" for k in copies}, "leaks": {f"<urn:uuid:{k}>" for k in leaks}, "bench": bench}


def _config(make_config: Any, corpus_inputs: dict, planted: dict, tokenizer: str, **corpus: Any) -> DefinemedConfig:
    base = make_config(
        corpus_inputs,
        decontamination={"ngram": 13},
        dedup={"num_buckets": 14},
        card={"pretty_name": "FineMed-de (test)", "tokenizer": tokenizer},
        **corpus,
    )
    data = base.model_dump(mode="json")
    data["evaluate"] = {
        "mcq": {"tasks": [{"name": "medmcq", "path": str(planted["bench"] / "mcq.jsonl")}]},
        "prompts": str(planted["bench"] / "prompts.jsonl"),
    }
    return DefinemedConfig.model_validate(data)


def _docs(folder: Path) -> list[dict[str, Any]]:
    docs = []
    for path in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            docs += [json.loads(line) for line in fh]
    return docs


def _run(cfg: DefinemedConfig) -> tuple[Any, Path]:
    ctx = StageContext(run_dir=cfg.run.run_dir, stage="corpus")
    ctx.stage_dir.mkdir(parents=True, exist_ok=True)
    return run(bind(cfg), ctx), ctx.stage_dir


def test_stage_decontaminates_deduplicates_counts_tokens_and_writes_card(
    corpus_inputs: dict, planted: dict, make_config: Any, tiny_tokenizer_dir: Path
) -> None:
    from tokenizers import Tokenizer

    cfg = _config(make_config, corpus_inputs, planted, str(tiny_tokenizer_dir))
    result, stage_dir = _run(cfg)
    m = result.metrics
    assert m.docs_in == corpus_inputs["n_rows"] - 1 + 6
    assert m.docs_in == m.docs_kept + sum(m.dropped.values())
    assert list(m.dropped)[-3:] == ["not_medical", "decontamination", "dedup"]

    leaked = _docs(stage_dir / "rejected" / "decontamination")
    assert {(d["id"], d["metadata"]["decontam_item"]) for d in leaked} == {
        ("<urn:uuid:leak-question>", "medmcq/q1"),
        ("<urn:uuid:leak-reference>", "prompts/p1"),
    }
    assert {d["metadata"]["filter_reason"] for d in leaked} == {"benchmark_overlap"}
    assert m.decontam_removed == 2 and m.decontamination.matched_sources == {"medmcq": 1, "prompts": 1}

    medical, dups = _docs(stage_dir / "medical"), _docs(stage_dir / "rejected" / "dedup")
    kept_ids = {d["id"] for d in medical}
    assert len(kept_ids & planted["copies"]) == 1 and not kept_ids & planted["leaks"]
    assert planted["copies"] - kept_ids <= {d["id"] for d in dups}
    assert m.dedup_removed == len(dups) >= 3 and m.docs_kept == len(medical)

    tok = Tokenizer.from_file(str(tiny_tokenizer_dir / "tokenizer.json"))
    assert m.tokenizer.kind == "model" and m.tokenizer.name == str(tiny_tokenizer_dir)
    assert m.tokens_kept == sum(len(tok.encode(d["text"]).ids) for d in medical)
    assert m.kept_words == sum(len(d["text"].split()) for d in medical)
    assert 0 < m.kept_tokens_share < m.token_retention.classifier_token_share <= 1
    assert m.subdomains == {"clinical": len(kept_ids & planted["copies"])}
    _check_card(stage_dir, m)


def _check_card(stage_dir: Path, m: CorpusMetrics) -> None:
    text = (stage_dir / "README.md").read_text(encoding="utf-8")
    header = yaml.safe_load(text.split("---\n")[1])
    assert header["license"] == "odc-by" and header["language"] == ["de"]
    assert header["task_categories"] == ["text-generation"] and header["size_categories"] == ["n<1K"]
    assert header["pretty_name"] == "FineMed-de (test)"
    assert header["configs"][0]["data_files"][0]["path"] == "medical/*.jsonl.gz"
    assert f"| dedup | {m.docs_kept + m.dedup_removed} | {m.docs_kept} | {m.dedup_removed} |" in text
    assert f"| read | {m.input_files} files | {m.docs_in} |" in text and m.input_files == 4
    assert "benchmark_overlap 2" in text and "the table balances" in text
    assert f"precision {m.classifier.precision:.3f}" in text
    assert "definemed run CONFIG.yaml --stages corpus" in text
    for plot in ("plots/token_lengths.png", "plots/subdomains.png"):
        assert f"]({plot})" in text and (stage_dir / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_after_kill_in_dedup_and_classify(corpus_inputs: dict, planted: dict, make_config: Any) -> None:
    cfg = _config(make_config, corpus_inputs, planted, "whitespace")
    first, stage_dir = _run(cfg)
    before = sorted(d["id"] for d in _docs(stage_dir / "medical"))
    # as if the process died while these ranks were writing: no completion markers
    for marker in ("classify/completions/00001", "dedup_filter/completions/00000", "dedup_cluster/completions/00000"):
        (stage_dir / "logs" / marker).unlink()
    second, _ = _run(cfg)
    assert sorted(d["id"] for d in _docs(stage_dir / "medical")) == before
    for key in ("docs_in", "docs_kept", "dropped", "tokens_in", "tokens_kept", "dedup_removed"):
        assert getattr(second.metrics, key) == getattr(first.metrics, key), key
    assert first.metrics.tokenizer.kind == "whitespace"
    assert first.metrics.tokens_kept == first.metrics.kept_words


def test_tokenizer_that_cannot_load_falls_back_to_words(tmp_path: Path, make_config: Any) -> None:
    cfg = make_config({"shards": tmp_path, "labels": tmp_path / "l.jsonl"})  # model id "x": not on the hub offline
    choice = stats.choose_tokenizer(bind(cfg).tokenizer, tmp_path / "tok")
    assert choice.kind == "whitespace" and choice.path is None
    assert "tokenizer of x not loadable" in choice.note


def test_decontamination_config_or_benchmark_change_reruns_corpus(
    corpus_inputs: dict, planted: dict, make_config: Any
) -> None:
    from definemed import pipeline
    from definemed.runfolder import mark_owned

    cfg = _config(make_config, corpus_inputs, planted, "whitespace")
    mark_owned(cfg.run.run_dir / "corpus", "stage:corpus")  # a finished stage folder is one the runner made
    write_json(
        cfg.run.run_dir / "corpus" / "manifest.json", {"key": pipeline.stage_key(cfg, "corpus", {}), "run_id": "r1"}
    )
    assert pipeline.plan(cfg, ["corpus"])[0].action == "cached"
    changed = _config(make_config, corpus_inputs, planted, "whitespace").model_copy(deep=True)
    changed.corpus.decontamination.ngram = 8
    step = pipeline.plan(changed, ["corpus"])[0]
    assert (step.action, step.reason) == ("run", "config or inputs changed")
    with (planted["bench"] / "prompts.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "p2", "prompt": "Neu?", "reference": "Eine neue Referenzantwort."}) + "\n")
    assert pipeline.plan(cfg, ["corpus"])[0].action == "run"
