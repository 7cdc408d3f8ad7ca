from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from definemed.train.data import build_cpt_data, is_heldout, iter_documents, pack_token_lists
from definemed.train.heldout import _batches
from tests.train.corpus_fixture import write_shards


def test_packing_blocks_are_exact_with_eos_between_documents() -> None:
    docs = [[1, 2, 3], [4, 5], [6, 7, 8, 9]]
    packed = pack_token_lists(docs, eos_id=0, block_size=4)
    assert packed.blocks.tolist() == [[1, 2, 3, 0], [4, 5, 0, 6], [7, 8, 9, 0]]
    assert packed.tokens_total == 12 and packed.tokens_dropped == 0 and packed.docs == 3
    assert packed.packing_efficiency == 1.0


def test_packing_drops_only_the_remainder_for_training_and_keeps_it_for_heldout() -> None:
    docs = [[1, 2, 3, 4, 5], [6, 7]]  # 5 + 1 + 2 + 1 = 9 tokens
    train = pack_token_lists(docs, eos_id=0, block_size=4)
    assert train.blocks.shape == (2, 4) and train.tokens_dropped == 1
    assert train.blocks.size + train.tokens_dropped == train.tokens_total == 9
    held = pack_token_lists(docs, eos_id=0, block_size=4, keep_remainder=True)
    assert held.tail.tolist() == [0] and held.tokens_dropped == 0
    capped = pack_token_lists(iter(docs), eos_id=0, block_size=4, keep_remainder=True, max_tokens=4)
    assert capped.blocks.tolist() == [[1, 2, 3, 4]] and capped.tail.size == 0


def test_split_by_id_is_deterministic_and_near_the_fraction() -> None:
    docs = [{"id": f"doc-{i}", "text": "x"} for i in range(4000)]
    first = [is_heldout(d, 0.1) for d in docs]
    assert first == [is_heldout(d, 0.1) for d in reversed(docs)][::-1]
    assert 0.08 < sum(first) / len(first) < 0.12
    assert is_heldout({"id": "doc-1", "text": "a"}, 0.1) == is_heldout({"id": "doc-1", "text": "b"}, 0.1)


def test_build_cpt_data_counts_every_token(tmp_path: Path, tiny_tokenizer_dir: Path,
                                           german_texts: dict[str, list[str]]) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    medical = [f"{a} {b}" for a in german_texts["medical"] for b in german_texts["medical"]]
    med_dir = write_shards(tmp_path / "med", medical, "med")
    gen_dir = write_shards(tmp_path / "gen", german_texts["general"], "gen")
    cpt = SimpleNamespace(block_size=32, heldout_fraction=0.2, max_train_docs=None, eval_max_blocks=100)
    data = build_cpt_data(cpt, tok, med_dir, gen_dir)

    docs = list(iter_documents(med_dir))
    train_docs = [d for d in docs if not is_heldout(d, 0.2)]
    expected = sum(len(tok(d["text"], add_special_tokens=False)["input_ids"]) + 1 for d in train_docs)
    assert data.train.docs == len(train_docs) and 0 < data.heldout["medical"].docs < len(docs)
    assert data.train.tokens_total == expected
    assert data.train.blocks.size + data.train.tokens_dropped == expected
    assert data.train.tokens_dropped < 32 and data.train.blocks.shape[1] == 32
    assert int((data.train.blocks == tok.eos_token_id).sum()) in (len(train_docs), len(train_docs) - 1)
    general = data.heldout["general"]
    assert general.tokens_in_blocks == general.tokens_total  # held-out keeps its tail

    capped = build_cpt_data(SimpleNamespace(**{**vars(cpt), "max_train_docs": 5}), tok, med_dir, None)
    assert capped.train.docs == 5 and "general" not in capped.heldout


def test_too_little_text_for_one_block_is_a_clear_error(tmp_path: Path, tiny_tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    med_dir = write_shards(tmp_path / "med", ["Kurz."], "med", shards=1)
    cpt = SimpleNamespace(block_size=512, heldout_fraction=0.01, max_train_docs=None, eval_max_blocks=4)
    with pytest.raises(ValueError, match="do not fill one block of 512"):
        build_cpt_data(cpt, tok, med_dir, None)


def test_eval_batches_never_mix_lengths() -> None:
    rows = [np.zeros(4, dtype=np.int64)] * 5 + [np.zeros(2, dtype=np.int64)]
    assert [len(b) for b in _batches(rows, batch_size=2)] == [2, 2, 1, 1]
