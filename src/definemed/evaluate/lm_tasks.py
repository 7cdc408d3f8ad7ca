"""Multiple-choice benchmarks as lm-eval task YAML: the shipped German medical tasks, drop-in folders, local JSONL.

Where tasks come from, in the order lm-eval's TaskManager indexes them (a later folder overrides a name):
  1. `definemed/assets/lm_eval/`: one shared base (`_mcq_de_base.yaml`: German prompt, four letters,
     log-likelihood scoring), one template per hub dataset (`_<bench>_yaml`), one task per medical subject and one
     group per benchmark (`definemed_<bench>_med`), and the German MedQA export task;
  2. `evaluate.mcq.include_path`: the user's own YAML + data files, dropped into a folder;
  3. `<stage>/mcq/tasks/`: written here per run: every `kind: local` task (a small YAML that `include`s the base
     and points at absolute JSONL paths), and overrides of `kind: lm_eval` tasks that set `num_fewshot` or
     `data_files` (again by `include` of the original file).
`validate_task` checks a task offline (fields, includes, subject filters, prompt rendering) without a download.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from definemed.artifacts import write_text
from definemed.evaluate.config import LmEvalMcqTaskConfig, LocalMcqTaskConfig, McqConfig
from definemed.runfolder import safe_join

BASE_YAML = "_mcq_de_base.yaml"
REQUIRED_FIELDS = ("task", "dataset_path", "test_split", "output_type", "doc_to_text", "doc_to_choice", "doc_to_target")


def asset_dir() -> Path:
    """The folder of shipped task YAML (a real folder: the package is installed unzipped)."""
    return Path(str(resources.files("definemed").joinpath("assets", "lm_eval")))


def task_files(path: Path) -> list[Path]:
    """The JSONL files of a task: the file itself, or every `*.jsonl` in a folder (sorted, absolute)."""
    path = Path(path).expanduser().resolve()
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise FileNotFoundError(
            f"multiple-choice task data not found: {path} (expected a .jsonl file or a folder of them)"
        )
    return files


def _dump(cfg: dict[str, Any]) -> str:
    # JSON is valid YAML and keeps absolute paths and German text exactly as they are.
    return "\n".join(f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in cfg.items()) + "\n"


def local_task_yaml(task: LocalMcqTaskConfig) -> str:
    """A task YAML for local JSONL rows {id, subject, question, choices, answer}, built on the shared base."""
    return _dump(
        {
            "include": str(asset_dir() / BASE_YAML),
            "task": task.name,
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": [str(f) for f in task_files(task.path)]}},
            "test_split": "test",
            # Few-shot examples come from the same files; lm-eval's sampler leaves out the question being asked.
            "fewshot_split": "test",
            "num_fewshot": task.num_fewshot,
        }
    )


def _leaves(name: str, index: dict[str, Any]) -> list[str]:
    """The leaf tasks of a task, group or tag name (a task is its own leaf)."""
    entry = index.get(name)
    if entry is None:
        return []
    kind = entry.kind.name
    if kind == "TAG":
        return sorted(entry.tags)
    if kind == "GROUP":
        members = (entry.cfg or {}).get("task") or []
        return [leaf for m in members if isinstance(m, str) for leaf in _leaves(m, index)]
    return [name]


def override_yamls(task: LmEvalMcqTaskConfig, index: dict[str, Any]) -> dict[str, str]:
    """{leaf task: YAML text} that re-declares each leaf with the task config's num_fewshot / data_files."""
    if task.num_fewshot is None and task.data_files is None:
        return {}
    leaves = _leaves(task.name, index)
    if task.data_files is not None and leaves != [task.name]:
        raise ValueError(
            f"evaluate.mcq.tasks: data_files replaces the data of one task; '{task.name}' is a group of {len(leaves)}"
        )
    out = {}
    for leaf in leaves:
        cfg: dict[str, Any] = {"include": str(index[leaf].yaml_path), "task": leaf}
        if task.num_fewshot is not None:
            cfg["num_fewshot"] = task.num_fewshot
        if task.data_files is not None:
            files = [str(f) for f in task_files(task.data_files)]
            cfg |= {
                "dataset_path": "json",
                "dataset_name": None,
                "dataset_kwargs": {"data_files": {"test": files}},
                "test_split": "test",
                "fewshot_split": "test",
                "process_docs": None,
            }
        out[leaf] = _dump(cfg)
    return out


def build_task_manager(cfg: McqConfig, task_dir: Path) -> tuple[Any, list[str]]:
    """Write the run's task YAML into `task_dir`; return lm-eval's TaskManager and the configured task names."""
    from lm_eval.tasks import TaskManager

    task_dir.mkdir(parents=True, exist_ok=True)
    roots = [asset_dir()] + ([Path(cfg.include_path).expanduser().resolve()] if cfg.include_path else [])
    if cfg.include_path and not roots[-1].is_dir():
        raise FileNotFoundError(f"evaluate.mcq.include_path: no folder at {roots[-1]}")
    # include_defaults=False unless asked: indexing lm-eval's thousands of built-in tasks takes seconds.
    index = TaskManager(include_path=[str(r) for r in roots], include_defaults=cfg.include_defaults).task_index
    for task in cfg.tasks:
        if isinstance(task, LocalMcqTaskConfig):
            write_text(safe_join(task_dir, task.name, ".yaml"), local_task_yaml(task))
            continue
        if task.name not in index:
            hint = "" if cfg.include_defaults else " (lm-eval's own tasks need evaluate.mcq.include_defaults)"
            raise KeyError(f"evaluate.mcq.tasks: lm-eval knows no task or group '{task.name}'{hint}")
        for leaf, text in override_yamls(task, index).items():
            write_text(task_dir / f"{leaf}.yaml", text)
    manager = TaskManager(include_path=[str(r) for r in [*roots, task_dir]], include_defaults=cfg.include_defaults)
    return manager, [t.name for t in cfg.tasks]


def validate_task(path: Path, example: dict[str, Any] | None = None) -> dict[str, Any]:
    """Offline check of one task YAML: includes resolve, required fields are there, a multiple-choice task with
    four letters, `process_docs` is importable, and (given an `example` row in the dataset's columns) the prompt
    renders and the target is a valid index. Returns the resolved config. Downloads nothing."""
    from lm_eval.tasks._yaml_loader import load_yaml
    from lm_eval.utils import apply_template

    cfg = load_yaml(Path(path), resolve_func=True)
    missing = [k for k in REQUIRED_FIELDS if cfg.get(k) in (None, "")]
    if missing:
        raise ValueError(f"{path}: task lacks {missing}")
    if cfg["output_type"] != "multiple_choice" or cfg["doc_to_choice"] != ["A", "B", "C", "D"]:
        raise ValueError(f"{path}: expected a 4-letter multiple_choice task")
    if "process_docs" in cfg and not callable(cfg["process_docs"]):
        raise ValueError(f"{path}: process_docs is not a function")
    if example is not None:
        text = apply_template(cfg["doc_to_text"], example)
        target = cfg["doc_to_target"]
        index = int(apply_template(target, example)) if "{{" in target else example[target]
        if not text.startswith("Frage:") or not text.endswith("Antwort:") or index not in range(4):
            raise ValueError(f"{path}: example renders as {text!r} with target {index!r}")
        cfg["rendered"] = {"text": text, "target": index}
    return cfg
