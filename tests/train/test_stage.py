from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from definemed.artifacts import read_json
from definemed.config import DefinemedConfig
from definemed.stage import StageContext
from definemed.train import stage
from definemed.train import trainer as trainer_module
from definemed.train.contract import CptInputs, bind
from definemed.train.estimate import describe_cpt_plan
from definemed.train.metrics import CptMetrics
from tests.helpers import minimal_config_dict
from tests.train.corpus_fixture import corpus_context

BASE_CPT = {
    "block_size": 32,
    "per_device_batch_size": 4,
    "learning_rate": 3e-3,
    "warmup_steps": 0,
    "heldout_fraction": 0.2,
    "eval_max_blocks": 8,
    "logging_steps": 1,
    "save_steps": 2,
}


def _medical(texts: dict[str, list[str]]) -> list[str]:
    med = texts["medical"]
    return [f"{a} {b} {c}" for i, a in enumerate(med) for j, b in enumerate(med) for c in med[(i + j) % 10 :][:1]]


def _setup(tmp_path: Path, model_dir: Path, texts: dict[str, list[str]], **cpt: Any) -> tuple[CptInputs, StageContext]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = minimal_config_dict(tmp_path, model_id=str(model_dir))
    data["cpt"] = {**BASE_CPT, **cpt}
    cfg = DefinemedConfig.model_validate(data)
    ctx = corpus_context(cfg.run.run_dir, _medical(texts), texts["general"] * 3)
    return bind(cfg), ctx


def test_cpt_lowers_medical_heldout_loss_and_writes_a_loadable_model(
    tmp_path: Path, tiny_llama_dir: Path, german_texts: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    inputs, ctx = _setup(tmp_path, tiny_llama_dir, german_texts, max_steps=12, eval_steps=4)
    result = stage.run(inputs, ctx)

    assert result.outputs == {"model": "model", "log": "metrics.jsonl"}
    m = result.metrics
    assert isinstance(m, CptMetrics)
    med, gen = m.heldout["medical"], m.heldout["general"]
    assert med.loss_after < med.loss_before - 0.2
    assert med.ppl_after < med.ppl_before and 0 < med.blocks <= 8 and gen.blocks > 0
    assert m.steps == 12 and m.packing_efficiency == 1.0 and m.train_tokens == m.train_blocks * 32
    assert m.tokens_per_step == 128 and m.final_train_loss is not None and m.seconds > 0
    # An attempt interrupted after training (before its manifest) reads the result file back as these metrics.
    assert CptMetrics.model_validate(read_json(ctx.stage_dir / stage.RESULT_FILE)) == m
    with monkeypatch.context() as patch:
        patch.setattr(stage, "load_model", lambda *a: pytest.fail("a finished attempt must not train again"))
        assert stage.run(inputs, ctx).metrics == m

    model_dir = ctx.stage_dir / "model"
    assert (model_dir / "model.safetensors").exists() and not (ctx.stage_dir / "checkpoints").exists()
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    out = model.generate(**tok("Die Patientin", return_tensors="pt"), max_new_tokens=4, do_sample=False)
    assert out.shape[1] > 2
    rows = [json.loads(line) for line in (ctx.stage_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 13))
    assert any("train_tokens_per_second" in r for r in rows)
    evals = [r for r in rows if "eval_medical_loss" in r]
    assert [r["step"] for r in evals] == [0, 4, 8, 12]  # before, every eval_steps (the last one is "after")
    assert all(r["eval_general_loss"] > 0 and r["eval_medical_ppl"] > 1 for r in evals)
    assert evals[0]["eval_medical_loss"] == pytest.approx(med.loss_before, abs=1e-5)
    assert evals[-1]["eval_medical_loss"] == pytest.approx(med.loss_after, abs=1e-5)
    assert m.packing_mode == "position_ids" and m.attn_implementation == "sdpa"
    assert m.replay_blocks == 0 and m.domain_blocks_per_pass > 0


def _kill_after_save(step: int) -> Any:
    """A callback that raises right after the checkpoint at `step` is written, like a SIGKILL there would."""
    from transformers import TrainerCallback

    class KillAfterSave(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == step:
                raise KeyboardInterrupt(f"simulated kill at step {step}")

    return KillAfterSave()


def test_interrupted_cpt_resumes_from_checkpoint_and_matches_an_uninterrupted_run(
    tmp_path: Path,
    tiny_llama_dir: Path,
    german_texts: dict[str, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Streaming data with replay, a shuffle buffer smaller than the data and evaluation during training: the
    # resumed run must still see exactly the batches of the uninterrupted one.
    extra = {
        "max_steps": 6,
        "eval_steps": 3,
        "shuffle_buffer": 8,
        "replay": {"ratio": 0.3, "sources": ["corpus:general"]},
        "lr_scheduler": "wsd",
        "warmup_steps": 1,
        "keep_checkpoints": 1,
    }
    inputs_a, ctx_a = _setup(tmp_path / "a", tiny_llama_dir, german_texts, **extra)
    whole = stage.run(inputs_a, ctx_a).metrics

    inputs_b, ctx_b = _setup(tmp_path / "b", tiny_llama_dir, german_texts, **extra)

    def killing(trainer: Any, checkpoint_dir: Path) -> Any:
        trainer.add_callback(_kill_after_save(4))
        return trainer_module.train(trainer, checkpoint_dir)

    monkeypatch.setattr(stage, "train", killing)
    with pytest.raises(KeyboardInterrupt):
        stage.run(inputs_b, ctx_b)
    assert (ctx_b.stage_dir / "checkpoints" / "checkpoint-4" / "trainer_state.json").exists()
    assert not (ctx_b.stage_dir / "checkpoints" / "checkpoint-2").exists()  # keep_checkpoints: 1
    assert not (ctx_b.stage_dir / "model").exists()

    monkeypatch.setattr(stage, "train", trainer_module.train)
    with caplog.at_level(logging.INFO, logger="definemed"):
        resumed = stage.run(inputs_b, ctx_b).metrics
    assert "checkpoint-4" in caplog.text
    assert resumed.steps == 6
    assert resumed.final_train_loss == pytest.approx(whole.final_train_loss, abs=1e-5)
    assert resumed.heldout["medical"].loss_after == pytest.approx(whole.heldout["medical"].loss_after, abs=1e-5)
    assert resumed.replay_blocks == whole.replay_blocks > 0
    _assert_same_weights(ctx_a.stage_dir / "model", ctx_b.stage_dir / "model")
    log_a = (ctx_a.stage_dir / "metrics.jsonl").read_text().splitlines()
    log_b = (ctx_b.stage_dir / "metrics.jsonl").read_text().splitlines()
    flat_a = [x for r in log_a for x in _row_losses(r)]
    assert flat_a == pytest.approx([x for r in log_b for x in _row_losses(r)], abs=1e-5)


def _row_losses(line: str) -> list[float]:
    row = json.loads(line)
    return [row["step"], *(row.get(k, 0.0) for k in ("loss", "eval_medical_loss", "eval_general_loss"))]


def test_init_from_rewarms_a_trained_checkpoint(
    tmp_path: Path, tiny_llama_dir: Path, german_texts: dict[str, list[str]]
) -> None:
    inputs_a, ctx_a = _setup(tmp_path / "a", tiny_llama_dir, german_texts, max_steps=8)
    first = stage.run(inputs_a, ctx_a).metrics
    inputs_b, ctx_b = _setup(
        tmp_path / "b",
        tiny_llama_dir,
        german_texts,
        max_steps=4,
        warmup_steps=2,
        init_from=str(ctx_a.stage_dir / "model"),
        packing={"mode": "eos"},
    )
    second = stage.run(inputs_b, ctx_b).metrics
    # "before" of the re-warmed run is the trained model (same held-out docs; eos packing scores a few more
    # tokens, hence the tolerance), far below the base model's loss.
    assert second.heldout["medical"].loss_before == pytest.approx(first.heldout["medical"].loss_after, abs=0.15)
    assert second.packing_mode == "eos" and second.init_from.endswith("model")
    rows = [json.loads(x) for x in (ctx_b.stage_dir / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["learning_rate"] for r in rows if "learning_rate" in r]
    assert lrs[0] == 0.0 and max(lrs) == pytest.approx(3e-3)  # a fresh warm-up to the peak
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        inputs_c, ctx_c = _setup(tmp_path / "c", tiny_llama_dir, german_texts, max_steps=2, init_from=str(tmp_path))
        stage.run(inputs_c, ctx_c)


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
    assert "unknown parameter count for tiny-model" in text
    data["cpt"]["max_steps"] = -1
    text = describe_cpt_plan(DefinemedConfig.model_validate(data))
    assert "corpus size known after the corpus stage" in text


def test_plan_reads_corpus_tokens_and_prints_gpu_hours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The paper's setting: 2 epochs over 5.1B tokens on Qwen2.5-7B, 8 GPUs x 4 x 8 x 4096 = 1M tokens/step."""
    data = minimal_config_dict(tmp_path, model_id="Qwen/Qwen2.5-7B-Instruct")
    data["cpt"] = {"block_size": 4096, "per_device_batch_size": 4, "gradient_accumulation_steps": 8, "epochs": 2}
    cfg = DefinemedConfig.model_validate(data)
    corpus = cfg.run.run_dir / "corpus"
    corpus.mkdir(parents=True)
    (corpus / "manifest.json").write_text(json.dumps({"metrics": {"tokens_kept": 5_100_000_000}}))
    monkeypatch.setenv("WORLD_SIZE", "8")
    text = describe_cpt_plan(cfg)
    assert "2 epochs x 5,100,000,000 corpus tokens (corpus manifest tokens_kept" in text
    assert "= 9,727 steps" in text
    # 6 x 7.62e9 x 9727 x 1,048,576 tokens / (0.4 x 989e12) / 3600 = 327 GPU-hours
    assert "327.4 GPU-hours" in text and "MFU 0.4 of 989 TFLOP/s" in text and "40.9 h wall on 8 GPU(s)" in text
    (corpus / "manifest.json").write_text(json.dumps({"metrics": {"kept_words": 1000}}))
    assert "1,500 corpus tokens (estimate: kept_words x 1.5)" in describe_cpt_plan(cfg)


def test_model_params_from_a_local_config(tiny_llama_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    from definemed.train.estimate import model_params

    exact = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_llama_dir).parameters())
    norms = 2 * 2 * 32 + 32  # RMSNorm weights are left out of the estimate
    assert model_params(str(tiny_llama_dir)) == exact - norms
    assert model_params("Qwen/Qwen2.5-7B-Instruct") == pytest.approx(7.62e9)


def test_estimate_module_does_not_import_torch(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys, yaml\n"
        "from definemed.config import DefinemedConfig\n"
        "from definemed.train.estimate import describe_cpt_plan\n"
        "cfg = DefinemedConfig.model_validate(yaml.safe_load(sys.stdin.read()))\n"
        "print(describe_cpt_plan(cfg, 10**9)); print('torch' in sys.modules)"
    )
    data = minimal_config_dict(tmp_path, model_id="mistralai/Mistral-Small-24B-Instruct-2501")
    data["cpt"] = {"epochs": 2}
    out = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(data), capture_output=True, text=True, check=True
    )
    assert "GPU-hours" in out.stdout and out.stdout.strip().endswith("False")


def test_cpt_key_follows_local_replay_shards_and_leaves_plan_knobs_out(tmp_path: Path) -> None:
    from definemed.pipeline import stage_key

    shards = tmp_path / "replay" / "de"
    shards.mkdir(parents=True)
    (shards / "00000.jsonl").write_text('{"id": "a", "text": "Ein Satz."}\n', encoding="utf-8")
    data = minimal_config_dict(tmp_path)
    data["cpt"] = {"replay": {"ratio": 0.2, "sources": [str(tmp_path / "replay")]}}
    upstream = {"corpus": {"run_id": "c"}}
    before = stage_key(DefinemedConfig.model_validate(data), "cpt", upstream)
    assert stage_key(DefinemedConfig.model_validate({**data, "plan": {"mfu": 0.3}}), "cpt", upstream) == before
    (shards / "00001.jsonl").write_text('{"id": "b", "text": "Noch ein Satz."}\n', encoding="utf-8")
    assert stage_key(DefinemedConfig.model_validate(data), "cpt", upstream) != before
