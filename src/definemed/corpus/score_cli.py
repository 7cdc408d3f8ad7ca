"""`definemed classify` and `definemed audit`: any saved classifier folder applied to new text or to gold text.

    definemed classify MODEL_DIR INPUT [INPUT...] -o OUT.jsonl   # one line per document: id, score, medical
    definemed audit MODEL_DIR GOLD.jsonl                          # P/R/F1 [95 % CI], confusion, breakdowns

Inputs of `classify`: JSONL (`id`, `text`; `.jsonl`, `.json`, `.jsonl.gz`), parquet (`id`, `text` columns, as
FineWeb2) or plain text (`.txt` and anything else: the whole file is one document, id = its path; with
`--text-per-line`, each non-empty line is one, id = path:line). The family is read from the folder's meta.json, the
threshold from its report.json (the cut the corpus stage chose on held-out labels). Lines that are not a JSON
object with a string `text` are counted per file and reported (the first ones with file and line), never fatal.
The output is written to a temporary name and renamed when complete.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from definemed.artifacts import iter_json_lines

if TYPE_CHECKING:
    import numpy as np

BATCH = 256
SHOWN_BAD_LINES = 5


def add_commands(sub: Any, parents: list[Any] | None = None) -> None:
    p = sub.add_parser(
        "classify", parents=parents or [], help="score documents with a saved medical classifier (JSONL, parquet, text)"
    )
    p.add_argument("model_dir", help="classifier folder (<run>/corpus/classifier or classifier/compare/<kind>)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="JSONL (id, text), parquet or plain-text files")
    p.add_argument("-o", "--output", required=True, help="JSONL out: id, score, medical")
    p.add_argument("--threshold", type=float, help="override the saved threshold")
    p.add_argument("--text-per-line", action="store_true", help="plain text: one document per non-empty line")
    p.add_argument(
        "--window-chars",
        type=int,
        default=None,
        help="score longer documents in windows of about this many characters; the page gets its "
        "best window's score (a medical section on a long page)",
    )
    p.set_defaults(handler=cmd_classify)
    p = sub.add_parser(
        "audit",
        parents=parents or [],
        help="a saved classifier against gold JSONL (id, text, medical[, genre, source])",
    )
    p.add_argument("model_dir")
    p.add_argument("gold", help="JSONL with id, text, boolean medical; genre/source/subdomain/origin optional")
    p.add_argument("--threshold", type=float, help="override the saved threshold")
    p.add_argument("--rounds", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worst", type=int, default=10, help="misclassifications listed")
    p.add_argument("--json", dest="json_out", help="also write the full audit as JSON")
    p.set_defaults(handler=cmd_audit)


# --------------------------------------------------------------------------------------------------- inputs
class BadLines:
    def __init__(self) -> None:
        self.count = 0
        self.where: list[str] = []

    def add(self, where: str) -> None:
        self.count += 1
        if len(self.where) < SHOWN_BAD_LINES:
            self.where.append(where)


def _jsonl_docs(path: Path, bad: BadLines) -> Iterator[tuple[str, str]]:
    for lineno, row in iter_json_lines(path):
        if row is None:
            bad.add(f"{path}:{lineno}: not JSON")
        elif not isinstance(row, dict) or not isinstance(row.get("text"), str):
            bad.add(f"{path}:{lineno}: no string 'text'")
        else:
            yield str(row.get("id", f"{path}:{lineno}")), row["text"]


def _parquet_docs(path: Path, bad: BadLines) -> Iterator[tuple[str, str]]:
    import pyarrow.parquet as pq

    from definemed.errors import DefinemedError

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a file that is not parquet
        raise DefinemedError(f"{path}: not a readable parquet file ({type(exc).__name__}: {exc})") from None
    if "text" not in pf.schema_arrow.names:
        raise DefinemedError(f"{path}: no 'text' column (columns: {pf.schema_arrow.names})")
    columns = ["text", *(["id"] if "id" in pf.schema_arrow.names else [])]
    row_no = 0
    for batch in pf.iter_batches(columns=columns, batch_size=BATCH):
        data = batch.to_pydict()
        for i, text in enumerate(data["text"]):
            row_no += 1
            if not isinstance(text, str):
                bad.add(f"{path}: row {row_no}: null text")
                continue
            yield str(data["id"][i]) if "id" in data else f"{path}:{row_no}", text


def _text_docs(path: Path, per_line: bool) -> Iterator[tuple[str, str]]:
    text = path.read_text(encoding="utf-8", errors="replace")
    if not per_line:
        yield str(path), text
        return
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield f"{path}:{lineno}", line


def read_documents(path: Path, bad: BadLines, per_line: bool = False) -> Iterator[tuple[str, str]]:
    from definemed.errors import DefinemedError

    if not path.is_file():
        raise DefinemedError(f"{path}: no such input file")
    name = path.name.lower()
    if name.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz")):
        return _jsonl_docs(path, bad)
    if name.endswith(".parquet"):
        return _parquet_docs(path, bad)
    return _text_docs(path, per_line)


def _batches(docs: Iterator[tuple[str, str]]) -> Iterator[list[tuple[str, str]]]:
    batch: list[tuple[str, str]] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


# ---------------------------------------------------------------------------------------------- scoring
def windows(text: str, chars: int) -> list[str]:
    """`text` cut at whitespace into pieces of about `chars` characters (one piece when it is short)."""
    if len(text) <= chars:
        return [text]
    words, out, buf, size = text.split(), [], [], 0
    for w in words:
        buf.append(w)
        size += len(w) + 1
        if size >= chars:
            out.append(" ".join(buf))
            buf, size = [], 0
    if buf:
        out.append(" ".join(buf))
    return out


def score(model: Any, texts: list[str], window_chars: int | None = None) -> np.ndarray:
    """p(medical) per text; with `window_chars`, the highest score of a long text's windows."""
    import numpy as np

    if not window_chars:
        return np.asarray(model.predict_proba(texts), dtype=np.float64)
    pieces = [windows(t, window_chars) for t in texts]
    flat = np.asarray(model.predict_proba([p for ps in pieces for p in ps]), dtype=np.float64)
    bounds = np.cumsum([0, *(len(ps) for ps in pieces)])
    return np.array([flat[a:b].max() for a, b in zip(bounds[:-1], bounds[1:], strict=True)])


def cmd_classify(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from definemed.corpus.gold_audit import load_classifier

    model, threshold, meta = load_classifier(args.model_dir)
    threshold = threshold if args.threshold is None else args.threshold
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    bad, n, medical = BadLines(), 0, 0
    try:
        with tmp.open("w", encoding="utf-8") as fh, tqdm(unit="doc", desc="classify", file=sys.stderr) as bar:
            for path in map(Path, args.inputs):
                for batch in _batches(read_documents(path, bad, args.text_per_line)):
                    scores = score(model, [t for _, t in batch], args.window_chars)
                    for (doc_id, _), s in zip(batch, scores, strict=True):
                        keep = bool(s >= threshold)
                        medical += keep
                        fh.write(
                            json.dumps({"id": doc_id, "score": round(float(s), 6), "medical": keep}, ensure_ascii=False)
                            + "\n"
                        )
                    n += len(batch)
                    bar.update(len(batch))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    print(
        f"{meta['kind']} classifier at threshold {threshold:g}: {n} documents scored, {medical} medical "
        f"({medical / n:.1%})"
        if n
        else f"{meta['kind']} classifier: no documents scored",
        file=sys.stderr,
    )
    if bad.count:
        print(f"{bad.count} bad input lines skipped; first: " + "; ".join(bad.where), file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------------ audit
def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def format_audit(audit: dict[str, Any], kind: str, gold: str, bad_lines: int) -> str:
    ci = audit["intervals_95"]
    lines = [
        f"{kind} classifier on {gold}: {audit['n']} documents ({audit['support']['medical']} medical), "
        f"threshold {audit['threshold']:g}, {bad_lines} bad lines skipped",
        "",
    ]
    for m in ("precision", "recall", "f1", "accuracy"):
        lo, hi = ci.get(m, [None, None])
        lines.append(f"  {m:<10} {_fmt(audit[m])}  [95% CI {_fmt(lo)}, {_fmt(hi)}]")
    c = audit["confusion"]
    lines += [
        "",
        "confusion (rows gold, columns predicted)",
        f"  {'':<12}{'medical':>9}{'other':>9}",
        f"  {'medical':<12}{c['tp']:>9}{c['fn']:>9}",
        f"  {'other':<12}{c['fp']:>9}{c['tn']:>9}",
        "",
        f"false-positive rate {_fmt(audit['false_positive_rate'])}; on technical text "
        f"{_fmt(audit['technical_false_positive_rate'])} ({audit['technical_docs']} docs); recall on medical "
        f"documents of <= {audit['short_chars']} chars {_fmt(audit['short_medical_recall'])} "
        f"({audit['short_medical_docs']} docs)",
    ]
    for name, table in audit["breakdown"].items():
        lines += ["", f"by {name}:", f"  {'value':<34}{'n':>5}{'medical':>8}{'recall':>8}{'FPR':>8}{'acc':>8}"]
        lines += [
            f"  {value[:33]:<34}{r['n']:>5}{r['medical']:>8}{_fmt(r['recall']):>8}"
            f"{_fmt(r['false_positive_rate']):>8}{_fmt(r['accuracy']):>8}"
            for value, r in table.items()
        ]
    if audit["worst"]:
        lines += ["", "worst misclassifications (most confident first):"]
        lines += [
            f"  {'FN' if w['gold'] else 'FP'} {w['score']:.3f} {w['id']} [{w.get('genre', '-')}] {w['text'][:100]}"
            for w in audit["worst"]
        ]
    return "\n".join(lines)


def cmd_audit(args: argparse.Namespace) -> int:
    from definemed.artifacts import write_json
    from definemed.corpus.gold_audit import audit_scores, load_classifier, read_gold
    from definemed.errors import DefinemedError

    model, threshold, meta = load_classifier(args.model_dir)
    threshold = threshold if args.threshold is None else args.threshold
    if not Path(args.gold).is_file():
        raise DefinemedError(f"{args.gold}: no such gold file")
    gold = read_gold(args.gold)
    if not gold.ids:
        raise DefinemedError(
            f"{args.gold}: no valid gold line (each needs a string 'text' and a boolean "
            f"'medical'; {len(gold.bad_lines)} bad lines)"
        )
    if hasattr(model, "use_cache"):
        model.use_cache = False
    audit = audit_scores(gold, score(model, gold.texts), threshold, args.rounds, args.seed, args.worst)
    audit["bad_lines"] = {"count": len(gold.bad_lines), "first": gold.bad_lines[:SHOWN_BAD_LINES]}
    print(format_audit(audit, meta["kind"], args.gold, len(gold.bad_lines)))
    if gold.bad_lines:
        print(
            f"\n{len(gold.bad_lines)} bad gold lines skipped (lines {gold.bad_lines[:SHOWN_BAD_LINES]})",
            file=sys.stderr,
        )
    if args.json_out:
        write_json(Path(args.json_out), audit)
    return 0
