"""Seconds and peak memory for one very long document through the corpus filter pipeline (issue 3).

A synthetic page of varied German (lines of random words from the demo documents, so no early exit on repeated
lines) of --mb megabytes goes through every step of pipeline A with the reader's `max_doc_chars` cap off:
whitespace token count, fastText language ID, Gopher repetition, Gopher quality and FineWeb quality (the last
three tokenise with datatrove's blank spaCy `de` pipeline). Baseline in the same process: the same number of
characters as 5 kB pages, the size of a typical FineWeb2 document; the ratio says whether cost grows faster than
length.

    .venv/bin/python benchmarks/long_document.py [--mb 5]
"""

from __future__ import annotations

import argparse
import functools
import random
import resource
import tempfile
import time
from pathlib import Path

from datatrove.data import Document

from definemed.config import DefinemedConfig
from definemed.corpus.pipelines import CorpusLayout, filter_steps
from definemed.corpus.stats import WhitespaceTokenCounter

REPO = Path(__file__).resolve().parents[1]


@functools.cache
def demo_vocabulary() -> list[str]:
    """The distinct whitespace words of the demo's FineWeb2-schema shards."""
    import pyarrow.parquet as pq

    return sorted(
        {
            w
            for shard in sorted((REPO / "demo" / "fineweb2-deu").glob("*.parquet"))
            for text in pq.read_table(shard, columns=["text"]).column("text").to_pylist()
            for w in text.split()
        }
    )


def german_text(chars: int, seed: int = 0) -> str:
    rng, vocab = random.Random(seed), demo_vocabulary()
    lines, n = [], 0
    while n < chars:
        lines.append(" ".join(rng.choices(vocab, k=rng.randint(8, 30))) + ".")
        n += len(lines[-1]) + 1
    return "\n".join(lines)[:chars]


def time_steps(texts: list[str], steps: list[tuple[str, object]]) -> dict[str, float]:
    seconds = {}
    for name, step in steps:
        t0 = time.perf_counter()
        for i, text in enumerate(texts):
            doc = Document(text=text, id=str(i))
            list(step.run([doc])) if name == "tokens" else step.filter(doc)
        seconds[name] = time.perf_counter() - t0
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=5.0)
    args = parser.parse_args()
    chars = int(args.mb * 1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = DefinemedConfig.model_validate(
            {
                "run": {"name": "bench", "run_dir": tmp},
                "models": {"instruct": {"id": "x"}},
                "corpus": {"input": {"kind": "parquet", "paths": [tmp]}, "labels": {"kind": "file", "path": tmp}},
            }
        )
        steps = [("tokens", WhitespaceTokenCounter()), *filter_steps(cfg.corpus, CorpusLayout(Path(tmp)))]
        small = [german_text(5_000, seed=i) for i in range(chars // 5_000)]
        time_steps(small[:20], steps)  # load fastText and spaCy outside the timings
        base = time_steps(small, steps)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        long = time_steps([german_text(chars)], steps)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"one {args.mb:g} MB document vs {len(small)} documents of 5 kB (same characters), seconds:")
    for name in long:
        print(f"  {name:20s} {long[name]:7.2f}  vs {base[name]:7.2f}  ratio {long[name] / max(base[name], 1e-9):5.2f}")
    total, total_base = sum(long.values()), sum(base.values())
    print(f"  {'total':20s} {total:7.2f}  vs {total_base:7.2f}  ratio {total / total_base:5.2f}")
    print(f"peak RSS {rss:.0f} MB (before the long document: {rss_before:.0f} MB)")


if __name__ == "__main__":
    main()
