"""Answers per second through the whole analyze stage (line-level LID, word-level English detection, lengths,
repetition, summaries, examples) on synthetic ~200-word German answers with some English mixed in.

    .venv/bin/python benchmarks/analyze_throughput.py [--answers 2000]

Target (issue 6): at least 1,000 answers of about 200 words per second on 2 cores.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from definemed.artifacts import read_jsonl, write_jsonl
from definemed.config import DefinemedConfig
from definemed.stage import StageContext

REPO = Path(__file__).resolve().parents[1]


def synthetic_answers(n: int, seed: int = 0) -> list[dict]:
    """~200-word answers built from the shipped German reference answers and mixing calibration sentences."""
    rng = random.Random(seed)
    refs = [r["reference"] for r in read_jsonl(REPO / "demo/prompts/open_prompts_de.jsonl")]
    mixed = [r["text"] for r in read_jsonl(REPO / "demo/prompts/language_mixing_calibration.jsonl")]
    rows = []
    for i in range(n):
        parts: list[str] = []
        while sum(len(p.split()) for p in parts) < 200:
            parts.append(rng.choice(refs) if rng.random() < 0.7 else rng.choice(mixed))
        rows.append(
            {
                "prompt_id": f"p{i % 48}",
                "model": f"m{i % 3}",
                "answer": "\n".join(parts),
                "reference": refs[i % len(refs)],
                "n_tokens": 300,
                "hit_limit": False,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=2000)
    args = parser.parse_args()
    from definemed.analyze.contract import bind
    from definemed.analyze.stage import run

    rows = synthetic_answers(args.answers)
    words = sum(len(r["answer"].split()) for r in rows) / len(rows)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        write_jsonl(run_dir / "evaluate" / "answers" / "all.jsonl", rows)
        cfg = DefinemedConfig.model_validate(
            {
                "models": {"instruct": {"id": "x"}},
                "corpus": {"input": {"paths": [tmp]}, "labels": {"path": str(run_dir / "labels.jsonl")}},
            }
        )
        ctx = StageContext(
            run_dir=run_dir, stage="analyze", upstream={"evaluate": {"outputs": {"answers": "answers"}, "metrics": {}}}
        )
        ctx.stage_dir.mkdir()
        inputs = bind(cfg)
        run(inputs, ctx)  # warm-up: loads fastText and the word-frequency tables once
        t0 = time.perf_counter()
        run(inputs, ctx)
        seconds = time.perf_counter() - t0
    print(f"answers: {len(rows)}  mean words/answer: {words:.0f}")
    print(f"analyze stage: {len(rows) / seconds:,.0f} answers/s ({seconds:.2f} s; target >= 1,000 answers/s)")


if __name__ == "__main__":
    main()
