"""Plugins: a module named in $DEFINEMED_PLUGINS adds kinds that `validate`, `ls` and `run` accept.

Every test runs the CLI in a subprocess, as a user would: importing a plugin registers its kinds and rebuilds the
config models for the rest of the process, which must not leak into other tests.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.corpus.conftest import _document, fineweb2_row, write_parquet
from tests.evaluate.test_eval_stage import PROMPTS
from tests.helpers import minimal_config_dict

REPO = Path(__file__).resolve().parents[2]
DEMO_PLUGIN = "tests.plugins.demo_plugin"
MERGE_PLUGIN = "tests.plugins.midpoint_merge"


def definemed(*args: str, cwd: Path, plugins: str | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    """`definemed ARGS` in a fresh process, with $DEFINEMED_PLUGINS set to `plugins` (unset for None)."""
    env = {k: v for k, v in os.environ.items() if k != "DEFINEMED_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])
    if plugins is not None:
        env["DEFINEMED_PLUGINS"] = plugins
    return subprocess.run(
        [sys.executable, "-m", "definemed.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def plugin_config(tmp_path: Path, judge: dict[str, Any] | None = None, keywords: dict[str, Any] | None = None) -> Path:
    """A config that uses the demo plugin's judge and classifier kinds."""
    data = minimal_config_dict(tmp_path)
    data["corpus"]["classifier"] = {"kind": "keywords", "keywords": {"C": 2.0} if keywords is None else keywords}
    data["evaluate"] = {"judge": {"kind": "length", "tie_margin": 0.2} if judge is None else judge}
    path = tmp_path / "plugin.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def error_lines(stderr: str) -> list[str]:
    """The per-field lines of an INVALID / error: message."""
    return [ln.strip() for ln in stderr.splitlines() if ln.startswith("  ")]


def listed(ls_output: str) -> dict[str, list[str]]:
    """`definemed ls` as {family: [names]}."""
    families: dict[str, list[str]] = {}
    current = None
    for line in ls_output.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = families.setdefault(line[:-1], [])
        elif current is not None and line.strip():
            current.append(line.split()[0])
    return families


# ----------------------------------------------------------------------------------------- validate / ls
def test_validate_and_ls_accept_the_plugin_kinds(tmp_path: Path) -> None:
    path = plugin_config(tmp_path)
    out = definemed("validate", str(path), cwd=tmp_path, plugins=DEMO_PLUGIN)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")

    out = definemed("ls", cwd=tmp_path, plugins=DEMO_PLUGIN)
    assert out.returncode == 0, out.stderr
    families = listed(out.stdout)
    assert "keywords" in families["classifier"] and "tfidf_logreg" in families["classifier"]
    assert "length" in families["judge"] and "reference" in families["judge"]
    assert "demo plugin" in out.stdout


def test_without_the_plugin_each_unknown_kind_is_one_error_naming_its_field(tmp_path: Path) -> None:
    path = plugin_config(tmp_path)
    out = definemed("validate", str(path), cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.startswith("INVALID") and "Traceback" not in out.stderr
    lines = error_lines(out.stderr)
    assert len(lines) == 2, out.stderr  # the classifier kind and the judge kind, nothing about the sections
    classifier, judge = lines
    assert classifier.startswith("corpus.classifier.kind") and "'keywords'" in classifier
    assert "not a registered classifier" in classifier and "tfidf_logreg" in classifier
    assert judge.startswith("evaluate.judge") and "unknown kind 'length'" in judge and "'reference'" in judge
    assert "DEFINEMED_PLUGINS" in judge

    listed_without = listed(definemed("ls", cwd=tmp_path).stdout)
    assert "keywords" not in listed_without["classifier"] and "length" not in listed_without["judge"]

    run = definemed("run", str(path), cwd=tmp_path)  # run loads the config the same way: one error, no work
    assert run.returncode == 2 and run.stderr.startswith("error:") and "'keywords'" in run.stderr
    assert not (tmp_path / "run").exists()


def test_errors_inside_the_plugin_sections_name_the_field(tmp_path: Path) -> None:
    path = plugin_config(tmp_path, judge={"kind": "length", "tie_margin": -1}, keywords={"C": 1.0, "stems": ["Herz"]})
    out = definemed("validate", str(path), cwd=tmp_path, plugins=DEMO_PLUGIN)
    assert out.returncode == 1
    lines = error_lines(out.stderr)
    assert len(lines) == 2, out.stderr
    classifier, judge = lines
    assert judge.startswith("evaluate.judge.tie_margin") and "greater than or equal to 0" in judge
    # A plugin classifier's section is checked by ClassifierConfig itself; each error keeps its own path and line.
    assert classifier.startswith("corpus.classifier.keywords.stems (line ") and "'Herz'" in classifier

    path = plugin_config(tmp_path, judge={"kind": "length", "tie_margn": 0.1})
    out = definemed("validate", str(path), cwd=tmp_path, plugins=DEMO_PLUGIN)
    (line,) = error_lines(out.stderr)
    assert line.startswith("evaluate.judge.tie_margn (line ") and line.endswith("unknown key (misspelled?)")


def test_a_merge_method_plugin_validates_and_is_listed(tmp_path: Path) -> None:
    data = minimal_config_dict(tmp_path)
    data["merge"] = {"kind": "midpoint", "share": 0.3}
    path = tmp_path / "merge.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert definemed("validate", str(path), cwd=tmp_path, plugins=MERGE_PLUGIN).returncode == 0
    assert "midpoint" in listed(definemed("ls", cwd=tmp_path, plugins=MERGE_PLUGIN).stdout)["merge_method"]

    out = definemed("validate", str(path), "--set", "merge.share=1.5", cwd=tmp_path, plugins=MERGE_PLUGIN)
    assert out.returncode == 1 and "merge.share (from the command line: 'merge.share=1.5')" in out.stderr
    out = definemed("validate", str(path), cwd=tmp_path)
    assert out.returncode == 1 and "'midpoint'" in out.stderr and "'slerp'" in out.stderr

    # The builder gets the merge config and the model folders and returns mergekit's config.
    code = (
        f"import {MERGE_PLUGIN}, json\nfrom definemed import registry\n"
        "cfg = registry.config_model('merge_method', 'midpoint')(share=0.25)\n"
        "print(json.dumps(registry.get('merge_method', 'midpoint')(cfg, {'instruct': '/m/i', 'cpt': '/m/c'})))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    merge_dict = json.loads(
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    )
    assert merge_dict["merge_method"] == "linear"
    assert [(m["model"], m["parameters"]["weight"]) for m in merge_dict["models"]] == [("/m/i", 0.75), ("/m/c", 0.25)]


def test_plugin_classifier_loads_in_a_fresh_worker_process(tmp_path: Path) -> None:
    """The classify step loads the saved classifier by kind in datatrove workers: with `executor.workers` > 1
    (forkserver), on Slurm or Ray those are fresh processes that inherit $DEFINEMED_PLUGINS but not the imports."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
        "DEFINEMED_PLUGINS": DEMO_PLUGIN,
    }
    model_dir = tmp_path / "keywords"
    train = (
        f"import {DEMO_PLUGIN} as p\n"
        "p.KeywordClassifier().fit(['Der Patient hat Fieber.', 'Der Zug hat Verspätung.'], [True, False])"
        f".save({str(model_dir)!r})"
    )
    subprocess.run([sys.executable, "-c", train], env=env, check=True, timeout=120)
    score = (
        "from definemed.corpus.filters import MedicalRelevanceFilter\n"
        f"f = MedicalRelevanceFilter('keywords', {str(model_dir)!r}, 0.5)\n"
        "print(float(f._classifier().predict_proba(['Die Ärztin misst Fieber.'])[0]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", score], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr.strip().splitlines()[-1]
    assert 0.5 < float(out.stdout) <= 1


# ----------------------------------------------------------------------------------------- the pipeline
def planned(path: Path, cwd: Path, *overrides: str) -> dict[str, str]:
    """{stage: action} of `definemed plan` with the demo plugin."""
    out = definemed("plan", str(path), *overrides, cwd=cwd, plugins=DEMO_PLUGIN)
    assert out.returncode == 0, out.stderr
    stages = ("corpus", "cpt", "merge", "evaluate", "analyze", "report")
    return {
        ln.split()[0]: ln.split()[1]
        for ln in out.stdout.splitlines()
        if ln.startswith("  ") and ln.split()[0] in stages
    }


def demo_inputs(root: Path, texts: dict[str, list[str]]) -> dict[str, Path]:
    """Two FineWeb2-schema shards of German medical and general documents (as the corpus tests build them), their
    labels, and the open prompts of the evaluate tests."""
    rows, labels = [], []
    for kind in ("medical", "general"):
        for i in range(14):
            doc_id = f"<urn:uuid:{kind}-{i:02d}>"
            rows.append(fineweb2_row(doc_id, _document(texts[kind], seed=i)))
            labels.append({"id": doc_id, "medical": kind == "medical"})
    random.Random(0).shuffle(rows)
    shards = root / "shards"
    write_parquet(rows[: len(rows) // 2], shards / "000_00000.parquet")
    write_parquet(rows[len(rows) // 2 :], shards / "001_00000.parquet")
    label_file = root / "labels.jsonl"
    label_file.write_text("".join(json.dumps(r) + "\n" for r in labels), encoding="utf-8")
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in PROMPTS), encoding="utf-8")
    return {"shards": shards, "labels": label_file, "prompts": prompts}


@pytest.mark.slow
def test_pipeline_runs_with_the_plugin_judge_and_classifier(
    tmp_path: Path, tiny_llama_dir: Path, german_texts: dict[str, list[str]]
) -> None:
    inputs = demo_inputs(tmp_path, german_texts)
    config = {
        "run": {"name": "plugins", "run_dir": str(tmp_path / "run"), "seed": 0},
        "models": {"instruct": {"id": str(tiny_llama_dir)}},
        "corpus": {
            "input": {"kind": "parquet", "paths": [str(inputs["shards"])]},
            "labels": {"kind": "file", "path": str(inputs["labels"])},
            "quality": {"fineweb_quality": {"line_punct_thr": 0.04, "short_line_thr": 0.9}},
            "classifier": {"kind": "keywords", "threshold": 0.5, "holdout_fraction": 0.3, "keywords": {"C": 4.0}},
            "executor": {"kind": "local", "tasks": 2, "workers": 2},  # forkserver workers load the plugin
        },
        "cpt": {
            "block_size": 32,
            "per_device_batch_size": 4,
            "learning_rate": 3e-3,
            "warmup_steps": 0,
            "max_steps": 2,
            "heldout_fraction": 0.2,
            "eval_max_blocks": 4,
            "logging_steps": 1,
            "save_steps": 2,
        },
        "evaluate": {
            "models": ["instruct", "cpt", "merged"],
            "baseline": "instruct",
            "prompts": str(inputs["prompts"]),
            "bootstrap_rounds": 10,
            "generation": {"kind": "hf", "max_new_tokens": 4, "batch_size": 3},
            "judge": {"kind": "length", "tie_margin": 0.05},
        },
    }
    path = tmp_path / "plugins.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

    out = definemed("run", str(path), cwd=tmp_path, plugins=DEMO_PLUGIN, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = tmp_path / "run"
    manifests = {
        s: json.loads((run_dir / s / "manifest.json").read_text(encoding="utf-8"))
        for s in ("corpus", "cpt", "merge", "evaluate", "analyze", "report")
    }

    # The plugin classifier was trained, saved without pickle, and used to classify the corpus.
    corpus = manifests["corpus"]["metrics"]
    assert corpus["classifier"]["kind"] == "keywords"
    model_dir = run_dir / "corpus" / "classifier"
    meta = json.loads((model_dir / "meta.json").read_text(encoding="utf-8"))
    assert meta["kind"] == "keywords" and meta["C"] == 4.0 and "herz" in meta["stems"]
    assert {p.name for p in model_dir.iterdir()} >= {"meta.json", "weights.npz"}
    assert 0 < corpus["classifier_kept"] <= corpus["filter_survivors"]
    assert corpus["classifier"]["f1"] > 0.8  # medical stems separate the demo's medical and general documents

    # The plugin judge gave every verdict: both orders of 3 pairs on 3 prompts, each by its length rule.
    judge = manifests["evaluate"]["metrics"]["judge"]
    assert (judge["kind"], judge["model"], judge["n_judgments"], judge["invalid"]) == ("length", "length", 18, 0)
    assert "toy judge" in judge["note"]
    answers = {
        m: {
            r["prompt_id"]: r["answer"]
            for r in map(
                json.loads, (run_dir / "evaluate" / "answers" / f"{m}.jsonl").read_text(encoding="utf-8").splitlines()
            )
        }
        for m in ("instruct", "cpt", "merged")
    }
    references = {p["id"]: p["reference"] for p in PROMPTS}
    rows = [json.loads(ln) for ln in (run_dir / "evaluate" / "judgments.jsonl").read_text().splitlines()]
    assert len(rows) == 18
    for row in rows:
        second = row["model_b"] if row["shown_first"] == row["model_a"] else row["model_a"]
        ref_words = len(references[row["prompt_id"]].split())
        a, b = (
            abs(len(answers[m][row["prompt_id"]].split()) - ref_words) / ref_words for m in (row["shown_first"], second)
        )
        assert row["raw"] == f"length error A={a:.3f} B={b:.3f}"
        assert row["winner"] == ("tie" if abs(a - b) <= 0.05 else "A" if a < b else "B")

    # The report was written over it, and nothing reruns: the plugin's settings key the stages like built-ins.
    report = run_dir / "report"
    assert (report / "report.html").stat().st_size > 0 and (report / "report.md").stat().st_size > 0
    assert "keywords" in (report / "report.md").read_text(encoding="utf-8")
    assert planned(path, tmp_path) == dict.fromkeys(manifests, "cached")
    assert planned(path, tmp_path, "evaluate.judge.tie_margin=0.5") == {
        "corpus": "cached",
        "cpt": "cached",
        "merge": "cached",
        "evaluate": "run",
        "analyze": "run",
        "report": "run",
    }
