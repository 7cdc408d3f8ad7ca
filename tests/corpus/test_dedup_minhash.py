"""MinHash near-deduplication through datatrove's four stages on the local executor: planted near-duplicates go to
`rejected/dedup/` with their reason, distinct documents (also ones sharing a third of their text) stay."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

from definemed.corpus import stats
from definemed.corpus.dedup import FILTER, REASON, similarity_threshold
from definemed.corpus.pipelines import CorpusLayout, build_dedup_pipelines
from definemed.corpus.stage import _run_pipeline


def _vocabulary(german_texts: dict[str, list[str]]) -> list[str]:
    words = {w.strip(".,") for texts in german_texts.values() for s in texts for w in s.split()}
    return sorted(w for w in words if w)


def _sentences(vocab: list[str], seed: int, n: int = 12) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(vocab, k=10)).capitalize() + "." for _ in range(n)]


def _write(folder: Path, name: str, docs: list[tuple[str, str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / name, "wt", encoding="utf-8") as fh:
        for doc_id, text in docs:
            fh.write(json.dumps({"id": doc_id, "text": text, "metadata": {"token_count": len(text.split())}}) + "\n")


def _docs(folder: Path) -> list[dict[str, Any]]:
    docs = []
    for path in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            docs += [json.loads(line) for line in fh]
    return docs


def _ids(folder: Path) -> list[str]:
    return sorted(d["id"] for d in _docs(folder))


def _planted_corpus(vocab: list[str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Two shards: 12 distinct documents, 3 near-copies of `distinct-00` and one page sharing a third of
    `distinct-01`, spread over both shards so that duplicate pairs cross task boundaries."""
    distinct = [(f"distinct-{i:02d}", "\n".join(_sentences(vocab, seed=i))) for i in range(12)]
    base = _sentences(vocab, seed=0)
    copies = [
        ("copy-reformatted", "  ".join(s.upper() for s in base)),  # same words, case, layout
        ("copy-edited", "\n".join(base).replace(base[3], base[3].replace(" ", " und ", 1))),  # one word added
        ("copy-extended", "\n".join([*base, *_sentences(vocab, seed=99, n=1)])),  # one sentence appended
    ]
    partial = [("partial-overlap", "\n".join(_sentences(vocab, seed=1)[:4] + _sentences(vocab, seed=50, n=8)))]
    return distinct[:6] + copies[:1], distinct[6:] + copies[1:] + partial


def test_minhash_removes_planted_near_duplicates_only(tmp_path: Path, german_texts: dict, make_config: Any) -> None:
    cfg = make_config(
        {"shards": tmp_path, "labels": tmp_path / "labels.jsonl"},
        dedup={"n_grams": 5, "num_buckets": 14, "hashes_per_bucket": 8},
    )
    layout = CorpusLayout(tmp_path / "stage")
    shard0, shard1 = _planted_corpus(_vocabulary(german_texts))
    _write(layout.classified, "00000.jsonl.gz", shard0)
    _write(layout.classified, "00001.jsonl.gz", shard1)

    pipelines = build_dedup_pipelines(cfg.corpus, layout)
    assert [p.tasks for p in pipelines] == [None, 14, 1, None]  # buckets: one task per bucket; cluster: one
    for pipeline in pipelines:
        _run_pipeline(cfg.corpus, layout, pipeline, cfg.run.name)

    kept, removed = _ids(layout.medical), _ids(layout.rejected_for("dedup"))
    group = {"distinct-00", "copy-reformatted", "copy-edited", "copy-extended"}
    assert len(set(kept) & group) == 1 and set(removed) == group - set(kept)
    assert {f"distinct-{i:02d}" for i in range(1, 12)} | {"partial-overlap"} <= set(kept)
    assert len(kept) + len(removed) == 16
    assert {d["metadata"]["filter_reason"] for d in _docs(layout.rejected_for("dedup"))} == {REASON}

    counters = stats.step_counters(layout.logs(FILTER))
    assert counters[1]["dropped"] == 3 and counters[1]["forwarded"] == 13
    assert counters[2]["docs"] == 13
    assert counters[2]["tokens"] == sum(len(d["text"].split()) for d in _docs(layout.medical))


def test_dedup_off_builds_no_pipelines(tmp_path: Path, make_config: Any) -> None:
    inputs = {"shards": tmp_path, "labels": tmp_path / "labels.jsonl"}
    layout = CorpusLayout(tmp_path)
    assert build_dedup_pipelines(make_config(inputs).corpus, layout) == []
    assert build_dedup_pipelines(make_config(inputs, dedup={"enabled": False}).corpus, layout) == []


def test_similarity_threshold_follows_bands(make_config: Any, tmp_path: Path) -> None:
    cfg = make_config({"shards": tmp_path, "labels": tmp_path / "l.jsonl"}, dedup={})
    assert similarity_threshold(cfg.corpus.dedup) == 0.719  # (1/14)^(1/8), datatrove's default bands
