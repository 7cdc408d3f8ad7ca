"""Bad input is counted and reported and the run completes: bytes that are not UTF-8, blank records, malformed
lines, a 5 MB document, and a kill -9 during classification followed by a rerun."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.corpus.conftest import fineweb2_row, write_parquet

from definemed.corpus.readers import RobustJsonlReader, RobustParquetReader
from definemed.stage import StageContext

REPO = Path(__file__).resolve().parents[2]
GERMAN = (
    "Die Patientin wurde mit akuten Bauchschmerzen in die Notaufnahme gebracht. Nach der Untersuchung "
    "entschied sich das Team für eine Ultraschalluntersuchung des Bauchraums."
)
CP1252 = GERMAN.replace("für", "f\u00fcr Gr\u00f6\u00dfe").encode("cp1252")  # umlauts as single bytes


def _stats(reader: Any) -> dict[str, int]:
    return {k: int(v.total) for k, v in reader.stats.stats.items() if k not in ("doc_len", "input_files")}


def _docs(folder: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line) for f in sorted(folder.glob("*.jsonl.gz")) for line in gzip.open(f, "rt", encoding="utf-8")
    ]


def test_jsonl_lines_are_judged_one_by_one(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "ok-1", "text": GERMAN}).encode(),
        b'{"id": "cp1252", "text": "' + CP1252 + b'"}',
        b'{"id": "bad-meta", "text": "", "note": "\xff"}',  # not UTF-8, but no text either
        b'{"id": "cut", "text": "abc',  # malformed JSON
        b'["a", "list"]',
        json.dumps({"id": "empty", "text": ""}).encode(),
        json.dumps({"id": "blank", "text": " \n\t "}).encode(),
        b"",
        json.dumps({"id": "ok-2", "text": GERMAN}).encode(),
    ]
    with gzip.open(tmp_path / "shard.jsonl.gz", "wb") as fh:
        fh.write(b"\n".join(lines) + b"\n")
    from datatrove.pipeline.writers import JsonlWriter

    rejects = JsonlWriter(str(tmp_path / "rejected"), output_filename="${rank}.jsonl.gz", compression="gzip")
    reader = RobustJsonlReader(str(tmp_path), glob_pattern="shard.jsonl.gz", exclusion_writer=rejects)
    docs = list(reader.run())
    # datatrove's own reader stops at the first bad byte; here the lines after it are still read
    assert [d.id for d in docs] == ["ok-1", "ok-2"]
    assert _stats(reader) == {
        "documents": 2,
        "invalid_utf8": 1,
        "missing_text": 5,
        "empty_text": 3,
        "malformed_lines": 2,
    }
    # the document with text that is not UTF-8 is written out with its reason and where it came from
    rejected = _docs(tmp_path / "rejected")
    [written] = [d for d in rejected if d["metadata"]["filter_reason"] == "invalid_utf8"]
    assert (written["id"], written["metadata"]["filter_reason"], written["metadata"]["id_in_file"]) == (
        "cp1252",
        "invalid_utf8",
        1,
    )
    assert written["text"].startswith("Die Patientin") and "\ufffd" in written["text"]
    # records without text and malformed lines are written too, with their reason (never dropped silently)
    reasons = sorted(
        (d["metadata"]["filter_reason"], d["metadata"]["id_in_file"])
        for d in rejected
        if d["metadata"]["filter_reason"] != "invalid_utf8"
    )
    assert reasons == [
        ("malformed_line", 3),
        ("malformed_line", 4),
        ("missing_text", 2),
        ("missing_text", 5),
        ("missing_text", 6),
    ]
    cut = next(d for d in rejected if d["metadata"]["id_in_file"] == 3)
    assert cut["text"] == '{"id": "cut", "text": "abc' and "not JSON" in cut["metadata"]["error"]


def test_binary_parquet_text_column(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = [GERMAN.encode(), CP1252, b"", b"   ", None, ("Ärztin " + GERMAN).encode()]
    pq.write_table(
        pa.table({"id": [f"r{i}" for i in range(6)], "text": pa.array(texts, pa.binary())}), tmp_path / "binary.parquet"
    )
    reader = RobustParquetReader(str(tmp_path))
    docs = list(reader.run())
    assert [(d.id, d.text[:6]) for d in docs] == [("r0", "Die Pa"), ("r5", "Ärztin")]
    assert _stats(reader) == {"documents": 2, "invalid_utf8": 1, "missing_text": 3, "empty_text": 2}


def test_string_column_with_invalid_bytes_costs_only_that_record(tmp_path: Path) -> None:
    """pyarrow refuses the whole batch; the reader reads it again as bytes instead of losing the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    text = pa.array([GERMAN.encode(), CP1252, GERMAN.encode()], pa.binary()).view(pa.string())
    url = pa.array([b"https://a.de", b"https://b.de/\xff", b"https://c.de"], pa.binary()).view(pa.string())
    pq.write_table(pa.table({"id": ["a", "b", "c"], "text": text, "url": url}), tmp_path / "mixed.parquet")
    reader = RobustParquetReader(str(tmp_path))
    docs = list(reader.run())
    assert [d.id for d in docs] == ["a", "c"]
    assert docs[1].metadata["url"] == "https://c.de"
    assert _stats(reader) == {"documents": 2, "invalid_utf8": 1}


def test_max_doc_chars_drops_longer_documents(tmp_path: Path) -> None:
    write_parquet([{"id": "at", "text": "x" * 100}, {"id": "over", "text": "y" * 101}], tmp_path / "s.parquet")
    reader = RobustParquetReader(str(tmp_path), max_doc_chars=100)
    assert [d.id for d in reader.run()] == ["at"]
    assert _stats(reader) == {"documents": 1, "too_long": 1}
    uncapped = RobustParquetReader(str(tmp_path))
    assert len(list(uncapped.run())) == 2


def _run_stage(cfg: Any) -> tuple[Any, Path]:
    from definemed.corpus.contract import bind
    from definemed.corpus.stage import run

    ctx = StageContext(run_dir=cfg.run.run_dir, stage="corpus")
    ctx.stage_dir.mkdir(parents=True, exist_ok=True)
    return run(bind(cfg), ctx).metrics, ctx.stage_dir


def test_stage_counts_bad_input_and_balances(corpus_inputs: dict, make_config: Any) -> None:
    """Every record is a kept document, a drop with its reason, or a record without text: nothing else."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    huge = "\n".join([GERMAN] * (5_000_000 // len(GERMAN)))  # 5 MB of German prose
    rows = [
        fineweb2_row("<urn:uuid:cp1252>", None),
        fineweb2_row("<urn:uuid:empty>", None),
        fineweb2_row("<urn:uuid:blank>", None),
        fineweb2_row("<urn:uuid:huge>", None),
    ]
    table = pa.Table.from_pylist(rows).set_column(
        0, "text", pa.array([CP1252, b"", b" \n ", huge.encode()], pa.binary())
    )
    pq.write_table(table, corpus_inputs["shards"] / "003_00000.parquet")

    t0 = time.perf_counter()
    m, stage_dir = _run_stage(make_config(corpus_inputs))
    assert time.perf_counter() - t0 < 120
    records = corpus_inputs["n_rows"] + len(rows)
    assert m.dropped["input"] == 2
    assert (m.dropped_by_reason["invalid_utf8"], m.dropped_by_reason["too_long"]) == (1, 1)
    assert m.missing_text == 3  # the fixture's record without text, "" and whitespace
    assert m.corrupt_files == 1 and m.input_files == 4
    assert records == m.docs_in + m.missing_text
    assert m.docs_in == m.docs_kept + sum(m.dropped.values())

    stats = json.loads((stage_dir / "stats.json").read_text())
    assert stats["steps"][0] == {
        "step": "input",
        "in": m.docs_in,
        "kept": m.docs_in - 2,
        "dropped": 2,
        "reasons": {"invalid_utf8": 1, "too_long": 1},
    }
    assert stats["steps"][1]["step"] == "language" and stats["steps"][1]["in"] == m.docs_in - 2
    assert "| input |" in (stage_dir / "README.md").read_text()
    # the readers' drops are written out like every filter's, with reason, source file and position
    every = _docs(stage_dir / "rejected" / "input")
    rejected = {d["id"]: d for d in every if d["metadata"]["filter_reason"] != "missing_text"}
    assert set(rejected) == {"<urn:uuid:cp1252>", "<urn:uuid:huge>"}
    # records without text are written there too, with their reason: none vanishes without a trace
    assert sum(d["metadata"]["filter_reason"] == "missing_text" for d in every) == m.missing_text == 3
    # the corrupt shard is named with its error in the metrics, stats.json, the dataset card
    [bad] = m.corrupt_file_list
    assert bad.file.endswith(".parquet") and bad.error
    assert stats["corrupt_file_list"] == [bad.model_dump()]
    assert bad.file in (stage_dir / "README.md").read_text()
    cp1252, huge_doc = rejected["<urn:uuid:cp1252>"], rejected["<urn:uuid:huge>"]
    assert cp1252["metadata"]["filter_reason"] == "invalid_utf8" and "\ufffd" in cp1252["text"]
    assert cp1252["metadata"]["source_file"] == "003_00000.parquet" and cp1252["metadata"]["id_in_file"] == 0
    assert huge_doc["metadata"]["filter_reason"] == "too_long" and huge_doc["text"] == huge
    assert huge_doc["metadata"]["language_score"] == 0.95  # the record's other fields travel along


# Runs the corpus stage through the pipeline runner; with SLOW_CLASSIFY set, rank 1 of pipeline B stalls after
# classifying a few documents and announces it in a file, so the test can kill -9 it mid-rank.
DRIVER = """
import json, os, sys, time
from pathlib import Path
from definemed import pipeline
from definemed.config import DefinemedConfig
from definemed.corpus import filters

marker = os.environ.get("SLOW_CLASSIFY")
if marker:
    # one document per batch, so rank 1 has written some output when it stalls at its fourth document
    init, score = filters.MedicalRelevanceFilter.__init__, filters.MedicalRelevanceFilter.filter_batch
    completed_rank_0 = Path(os.environ["CLASSIFY_LOGS"]) / "completions" / "00000"
    rank_1_docs = []

    def one_per_batch(self, *args, **kwargs):
        init(self, *args, **{**kwargs, "batch_size": 1})

    def stalling(self, batch):
        if completed_rank_0.exists():
            rank_1_docs.extend(doc.id for doc in batch)
            if len(rank_1_docs) > 3:
                Path(marker).write_text(json.dumps(rank_1_docs))
                time.sleep(600)
        return score(self, batch)

    filters.MedicalRelevanceFilter.__init__ = one_per_batch
    filters.MedicalRelevanceFilter.filter_batch = stalling
cfg = DefinemedConfig.model_validate(json.loads(Path(sys.argv[1]).read_text()))
print(json.dumps(pipeline.run_stage(cfg, "corpus", {})["metrics"]))
"""


def test_kill_during_classification_then_rerun(tmp_path: Path, corpus_inputs: dict, make_config: Any) -> None:
    cfg = make_config(corpus_inputs)
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(cfg.model_dump_json())
    stage_dir = cfg.run.run_dir / "corpus"
    marker = tmp_path / "stalled"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
        "HF_HUB_OFFLINE": "1",
        "SLOW_CLASSIFY": str(marker),
        "CLASSIFY_LOGS": str(stage_dir / "logs" / "classify"),
    }
    cmd = [sys.executable, "-c", DRIVER, str(cfg_file)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and not marker.exists() and proc.poll() is None:
            time.sleep(0.2)
        assert marker.exists(), proc.stdout.read().decode()[-3000:] if proc.poll() is not None else "no stall"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    completions = stage_dir / "logs" / "classify" / "completions"
    assert (completions / "00000").exists() and not (completions / "00001").exists()
    assert not (stage_dir / "manifest.json").exists()
    # rank 1 had opened its output files: the rerun must replace them, not add to them
    assert any((stage_dir / folder / "00001.jsonl.gz").exists() for folder in ("medical", "rejected/not_medical"))

    env.pop("SLOW_CLASSIFY")
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    m = json.loads(out.stdout.strip().splitlines()[-1])
    assert m["docs_in"] == corpus_inputs["n_rows"] - 1 == m["docs_kept"] + sum(m["dropped"].values())

    kept = [d["id"] for d in _docs(stage_dir / "medical")]
    rejects = [d for folder in sorted((stage_dir / "rejected").iterdir()) for d in _docs(folder)]
    # records without text are in rejected/input/ too, but they are records, not documents in
    rejected = [d["id"] for d in rejects if d["metadata"]["filter_reason"] not in ("missing_text", "malformed_line")]
    assert len(rejects) - len(rejected) == m["missing_text"]
    assert len(kept) == m["docs_kept"] and len(rejected) == sum(m["dropped"].values())
    assert len(set(kept + rejected)) == len(kept) + len(rejected)  # no document twice
    assert len(kept) + len(rejected) == m["docs_in"]  # and none lost


def test_five_megabyte_document_through_the_filters_uncapped(
    tmp_path: Path, corpus_inputs: dict, make_config: Any, german_texts: dict
) -> None:
    """With the cap off, a 5 MB page of varied German goes through language ID and the spaCy-based quality
    filters without error (see benchmarks/long_document.py for the time per step)."""
    import random

    from datatrove.data import Document

    from definemed.corpus.pipelines import CorpusLayout, filter_steps

    # lines of random words from the session's German sentences: no repeated lines or n-grams to exit early on
    rng = random.Random(0)
    vocab = sorted({w for s in german_texts["medical"] + german_texts["general"] for w in s.split()})
    text = "\n".join(" ".join(rng.choices(vocab, k=20)) + "." for _ in range(40_000))[:5_000_000]
    steps = filter_steps(make_config(corpus_inputs).corpus, CorpusLayout(tmp_path / "stage"))
    t0 = time.perf_counter()
    verdicts = {name: step.filter(Document(text=text, id="huge")) for name, step in steps}
    elapsed = time.perf_counter() - t0
    assert verdicts["language"] is True
    assert verdicts["gopher_quality"] == (False, "gopher_long_doc")  # > max_doc_words: FineWeb2 drops it too
    assert elapsed < 120, f"{elapsed:.1f} s for 5 MB"
