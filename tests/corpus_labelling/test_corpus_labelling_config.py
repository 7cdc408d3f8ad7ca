"""`corpus.labelling` and `corpus.classifier.compare` in the config: one label source, named candidates, lists."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from definemed.config import DefinemedConfig
from definemed.corpus.classifier_config import ClassifierConfig
from definemed.corpus.labelling.settings import LabellingSettings
from tests.helpers import minimal_config_dict


def _config(tmp_path: Path, **corpus: object) -> DefinemedConfig:
    data = minimal_config_dict(tmp_path)
    data["corpus"] = {k: v for k, v in {**data["corpus"], **corpus}.items() if v is not None}
    return DefinemedConfig.model_validate(data)


def test_exactly_one_label_source(tmp_path: Path) -> None:
    labelling = {"labeller": {"kind": "file", "path": str(tmp_path / "llm.jsonl")}}
    cfg = _config(tmp_path, labels=None, labelling=labelling)
    assert cfg.corpus.labels is None and cfg.corpus.labelling.candidates[0].label == "file:llm.jsonl"
    with pytest.raises(ValidationError, match=r"corpus\.labelling: set either corpus\.labels .* not both"):
        _config(tmp_path, labelling=labelling)
    with pytest.raises(ValidationError, match=r"corpus\.labels: the classifier needs labels"):
        _config(tmp_path, labels=None)
    with pytest.raises(ValidationError, match=r"corpus\.labelling\.sample: id_key/text_key do not apply"):
        _config(tmp_path, labels=None, labelling={**labelling, "sample": {"n": 5, "text_key": "content"}})


def test_several_labellers_need_names_and_an_audit() -> None:
    two = [{"name": "a", "kind": "file", "path": "a.jsonl"}, {"name": "b", "kind": "hf", "model": "m"}]
    cfg = LabellingSettings.model_validate(
        {"labellers": two, "audit": {"gold": "g.jsonl", "max_docs": 40}, "select_by": "precision"}
    )
    assert [c.label for c in cfg.candidates] == ["a", "b"] and cfg.audit.max_docs == 40
    with pytest.raises(ValidationError, match="needs `audit`"):
        LabellingSettings.model_validate({"labellers": two})
    with pytest.raises(ValidationError, match=r"every candidate needs a `name` \(missing at \[1\]\)"):
        LabellingSettings.model_validate({"labellers": [two[0], {"kind": "hf", "model": "m"}], "audit": {"gold": "g"}})
    with pytest.raises(ValidationError, match="names must be unique"):
        LabellingSettings.model_validate({"labellers": [two[0], {**two[1], "name": "a"}], "audit": {"gold": "g"}})
    with pytest.raises(ValidationError, match="not both"):
        LabellingSettings.model_validate({"labeller": two[0], "labellers": two, "audit": {"gold": "g"}})
    with pytest.raises(ValidationError, match="not neither"):
        LabellingSettings.model_validate({})
    with pytest.raises(ValidationError, match="select_by"):
        LabellingSettings.model_validate({"labeller": two[0], "select_by": "auc"})


def test_compare_lists_are_checked() -> None:
    cfg = ClassifierConfig(
        kind="fasttext",
        compare=["embedding", "cascade"],
        embedding={"max_chars": 400},
        not_compared={"finetune": "too slow"},
    )
    assert cfg.embedding.max_chars == 400
    with pytest.raises(ValidationError, match="each family at most once"):
        ClassifierConfig(compare=["fasttext", "fasttext"])
    with pytest.raises(ValidationError, match=r"not_compared: \['fasttext'\] also run"):
        ClassifierConfig(compare=["fasttext"], not_compared={"fasttext": "x"})
    with pytest.raises(ValidationError, match="compare lists"):
        ClassifierConfig(kind="fasttext", compare=["tfidf_logreg"], embedding={"max_chars": 400})
    with pytest.raises(ValidationError, match="'bert' is not a registered classifier; registered: cascade"):
        ClassifierConfig(compare=["bert"])
