"""Synthetic FineWeb2-schema shards for the corpus tests: German medical and general documents built from the
session sentence lists, one English page, one boilerplate page, a record without text and a truncated shard."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

ENGLISH = (
    "The hospital opened a new ward for patients with heart disease last spring. Doctors and nurses explained "
    "that the ward would reduce waiting times for treatment. Many families welcomed the change, because they "
    "had travelled long distances before. The city council also approved money for more parking near the "
    "main entrance, and the bus company added an extra line that stops in front of the building every hour."
)
BOILERPLATE = "\n".join(["Startseite", "Kontakt", "Impressum", "Datenschutz", "Cookies akzeptieren"] * 4)


def _document(sentences: list[str], seed: int) -> str:
    picked = random.Random(seed).sample(sentences, 7)
    return "\n".join(" ".join(picked[i : i + 2]) for i in range(0, len(picked), 2))


def fineweb2_row(doc_id: str, text: str | None, language_score: float = 0.95) -> dict[str, Any]:
    return {
        "text": text,
        "id": doc_id,
        "dump": "CC-MAIN-2024-10",
        "url": f"https://example.de/{doc_id}",
        "date": "2024-02-20T10:00:00Z",
        "file_path": "s3://commoncrawl/crawl-data/x.warc.gz",
        "language": "deu",
        "language_score": language_score,
        "language_script": "Latn",
        "minhash_cluster_size": 1,
        "top_langs": json.dumps({"deu_Latn_score": language_score}),
    }


def write_parquet(rows: list[dict[str, Any]], path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.fixture
def corpus_inputs(tmp_path: Path, german_texts: dict[str, list[str]]) -> dict[str, Any]:
    """Two readable shards, one truncated shard and a labels file (with one malformed line)."""
    rows, labels = [], []
    for kind, n in (("medical", 14), ("general", 14)):
        for i in range(n):
            doc_id = f"<urn:uuid:{kind}-{i:02d}>"
            rows.append(fineweb2_row(doc_id, _document(german_texts[kind], seed=i)))
            labels.append({"id": doc_id, "medical": kind == "medical"})
    rows.append(fineweb2_row("<urn:uuid:english>", ENGLISH, language_score=0.41))
    rows.append(fineweb2_row("<urn:uuid:boilerplate>", BOILERPLATE))
    rows.append(fineweb2_row("<urn:uuid:no-text>", None))
    random.Random(0).shuffle(rows)
    shards = tmp_path / "shards"
    write_parquet(rows[: len(rows) // 2], shards / "000_00000.parquet")
    write_parquet(rows[len(rows) // 2 :], shards / "001_00000.parquet")
    intact = write_parquet(rows[:3], tmp_path / "whole.parquet").read_bytes()
    (shards / "002_00000.parquet").write_bytes(intact[: len(intact) // 2])  # truncated download
    label_file = tmp_path / "labels.jsonl"
    label_file.write_text("".join(json.dumps(r) + "\n" for r in labels) + "{not json\n", encoding="utf-8")
    return {"shards": shards, "labels": label_file, "n_rows": len(rows), "n_labels": len(labels)}


def corpus_config(tmp_path: Path, inputs: dict[str, Any], **corpus: Any) -> Any:
    """A validated config for the corpus stage over `inputs`, run in-process (one worker)."""
    from definemed.config import DefinemedConfig

    section = {
        "input": {"kind": "parquet", "paths": [str(inputs["shards"])]},
        "labels": {"kind": "file", "path": str(inputs["labels"])},
        "quality": {"fineweb_quality": {"line_punct_thr": 0.04, "short_line_thr": 0.9}},
        "classifier": {"kind": "tfidf_logreg", "threshold": 0.5, "holdout_fraction": 0.3},
        "executor": {"kind": "local", "tasks": 2, "workers": 1},
    } | corpus
    return DefinemedConfig.model_validate(
        {"run": {"name": "t", "run_dir": str(tmp_path / "run")}, "models": {"instruct": {"id": "x"}}, "corpus": section}
    )


@pytest.fixture
def make_config(tmp_path: Path) -> Any:
    """`make_config(inputs, **corpus_section_overrides)` -> DefinemedConfig."""
    return lambda inputs, **corpus: corpus_config(tmp_path, inputs, **corpus)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_dir: Path) -> Path:
    """A 2-layer, hidden-32 BERT built from a config, with the session tokenizer: a stand-in for XLM-R / e5."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-bert")
    BertModel(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out
