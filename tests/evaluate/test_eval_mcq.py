"""lm-eval on a local German multiple-choice task with a tiny random model (offline)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from definemed.artifacts import read_json, read_jsonl
from definemed.evaluate.config import LocalMcqTaskConfig, McqConfig
from definemed.evaluate.lm_tasks import asset_dir, local_task_yaml, task_files
from definemed.evaluate.mcq import per_subject
from definemed.evaluate.resolve import ModelRef

SUBJECTS = ["anatomy", "virology", "nutrition"]


def write_questions(folder: Path, n: int = 10) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "id": f"q{i}",
            "subject": SUBJECTS[i % 3],
            "question": f"Welches Organ ist Nummer {i}?",
            "choices": ["Herz", "Lunge", "Leber", "Niere"],
            "answer": i % 4,
        }
        for i in range(n)
    ]
    # Two files in one folder: the task must read both.
    for part, chunk in enumerate((rows[: n // 2], rows[n // 2 :])):
        text = "".join(json.dumps(r) + "\n" for r in chunk)
        (folder / f"part{part}.jsonl").write_text(text, encoding="utf-8")
    return folder


def test_task_yaml_points_at_absolute_local_files(tmp_path: Path) -> None:
    data = write_questions(tmp_path / "data")
    text = local_task_yaml(LocalMcqTaskConfig(name="mini_de", path=data, num_fewshot=2))
    assert 'dataset_path: "json"' in text and "num_fewshot: 2" in text and 'task: "mini_de"' in text
    assert str(data / "part0.jsonl") in text and str(data / "part1.jsonl") in text
    assert f'include: "{asset_dir() / "_mcq_de_base.yaml"}"' in text  # the prompt format comes from the base


def test_missing_task_data_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        task_files(tmp_path / "nowhere")


def test_per_subject_counts() -> None:
    rows = [{"subject": "a", "acc": 1.0}, {"subject": "a", "acc": 0.0}, {"subject": None, "acc": 1.0}]
    assert per_subject(rows) == {"a": {"acc": 0.5, "n": 2}, "all": {"acc": 1.0, "n": 1}}


def test_lm_eval_local_task_on_tiny_model(tmp_path: Path, tiny_llama_dir: Path) -> None:
    from definemed.evaluate.mcq import evaluate_mcq

    data = write_questions(tmp_path / "data", n=10)
    cfg = McqConfig(tasks=[LocalMcqTaskConfig(name="mini_de", path=data)], batch_size=4)
    out = tmp_path / "mcq"
    result = evaluate_mcq(ModelRef("tiny", str(tiny_llama_dir)), cfg, out)

    task = result["tasks"]["mini_de"]
    samples = read_jsonl(out / "tiny_samples.jsonl")
    assert task["n"] == 10 and len(samples) == 10
    assert 0.0 <= task["acc"] <= 1.0
    assert task["acc"] == pytest.approx(sum(s["acc"] for s in samples) / 10)
    assert task["acc_stderr"] is not None and task["acc_norm"] is not None
    # acc is the argmax of the four letter log-likelihoods
    assert all(len(s["loglikelihoods"]) == 4 and s["acc"] == float(s["pred"] == s["target"]) for s in samples)
    assert sum(task["pred_letters"].values()) == 10 and set(task["pred_letters"]) <= set("ABCD")
    table = task["per_subject"]
    assert set(table) == set(SUBJECTS)
    assert sum(v["n"] for v in table.values()) == 10
    assert sum(v["acc"] * v["n"] for v in table.values()) == pytest.approx(task["acc"] * 10)
    assert all(
        s["prompt"].startswith("Die folgenden Fragen")
        and "\nFrage: Welches Organ" in s["prompt"]
        and s["prompt"].endswith("Antwort:")
        for s in samples
    )
    stored = read_json(out / "tiny.json")
    assert stored["tasks"]["mini_de"]["acc"] == task["acc"]
