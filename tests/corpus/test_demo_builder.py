"""demo/build_corpus.py writes FineWeb2's schema, deterministic values and labels for every document."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]
FINEWEB2_COLUMNS = [
    ("text", "string"),
    ("id", "string"),
    ("dump", "string"),
    ("url", "string"),
    ("date", "string"),
    ("file_path", "string"),
    ("language", "string"),
    ("language_score", "double"),
    ("language_script", "string"),
    ("minhash_cluster_size", "int64"),
    ("top_langs", "string"),
]


@pytest.fixture(scope="module")
def builder():
    spec = importlib.util.spec_from_file_location("build_corpus", REPO / "demo" / "build_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sources(folder: Path) -> Path:
    folder.mkdir()
    rows = [
        {
            "text": f"Text Nummer {i} über das Wetter.",
            "url": f"https://example.de/{i}",
            "category": "c",
            "subdomain": "general" if i % 3 else "clinical",
            "medical": i % 3 == 0,
            "lang": "de" if i < 8 else "en",
        }
        for i in range(10)
    ]
    rows.append(
        {
            "text": "Anderer Text, gleiche URL.",
            "url": "https://example.de/1",
            "subdomain": "general",
            "medical": False,
            "lang": "de",
        }
    )
    (folder / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "{oops\n", encoding="utf-8")
    return folder


def _columns(path: Path) -> list[tuple[str, str]]:
    return [(f.name, str(f.type)) for f in pq.read_schema(path)]


def test_builder_schema_ids_and_determinism(builder, tmp_path: Path) -> None:
    src = _sources(tmp_path / "src")
    labels = builder.build(src, tmp_path / "out", tmp_path / "labels.jsonl")
    shards = sorted((tmp_path / "out").glob("*.parquet"))
    assert [s.name for s in shards] == ["000_00000.parquet", "001_00000.parquet"]
    table = pq.read_table(shards[0]).to_pylist() + pq.read_table(shards[1]).to_pylist()
    assert all(_columns(s) == FINEWEB2_COLUMNS for s in shards)
    assert len(table) == 11 and len({r["id"] for r in table}) == 11  # same URL, other text: distinct id
    assert {r["id"] for r in table} == {r["id"] for r in labels}
    assert all(r["id"].startswith("<urn:uuid:") and r["language"] == "deu" for r in table)
    by_id = {r["id"]: r for r in labels}
    for row in table:
        german = by_id[row["id"]]["lang"] == "de"
        assert (0.85 <= row["language_score"] <= 1.0) if german else (0.3 <= row["language_score"] <= 0.7)
        assert json.loads(row["top_langs"])["deu_Latn_score"] == row["language_score"]
    again = builder.build(src, tmp_path / "out2", tmp_path / "labels2.jsonl")
    assert again == labels
    assert pq.read_table(tmp_path / "out2" / "000_00000.parquet").equals(pq.read_table(shards[0]))


def test_shipped_demo_shards_match_fineweb2_and_labels() -> None:
    shards = sorted((REPO / "demo" / "fineweb2-deu").glob("*.parquet"))
    assert len(shards) == 2
    ids = [i for s in shards for i in pq.read_table(s, columns=["id"]).column("id").to_pylist()]
    assert all(_columns(s) == FINEWEB2_COLUMNS for s in shards)
    gold = [json.loads(line) for line in (REPO / "demo" / "gold_labels.jsonl").open(encoding="utf-8")]
    assert sorted(ids) == sorted(r["id"] for r in gold) and len(set(ids)) == len(ids)
    assert all(isinstance(r["medical"], bool) and r["subdomain"] and r["lang"] for r in gold)


def test_card_table_is_replaced_between_markers(builder, tmp_path: Path) -> None:
    card = tmp_path / "card.md"
    card.write_text("intro\n<!-- composition:begin x -->\nold\n<!-- composition:end -->\noutro\n", encoding="utf-8")
    assert builder.update_card(card, "| new |")
    assert builder.update_card(card, "| new |")  # idempotent
    assert card.read_text() == "intro\n<!-- composition:begin x -->\n| new |\n<!-- composition:end -->\noutro\n"
    (tmp_path / "plain.md").write_text("no markers", encoding="utf-8")
    assert not builder.update_card(tmp_path / "plain.md", "| new |")


def test_real_test_documents_never_reach_the_shards_and_groups_stay_on_one_side() -> None:
    """The real held-out set is only held out if no shard (labelling, training, threshold) carries any of its
    documents, nor another paragraph of the same letter."""
    sources = [
        json.loads(line)
        for f in sorted((REPO / "demo" / "sources" / "real").glob("*.jsonl"))
        for line in f.open(encoding="utf-8")
    ]
    sides: dict[str, set[str]] = {}
    for row in sources:
        sides.setdefault(row["group"], set()).add(row["split"])
    assert all(len(s) == 1 for s in sides.values()), [g for g, s in sides.items() if len(s) > 1]
    shard_texts = {
        t
        for s in sorted((REPO / "demo" / "fineweb2-deu").glob("*.parquet"))
        for t in pq.read_table(s, columns=["text"]).column("text").to_pylist()
    }
    real_test = [json.loads(line) for line in (REPO / "demo" / "real_test.jsonl").open(encoding="utf-8")]
    assert len(real_test) >= 300 and all(r["origin"] == "real" for r in real_test)
    assert not shard_texts & {r["text"] for r in real_test}
    test_texts = {r["text"] for r in sources if r["split"] == "test"}
    assert test_texts == {r["text"] for r in real_test}
    assert {r["text"] for r in sources if r["split"] == "train"} <= shard_texts
