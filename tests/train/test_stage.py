from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from definemed.artifacts import StageContext
from definemed.config import DefinemedConfig
from definemed.train import stage
from definemed.train import trainer as trainer_module
from definemed.train.estimate import describe_cpt_plan
from tests.helpers import minimal_config_dict
from tests.train.corpus_fixture import corpus_context

BASE_CPT = {"block_size": 32, "per_device_batch_size": 4, "learning_rate": 3e-3, "warmup_steps": 0,
            "heldout_fraction": 0.2, "eval_max_blocks": 8, "logging_steps": 1, "save_steps": 2}


def _medical(texts: dict[str, list[str]]) -> list[str]:
    med = texts["medical"]
    return [f"{a} {b} {c}" for i, a in enumerate(med) for j, b in enumerate(med) for c in med[(i + j) % 10:][:1]]


def _setup(tmp_path: Path, model_dir: Path, texts: dict[str, list[str]], **cpt: Any) -> tuple[DefinemedConfig,
                                                                                              StageContext]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = minimal_config_dict(tmp_path, model_id=str(model_dir))
    data["cpt"] = {**BASE_CPT, **cpt}
    cfg = DefinemedConfig.model_validate(data)
    ctx = corpus_context(cfg.run.run_dir, _medical(texts), texts["general"] * 3)
    return cfg, ctx


def test_cpt_lowers_medical_heldout_loss_and_writes_a_loadable_model(
        tmp_path: Path, tiny_llama_dir: Path, german_texts: dict[str, list[str]]) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg, ctx = _setup(tmp_path, tiny_llama_dir, german_texts, max_steps=12)
    result = stage.run(cfg, ctx)

    assert result.outputs == {"model": "model", "log": "metrics.jsonl"}
    m = result.metrics
    med, gen = m["heldout"]["medical"], m["heldout"]["general"]
    assert med["loss_after"] < med["loss_before"] - 0.2
    assert med["ppl_after"] < med["ppl_before"] and 0 < med["blocks"] <= 8 and gen["blocks"] > 0
    assert m["steps"] == 12 and m["packing_efficiency"] == 1.0 and m["train_tokens"] == m["train_blocks"] * 32
    assert m["tokens_per_step"] == 128 and m["final_train_loss"] is not None and m["seconds"] > 0

    model_dir = ctx.stage_dir / "model"
    assert (model_dir / "model.safetensors").exists() and not (ctx.stage_dir / "checkpoints").exists()
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    out = model.generate(**tok("Die Patientin", return_tensors="pt"), max_new_tokens=4, do_sample=False)
    assert out.shape[1] > 2
    rows = [json.loads(line) for line in (ctx.stage_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 13))
    assert any("train_tokens_per_second" in r for r in rows)


def _kill_after_save(step: int) -> Any:
    """A callback that raises right after the checkpoint at `step` is written, like a SIGKILL there would."""
    from transformers import TrainerCallback

    class KillAfterSave(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == step:
                raise KeyboardInterrupt(f"simulated kill at step {step}")

    return KillAfterSave()


def test_interrupted_cpt_resumes_from_checkpoint_and_matches_an_uninterrupted_run(
        tmp_path: Path, tiny_llama_dir: Path, german_texts: dict[str, list[str]],
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    cfg_a, ctx_a = _setup(tmp_path / "a", tiny_llama_dir, german_texts, max_steps=6)
    whole = stage.run(cfg_a, ctx_a).metrics

    cfg_b, ctx_b = _setup(tmp_path / "b", tiny_llama_dir, german_texts, max_steps=6)
    killing = functools.partial(trainer_module.train, callbacks=[_kill_after_save(4)])
    monkeypatch.setattr(stage, "train", killing)
    with pytest.raises(KeyboardInterrupt):
        stage.run(cfg_b, ctx_b)
    assert (ctx_b.stage_dir / "checkpoints" / "checkpoint-4" / "trainer_state.json").exists()
    assert not (ctx_b.stage_dir / "model").exists()

    monkeypatch.setattr(stage, "train", trainer_module.train)
    with caplog.at_level(logging.INFO, logger="definemed"):
        resumed = stage.run(cfg_b, ctx_b).metrics
    assert "checkpoint-4" in caplog.text
    assert resumed["steps"] == 6
    assert resumed["final_train_loss"] == pytest.approx(whole["final_train_loss"], abs=1e-5)
    assert resumed["heldout"]["medical"]["loss_after"] == pytest.approx(
        whole["heldout"]["medical"]["loss_after"], abs=1e-5)
    _assert_same_weights(ctx_a.stage_dir / "model", ctx_b.stage_dir / "model")


def _assert_same_weights(a: Path, b: Path) -> None:
    from safetensors.torch import load_file

    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-5


def test_plan_estimate_counts_tokens_per_step_without_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = minimal_config_dict(tmp_path)
    data["cpt"] = {"block_size": 256, "per_device_batch_size": 4, "gradient_accumulation_steps": 2, "max_steps": 40}
    monkeypatch.setenv("WORLD_SIZE", "8")
    text = describe_cpt_plan(DefinemedConfig.model_validate(data))
    assert "16,384 tokens per optimizer step" in text and "40 steps = 655,360 training tokens" in text
    data["cpt"]["max_steps"] = -1
    text = describe_cpt_plan(DefinemedConfig.model_validate(data))
    assert "corpus size known after the corpus stage" in text


def test_estimate_module_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, definemed.train.estimate; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
