"""Write demo/sources/real/*.jsonl: real German documents (not written by this project) with gold labels, genre,
source, licence and a document-level train/test split.

    python demo/prepare_real.py --realdata ../shared/realdata --fortunes /tmp/x/usr/share/games/fortunes/de

Inputs: the shared real-text files (GraSCCo clinical letters, German man pages, Debian reference chunks; see
demo/sources/real/README.md for licences) and the recipe and anecdote files of the Debian package `fortunes-de`
(GPL-2+; `apt-get download fortunes-de && dpkg -x fortunes-de_*.deb x`). Each clinical letter also gives its
paragraphs (consecutive lines joined until they reach PARAGRAPH_MIN_CHARS): short clinical text, as on a web page.

The split is by document group (a letter and all its paragraphs are one group): a hash of the group decides,
so all paragraphs of one letter land on the same side. `split: test` documents never enter the demo shards; they
form `demo/real_test.jsonl`, which no training or threshold choice sees (demo/build_corpus.py).
Deterministic: same inputs, same files. Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARAGRAPH_MIN_CHARS = 150
PARAGRAPH_MAX_CHARS = 600
PARAGRAPHS_PER_LETTER = 6  # evenly spaced through the letter: enough short text without letters dominating
# Share of each source's groups that goes to the real test set.
TEST_SHARE = {"grascco": 0.5, "manpages-de": 0.4, "debian-reference-de": 0.4, "fortunes-de": 0.4}
RECIPE_FILES = ["hauptgericht", "huhn", "beilagen", "kuchen", "brot", "suppe", "plaetzchen", "vorspeise", "kalt"]


def _unit(key: str) -> float:
    return int.from_bytes(hashlib.sha256(f"real-split\x00{key}".encode()).digest()[:8], "big") / 2**64


def split_of(source: str, group: str) -> str:
    return "test" if _unit(f"{source}\x00{group}") < TEST_SHARE[source] else "train"


def paragraphs(text: str) -> list[str]:
    """Consecutive lines joined until a chunk reaches PARAGRAPH_MIN_CHARS; chunks over the maximum and a short
    tail are left out (a paragraph of a web page, not a letter's header line)."""
    out, buf = [], []
    for line in text.splitlines():
        if line.strip():
            buf.append(line.strip())
        if sum(len(b) + 1 for b in buf) >= PARAGRAPH_MIN_CHARS:
            chunk = "\n".join(buf)
            if len(chunk) <= PARAGRAPH_MAX_CHARS:
                out.append(chunk)
            buf = []
    return out


def _spread(items: list[str], n: int) -> list[tuple[int, str]]:
    """At most n (index, item) pairs, evenly spaced from first to last."""
    if len(items) <= n:
        return list(enumerate(items))
    picks = sorted({round(i * (len(items) - 1) / (n - 1)) for i in range(n)})
    return [(k, items[k]) for k in picks]


def _row(
    text: str,
    url: str,
    medical: bool,
    subdomain: str,
    genre: str,
    source: str,
    licence: str,
    group: str,
    split_source: str,
    attribution: str | None = None,
) -> dict:
    row = {
        "text": text,
        "url": url,
        "medical": medical,
        "subdomain": subdomain,
        "lang": "de",
        "origin": "real",
        "genre": genre,
        "source": source,
        "license": licence,
        "group": group,
        "split": split_of(split_source, group),
    }
    if attribution:
        row["attribution"] = attribution
    return row


def shared_rows(realdata: Path) -> dict[str, list[dict]]:
    read = lambda name: [json.loads(line) for line in (realdata / name).open(encoding="utf-8")]  # noqa: E731
    letters, letter_paras = [], []
    for doc in read("grascco_letters.jsonl"):
        url = f"https://zenodo.org/records/6539131#{doc['id']}"
        common = {
            "medical": True,
            "subdomain": "clinical",
            "source": "GraSCCo",
            "licence": doc["license"],
            "group": doc["id"],
            "split_source": "grascco",
            "attribution": doc["attribution"],
        }
        letters.append(_row(doc["text"], url, genre="clinical letter", **common))
        letter_paras += [
            _row(p, f"{url}-p{k}", genre="clinical paragraph", **common)
            for k, p in _spread(paragraphs(doc["text"]), PARAGRAPHS_PER_LETTER)
        ]
    man = [
        _row(
            d["text"],
            f"https://packages.debian.org/bookworm/manpages-de#{d['id']}",
            False,
            "technical",
            "man page",
            "manpages-de (Debian)",
            d["license"],
            d["id"],
            "manpages-de",
        )
        for d in read("manpages_de.jsonl")
    ]
    ref = [
        _row(
            d["text"],
            f"https://packages.debian.org/bookworm/debian-reference-de#{d['id']}",
            False,
            "technical",
            "technical manual",
            "debian-reference-de (Debian)",
            d["license"],
            d["id"],
            "debian-reference-de",
        )
        for d in read("debian_reference_de.jsonl")
    ]
    return {
        "grascco_letters": letters,
        "grascco_paragraphs": letter_paras,
        "manpages_de": man,
        "debian_reference_de": ref,
    }


def fortune_entries(path: Path) -> list[str]:
    """Entries of a fortune file (separated by lines holding only '%'), indentation and blank edges removed."""
    entries = path.read_text(encoding="utf-8").split("\n%\n")
    cleaned = ["\n".join(line.strip() for line in e.strip("\n%").splitlines()).strip() for e in entries]
    return [e for e in cleaned if len(e) >= 200]


def fortunes_rows(fortunes: Path) -> dict[str, list[dict]]:
    url = "https://packages.debian.org/bookworm/fortunes-de#{}-{}"
    recipes = [
        _row(
            text,
            url.format(name, k),
            False,
            "recipes",
            "recipe",
            "fortunes-de (Debian)",
            "GPL-2+",
            f"{name}-{k}",
            "fortunes-de",
        )
        for name in RECIPE_FILES
        for k, text in enumerate(fortune_entries(fortunes / f"{name}.u8"))
    ]
    anecdotes = [
        _row(
            text,
            url.format("anekdoten", k),
            False,
            "anecdotes",
            "anecdote",
            "fortunes-de (Debian)",
            "GPL-2+",
            f"anekdoten-{k}",
            "fortunes-de",
        )
        for k, text in enumerate(fortune_entries(fortunes / "anekdoten.u8"))
    ]
    return {"fortunes_de_recipes": recipes, "fortunes_de_anecdotes": anecdotes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--realdata", type=Path, required=True, help="folder with the shared real-text JSONL files")
    parser.add_argument("--fortunes", type=Path, required=True, help="fortunes-de's usr/share/games/fortunes/de")
    parser.add_argument("--out", type=Path, default=HERE / "sources" / "real")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in {**shared_rows(args.realdata), **fortunes_rows(args.fortunes)}.items():
        with (args.out / f"{name}.jsonl").open("w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        test = sum(r["split"] == "test" for r in rows)
        print(f"{name}: {len(rows)} documents ({test} test, {len(rows) - test} train)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
