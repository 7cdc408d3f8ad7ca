"""HfGenerator on tiny random models: shapes, token counts and the hit-limit flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from definemed.evaluate.config import HfGenerationConfig
from definemed.evaluate.generate import HfGenerator, count_generated

PROMPTS = ["Was ist Bluthochdruck?", "Wie wirkt Metformin bei Diabetes mellitus Typ 2?", "Was ist ein EKG?"]


def test_count_generated_stops_at_first_eos() -> None:
    assert count_generated([5, 6, 2, 2], {2}, max_new_tokens=4) == (2, False)
    assert count_generated([5, 6, 7, 8], {2}, max_new_tokens=4) == (4, True)
    # the batch ended early because every other row stopped: shorter than the limit, not cut off
    assert count_generated([5, 6, 7], {2}, max_new_tokens=4) == (3, False)
    assert count_generated([2], {2, 9}, max_new_tokens=4) == (0, False)


def test_generates_with_chat_template_and_flags_truncation(tiny_llama_dir: Path) -> None:
    gen = HfGenerator(
        str(tiny_llama_dir), HfGenerationConfig(max_new_tokens=6, batch_size=2, system_prompt="Antworte auf Deutsch.")
    )
    assert "<|im_start|>system\nAntworte auf Deutsch." in gen.render("Hallo")
    out = gen.generate(PROMPTS)
    gen.close()
    assert len(out) == 3
    for g in out:
        assert 0 <= g.n_tokens <= 6
        assert g.hit_limit == (g.n_tokens == 6)
        assert isinstance(g.text, str) and g.seconds >= 0


def test_greedy_is_deterministic_and_order_preserving(tiny_qwen2_dir: Path) -> None:
    cfg = HfGenerationConfig(max_new_tokens=5, batch_size=3)
    gen = HfGenerator(str(tiny_qwen2_dir), cfg)
    together = [g.text for g in gen.generate(PROMPTS)]
    alone = [gen.generate([p])[0].text for p in PROMPTS]
    gen.close()
    assert together == alone


@pytest.fixture
def eos_only_model(tmp_path: Path, tiny_llama_dir: Path) -> Path:
    """A tiny model that always emits token 0, declared as an extra EOS id in its generation config."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    with torch.no_grad():
        model.model.norm.weight.zero_()  # all logits 0 -> greedy argmax is token 0
    model.generation_config.eos_token_id = [AutoTokenizer.from_pretrained(tiny_llama_dir).eos_token_id, 0]
    model.save_pretrained(tmp_path / "m")
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(tmp_path / "m")
    return tmp_path / "m"


def test_answer_ending_in_eos_is_not_hit_limit(eos_only_model: Path) -> None:
    gen = HfGenerator(str(eos_only_model), HfGenerationConfig(max_new_tokens=4, batch_size=2))
    out = gen.generate(PROMPTS)
    gen.close()
    assert [(g.n_tokens, g.hit_limit, g.text) for g in out] == [(0, False, "")] * 3


def test_sampling_is_seeded(tiny_llama_dir: Path) -> None:
    cfg = HfGenerationConfig(max_new_tokens=8, batch_size=3, temperature=1.0)
    a = HfGenerator(str(tiny_llama_dir), cfg, seed=1)
    first, second = [g.text for g in a.generate(PROMPTS)], [g.text for g in a.generate(PROMPTS)]
    a.close()
    assert first == second
