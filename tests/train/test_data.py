from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from definemed.train.data import BlockList, build_heldout, is_heldout, iter_documents, shard_files
from tests.train.corpus_fixture import write_shards


def test_split_by_id_is_deterministic_and_near_the_fraction() -> None:
    docs = [{"id": f"doc-{i}", "text": "x"} for i in range(4000)]
    first = [is_heldout(d, 0.1) for d in docs]
    assert first == [is_heldout(d, 0.1) for d in reversed(docs)][::-1]
    assert 0.08 < sum(first) / len(first) < 0.12
    assert is_heldout({"id": "doc-1", "text": "a"}, 0.1) == is_heldout({"id": "doc-1", "text": "b"}, 0.1)


def test_documents_of_a_folder_or_of_listed_shards(tmp_path: Path) -> None:
    folder = write_shards(tmp_path / "med", [f"Text {i}" for i in range(7)], "med", shards=3)
    files = shard_files(folder)
    assert [f.name for f in files] == ["00000.jsonl.gz", "00001.jsonl.gz", "00002.jsonl.gz"]
    assert [d["id"] for d in iter_documents(files[::-1])][:2] == ["med-2", "med-5"]
    assert len(list(iter_documents(folder))) == 7
    (folder / "00003.jsonl").write_text('{"text": "ok"}\n{broken\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"00003.jsonl:2: malformed JSON"):
        list(iter_documents(folder))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        shard_files(tmp_path / "missing")


def test_heldout_set_packs_only_heldout_docs_into_full_blocks(
    tmp_path: Path, tiny_tokenizer_dir: Path, german_texts: dict[str, list[str]]
) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    medical = [f"{a} {b}" for a in german_texts["medical"] for b in german_texts["medical"]]
    folder = write_shards(tmp_path / "med", medical, "med")
    cpt = SimpleNamespace(block_size=32, heldout_fraction=0.2, eval_max_blocks=100)
    held = build_heldout("medical", folder, cpt, tok, "position_ids")
    texts = [d["text"] for d in iter_documents(folder) if is_heldout(d, 0.2)]
    tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) + 1 for t in texts)
    assert held.docs == len(texts) and len(held.blocks) == tokens // 32
    assert all(b["input_ids"].shape == (32,) for b in held.blocks)
    starts = sum(int((b["position_ids"][1:] == 0).sum()) for b in held.blocks)
    assert held.tokens == len(held.blocks) * 31 - starts
    capped = build_heldout("medical", folder, SimpleNamespace(**{**vars(cpt), "eval_max_blocks": 2}), tok, "eos")
    assert len(BlockList(capped.blocks)) == 2 and capped.tokens == 2 * 31
