"""The demo's precomputed labels: every document covered, valid fields, and not a copy of the gold labels."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from definemed.corpus.labelling.schema import SUBDOMAINS

REPO = Path(__file__).resolve().parents[2]


def _rows(name: str) -> dict[str, dict]:
    lines = (REPO / "demo" / name).read_text(encoding="utf-8").splitlines()
    return {row["id"]: row for row in map(json.loads, lines)}


def test_precomputed_labels_cover_the_demo_and_differ_from_gold() -> None:
    gold, labels = _rows("gold_labels.jsonl"), _rows("precomputed_labels.jsonl")
    assert set(labels) == set(gold)
    for row in labels.values():
        assert isinstance(row["medical"], bool) and 0 <= row["p_medical"] <= 1 and row["subdomain"] in SUBDOMAINS
        assert row["medical"] == (row["p_medical"] > 0.5)
    disagree = sum(labels[i]["medical"] != gold[i]["medical"] for i in gold)
    assert 0.03 * len(gold) < disagree < 0.15 * len(gold)  # an imperfect labeller: the audit has something to find


def test_zero_shot_labeller_is_deterministic() -> None:
    spec = importlib.util.spec_from_file_location("label_zero_shot", REPO / "demo" / "label_zero_shot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    docs = [
        (
            "a",
            "Bei Fieber über 39 Grad und Atemnot sollten Sie sofort ärztlichen Rat einholen. Antibiotika "
            "helfen nur gegen bakterielle Infektionen.",
        ),
        ("b", "Der Gemeinderat stimmte dem Bau der neuen Schule zu. Am Wochenende findet ein Weinfest statt."),
    ]
    first, second = module.label(docs), module.label(docs)
    assert first == second
    assert [r["medical"] for r in first] == [True, False]
