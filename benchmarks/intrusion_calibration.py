"""Calibrate and measure the English-intrusion detector (definemed.analyze.intrusion).

Prints, for demo/prompts/language_mixing_calibration.jsonl (240 German sentences, 120 with English spans):
  * the span threshold chosen on the even-numbered ids only (best sentence-level F1, middle of the best plateau),
  * sentence- and span-level precision/recall/F1 on the tuning half, the held-out odd half and the full set,
  * the baseline the Language Confusion Benchmark would give: fastText LID on the whole sentence,
  * throughput of `detect_many` on 1,000 synthetic ~200-word answers (concatenated calibration sentences) and on
    the German demo documents cut into 200-word answers, cold (fresh caches) and warm, against fastText
    line-level LID on the same answers,
  * how many clean German reference answers (demo/prompts/open_prompts_de.jsonl) get a span (false alarms).

Run: .venv/bin/python benchmarks/intrusion_calibration.py
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from definemed.analyze.intrusion import EnglishIntrusionDetector, evaluate_detector, word_evidence
from definemed.analyze.langid import identify

ROOT = Path(__file__).resolve().parents[1]
CALIBRATION = ROOT / "demo" / "prompts" / "language_mixing_calibration.jsonl"
REFERENCES = ROOT / "demo" / "prompts" / "open_prompts_de.jsonl"
# Summed log10 odds, from the default word_threshold up: below it every span already passes (it has an anchor).
GRID = [round(0.8 + 0.2 * i, 2) for i in range(12)]


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def split_halves(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Even ids tune, odd ids are held out (ids look like 'mix-017')."""
    even = [r for r in rows if int(r["id"].rsplit("-", 1)[1]) % 2 == 0]
    odd = [r for r in rows if int(r["id"].rsplit("-", 1)[1]) % 2 == 1]
    return even, odd


def choose_threshold(rows: list[dict]) -> float:
    """Middle of the plateau of thresholds with the best sentence-level F1 on `rows`."""
    f1 = {t: evaluate_detector(EnglishIntrusionDetector(threshold=t), rows)["sentence"]["f1"] for t in GRID}
    best = max(f1.values())
    plateau = [t for t in GRID if f1[t] == best]
    print("sentence F1 on the tuning half by threshold:", " ".join(f"{t}:{f1[t]:.3f}" for t in GRID))
    return plateau[len(plateau) // 2]


def lid_baseline(rows: list[dict]) -> dict[str, float]:
    """Sentence-level scores of whole-sentence fastText LID (mixed = top language is not German)."""
    langs = identify([r["text"] for r in rows])
    tp = sum(lang != "de" and r["mixed"] for (lang, _), r in zip(langs, rows, strict=True))
    pred = sum(lang != "de" for lang, _ in langs)
    gold = sum(bool(r["mixed"]) for r in rows)
    p, rc = (tp / pred if pred else 1.0), tp / gold
    return {
        "precision": round(p, 4),
        "recall": round(rc, 4),
        "f1": round(2 * p * rc / (p + rc) if p + rc else 0, 4),
    }


def print_scores(name: str, detector: EnglishIntrusionDetector, rows: list[dict]) -> None:
    m = evaluate_detector(detector, rows)
    s, sp, base = m["sentence"], m["span"], lid_baseline(rows)
    print(
        f"{name:<22} n={len(rows):<4} sentence P/R/F1 {s['precision']:.3f}/{s['recall']:.3f}/{s['f1']:.3f}"
        f"   span P/R/F1 {sp['precision']:.3f}/{sp['recall']:.3f}/{sp['f1']:.3f}"
        f"   | fastText-sentence baseline F1 {base['f1']:.3f} (R {base['recall']:.3f})"
    )


def synthetic_answers(rows: list[dict], n: int = 1000, words: int = 200, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    answers = []
    for _ in range(n):
        parts: list[str] = []
        while sum(len(p.split()) for p in parts) < words:
            parts.append(rng.choice(rows)["text"])
        answers.append(" ".join(parts))
    return answers


def throughput(threshold: float, answers: list[str]) -> None:
    n_words = sum(len(a.split()) for a in answers)
    word_evidence.cache_clear()
    detector = EnglishIntrusionDetector(threshold=threshold)
    timings = []
    for _ in range(2):  # cold: empty word caches (frequency lists already loaded); warm: every word seen
        t0 = time.perf_counter()
        detector.detect_many(answers)
        timings.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    identify([line for a in answers for line in a.splitlines() if line.strip()])
    lid = time.perf_counter() - t0
    for name, secs in (("cold", timings[0]), ("warm", timings[1])):
        print(
            f"detect_many {name}: {len(answers) / secs:,.0f} answers/s ({n_words / secs:,.0f} words/s, "
            f"{n_words / len(answers):.0f} words/answer); fastText line LID: {len(answers) / lid:,.0f} answers/s "
            f"(ratio {lid / secs:.2f})"
        )


def unseen_vocabulary_answers(words_per_answer: int = 200) -> list[str]:
    """~200-word chunks of the German demo documents: a larger vocabulary, so the cold pass pays for look-ups."""
    words: list[str] = []
    for path in sorted((ROOT / "demo" / "sources").glob("*.jsonl")):
        words += [w for row in read_rows(path) if row.get("lang") == "de" for w in row["text"].split()]
    step = words_per_answer
    return [" ".join(words[i : i + step]) for i in range(0, len(words) - step, step)]


def false_alarms(detector: EnglishIntrusionDetector) -> None:
    refs = [r["reference"] for r in read_rows(REFERENCES) if r.get("reference")]
    found = detector.detect_many(refs)
    spans = [s.text for spans in found for s in spans]
    print(f"clean German reference answers with a span: {sum(map(bool, found))}/{len(refs)} {spans}")


def main() -> None:
    rows = read_rows(CALIBRATION)
    even, odd = split_halves(rows)
    threshold = choose_threshold(even)
    print(f"threshold chosen on even ids: {threshold} (default {EnglishIntrusionDetector().threshold})")
    detector = EnglishIntrusionDetector(threshold=threshold)
    print_scores("tuning half (even ids)", detector, even)
    print_scores("held-out (odd ids)", detector, odd)
    print_scores("full set", detector, rows)
    print_scores("full set + LID veto", EnglishIntrusionDetector(threshold=threshold, confirm_with_lid=True), rows)
    false_alarms(detector)
    print("-- 1,000 synthetic answers from calibration sentences")
    throughput(threshold, synthetic_answers(rows))
    print("-- German demo documents cut into 200-word answers (unseen vocabulary)")
    throughput(threshold, unseen_vocabulary_answers())


if __name__ == "__main__":
    main()
