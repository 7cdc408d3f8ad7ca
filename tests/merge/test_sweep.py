"""Merge sweep on tiny models: two candidates, every proxy scored, the objective's argmax kept as `model/`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from definemed.artifacts import read_json, write_jsonl
from definemed.config import DefinemedConfig
from definemed.merge import stage
from definemed.merge.contract import bind
from definemed.merge.metrics import SweepMetrics, SweepRow
from definemed.merge.proxies import PROXY_FIELDS
from definemed.merge.sweep import objective_value
from definemed.stage import StageContext
from tests.conftest import GERMAN_GENERAL, GERMAN_MEDICAL
from tests.helpers import minimal_config_dict
from tests.merge.test_merge import _weights

OBJECTIVE = {"mcq_acc": 1.0, "mixing_rate": -0.5, "medical_loss": -0.1, "general_loss": -0.05}


def _sweep_config(tmp_path: Path, instruct: Path) -> DefinemedConfig:
    questions = [
        {
            "id": f"q{i}",
            "subject": "anatomy",
            "question": f"Frage {i}: Wo liegt die Lunge?",
            "choices": ["Brust", "Bauch", "Kopf", "Bein"],
            "answer": i % 4,
        }
        for i in range(12)
    ]
    write_jsonl(tmp_path / "mcq.jsonl", questions)
    write_jsonl(
        tmp_path / "prompts.jsonl", [{"id": f"p{i}", "prompt": text} for i, text in enumerate(GERMAN_MEDICAL[:3])]
    )
    data = minimal_config_dict(tmp_path, model_id=str(instruct))
    data["cpt"] = {"block_size": 16, "heldout_fraction": 0.6}
    data["evaluate"] = {
        "mcq": {"tasks": [{"name": "tiny_mcq", "path": str(tmp_path / "mcq.jsonl")}]},
        "prompts": str(tmp_path / "prompts.jsonl"),
    }
    data["merge"] = {
        "kind": "slerp",
        "t": 0.5,
        "sweep": {
            "grid": [0.0, 1.0],
            "objective": {"maximize": OBJECTIVE},
            "proxy": {"mcq_task": "tiny_mcq", "mcq_limit": 6, "heldout_blocks": 2, "prompts": 2, "max_new_tokens": 4},
        },
    }
    return DefinemedConfig.model_validate(data)


def _upstream(run_dir: Path, cpt: Path) -> dict[str, dict[str, object]]:
    shutil.copytree(cpt, run_dir / "cpt" / "model")
    for split, texts in (("medical", GERMAN_MEDICAL), ("general", GERMAN_GENERAL)):
        docs = [{"id": f"{split}-{i}", "text": f"{t} {t}", "metadata": {}} for i, t in enumerate(texts)]
        write_jsonl(run_dir / "corpus" / split / "00000.jsonl", docs)
    corpus = {"outputs": {"medical": "medical", "general": "general"}, "run_id": "c", "key": "k"}
    return {"corpus": corpus, "cpt": {"outputs": {"model": "model"}, "run_id": "x", "key": "y"}}


def test_sweep_scores_every_candidate_and_keeps_the_argmax(
    tmp_path: Path, tiny_llama_dir: Path, tiny_llama_other_dir: Path
) -> None:
    cfg = _sweep_config(tmp_path, tiny_llama_dir)
    ctx = StageContext(
        run_dir=cfg.run.run_dir, stage="merge", upstream=_upstream(cfg.run.run_dir, tiny_llama_other_dir)
    )
    result = stage.run(bind(cfg), ctx)

    sweep = read_json(ctx.stage_dir / "sweep.json")
    assert result.outputs == {"model": "model", "sweep": "sweep.json"}
    assert [r["t"] for r in sweep["rows"]] == [0.0, 1.0]
    for row in sweep["rows"]:
        assert all(isinstance(row[f], float) for f in PROXY_FIELDS), row
        assert 0 <= row["mcq_acc"] <= 1 and 0 <= row["mixing_rate"] <= 1 and row["medical_loss"] > 0
        assert row["objective"] == pytest.approx(sum(w * row[n] for n, w in OBJECTIVE.items()), abs=1e-5)
    best = max(sweep["rows"], key=lambda r: r["objective"])
    assert sweep["chosen"]["candidate"] == best["candidate"] and result.metrics.t == best["t"]
    # What the evaluate stage reads: the sweep's mcq task and the dev question ids it left out of that task.
    assert result.metrics.sweep == SweepMetrics.model_validate(sweep)
    assert result.metrics.sweep.proxy.mcq_task == "tiny_mcq" and len(result.metrics.sweep.dev_ids) == 6
    # t = 0 is the instruct model and t = 1 the CPT checkpoint, so the kept weights say which one was chosen.
    expected = _weights(tiny_llama_dir if best["t"] == 0.0 else tiny_llama_other_dir)
    merged = _weights(ctx.stage_dir / "model")
    assert max(float((merged[k] - expected[k]).abs().max()) for k in expected) < 1e-5
    assert not (ctx.stage_dir / "candidates").exists()
    assert "## Merge sweep" in (ctx.stage_dir / "model" / "README.md").read_text()
    json.dumps(result.metrics.model_dump(mode="json"))  # the manifest must be able to hold it


def test_objective_is_a_named_weighted_sum_and_missing_scores_fail() -> None:
    value, terms = objective_value({"mcq_acc": 1.0, "mixing_rate": -0.5}, {"mcq_acc": 0.6, "mixing_rate": 0.2})
    assert value == pytest.approx(0.5) and terms == {"mcq_acc": 0.6, "mixing_rate": -0.1}
    with pytest.raises(ValueError, match="proxy 'general_loss' has no score"):
        objective_value({"general_loss": -1.0}, {"general_loss": None})


def test_sweep_config_rejects_unscored_terms_and_unknown_tasks(tmp_path: Path, tiny_llama_dir: Path) -> None:
    from pydantic import ValidationError

    cfg = _sweep_config(tmp_path, tiny_llama_dir)
    data = cfg.model_dump(mode="json")
    data["merge"]["sweep"]["proxy"]["prompts"] = 0
    with pytest.raises(ValidationError, match=r"objective.maximize uses \['mixing_rate'\]"):
        DefinemedConfig.model_validate(data)
    data["merge"]["sweep"]["proxy"].update(prompts=2, mcq_task="nope")
    with pytest.raises(ValidationError, match="mcq_task: 'nope' is not a local task"):
        DefinemedConfig.model_validate(data)


def test_every_proxy_is_a_field_of_the_sweep_row() -> None:
    scores = {f for f in SweepRow.model_fields if f not in {"candidate", "t", "objective", "terms", "seconds"}}
    assert scores == set(PROXY_FIELDS)


def test_merge_key_holds_only_the_settings_the_sweep_reads(tmp_path: Path, tiny_llama_dir: Path) -> None:
    """Settings of evaluate / analyze the sweep does not read leave the merge key alone (a sweep merges and scores
    several candidates); the ones it reads, and the files of its own task and prompts, change it."""
    from definemed.pipeline import stage_key

    cfg = _sweep_config(tmp_path, tiny_llama_dir)
    write_jsonl(tmp_path / "other.jsonl", [{"id": "o1", "question": "?", "choices": ["a", "b"], "answer": 0}])
    data = cfg.model_dump(mode="json")
    data["evaluate"]["mcq"]["tasks"].append({"name": "other", "path": str(tmp_path / "other.jsonl")})
    upstream = {"corpus": {"run_id": "c"}, "cpt": {"run_id": "x"}}

    def key(edit: dict[str, dict[str, object]] | None = None) -> str:
        changed = json.loads(json.dumps(data))
        for section, values in (edit or {}).items():
            target = changed
            *parents, last = section.split(".")
            for p in parents:
                target = target[p]
            target[last] = {**target[last], **values} if isinstance(target[last], dict) else values
        return stage_key(DefinemedConfig.model_validate(changed), "merge", upstream)

    base = key()
    assert key({"analyze": {"word_threshold": 2.0, "reference_model": "instruct"}}) == base
    assert key({"evaluate.generation": {"max_new_tokens": 12, "batch_size": 2}}) == base
    assert key({"evaluate.mcq": {"batch_size": 2}}) != base  # lm-eval runs the dev split with it
    assert key({"analyze": {"expected_language": "en"}}) != base
    assert key({"evaluate.generation": {"system_prompt": "Antworte auf Deutsch."}}) != base
    write_jsonl(tmp_path / "other.jsonl", [{"id": "o2", "question": "!", "choices": ["a", "b"], "answer": 1}])
    assert key() == base  # a task the sweep does not score
    write_jsonl(tmp_path / "mcq.jsonl", [{"id": "q0", "question": "?", "choices": ["a", "b"], "answer": 0}])
    assert key() != base
    assert stage_key(cfg, "merge", {**upstream, "cpt": {"run_id": "new"}}) != stage_key(cfg, "merge", upstream)
