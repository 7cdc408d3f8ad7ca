from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from definemed.config import DefinemedConfig
from definemed.merge import stage
from definemed.merge.checks import MergeCompatibilityError
from definemed.merge.config import SlerpMergeConfig
from definemed.merge.contract import bind
from definemed.merge.methods import layer_factors, module_factors, slerp_config
from definemed.stage import StageContext
from tests.helpers import minimal_config_dict

Q0 = "model.layers.0.self_attn.q_proj.weight"
Q1 = "model.layers.1.self_attn.q_proj.weight"
EMBED = "model.embed_tokens.weight"


def _merge(tmp_path: Path, base: Path, other: Path, t: float | list[float]) -> tuple[Any, StageContext]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = minimal_config_dict(tmp_path, model_id=str(base))
    data["merge"] = {"kind": "slerp", "base": "instruct", "t": t}
    cfg = DefinemedConfig.model_validate(data)
    run_dir = cfg.run.run_dir
    shutil.copytree(other, run_dir / "cpt" / "model")
    ctx = StageContext(
        run_dir=run_dir, stage="merge", upstream={"cpt": {"outputs": {"model": "model"}, "run_id": "x", "key": "y"}}
    )
    return stage.run(bind(cfg), ctx), ctx


def _weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    out: dict[str, Any] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def _reference_slerp(t: float, a: Any, b: Any) -> Any:
    """Textbook SLERP of two whole tensors (as flat vectors), falling back to LERP when nearly collinear."""
    import torch

    x, y = a.double().flatten(), b.double().flatten()
    dot = float(torch.dot(x / x.norm(), y / y.norm()).clamp(-1, 1))
    if abs(dot) > 0.9995:
        return ((1 - t) * x + t * y).reshape(a.shape)
    theta = math.acos(dot)
    return ((math.sin((1 - t) * theta) * x + math.sin(t * theta) * y) / math.sin(theta)).reshape(a.shape)


def test_t0_reproduces_base_and_t1_reproduces_other(
    tmp_path: Path, tiny_llama_dir: Path, tiny_llama_other_dir: Path
) -> None:
    base, other = _weights(tiny_llama_dir), _weights(tiny_llama_other_dir)
    for t, expected in ((0.0, base), (1.0, other)):
        result, ctx = _merge(tmp_path / f"t{t}", tiny_llama_dir, tiny_llama_other_dir, t)
        merged = _weights(ctx.stage_dir / "model")
        assert merged.keys() == expected.keys()
        assert max(float((merged[k].float() - expected[k].float()).abs().max()) for k in merged) < 1e-5
        assert result.metrics.method == "slerp" and result.metrics.t == t and result.metrics.sweep is None
        assert result.metrics.base == str(tiny_llama_dir) and result.metrics.inputs["instruct"] == str(
            tiny_llama_dir.resolve()
        )


def test_half_way_slerp_matches_a_reference_and_the_model_generates(
    tmp_path: Path, tiny_llama_dir: Path, tiny_llama_other_dir: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result, ctx = _merge(tmp_path, tiny_llama_dir, tiny_llama_other_dir, 0.5)
    out = ctx.stage_dir / "model"
    a, b, m = _weights(tiny_llama_dir)[Q0], _weights(tiny_llama_other_dir)[Q0], _weights(out)[Q0]
    torch.testing.assert_close(m.double(), _reference_slerp(0.5, a, b), atol=1e-5, rtol=1e-4)
    gap = float((a - b).norm())
    assert 0 < float((m - a).norm()) < gap and 0 < float((m - b).norm()) < gap
    # SLERP keeps the norm up where LERP shrinks it between nearly orthogonal random tensors.
    assert float(m.norm()) > float((0.5 * (a + b)).norm())

    assert (out / "merge_config.yaml").exists() and "slerp" in (out / "README.md").read_text()
    assert str(tiny_llama_dir) in (out / "README.md").read_text()
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.get_vocab() == AutoTokenizer.from_pretrained(tiny_llama_dir).get_vocab()
    ids = model.generate(**tok("Die Lunge", return_tensors="pt"), max_new_tokens=3, do_sample=False)
    assert ids.shape[1] > 2 and result.metrics.seconds > 0


def test_gradient_t_spreads_anchors_over_layers(
    tmp_path: Path, tiny_llama_dir: Path, tiny_llama_other_dir: Path
) -> None:
    import torch

    assert layer_factors([0.2, 0.8], 2) == [0.2, 0.8]
    assert layer_factors([0.0, 1.0, 0.0], 5) == [0.0, 0.5, 1.0, 0.5, 0.0]
    assert layer_factors(0.3, 3) == [0.3, 0.3, 0.3] and layer_factors([0.1, 0.9], 1) == [0.9]  # one layer: t=1
    assert module_factors({"mlp": [0.0, 1.0], "default": 0.25}, 3) == {
        "mlp": [0.0, 0.5, 1.0],
        "default": [0.25, 0.25, 0.25],
    }
    _, ctx = _merge(tmp_path, tiny_llama_dir, tiny_llama_other_dir, [0.2, 0.8])
    base, other, merged = _weights(tiny_llama_dir), _weights(tiny_llama_other_dir), _weights(ctx.stage_dir / "model")
    for name, t in ((Q0, 0.2), (Q1, 0.8), (EMBED, 0.2)):
        torch.testing.assert_close(
            merged[name].double(), _reference_slerp(t, base[name], other[name]), atol=1e-5, rtol=1e-4
        )


def test_slerp_config_uses_absolute_paths_and_the_base_as_t0(tmp_path: Path) -> None:
    cfg = slerp_config(SlerpMergeConfig(t=[0.1, 0.9]), {"instruct": Path("rel/base"), "cpt": tmp_path / "cpt"})
    assert Path(cfg["base_model"]).is_absolute() and cfg["models"][0]["model"] == cfg["base_model"]
    assert cfg["models"][1]["model"] == str((tmp_path / "cpt").resolve()) and cfg["parameters"]["t"] == [0.1, 0.9]


def _assert_nothing_written(ctx_dir: Path) -> None:
    assert not (ctx_dir / "model").exists() and not (ctx_dir / "model.tmp").exists()


def test_different_architectures_fail_before_writing(
    tmp_path: Path, tiny_llama_dir: Path, tiny_qwen2_dir: Path
) -> None:
    with pytest.raises(MergeCompatibilityError, match=r"architecture mismatch: model_type is 'llama'.*'qwen2'"):
        _merge(tmp_path, tiny_llama_dir, tiny_qwen2_dir, 0.5)
    _assert_nothing_written(tmp_path / "run" / "merge")


def _variant(src: Path, out: Path, vocab_extra: int = 0, layers: int = 2, add_token: str | None = None) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig.from_pretrained(src)
    config.vocab_size += vocab_extra
    config.num_hidden_layers = layers
    torch.manual_seed(3)
    LlamaForCausalLM(config).save_pretrained(out)
    tok = AutoTokenizer.from_pretrained(src)
    if add_token:
        tok.add_tokens([add_token])
    tok.save_pretrained(out)
    return out


def test_vocabulary_size_mismatch_names_the_vocabulary(tmp_path: Path, tiny_llama_dir: Path) -> None:
    other = _variant(tiny_llama_dir, tmp_path / "bigger-vocab", vocab_extra=8)
    with pytest.raises(MergeCompatibilityError, match="vocabulary size mismatch: vocab_size is"):
        _merge(tmp_path / "m", tiny_llama_dir, other, 0.5)
    _assert_nothing_written(tmp_path / "m" / "run" / "merge")


def test_tokenizer_and_tensor_mismatches_are_named(tmp_path: Path, tiny_llama_dir: Path) -> None:
    other = _variant(tiny_llama_dir, tmp_path / "extra-token", add_token="<neu>")
    with pytest.raises(MergeCompatibilityError, match=r"tokenizer vocabulary mismatch.*'<neu>'"):
        _merge(tmp_path / "a", tiny_llama_dir, other, 0.5)
    deeper = _variant(tiny_llama_dir, tmp_path / "three-layers", layers=3)
    with pytest.raises(MergeCompatibilityError, match=r"tensor names differ; only in .*model\.layers\.2\."):
        _merge(tmp_path / "b", tiny_llama_dir, deeper, 0.5)
