"""Session fixtures: a tokenizer trained here and tiny random-init Llama / Qwen2 checkpoints. No network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]

GERMAN_MEDICAL = [
    "Bluthochdruck ist ein wichtiger Risikofaktor für Herzinfarkt und Schlaganfall.",
    "Die Patientin wurde mit einer akuten Appendizitis in die Notaufnahme eingeliefert.",
    "Metformin ist das Mittel der ersten Wahl bei Diabetes mellitus Typ 2.",
    "Nach der Operation erhielt der Patient eine Thromboseprophylaxe mit Heparin.",
    "Die Lunge besteht aus zwei Lungenflügeln, die von der Pleura umgeben sind.",
    "Bei Fieber über 39 Grad sollten Sie ärztlichen Rat einholen.",
    "Die Pflegekraft dokumentiert die Dekubitusprophylaxe im Pflegebericht.",
    "Antibiotika wirken nicht gegen Viren, sondern nur gegen Bakterien.",
    "Eine Impfung gegen Masern schützt auch Menschen, die nicht geimpft werden können.",
    "Das EKG zeigte eine ST-Hebung in den Ableitungen II, III und aVF.",
]
GERMAN_GENERAL = [
    "Der Zug nach München hatte heute Morgen wegen einer Weichenstörung Verspätung.",
    "Für den Kuchen braucht man Mehl, Zucker, Eier und etwas Butter.",
    "Die Mannschaft gewann das Spiel am Samstag mit drei zu eins.",
    "Der Mieter muss die Nebenkostenabrechnung innerhalb eines Jahres erhalten.",
    "Das neue Smartphone hat einen helleren Bildschirm und einen größeren Akku.",
    "Die Stadt plant einen neuen Radweg entlang des Flusses.",
    "Im Sommer lohnt sich eine Wanderung durch die Sächsische Schweiz.",
    "Die Zinsen für Tagesgeld sind im letzten Jahr leicht gestiegen.",
    "Der Gemeinderat stimmte dem Bau der neuen Schule mit großer Mehrheit zu.",
    "Am Wochenende findet auf dem Marktplatz ein Weinfest statt.",
]
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.fixture(scope="session")
def german_texts() -> dict[str, list[str]]:
    return {"medical": list(GERMAN_MEDICAL), "general": list(GERMAN_GENERAL)}


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator((GERMAN_MEDICAL + GERMAN_GENERAL) * 5, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        bos_token="<|endoftext|>",
        pad_token="<pad>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHATML
    out = tmp_path_factory.mktemp("tokenizer")
    fast.save_pretrained(out)
    return out


def _save_tiny_model(arch: str, tokenizer_dir: Path, out: Path, seed: int) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    common = dict(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**common)) if arch == "llama" else Qwen2ForCausalLM(Qwen2Config(**common))
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_dir: Path) -> Path:
    return _save_tiny_model("llama", tiny_tokenizer_dir, tmp_path_factory.mktemp("tiny-llama"), seed=0)


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_dir: Path) -> Path:
    return _save_tiny_model("qwen2", tiny_tokenizer_dir, tmp_path_factory.mktemp("tiny-qwen2"), seed=1)


@pytest.fixture(scope="session")
def tiny_llama_other_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_dir: Path) -> Path:
    """Same architecture as tiny_llama_dir, different weights: stands in for a CPT checkpoint in merge tests."""
    return _save_tiny_model("llama", tiny_tokenizer_dir, tmp_path_factory.mktemp("tiny-llama-b"), seed=7)
