"""Small builders shared by tests (import as `from tests.helpers import ...`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def minimal_config_dict(tmp_path: Path, model_id: str = "tiny-model") -> dict[str, Any]:
    """A valid config whose paths live under tmp_path; stages that need real data override their sections."""
    labels = tmp_path / "labels.jsonl"
    if not labels.exists():
        labels.write_text('{"id": "a", "medical": true}\n', encoding="utf-8")
    (tmp_path / "shards").mkdir(exist_ok=True)  # the runner checks that the input paths exist before any stage
    return {
        "run": {"name": "test", "run_dir": str(tmp_path / "run"), "seed": 0},
        "models": {"instruct": {"id": model_id}},
        "corpus": {
            "input": {"kind": "parquet", "paths": [str(tmp_path / "shards")]},
            "labels": {"kind": "file", "path": str(labels)},
        },
    }
