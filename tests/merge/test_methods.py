"""Every merge method through the stage on tiny models: numbers checked against references computed here."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from definemed.config import DefinemedConfig
from definemed.merge import stage
from definemed.merge.checks import MergeCompatibilityError
from definemed.merge.contract import bind
from definemed.merge.methods import factor_setting
from definemed.stage import StageContext, StageResult
from tests.helpers import minimal_config_dict
from tests.merge.test_merge import Q0, Q1, _reference_slerp, _weights

K0 = "model.layers.0.self_attn.k_proj.weight"
UP0 = "model.layers.0.mlp.up_proj.weight"
UP1 = "model.layers.1.mlp.up_proj.weight"


def _perturbed(src: Path, out: Path, seed: int) -> Path:
    """A copy of `src` with every weight moved by noise (stands in for a pre-instruct base model)."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, out)
    gen = torch.Generator().manual_seed(seed)
    for f in out.glob("*.safetensors"):
        tensors = {k: v + 0.05 * torch.randn(v.shape, generator=gen) for k, v in load_file(f).items()}
        save_file(tensors, str(f), metadata={"format": "pt"})
    return out


def _run(tmp_path: Path, models: dict[str, Path], cpt: Path, merge: dict[str, Any]) -> tuple[StageResult, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = minimal_config_dict(tmp_path, model_id=str(models["instruct"]))
    data["models"] = {name: {"id": str(path)} for name, path in models.items()}
    data["merge"] = merge
    cfg = DefinemedConfig.model_validate(data)
    shutil.copytree(cpt, cfg.run.run_dir / "cpt" / "model")
    ctx = StageContext(
        run_dir=cfg.run.run_dir,
        stage="merge",
        upstream={"cpt": {"outputs": {"model": "model"}, "run_id": "x", "key": "y"}},
    )
    return stage.run(bind(cfg), ctx), ctx.stage_dir / "model"


def _loadable(folder: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    ids = model.generate(**tok("Die Lunge", return_tensors="pt"), max_new_tokens=2, do_sample=False)
    assert ids.shape[1] > 2 and tok.chat_template


def test_linear_with_weights_one_zero_reproduces_the_first_model(
    tmp_path: Path, tiny_llama_dir: Path, tiny_llama_other_dir: Path
) -> None:
    merge = {"kind": "linear", "models": [{"model": "instruct", "weight": 1.0}, {"model": "cpt", "weight": 0.0}]}
    result, out = _run(tmp_path, {"instruct": tiny_llama_dir}, tiny_llama_other_dir, merge)
    base, merged = _weights(tiny_llama_dir), _weights(out)
    assert merged.keys() == base.keys()
    assert max(float((merged[k] - base[k]).abs().max()) for k in base) < 1e-6
    assert result.metrics.method == "linear" and result.metrics.t is None
    assert result.metrics.parameters["models"][1] == {"model": "cpt", "weight": 0.0}
    _loadable(out)
    card = (out / "README.md").read_text()
    assert "LINEAR merge" in card and "weight: 0.0" in card and str(tiny_llama_dir) in card


def test_task_arithmetic_chat_vector_adds_instruct_minus_base_to_cpt(
    tmp_path: Path, tiny_llama_dir: Path, tiny_llama_other_dir: Path
) -> None:
    import torch

    pre = _perturbed(tiny_llama_dir, tmp_path / "pre-instruct", seed=5)
    merge = {
        "kind": "task_arithmetic",
        "base_model": "pretrained",
        "models": [{"model": "cpt", "weight": 1.0}, {"model": "instruct", "weight": 1.0}],
    }
    result, out = _run(tmp_path / "run", {"instruct": tiny_llama_dir, "pretrained": pre}, tiny_llama_other_dir, merge)
    cpt, inst, base, merged = (_weights(p) for p in (tiny_llama_other_dir, tiny_llama_dir, pre, out))
    for name in (Q0, UP1, "model.embed_tokens.weight"):
        torch.testing.assert_close(merged[name], cpt[name] + (inst[name] - base[name]), atol=1e-5, rtol=1e-5)
    assert result.metrics.inputs.keys() == {"instruct", "pretrained", "cpt"}
    _loadable(out)
    assert "mergekit base model" in (out / "README.md").read_text()


@pytest.mark.parametrize("kind", ["ties", "dare_ties"])
def test_ties_and_dare_ties_run_and_differ_from_linear(
    tmp_path: Path, tiny_llama_dir: Path, tiny_llama_other_dir: Path, kind: str
) -> None:
    import torch

    pre = _perturbed(tiny_llama_dir, tmp_path / "pre-instruct", seed=5)
    models = {"instruct": tiny_llama_dir, "pretrained": pre}
    merge = (
        {"kind": kind, "base_model": "pretrained", "density": 0.3, "seed": 1}
        if kind == "dare_ties"
        else {"kind": kind, "base_model": "pretrained", "density": 0.3}
    )
    result, out = _run(tmp_path / kind, models, tiny_llama_other_dir, merge)
    _, lin = _run(tmp_path / "linear", models, tiny_llama_other_dir, {"kind": "linear"})
    merged, linear, base = _weights(out), _weights(lin), _weights(pre)
    assert float((merged[Q0] - linear[Q0]).abs().max()) > 1e-3
    delta = merged[Q0] - base[Q0]
    # Sparsified: a large share of entries keeps exactly the base value (both task vectors dropped there).
    assert float((delta == 0).float().mean()) > 0.2 and torch.isfinite(merged[Q0]).all()
    assert result.metrics.parameters["density"] == 0.3
    _loadable(out)
    if kind == "dare_ties":  # the seed makes the random drop reproducible
        _, again = _run(tmp_path / "again", models, tiny_llama_other_dir, merge)
        torch.testing.assert_close(_weights(again)[Q0], merged[Q0])


def test_per_module_curve_gives_attention_its_own_factor(
    tmp_path: Path, tiny_llama_dir: Path, tiny_llama_other_dir: Path
) -> None:
    import torch

    t = {"self_attn": [0.1, 0.9], "mlp": 0.7, "default": 0.4}
    assert factor_setting(t) == [
        {"filter": "self_attn", "value": [0.1, 0.9]},
        {"filter": "mlp", "value": 0.7},
        {"value": 0.4},
    ]
    result, out = _run(tmp_path, {"instruct": tiny_llama_dir}, tiny_llama_other_dir, {"kind": "slerp", "t": t})
    a, b, m = _weights(tiny_llama_dir), _weights(tiny_llama_other_dir), _weights(out)
    expected = {Q0: 0.1, K0: 0.1, Q1: 0.9, UP0: 0.7, UP1: 0.7, "model.layers.0.input_layernorm.weight": 0.4}
    for name, factor in expected.items():
        torch.testing.assert_close(m[name].double(), _reference_slerp(factor, a[name], b[name]), atol=1e-5, rtol=1e-4)
    assert result.metrics.t == 0.4 and result.metrics.parameters["t"] == t
    assert "| self_attn | 0.100, 0.900 |" in (out / "README.md").read_text()


def test_chat_template_mismatch_fails_before_writing(
    tmp_path: Path, tiny_llama_dir: Path, tiny_llama_other_dir: Path
) -> None:
    other = tmp_path / "other-template"
    shutil.copytree(tiny_llama_other_dir, other)
    template = other / "chat_template.jinja"
    template.write_text(template.read_text().replace("<|im_start|>", "[INST]"), encoding="utf-8")
    with pytest.raises(
        MergeCompatibilityError, match=r"chat template mismatch between .* differ from character 33 .*\[INST\]"
    ):
        _run(tmp_path / "m", {"instruct": tiny_llama_dir}, other, {"kind": "slerp", "t": 0.5})
    assert not (tmp_path / "m" / "run" / "merge").exists()
