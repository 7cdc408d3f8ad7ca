from __future__ import annotations

import json
from pathlib import Path

import pytest

from definemed.analyze.intrusion import (
    EnglishIntrusionDetector,
    Span,
    detect_english_spans,
    evaluate_detector,
    intrusion_rate,
)

CALIBRATION = Path(__file__).resolve().parents[2] / "demo" / "prompts" / "language_mixing_calibration.jsonl"

# Written for this test, not taken from the calibration set: loanwords, Latin, drugs, units, abbreviations.
CLEAN_GERMAN = [
    "Nach der PCI mit Implantation eines Stents folgt eine duale Plättchenhemmung für zwölf Monate.",
    "Das Screening auf Gestationsdiabetes erfolgt zwischen der 24. und 28. Schwangerschaftswoche.",
    "Eine gute Compliance hängt u. a. von der Anzahl der Tabletten pro Tag ab.",
    "Ein Follow-up mit Kontroll-MRT ist nach sechs Monaten geplant.",
    "Im Monitoring zeigten sich keine Rhythmusstörungen, das EKG war unauffällig.",
    "Die Therapie des Diabetes mellitus Typ 1 erfolgt mit Insulin.",
    "Der HbA1c-Zielwert liegt bei COPD-Patienten meist zwischen 6,5 und 7,5 Prozent.",
    "Cave: Metformin muss vor einer Kontrastmittelgabe ggf. pausiert werden.",
    "Ein Burnout ist keine eigenständige Diagnose, die Placebo-Gruppe zeigte eine ähnliche Ansprechrate.",
    "Eine orale Antikoagulation mit Dapagliflozin und Apixaban wurde begonnen.",
    "Die Arteria carotis interna ist zu 70 Prozent stenosiert, der Patient kam auf die Stroke Unit.",
    "Die Dosis beträgt 5 mg/kg KG alle 8 h i.v., bei Niereninsuffizienz entsprechend weniger.",
    "Im Rahmen des Case Managements wurde ein Pflegedienst organisiert.",
    "Die Symptome sind mild, die Laborwerte initial normal und die Prognose bei Morbus Crohn gut.",
    "Die Studie der European Society of Cardiology wurde im New England Journal of Medicine publiziert.",
    "Weitere Informationen finden Sie unter www.example.de/the-best-advice oder per E-Mail an info@praxis.de.",
]

HOMOGRAPHS_ALONE = [
    "Die Ärztin will die Dosis also morgen anpassen.",
    "Man sollte das in Ruhe besprechen.",
    "Er war still und hat fast nichts gegessen, die Patientin kam bald wieder.",
    "Das Ergebnis ist gut, so an sich kein Grund zur Sorge.",
]


def load_calibration() -> list[dict]:
    return [json.loads(line) for line in CALIBRATION.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("text", CLEAN_GERMAN)
def test_clean_medical_german_with_loanwords_has_no_spans(text: str) -> None:
    assert detect_english_spans(text) == []
    assert intrusion_rate(text) == 0.0


@pytest.mark.parametrize("text", HOMOGRAPHS_ALONE)
def test_german_english_homographs_do_not_fire_alone(text: str) -> None:
    assert detect_english_spans(text) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Die Dosis wird je nach Körpergewicht adjusted.", ["adjusted"]),
        ("Nehmen Sie das Medikament with plenty of water ein.", ["with plenty of water"]),
        ("Metformin ist in most cases das Mittel der Wahl.", ["in most cases"]),
        ("Er hat starke pain in der Brust, however ist das EKG normal.", ["pain", "however"]),
        ("If the pain gets worse, sollten Sie sofort anrufen.", ["If the pain gets worse"]),
    ],
)
def test_english_spans_have_correct_offsets(text: str, expected: list[str]) -> None:
    spans = detect_english_spans(text)
    assert [s.text for s in spans] == expected
    for span in spans:
        assert isinstance(span, Span)
        assert text[span.start : span.end] == span.text
        assert span.score >= EnglishIntrusionDetector().threshold


def test_intrusion_rate_counts_english_words() -> None:
    assert intrusion_rate("Die Dosis wird je nach Körpergewicht adjusted.") == pytest.approx(1 / 7)
    assert intrusion_rate("Bitte nehmen Sie die Tabletten twice a day.") == pytest.approx(3 / 8)


def test_empty_and_wordless_text() -> None:
    detector = EnglishIntrusionDetector()
    for text in ("", "   \n", "120/80 mmHg.", "!!!"):
        assert detector.detect(text) == []
    assert intrusion_rate("") == 0.0
    assert detector.detect_many([]) == []


def test_threshold_trades_single_words_for_clauses() -> None:
    text = "Das Risiko ist low, but it can also have other causes."
    assert [s.text for s in EnglishIntrusionDetector(threshold=1.0).detect(text)] == [
        "low",
        "but it can also have other causes",
    ]
    assert [s.text for s in EnglishIntrusionDetector(threshold=5.0).detect(text)] == [
        "but it can also have other causes"
    ]


def test_detect_many_matches_detect_and_lid_keeps_english_clauses() -> None:
    texts = [CLEAN_GERMAN[0], "Die Wunde heilt gut, there are no signs of infection.", ""]
    detector = EnglishIntrusionDetector()
    assert detector.detect_many(texts) == [detector.detect(t) for t in texts]
    with_lid = EnglishIntrusionDetector(confirm_with_lid=True).detect_many(texts)
    assert [[s.text for s in spans] for spans in with_lid] == [[], ["there are no signs of infection"], []]


def test_calibration_set_precision_and_recall() -> None:
    """Regression guard on demo/prompts/language_mixing_calibration.jsonl (threshold fixed, not refit here)."""
    scores = evaluate_detector(EnglishIntrusionDetector(), load_calibration())
    assert scores["sentence"]["precision"] >= 0.9
    assert scores["sentence"]["recall"] >= 0.9
    assert scores["span"]["precision"] >= 0.85
    assert scores["span"]["recall"] >= 0.85


def test_evaluate_detector_counts_overlaps() -> None:
    rows = [
        {"text": "Die Dosis wird adjusted.", "mixed": True, "english_spans": ["adjusted"]},
        {"text": "Die Dosis wird angepasst.", "mixed": False, "english_spans": []},
        {"text": "Ein Check-up in der Praxis.", "mixed": True, "english_spans": ["Check-up"]},
    ]
    scores = evaluate_detector(EnglishIntrusionDetector(), rows)
    assert scores["sentence"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3, abs=1e-4)}
    assert scores["span"]["recall"] == 0.5
