from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from definemed.train.packing import (
    IGNORE_INDEX,
    BlockPacker,
    PackedCollator,
    pack_documents,
    resolve_attn_implementation,
    resolve_packing_mode,
)

DOCS = [[11, 12, 13], [21, 22], [31, 32, 33, 34, 35, 36]]  # + EOS (0) each: 4 + 3 + 7 = 14 tokens


def test_position_ids_restart_at_every_document_and_after_a_block_cut() -> None:
    blocks, packer = pack_documents(DOCS, block_size=5, eos_id=0, mode="position_ids")
    assert [b["input_ids"].tolist() for b in blocks] == [[11, 12, 13, 0, 21], [22, 0, 31, 32, 33]]
    # doc 2 is cut after its first token: its continuation starts the next block at position 0
    assert [b["position_ids"].tolist() for b in blocks] == [[0, 1, 2, 3, 0], [0, 1, 0, 1, 2]]
    assert blocks[0]["labels"].tolist() == [IGNORE_INDEX, 12, 13, 0, IGNORE_INDEX]
    assert blocks[1]["labels"].tolist() == [IGNORE_INDEX, 0, IGNORE_INDEX, 32, 33]
    assert packer.docs == 3 and packer.tokens == 14  # 4 tokens of doc 3 wait in the remainder


def test_eos_mode_is_plain_concatenation_with_every_token_a_target() -> None:
    blocks, _ = pack_documents(DOCS, block_size=4, eos_id=0, mode="eos")
    assert [b["input_ids"].tolist() for b in blocks] == [[11, 12, 13, 0], [21, 22, 0, 31], [32, 33, 34, 35]]
    assert all("position_ids" not in b and (b["labels"] == b["input_ids"]).all() for b in blocks)
    capped, _ = pack_documents(iter(DOCS), block_size=4, eos_id=0, mode="eos", max_blocks=1)
    assert len(capped) == 1
    with pytest.raises(ValueError, match="'position_ids' or 'eos'"):
        BlockPacker(4, 0, "auto")


def test_collator_stacks_or_flattens_the_batch() -> None:
    blocks, _ = pack_documents(DOCS, block_size=5, eos_id=0, mode="position_ids")
    stacked = PackedCollator()(blocks)
    assert tuple(stacked["input_ids"].shape) == (2, 5) and set(stacked) == {"input_ids", "labels", "position_ids"}
    flat = PackedCollator(flatten=True)(blocks)
    assert tuple(flat["position_ids"].shape) == (1, 10)
    assert flat["position_ids"][0].tolist() == [0, 1, 2, 3, 0, 0, 1, 0, 1, 2]


def _load(model_dir: Path, attn: str) -> object:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation=attn).eval()
    model.config.use_cache = False  # as in training: a KV cache turns off the packed-sequence mask
    return model


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("arch", ["tiny_llama_dir", "tiny_qwen2_dir"])
def test_packed_block_logits_equal_documents_run_separately(
    attn: str, arch: str, request: pytest.FixtureRequest
) -> None:
    import torch

    model = _load(request.getfixturevalue(arch), attn)
    rng = np.random.default_rng(0)
    docs = [rng.integers(5, 300, size=n).tolist() for n in (7, 12, 5)]
    blocks, _ = pack_documents(docs * 2, block_size=27, eos_id=2, mode="position_ids")  # 8 + 13 + 6 = 27
    batch = PackedCollator()(blocks[:1] * 2)  # batch of 2 identical rows: the mask is built per row
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
        start = 0
        for doc in docs:
            ids = torch.tensor([[*doc, 2]])
            alone = model(input_ids=ids).logits[0]
            assert torch.allclose(packed[start : start + ids.shape[1]], alone, atol=1e-5)
            start += ids.shape[1]
        # Without position ids the second document attends to the first: the isolation is real, not vacuous.
        leaky = model(input_ids=batch["input_ids"][:1]).logits[0]
        assert not torch.allclose(leaky[8:21], packed[8:21], atol=1e-3)
        # ...and so is the reason training switches the cache off: with it, the documents leak again.
        cached = model(input_ids=batch["input_ids"][:1], position_ids=batch["position_ids"][:1], use_cache=True)
        assert not torch.allclose(cached.logits[0][8:21], packed[8:21], atol=1e-3)


@pytest.mark.gpu
def test_flash_attention_isolates_documents_in_a_flattened_batch(tiny_llama_dir: Path) -> None:
    import torch

    if not torch.cuda.is_available() or resolve_attn_implementation("auto") != "flash_attention_2":
        pytest.skip("needs CUDA and flash-attn")
    from transformers import AutoModelForCausalLM

    model = (
        AutoModelForCausalLM.from_pretrained(
            tiny_llama_dir, attn_implementation="flash_attention_2", dtype=torch.bfloat16
        )
        .cuda()
        .eval()
    )
    docs = [[5, 6, 7, 8], [9, 10, 11]]
    blocks, _ = pack_documents(docs * 3, block_size=9, eos_id=2, mode="position_ids")
    batch = {k: v.cuda() for k, v in PackedCollator(flatten=True)(blocks[:2]).items()}
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0].float()
        alone = model(input_ids=torch.tensor([[9, 10, 11, 2]]).cuda()).logits[0].float()
    assert torch.allclose(packed[5:9], alone, atol=2e-2)


def test_packing_mode_resolution(tiny_llama_dir: Path) -> None:
    model = _load(tiny_llama_dir, "sdpa")
    assert resolve_packing_mode("auto", model) == "position_ids"
    assert resolve_packing_mode("eos", model) == "eos"
    # A model class outside transformers' masking utilities cannot isolate documents.
    opaque = SimpleNamespace(config=SimpleNamespace(_attn_implementation="sdpa"))
    assert resolve_packing_mode("auto", opaque) == "eos"
    with pytest.raises(ValueError, match="does not isolate packed documents"):
        resolve_packing_mode("position_ids", opaque)
    assert resolve_attn_implementation("auto") in ("sdpa", "flash_attention_2")
    assert resolve_attn_implementation("eager") == "eager"
