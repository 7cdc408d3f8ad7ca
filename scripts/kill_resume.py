"""Kill the main definemed process (SIGKILL, the main PID only, not its group) during the corpus stage, rerun at
once, and compare the result with an uninterrupted run of the same config.

    PYTHONPATH=src python scripts/kill_resume.py [--workdir /tmp/kill-resume] [--kill-after-completions 1]

Uses the demo data with precomputed labels and a TF-IDF classifier (a corpus stage of a minute or two on 2 cores,
with datatrove's local executor in worker processes). Prints "resumed, identical" or what differs; exits 1 then.
Before the fix in issue 11, the rerun failed with "in use by another definemed run" for as long as the orphaned
datatrove worker lived.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
STAGE_OUTPUTS = ("medical", "rejected", "general", "general_duplicates")  # document folders the stage writes
# metrics that differ between any two runs (timings, dates, resume bookkeeping), not between results
VOLATILE = {"seconds", "duration_s", "started_at", "finished_at", "resumed", "throughput", "timings", "wall_s"}


def small_config(run_dir: Path) -> dict[str, Any]:
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    corpus = cfg["corpus"]
    corpus.pop("labelling")
    corpus["labels"] = {"kind": "file", "path": str(REPO / "demo" / "precomputed_labels.jsonl")}
    corpus["classifier"] = {"kind": "tfidf_logreg", "threshold": 0.5, "holdout_fraction": 0.3}
    corpus["card"] = {"pretty_name": "kill-resume", "tokenizer": "whitespace"}
    corpus["executor"] = {"kind": "local", "tasks": 4, "workers": 2}
    corpus["input"]["paths"] = [str(REPO / p) for p in corpus["input"]["paths"]]
    for task in cfg["evaluate"]["mcq"]["tasks"]:
        task["path"] = str(REPO / task["path"])
    if cfg["evaluate"].get("prompts"):
        cfg["evaluate"]["prompts"] = str(REPO / cfg["evaluate"]["prompts"])
    cfg["run"]["run_dir"] = str(run_dir)
    return cfg


def documents(stage_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """(id, text) of every document in each output folder, sorted: the stage's result independent of ranks."""
    out: dict[str, list[tuple[str, str]]] = {}
    for top in STAGE_OUTPUTS:
        for f in sorted((stage_dir / top).rglob("*.jsonl.gz")):
            folder = str(f.parent.relative_to(stage_dir))
            with gzip.open(f, "rt", encoding="utf-8") as fh:
                out.setdefault(folder, []).extend((d["id"], d["text"]) for d in map(json.loads, fh))
    return {k: sorted(v) for k, v in sorted(out.items())}


def stable_metrics(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: stable_metrics(v) for k, v in obj.items() if k not in VOLATILE and not k.endswith("_s")}
    if isinstance(obj, list):
        return [stable_metrics(v) for v in obj]
    return obj


def run_cli(config: Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "definemed.cli", "run", str(config), "--stages", "corpus"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )


def completions(stage_dir: Path) -> int:
    return sum(1 for _ in (stage_dir / "logs").glob("*/completions/*")) if (stage_dir / "logs").exists() else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/definemed-kill-resume"))
    parser.add_argument(
        "--kill-after-completions",
        type=int,
        default=1,
        help="SIGKILL once this many datatrove ranks have finished (mid-stage)",
    )
    args = parser.parse_args()
    work = args.workdir.resolve()
    if work.exists():
        import shutil

        shutil.rmtree(work)
    work.mkdir(parents=True)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO / "src")),
    }

    configs = {}
    for name in ("uninterrupted", "killed"):
        configs[name] = work / f"{name}.yaml"
        configs[name].write_text(yaml.safe_dump(small_config(work / name)))

    t0 = time.time()
    ref = run_cli(configs["uninterrupted"], env, work)
    if ref.returncode != 0:
        print(f"uninterrupted run failed:\n{ref.stderr[-3000:]}")
        return 1
    print(f"uninterrupted run: {time.time() - t0:.0f} s")

    stage_dir = work / "killed" / "corpus"
    proc = subprocess.Popen(
        [sys.executable, "-m", "definemed.cli", "run", str(configs["killed"]), "--stages", "corpus"],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # its own group, so the kill below cannot reach its children
    while proc.poll() is None and completions(stage_dir) < args.kill_after_completions:
        time.sleep(0.05)
    if proc.poll() is not None:
        print(f"the run finished (rc {proc.returncode}) before the kill; lower --kill-after-completions")
        return 1
    done = completions(stage_dir)
    os.kill(proc.pid, signal.SIGKILL)  # the main PID only, as `kill -9 <pid>` would
    proc.wait()
    print(f"SIGKILL of main pid {proc.pid} after {done} datatrove rank(s) had finished; rerunning at once")

    t1 = time.time()
    rerun = run_cli(configs["killed"], env, work)
    if rerun.returncode != 0:
        print(f"rerun failed (rc {rerun.returncode}):\n{rerun.stderr[-3000:]}")
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        return 1
    took_over = next(
        (ln.split("WARNING ", 1)[-1] for ln in rerun.stderr.splitlines() if "taking it over" in ln),
        "no (lock was free and unrecorded)",
    )
    print(
        f"rerun: rc 0 in {time.time() - t1:.0f} s; resumed an interrupted attempt: "
        f"{'resuming an interrupted attempt' in rerun.stderr}; lock: {took_over}"
    )

    diffs = []
    a, b = documents(work / "uninterrupted" / "corpus"), documents(stage_dir)
    for folder in sorted(set(a) | set(b)):
        if a.get(folder) != b.get(folder):
            ids_a, ids_b = _ids(a.get(folder, [])), _ids(b.get(folder, []))
            diffs.append(
                f"{folder}: {len(a.get(folder, []))} vs {len(b.get(folder, []))} documents; "
                f"only uninterrupted: {sorted(ids_a - ids_b)[:5]}, only resumed: {sorted(ids_b - ids_a)[:5]}"
            )
    ma = stable_metrics(json.loads((work / "uninterrupted" / "corpus" / "manifest.json").read_text())["metrics"])
    mb = stable_metrics(json.loads((stage_dir / "manifest.json").read_text())["metrics"])
    for key in sorted(set(ma) | set(mb)):
        if ma.get(key) != mb.get(key):
            diffs.append(f"metrics.{key}: {json.dumps(ma.get(key))[:200]} vs {json.dumps(mb.get(key))[:200]}")
    n_docs = sum(len(v) for v in a.values())
    if diffs:
        print("resumed, but differs:\n  " + "\n  ".join(diffs))
        return 1
    print(f"resumed, identical ({n_docs} documents in {len(a)} output folders, metrics equal)")
    return 0


def _ids(rows: list[tuple[str, str]]) -> set[str]:
    return {doc_id for doc_id, _ in rows}


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
