"""The stage contract (ADR 0007): the root config composes the stages' sections, names and order come from the
Stage list, a stage's key is the hash of its bound inputs, and error paths walk union tags."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from definemed.cli import build_parser
from definemed.config import COMMON_SECTIONS, DefinemedConfig, key_path, load_config
from definemed.pipeline import stage_key
from definemed.stage import Inputs
from definemed.stages import NAMES, STAGES, get_stage, upstream_closure
from definemed.yamlio import ConfigError
from tests.helpers import minimal_config_dict

UPSTREAM = {name: {"run_id": f"run-{name}", "key": f"key-{name}"} for name in NAMES}


def _cfg(data: dict) -> DefinemedConfig:
    return DefinemedConfig.model_validate(data)


def _keys(data: dict) -> dict[str, str]:
    cfg = _cfg(data)
    return {name: stage_key(cfg, name, UPSTREAM) for name in NAMES}


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_root_sections_are_the_stage_sections() -> None:
    assert set(DefinemedConfig.model_fields) == set(COMMON_SECTIONS) | {s.section for s in STAGES}
    for stage in STAGES:
        field = DefinemedConfig.model_fields[stage.section]
        annotation = typing.Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation
        assert annotation == stage.config, stage.name


def test_stage_order_and_dependencies_come_from_the_stage_list() -> None:
    assert NAMES == ("corpus", "cpt", "merge", "evaluate", "analyze", "report")
    for i, stage in enumerate(STAGES):
        assert all(NAMES.index(dep) < i for dep in stage.upstream)
    assert upstream_closure("report") == {"corpus", "cpt", "merge", "evaluate", "analyze"}
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices  # argparse has no public API
    listing = " ".join(parser.format_help().split())
    for stage in STAGES:
        assert stage.name in commands
        assert " ".join(f"run only the {stage.name} stage: {stage.help}".split())[:40] in listing


def test_bound_inputs_are_frozen(tmp_path: Path) -> None:
    cfg = _cfg(minimal_config_dict(tmp_path))
    for stage in STAGES:
        inputs = stage.bind(cfg)
        assert isinstance(inputs, Inputs)
        first = next(iter(type(inputs).model_fields))
        with pytest.raises(ValidationError):
            setattr(inputs, first, None)


def test_a_setting_changes_exactly_the_keys_of_the_stages_that_read_it(tmp_path: Path) -> None:
    data = minimal_config_dict(tmp_path)
    base = _keys(data)

    def changed(**sections: dict) -> set[str]:
        variant = {**data, **{k: {**data.get(k, {}), **v} for k, v in sections.items()}}
        keys = _keys(variant)
        return {name for name in NAMES if keys[name] != base[name]}

    assert changed(report={"title": "another title"}) == {"report"}
    assert changed(analyze={"lid_threshold": 0.5}) == {"analyze"}
    assert changed(evaluate={"bootstrap_rounds": 200}) == {"evaluate"}
    assert changed(cpt={"learning_rate": 1e-4}) == {"cpt"}
    # Plan-only knobs rerun nothing.
    assert changed(plan={"mfu": 0.5, "gpu_peak_tflops": 500.0}) == set()
    # The CPT model's tokenizer counts the corpus's tokens: a new model id reruns corpus too, not only cpt.
    assert changed(models={"instruct": {"id": "another/model"}}) == {"corpus", "cpt", "merge", "evaluate"}


def test_benchmark_files_are_in_the_corpus_key_only_when_it_decontaminates(tmp_path: Path) -> None:
    data = minimal_config_dict(tmp_path)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"id": "p1", "prompt": "Was ist Fieber?"}\n', encoding="utf-8")
    data["evaluate"] = {"prompts": str(prompts)}
    before = _keys(data)
    prompts.write_text('{"id": "p1", "prompt": "Was ist Husten?"}\n', encoding="utf-8")
    after = _keys(data)
    assert before["corpus"] == after["corpus"] and before["evaluate"] != after["evaluate"]
    data["corpus"]["decontamination"] = {"enabled": True}
    before = _keys(data)
    prompts.write_text('{"id": "p1", "prompt": "Was ist Schnupfen?"}\n', encoding="utf-8")
    assert _keys(data)["corpus"] != before["corpus"]


def test_plan_knobs_under_cpt_say_where_they_moved(tmp_path: Path) -> None:
    data = minimal_config_dict(tmp_path)
    data["cpt"] = {"mfu": 0.5}
    with pytest.raises(ConfigError, match=r"cpt\.mfu moved to the `plan:` section \(plan\.mfu\)"):
        load_config(_write(tmp_path, data))


def test_error_paths_drop_union_tags_but_keep_keys_named_like_tags(tmp_path: Path) -> None:
    # Tags are found by walking the schema: a model *named* like a tag ('local', 'openai') stays in the path.
    assert key_path(("models", "local", "id")) == ("models", "local", "id")
    assert key_path(("evaluate", "judge", "openai", "model")) == ("evaluate", "judge", "model")
    assert key_path(("corpus", "executor", "slurm", "partition")) == ("corpus", "executor", "partition")
    assert key_path(("merge", "ties", "models", 0, "density")) == ("merge", "models", "0", "density")
    assert key_path(("corpus", "labelling", "labellers", 1, "openai", "model")) == (
        "corpus",
        "labelling",
        "labellers",
        "1",
        "model",
    )
    data = minimal_config_dict(tmp_path)
    data["models"]["openai"] = {"id": "x", "dtype": "float8"}
    data["evaluate"] = {"judge": {"kind": "openai", "temperature": -1, "model": "judge"}}
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, data))
    text = str(err.value)
    assert "models.openai.dtype (line" in text and "evaluate.judge.temperature (line" in text


def test_unknown_kind_names_the_registered_ones(tmp_path: Path) -> None:
    data = minimal_config_dict(tmp_path)
    data["evaluate"] = {"judge": {"kind": "dummy"}}
    data["corpus"]["classifier"] = {"kind": "mine"}
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, data))
    text = str(err.value)
    assert "evaluate.judge" in text and "'dummy'" in text and "reference" in text
    assert "corpus.classifier.kind" in text and "'mine' is not a registered classifier" in text


def test_get_stage_names_the_known_stages() -> None:
    assert get_stage("merge").upstream == ("corpus", "cpt")
    with pytest.raises(KeyError, match="stages are"):
        get_stage("training")


def test_stage_code_never_sees_the_root_config() -> None:
    # Only `contract.py` (bind, check, paths) and the plan-time estimate may name the root config; a stage's run
    # and everything it calls get the bound inputs, so whatever they read is in the stage's key.
    root = Path(__file__).resolve().parents[1] / "src" / "definemed"
    allowed = {"contract.py", "estimate.py"}
    offenders = [
        str(path.relative_to(root))
        for package in ("corpus", "train", "merge", "evaluate", "analyze", "report")
        for path in (root / package).rglob("*.py")
        if path.name not in allowed and "DefinemedConfig" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []
