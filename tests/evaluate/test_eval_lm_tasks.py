"""The shipped lm-eval task YAML validate offline; drop-in folders, overrides and the chat-template flag reach
lm-eval (tiny model, local data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from definemed.evaluate.config import McqConfig
from definemed.evaluate.lm_tasks import asset_dir, build_task_manager, validate_task
from definemed.evaluate.resolve import ModelRef

SUBJECTS = [
    "anatomy",
    "clinical_knowledge",
    "college_biology",
    "college_medicine",
    "medical_genetics",
    "nutrition",
    "professional_medicine",
    "virology",
]
# One row per benchmark in the hub dataset's own columns (what the task YAML must render).
EXAMPLES = {
    "global_mmlu_de": {
        "subject": "anatomy",
        "question": " Wo liegt das Herz? ",
        "option_a": "links",
        "option_b": "rechts",
        "option_c": "oben",
        "option_d": "unten",
        "answer": "C",
    },
    "mmlux_de": {
        "id": "anatomy/1",
        "question": "Wo liegt das Herz?",
        "choices": ["links", "rechts", "oben", "unten"],
        "answer": 2,
    },
    "mmmlu_de": {
        "Question": "Wo liegt das Herz?",
        "A": "links",
        "B": "rechts",
        "C": "oben",
        "D": "unten",
        "Answer": "C",
        "Subject": "anatomy",
    },
    "medqa_de": {
        "id": "m1",
        "question": "Wo liegt das Herz?",
        "choices": ["links", "rechts", "oben", "unten"],
        "answer": 2,
    },
}


def _task_yamls() -> list[Path]:
    return sorted(p for p in asset_dir().glob("definemed_*.yaml") if not p.stem.endswith("_med"))


def test_every_shipped_task_renders_offline() -> None:
    paths = _task_yamls()
    assert len(paths) == 3 * len(SUBJECTS) + 1
    for path in paths:
        bench = next(b for b in EXAMPLES if b in path.stem)
        cfg = validate_task(path, EXAMPLES[bench])
        assert cfg["rendered"]["target"] == 2, path
        assert cfg["rendered"]["text"] == (
            "Frage: Wo liegt das Herz?\nA. links\nB. rechts\nC. oben\nD. unten\nAntwort:"
        ), path
        assert cfg["description"].startswith("Die folgenden Fragen")
        if bench != "medqa_de":
            assert cfg["metadata"]["subject"] in SUBJECTS and cfg["dataset_path"] in (
                "CohereForAI/Global-MMLU",
                "openGPT-X/mmlux",
                "openai/MMMLU",
            )
    mmlux = validate_task(asset_dir() / "definemed_mmlux_de_virology.yaml")
    assert mmlux["dataset_name"] == "virology_DE" and mmlux["fewshot_split"] == "dev"
    assert validate_task(asset_dir() / "definemed_mmmlu_de_anatomy.yaml")["dataset_name"] == "DE_DE"


def test_subject_filters_keep_one_subject() -> None:
    from datasets import Dataset

    rows = Dataset.from_list(
        [
            {"subject": "anatomy", "Subject": "virology_test.csv_DE-DE.csv"},
            {"subject": "nutrition", "Subject": "anatomy"},
        ]
    )
    gm = validate_task(asset_dir() / "definemed_global_mmlu_de_anatomy.yaml")["process_docs"](rows)
    mm = validate_task(asset_dir() / "definemed_mmmlu_de_virology.yaml")["process_docs"](rows)
    assert gm["subject"] == ["anatomy"] and mm["subject"] == ["anatomy"]


def test_task_manager_indexes_tasks_and_groups(tmp_path: Path) -> None:
    manager, names = build_task_manager(McqConfig(), tmp_path / "tasks")
    assert names == []
    groups = {f"definemed_{b}_med" for b in ("global_mmlu_de", "mmlux_de", "mmmlu_de")}
    assert groups <= set(manager.all_groups)
    assert {f"definemed_mmlux_de_{s}" for s in SUBJECTS} | {"definemed_medqa_de"} <= set(manager.all_subtasks)
    assert "_mcq_de_base" not in " ".join(manager.all_tasks)  # the base is not a task


def test_unknown_lm_eval_task_is_a_clear_error(tmp_path: Path) -> None:
    cfg = McqConfig(tasks=[{"kind": "lm_eval", "name": "definemed_nope"}])
    with pytest.raises(KeyError, match="definemed_nope.*include_defaults"):
        build_task_manager(cfg, tmp_path / "tasks")
    with pytest.raises(ValueError, match="group"):
        build_task_manager(
            McqConfig(tasks=[{"kind": "lm_eval", "name": "definemed_mmlux_de_med", "data_files": str(tmp_path)}]),
            tmp_path / "tasks",
        )


def _jsonl(path: Path, subject: str, n: int) -> Path:
    rows = [
        {
            "id": f"{subject}{i}",
            "subject": subject,
            "question": f"Frage {subject} {i}?",
            "choices": ["Herz", "Lunge", "Leber", "Niere"],
            "answer": i % 4,
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_dropin(folder: Path) -> Path:
    """A user's folder: two task YAML that include the shipped base, their data, and a group over both."""
    folder.mkdir()
    for subject in ("kardio", "pharma"):
        data = _jsonl(folder / f"{subject}.jsonl", subject, 4)
        (folder / f"my_{subject}.yaml").write_text(
            f"include: {asset_dir() / '_mcq_de_base.yaml'}\ntask: my_{subject}\ndataset_path: json\n"
            f"dataset_kwargs:\n  data_files:\n    test: {data}\ntest_split: test\n",
            encoding="utf-8",
        )
    (folder / "my_group.yaml").write_text(
        "group: my_group\ntask: [my_kardio, my_pharma]\naggregate_metric_list:\n"
        "  - metric: acc\n    weight_by_size: true\n",
        encoding="utf-8",
    )
    return folder


def test_dropin_group_override_and_chat_template_on_tiny_model(tmp_path: Path, tiny_llama_dir: Path) -> None:
    from definemed.artifacts import read_jsonl
    from definemed.evaluate.mcq import evaluate_mcq

    medqa = _jsonl(tmp_path / "medqa_de.jsonl", "medqa", 3)
    cfg = McqConfig(
        include_path=write_dropin(tmp_path / "dropin"),
        apply_chat_template=True,
        batch_size=8,
        tasks=[
            {"kind": "lm_eval", "name": "my_group"},
            {"kind": "lm_eval", "name": "definemed_medqa_de", "data_files": str(medqa), "num_fewshot": 1},
        ],
    )
    result = evaluate_mcq(ModelRef("tiny", str(tiny_llama_dir)), cfg, tmp_path / "mcq")

    group = result["tasks"]["my_group"]
    assert group["n"] == 8 and set(group["subtasks"]) == {"my_kardio", "my_pharma"}
    assert set(group["per_subject"]) == {"kardio", "pharma"}
    assert group["acc"] == pytest.approx(sum(v["acc"] * v["n"] for v in group["per_subject"].values()) / 8)
    medqa_m = result["tasks"]["definemed_medqa_de"]
    assert medqa_m["n"] == 3 and medqa_m["num_fewshot"] == 1 and set(medqa_m["per_subject"]) == {"medqa"}
    samples = read_jsonl(tmp_path / "mcq" / "tiny_samples.jsonl")
    assert len(samples) == 11
    # the chat template reached lm-eval: every prompt is a rendered ChatML conversation
    assert all(
        s["prompt"].startswith("<|im_start|>") and s["prompt"].endswith("<|im_start|>assistant\n") for s in samples
    )
    shots = [s["prompt"].count("Frage: Frage medqa") for s in samples if s["task"] == "definemed_medqa_de"]
    assert shots == [2, 2, 2]  # one few-shot example plus the question itself
