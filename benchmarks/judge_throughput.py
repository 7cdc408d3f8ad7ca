"""Judgments per second through the openai judge backend, against the ideal for a server with fixed latency.

A local OpenAI-compatible server (tests/openai_fake.py: real HTTP on 127.0.0.1, one thread per request) answers
every chat request after a fixed artificial latency (default 200 ms) with a valid verdict. It runs in a child
process (this script with --serve), as a real server would: in-process, its threads would compete with the
judge for the GIL. With `concurrency`
requests in flight, the best any client can do is concurrency / latency judgments per second; the figure is
measured / ideal. The judge runs as the stage runs it (async client, semaphore, retry wrapper, cache lookups),
with no cache file, so every comparison is a request. Each row sends `--per-slot` x concurrency requests, after
one untimed warm-up batch (imports, first connection).

Target: ratio >= 0.8 at concurrency 16. `concurrency` is the judge's upper bound: the LLM layer starts at one
request in flight and grows while latency holds (src/definemed/llm/capacity.py), about four round trips from 1 to
16, so the batch must be long enough for the ramp not to dominate: with --per-slot 8 (128 requests, 1.6 s ideal)
the ratio was 0.64 on a quiet 2-core machine, with the default 32 (512 requests) 0.85. A fixed-concurrency client
reached 0.85 at 128 requests here, and broke on one-request-at-a-time servers (issue 13).

Run: .venv/bin/python benchmarks/judge_throughput.py [--latency 0.2] [--concurrency 1 4 16] [--per-slot 32]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.8


def load_fake_server() -> ModuleType:
    """tests/openai_fake.py by path (tests/ is not an installed package)."""
    spec = importlib.util.spec_from_file_location("definemed_openai_fake", ROOT / "tests" / "openai_fake.py")
    if spec is None or spec.loader is None:
        raise ImportError("tests/openai_fake.py not found next to benchmarks/")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def ideal_rate(concurrency: int, latency_s: float) -> float:
    """Judgments per second of a perfect client: `concurrency` requests always in flight."""
    return concurrency / latency_s


def efficiency(judgments: int, seconds: float, concurrency: int, latency_s: float) -> float:
    """Measured judgments/s over the ideal rate."""
    return (judgments / seconds) / ideal_rate(concurrency, latency_s)


def serve(latency_s: float) -> None:
    """Child process (`--serve`): print the server's URL, run until stdin says stop, print what it saw."""
    fake = load_fake_server()
    with fake.FakeOpenAIServer(lambda body, hit: fake.ok("Beide gut.\nUrteil: [[C]]", delay_s=latency_s)) as srv:
        print(srv.base_url, flush=True)
        sys.stdin.readline()
        print(json.dumps({"hits": srv.hits, "max_in_flight": srv.max_in_flight}), flush=True)


def judge_once(base_url: str, concurrency: int, n_requests: int, latency_s: float, tag: str) -> float:
    """Seconds for one judge_batch of `n_requests` distinct comparisons; checks every verdict came back."""
    from definemed.evaluate.config import OpenAIJudgeConfig
    from definemed.evaluate.openai_judge import OpenAIJudge
    from definemed.evaluate.verdicts import JudgeItem

    cfg = OpenAIJudgeConfig(
        kind="openai",
        model="bench",
        base_url=base_url,
        concurrency=concurrency,
        max_retries=0,
        timeout_s=max(10.0, 20 * latency_s),
    )
    items = [JudgeItem(f"Frage {tag} {i}", None, f"Antwort A {i}", f"Antwort B {i}") for i in range(n_requests)]
    judge = OpenAIJudge(cfg, workdir=None)
    t0 = time.perf_counter()
    verdicts = judge.judge_batch(items)
    seconds = time.perf_counter() - t0
    if [v.winner for v in verdicts] != ["tie"] * n_requests:
        raise RuntimeError("the benchmark server's verdicts did not come back intact")
    return seconds


def measure(concurrency: int, latency_s: float, n_requests: int) -> dict[str, Any]:
    """One timed batch at `concurrency` against a fresh server process."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve", str(latency_s)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        if not base_url.startswith("http"):
            raise RuntimeError(f"benchmark server did not start (exit code {proc.poll()})")
        judge_once(base_url, concurrency, concurrency, latency_s, "warm-up")
        seconds = judge_once(base_url, concurrency, n_requests, latency_s, "timed")
        seen = json.loads(proc.communicate("stop\n", timeout=30)[0].strip().splitlines()[-1])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return {
        "concurrency": concurrency,
        "judgments": n_requests,
        "seconds": seconds,
        "rate": n_requests / seconds,
        "ideal": ideal_rate(concurrency, latency_s),
        "ratio": efficiency(n_requests, seconds, concurrency, latency_s),
        "max_in_flight": seen["max_in_flight"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="server latency per request, seconds")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--per-slot", type=int, default=32, help="requests per concurrency slot")
    parser.add_argument("--serve", type=float, default=None, help=argparse.SUPPRESS)  # the server process
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve)
        return 0
    os.environ.setdefault("TQDM_DISABLE", "1")
    print(f"openai judge vs a local server with {args.latency * 1000:.0f} ms latency (ideal = concurrency / latency)")
    print(
        f"{'concurrency':>11} {'judgments':>9} {'seconds':>8} {'judg/s':>8} {'ideal/s':>8} {'ratio':>6} "
        f"{'in flight':>9}"
    )
    rows = [measure(c, args.latency, args.per_slot * c) for c in args.concurrency]
    for r in rows:
        print(
            f"{r['concurrency']:>11} {r['judgments']:>9} {r['seconds']:>8.2f} {r['rate']:>8.1f} "
            f"{r['ideal']:>8.1f} {r['ratio']:>6.2f} {r['max_in_flight']:>9}"
        )
    top = max(rows, key=lambda r: r["concurrency"])
    verdict = "meets" if top["ratio"] >= TARGET else "MISSES"
    print(f"ratio at concurrency {top['concurrency']}: {top['ratio']:.2f} ({verdict} the target {TARGET})")
    return 0 if top["ratio"] >= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
