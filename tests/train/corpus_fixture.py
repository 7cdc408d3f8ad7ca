"""Fake corpus-stage output for CPT tests: datatrove JsonlWriter folders and a StageContext pointing at them."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from definemed.stage import StageContext


def write_shards(folder: Path, texts: list[str], prefix: str, shards: int = 2) -> Path:
    """Write `texts` as datatrove-style `NNNNN.jsonl.gz` shards (text, id, metadata per line)."""
    folder.mkdir(parents=True, exist_ok=True)
    for rank in range(shards):
        with gzip.open(folder / f"{rank:05d}.jsonl.gz", "wt", encoding="utf-8") as fh:
            for i in range(rank, len(texts), shards):
                fh.write(
                    json.dumps(
                        {"text": texts[i], "id": f"{prefix}-{i}", "metadata": {"dump": "test", "language": "de"}}
                    )
                    + "\n"
                )
    return folder


def corpus_context(run_dir: Path, medical: list[str], general: list[str]) -> StageContext:
    """A cpt StageContext whose upstream corpus manifest points at freshly written shard folders."""
    corpus = run_dir / "corpus"
    write_shards(corpus / "output" / "medical", medical, "med")
    write_shards(corpus / "output" / "general", general, "gen")
    upstream = {
        "corpus": {"outputs": {"medical": "output/medical", "general": "output/general"}, "run_id": "x", "key": "y"}
    }
    return StageContext(run_dir=run_dir, stage="cpt", upstream=upstream)
