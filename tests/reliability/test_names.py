"""Config names that become file names are safe identifiers, checked at load; one helper joins them under a
folder and refuses anything that resolves outside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from definemed.config import DefinemedConfig, load_config
from definemed.errors import DefinemedError
from definemed.yamlio import ConfigError
from tests.helpers import minimal_config_dict


@pytest.mark.parametrize("name", ["x/../../../../trav_out", "../up", ".hidden", "a" * 65, "a b", "", "con\x00"])
def test_unsafe_model_names_are_refused_at_load(tmp_path: Path, name: str) -> None:
    import yaml

    data = minimal_config_dict(tmp_path)
    data["models"][name] = {"id": "m"}
    data["evaluate"] = {"models": ["instruct"]}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="not a safe name"):
        load_config(path)


def test_unsafe_labeller_and_task_names_are_refused(tmp_path: Path) -> None:
    data = minimal_config_dict(tmp_path)
    data["corpus"] = {
        "input": data["corpus"]["input"],
        "labelling": {"labeller": {"kind": "file", "name": "../x", "path": "l.jsonl"}},
    }
    with pytest.raises(Exception, match="not a safe name"):
        DefinemedConfig.model_validate(data)
    data = minimal_config_dict(tmp_path)
    data["evaluate"] = {"mcq": {"tasks": [{"name": "a/../../b", "path": "t.jsonl"}]}}
    with pytest.raises(Exception, match="pattern"):
        DefinemedConfig.model_validate(data)


def test_safe_join_refuses_escapes(tmp_path: Path) -> None:
    from definemed.runfolder import safe_join

    assert safe_join(tmp_path, "instruct", ".jsonl") == tmp_path / "instruct.jsonl"
    for bad in ("../x", "a/b", "..", "", "x\\y"):
        with pytest.raises(DefinemedError):
            safe_join(tmp_path, bad, ".json")
    (tmp_path / "link").symlink_to(tmp_path.parent)
    with pytest.raises(DefinemedError, match="outside"):
        safe_join(tmp_path, "link")
