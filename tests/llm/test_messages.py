"""Finding 7 of issue 13: messages that said the wrong thing. (The report's whole disqualification reason, the
chosen labeller's own time and the judge failures by cause are checked in tests/report with typed metrics.)"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from definemed.corpus.config import FileLabels
from definemed.corpus.training import load_split


def test_no_valid_labels_is_not_blamed_on_the_holdout_fraction(tmp_path: Path) -> None:
    survivors = tmp_path / "survivors"
    survivors.mkdir()
    with gzip.open(survivors / "part.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"id": f"d{i}", "text": "Text"}) + "\n" for i in range(5))
    labels = tmp_path / "labels.jsonl"
    labels.write_text("")
    with pytest.raises(RuntimeError) as err:
        load_split(survivors, FileLabels(path=labels), 0.2, 0)
    assert "holdout_fraction" not in str(err.value) and "no document" in str(err.value)
    assert "labelling_report.json" in str(err.value)


def test_verbosity_is_measured_on_untruncated_answers_only() -> None:
    from definemed.analyze.stage import summarize

    def row(model: str, words: int, cut: bool) -> dict:
        return {
            "model": model,
            "words": words,
            "hit_limit": cut,
            "reference_words": 0,
            "line_pass": True,
            "foreign_line_share": 0.0,
            "tokens": words,
            "empty": False,
            "repetition": 0.0,
        }

    rows = [row("a", 128, True), row("a", 20, False), row("b", 128, True), row("b", 40, False)]
    summary = summarize(rows, "a")
    assert summary["b"]["words_mean_untruncated"] == 40 and summary["b"]["n_untruncated"] == 1
    assert summary["b"]["length_ratio_untruncated"] == 2.0  # all answers: 84 / 74, which measures the budget
