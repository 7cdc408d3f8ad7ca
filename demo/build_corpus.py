"""Build the demo FineWeb2-style shards and gold labels from the hand-written documents in demo/sources/.

    python demo/build_corpus.py    # writes demo/fineweb2-deu/*.parquet, demo/gold_labels.jsonl,
                                   # demo/real_test.jsonl and the composition table in demo/DATA_CARD.md

Two kinds of source: documents written for the project (demo/sources/*.jsonl, `origin: written`) and real German
documents nobody in the project wrote (demo/sources/real/*.jsonl, `origin: real`, made by demo/prepare_real.py,
licences in demo/sources/real/README.md). Real documents marked `split: test` never enter the shards: they form
demo/real_test.jsonl (id, text, medical, genre, source, origin), the held-out real test set that no labelling,
training or threshold choice sees.

Deterministic: every per-document value (id, dump, date, scores) derives from a hash of the document's URL and
text, and the shard order comes from a seeded shuffle of the documents sorted by source file and line. Adding a
source document therefore changes the shard order but not the values of the other documents.

Only the standard library and pyarrow: the demo data must be rebuildable without the rest of the toolkit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import tempfile
import uuid
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20240521
N_SHARDS = 2
# CommonCrawl snapshots FineWeb2 draws from, with a representative WARC segment for each.
DUMPS = {
    "CC-MAIN-2023-06": ("2023-01-26", "1674764494826.87"),
    "CC-MAIN-2023-40": ("2023-09-21", "1695233505362.29"),
    "CC-MAIN-2024-10": ("2024-02-20", "1707947473347.0"),
    "CC-MAIN-2024-18": ("2024-04-12", "1712296817181.55"),
}
# FineWeb2's published column order and types (the deu_Latn split).
SCHEMA_FIELDS = [
    ("text", "string"),
    ("id", "string"),
    ("dump", "string"),
    ("url", "string"),
    ("date", "string"),
    ("file_path", "string"),
    ("language", "string"),
    ("language_score", "float64"),
    ("language_script", "string"),
    ("minhash_cluster_size", "int64"),
    ("top_langs", "string"),
]
LID_CODES = {"de": "deu", "en": "eng", "fr": "fra", "es": "spa", "it": "ita", "nl": "nld", "pl": "pol"}


def fineweb2_schema():  # noqa: ANN201 - pyarrow is imported lazily
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, kind)()) for name, kind in SCHEMA_FIELDS])


def read_sources(source_dir: Path) -> list[dict]:
    """All documents of demo/sources/*.jsonl, then demo/sources/real/*.jsonl, in file/line order; malformed lines
    are reported and skipped. Written documents get `origin: written`."""
    docs: list[dict] = []
    for path in [*sorted(source_dir.glob("*.jsonl")), *sorted((source_dir / "real").glob("*.jsonl"))]:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    doc = json.loads(line)
                except json.JSONDecodeError as exc:
                    print(f"warning: {path.name}:{lineno}: malformed JSON ({exc.msg}), skipped", file=sys.stderr)
                    continue
                if not isinstance(doc.get("text"), str) or not doc["text"].strip() or not doc.get("url"):
                    print(f"warning: {path.name}:{lineno}: no text or url, skipped", file=sys.stderr)
                    continue
                docs.append({"origin": "written", **doc})
    return docs


def _unit(key: str, salt: str) -> float:
    """A deterministic number in [0, 1) for `key`: stable across runs, machines and Python versions."""
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def fineweb2_row(doc: dict, doc_id: str) -> dict:
    """One FineWeb2-schema row. Non-German documents get the scores of a LID mistake that let them through."""
    u = lambda salt: _unit(doc_id, salt)  # noqa: E731
    dump = sorted(DUMPS)[int(u("dump") * len(DUMPS))]
    day, segment = DUMPS[dump]
    seconds = int(u("time") * 86400)
    date = f"{day}T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}Z"
    stamp = day.replace("-", "")
    hour = seconds // 3600
    warc = f"CC-MAIN-{stamp}{hour:02d}0000-{stamp}{min(hour + 3, 23):02d}0000-{int(u('warc') * 900):05d}"
    german = doc.get("lang", "de") == "de"
    score = round(0.85 + 0.15 * u("lid"), 4) if german else round(0.3 + 0.4 * u("lid"), 4)
    top_langs = {"deu_Latn_score": score}
    if not german:
        other = LID_CODES.get(doc.get("lang", ""), "eng")
        top_langs[f"{other}_Latn_score"] = round(min(1 - score, 0.3 + 0.3 * u("other")), 4)
    # Most documents are unique; a few belonged to a MinHash cluster FineWeb2 collapsed to one copy.
    cluster = 1 if u("dup") < 0.7 else 2 + int(u("cluster") * 20)
    return {
        "text": doc["text"],
        "id": doc_id,
        "dump": dump,
        "url": doc["url"],
        "date": date,
        "file_path": f"s3://commoncrawl/crawl-data/{dump}/segments/{segment}/warc/{warc}.warc.gz",
        "language": "deu",
        "language_score": score,
        "language_script": "Latn",
        "minhash_cluster_size": cluster,
        "top_langs": json.dumps(top_langs),
    }


def assign_ids(docs: list[dict]) -> list[str]:
    """uuid5 of the URL, as FineWeb2 ids are per-URL; a repeated URL with other text gets a text-based id."""
    ids, seen = [], set()
    for doc in docs:
        doc_id = f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, doc['url'])}>"
        if doc_id in seen:
            doc_id = f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, doc['url'] + chr(10) + doc['text'])}>"
        if doc_id in seen:
            print(f"warning: exact duplicate of {doc['url']} skipped", file=sys.stderr)
            doc_id = ""
        seen.add(doc_id)
        ids.append(doc_id)
    return ids


def _write_parquet(rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows, schema=fineweb2_schema())
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; these are shared data files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _write_jsonl(rows: list[dict], path: Path) -> None:
    _write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _gold(doc: dict, doc_id: str) -> dict:
    return {
        "id": doc_id,
        "medical": bool(doc.get("medical")),
        "subdomain": doc.get("subdomain", "unknown"),
        "lang": doc.get("lang", "de"),
        "origin": doc["origin"],
        "genre": doc.get("genre", doc.get("subdomain", "unknown")),
        "source": doc.get("source", "demo (written)"),
    }


def build(
    source_dir: Path, out_dir: Path, labels_path: Path, seed: int = SEED, real_test_path: Path | None = None
) -> list[dict]:
    """Write N_SHARDS parquet shards, the gold labels and the real test set; returns the gold label rows of the
    shards in shard order."""
    docs = read_sources(source_dir)
    pairs = [(d, i) for d, i in zip(docs, assign_ids(docs), strict=True) if i]
    test = [(d, i) for d, i in pairs if d.get("split") == "test"]
    pairs = [(d, i) for d, i in pairs if d.get("split") != "test"]
    if real_test_path is not None:
        _write_jsonl([{**_gold(d, i), "text": d["text"]} for d, i in test], real_test_path)
    random.Random(seed).shuffle(pairs)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.parquet"):
        stale.unlink()
    per_shard = -(-len(pairs) // N_SHARDS)
    for shard in range(N_SHARDS):
        chunk = pairs[shard * per_shard : (shard + 1) * per_shard]
        _write_parquet([fineweb2_row(d, i) for d, i in chunk], out_dir / f"{shard:03d}_00000.parquet")
    labels = [_gold(d, i) for d, i in pairs]
    _write_jsonl(labels, labels_path)
    return labels


def composition_markdown(labels: list[dict]) -> str:
    """The composition table for DATA_CARD.md: documents per subdomain, language and label."""
    counts = Counter((r["origin"], r["subdomain"], r["lang"], r["medical"]) for r in labels)
    lines = ["| origin | subdomain | lang | medical | documents |", "|---|---|---|---|---:|"]
    for (origin, sub, lang, med), n in sorted(
        counts.items(), key=lambda kv: (kv[0][0] != "written", not kv[0][3], kv[0][1:3])
    ):
        lines.append(f"| {origin} | {sub} | {lang} | {'yes' if med else 'no'} | {n} |")
    medical = sum(r["medical"] for r in labels)
    german = sum(r["lang"] == "de" for r in labels)
    real = sum(r["origin"] == "real" for r in labels)
    lines.append(f"| **total** | {real} real | {german} de | {medical} yes | **{len(labels)}** |")
    return "\n".join(lines)


def real_test_markdown(path: Path) -> str:
    """The real test set's composition: documents per genre, source and label."""
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    counts = Counter((r["genre"], r["source"], r["medical"]) for r in rows)
    lines = ["| genre | source | medical | documents |", "|---|---|---|---:|"]
    for (genre, source, med), n in sorted(counts.items(), key=lambda kv: (not kv[0][2], kv[0][0])):
        lines.append(f"| {genre} | {source} | {'yes' if med else 'no'} | {n} |")
    lines.append(f"| **total** | | {sum(r['medical'] for r in rows)} yes | **{len(rows)}** |")
    return "\n".join(lines)


def update_card(card: Path, table: str, marker: str = "composition") -> bool:
    """Replace the table between the card's markers; False when the card has no markers."""
    begin, end = f"<!-- {marker}:begin", f"<!-- {marker}:end -->"
    text = card.read_text(encoding="utf-8") if card.exists() else ""
    if begin not in text or end not in text:
        return False
    head, rest = text.split(begin, 1)
    marker_line, _, _ = rest.partition("\n")
    tail = rest.split(end, 1)[1]
    _write_text(card, f"{head}{begin}{marker_line}\n{table}\n{end}{tail}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sources", type=Path, default=HERE / "sources")
    parser.add_argument("--out", type=Path, default=HERE / "fineweb2-deu")
    parser.add_argument("--labels", type=Path, default=HERE / "gold_labels.jsonl")
    parser.add_argument("--real-test", type=Path, default=HERE / "real_test.jsonl")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--card", type=Path, default=HERE / "DATA_CARD.md", help="data card to update")
    args = parser.parse_args(argv)
    labels = build(args.sources, args.out, args.labels, args.seed, args.real_test)
    table, real_table = composition_markdown(labels), real_test_markdown(args.real_test)
    print(
        f"wrote {len(labels)} documents in {N_SHARDS} shards to {args.out} and labels to {args.labels}; "
        f"the real test set to {args.real_test}\n"
    )
    print(table, real_table, sep="\n\n")
    if update_card(args.card, table) and update_card(args.card, real_table, "real-test"):
        print(f"\nupdated the composition tables in {args.card}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
