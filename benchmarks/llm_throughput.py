"""Labelled documents/s and judged pairs/s through the LLM layer vs the same real server driven by a plain loop.

The server is llama-cpp-python's (definemed.llm.local_server, the bundled SmolLM2-135M GGUF on 127.0.0.1). Both
workloads use log-probability scoring (one output token), as configs/demo-server.yaml does:
- labelling: the demo's short English prompt, `label_documents` with an OpenAI labeller (method: logprob), a fresh
  cache folder so every document is a request;
- judging: the German pairwise rubric, `OpenAIJudge` (method: logprob), no cache, pairs in both orders.
The baseline for each is a plain asyncio loop: `openai.AsyncOpenAI` (no retries), the same request bodies, a
semaphore at concurrency 1, 2 and 4; its best rate is the reference. Figures:
- ratio = layer rate / best plain rate (target >= 0.8);
- requests per answered item (target <= 1.05 on a healthy server);
- share of items scored (yes/no or A/B/C among the top log-probabilities; target >= 0.95).
Each measurement is preceded by an untimed warm-up request (the server keeps the last prompt's KV cache, so the
shared rubric prefix is computed once for every contender alike). Timings depend on the machine: run it on a quiet
one. Needs `pip install 'definemed[server]'`.

Run: .venv/bin/python benchmarks/llm_throughput.py [--docs 24] [--pairs 12] [--out benchmarks/results/x.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"ratio": 0.8, "requests_per_item": 1.05, "scored_share": 0.95}
TEXTS = [
    "Bluthochdruck wird mit ACE-Hemmern behandelt; die Dosis richtet sich nach dem Blutdruck.",
    "Die Zinsen für Sparkonten steigen im nächsten Jahr, sagt die Bank.",
    "Die Grippeimpfung wird für Menschen über 60 Jahre empfohlen.",
    "Der Fußballverein gewann das Spiel mit drei zu eins.",
    "Metformin ist das Mittel der ersten Wahl bei Diabetes Typ 2.",
    "Das neue Smartphone hat eine bessere Kamera und einen größeren Akku.",
]
ANSWERS = [
    "Ibuprofen oder Paracetamol helfen, dazu Ruhe und ausreichend Flüssigkeit.",
    "Ich weiß es nicht.",
    "Kopfschmerzen gehen meist von selbst weg; bei Warnzeichen zum Arzt.",
    "Trinken Sie Kaffee.",
]


async def plain_loop(base_url: str, bodies: list[dict[str, Any]], concurrency: int) -> float:
    """Items per second for `bodies` sent with at most `concurrency` in flight; nothing else."""
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=0, timeout=600)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(body: dict[str, Any]) -> None:
        async with semaphore:
            await client.chat.completions.create(**body)

    try:
        await client.chat.completions.create(**bodies[0])  # warm-up: prefix cache, connection
        t0 = time.perf_counter()
        await asyncio.gather(*(one(b) for b in bodies))
        return len(bodies) / (time.perf_counter() - t0)
    finally:
        await client.close()


def best_plain(base_url: str, bodies: list[dict[str, Any]]) -> dict[str, Any]:
    rates = {c: asyncio.run(plain_loop(base_url, bodies, c)) for c in (1, 2, 4)}
    best = max(rates, key=rates.__getitem__)
    return {
        "rates": {str(c): round(r, 3) for c, r in rates.items()},
        "best_concurrency": best,
        "best_rate": rates[best],
    }


def labelling(base_url: str, n: int) -> dict[str, Any]:
    from definemed.corpus.labelling.openai_backend import OpenAILabeller
    from definemed.corpus.labelling.runner import label_documents
    from definemed.corpus.labelling.schema import Document
    from definemed.corpus.labelling.settings import OpenAILabellerSettings
    from definemed.llm import Endpoint, LLMClient, run_sync

    settings = OpenAILabellerSettings(
        model="smollm2",
        base_url=base_url,
        method="logprob",
        positive="yes",
        negative="no",
        template=str(ROOT / "demo/prompts/label_medical_short_en.md"),
        max_doc_chars=300,
        concurrency=4,
    )
    docs = [Document(id=f"b-{i}", text=f"{TEXTS[i % len(TEXTS)]} (Nr. {i})") for i in range(n)]
    lab = OpenAILabeller(settings)

    async def bodies() -> list[dict[str, Any]]:
        async with LLMClient(Endpoint("bench", "smollm2", base_url)) as llm:
            return [lab._body(llm, d, None, "/chat/completions") for d in docs]

    plain = best_plain(base_url, run_sync(bodies))
    lab.label_many(docs[:1])  # warm-up, as for the plain loop
    lab = OpenAILabeller(settings)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = label_documents(docs, lab, tmp, max_failure_share=1.0)
        seconds = time.perf_counter() - t0
    rate = n / seconds
    return {
        "items": n,
        "layer_rate": round(rate, 3),
        "plain": plain,
        "ratio": round(rate / plain["best_rate"], 3),
        "requests_per_item": round(lab.stats["requests"] / max(n - run.counts["failed"], 1), 3),
        "scored_share": round(run.counts["ok"] / n, 3),
        "setup_requests": lab.stats["setup_requests"],
        "capacity": lab.stats["capacity"],
    }


def judging(base_url: str, n_pairs: int) -> dict[str, Any]:
    from definemed.evaluate.config import OpenAIJudgeConfig
    from definemed.evaluate.openai_judge import LOGPROB_SUFFIX, OpenAIJudge
    from definemed.evaluate.verdicts import JudgeItem, render

    items = []
    for i in range(n_pairs):
        a, b = ANSWERS[i % len(ANSWERS)], ANSWERS[(i + 1) % len(ANSWERS)] + f" ({i})"
        prompt = "Was hilft bei Kopfschmerzen?"
        items += [JudgeItem(prompt, "Ibuprofen oder Paracetamol.", a, b), JudgeItem(prompt, "Ibuprofen.", b, a)]
    cfg = OpenAIJudgeConfig(
        kind="openai", model="smollm2", base_url=base_url, method="logprob", concurrency=4, max_invalid_share=1.0
    )
    judge = OpenAIJudge(cfg, None)
    bodies = [
        {
            "model": "smollm2",
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": 20,
            "messages": [{"role": "user", "content": render(judge.template, i) + LOGPROB_SUFFIX}],
        }
        for i in items
    ]
    plain = best_plain(base_url, bodies)
    judge.judge_batch(items[:1])  # warm-up
    judge = OpenAIJudge(cfg, None)
    t0 = time.perf_counter()
    verdicts = judge.judge_batch(items)
    seconds = time.perf_counter() - t0
    rate = len(items) / seconds
    answered = sum(v.error is None for v in verdicts)
    return {
        "items": len(items),
        "pairs": n_pairs,
        "layer_rate": round(rate, 3),
        "layer_pairs_per_s": round(rate / 2, 3),
        "plain": plain,
        "ratio": round(rate / plain["best_rate"], 3),
        "requests_per_item": round(judge.stats["requests"] / max(answered, 1), 3),
        "scored_share": round(sum(v.winner != "invalid" for v in verdicts) / len(items), 3),
        "setup_requests": judge.stats["setup_requests"],
        "capacity": judge.stats["capacity"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=24)
    parser.add_argument("--pairs", type=int, default=12, help="each judged in both orders")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from definemed.llm.local_server import LocalServer

    with LocalServer() as server:
        result = {
            "server": "llama-cpp-python 0.3.36, SmolLM2-135M-Instruct Q4_1 (bundled)",
            "targets": TARGETS,
            "labelling": labelling(server.base_url, args.docs),
            "judging": judging(server.base_url, args.pairs),
        }
    for name in ("labelling", "judging"):
        r = result[name]
        ok = (
            r["ratio"] >= TARGETS["ratio"]
            and r["requests_per_item"] <= TARGETS["requests_per_item"]
            and r["scored_share"] >= TARGETS["scored_share"]
        )
        r["meets_targets"] = ok
        print(
            f"{name}: layer {r['layer_rate']:.2f}/s vs plain loop {r['plain']['best_rate']:.2f}/s at concurrency "
            f"{r['plain']['best_concurrency']} -> ratio {r['ratio']:.2f}; requests/item {r['requests_per_item']}; "
            f"scored {r['scored_share']:.0%}; {'meets' if ok else 'MISSES'} the targets"
        )
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
