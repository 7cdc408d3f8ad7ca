"""Finding 7 of issue 13: messages that said the wrong thing."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from definemed.stage import StageContext
from definemed.config import DefinemedConfig
from definemed.corpus.config import FileLabels
from definemed.corpus.training import load_split
from definemed.report.stage import run
from tests.helpers import minimal_config_dict
from tests.report.test_report_corpus import LABELLING
from tests.report.test_report_stage import MODELS, _fake_upstream

LONG_REASON = ("labelling failed for 9 of 32 documents (28.1% > max_failure_share 5.0%): ok=23, timeout=9. "
               "the 9 failed requests are not cached and are asked again on a rerun.")


def test_report_gives_the_whole_disqualification_reason_and_the_chosen_labellers_own_time(tmp_path: Path) -> None:
    data = minimal_config_dict(tmp_path)
    data["evaluate"] = {"models": MODELS, "baseline": "instruct"}
    cfg = DefinemedConfig.model_validate(data)
    run_dir = tmp_path / "run"
    upstream = _fake_upstream(run_dir)
    labelling = LABELLING | {"disqualified": {"flaky-api": LONG_REASON}, "seconds": 43.0, "sample_s": 12.5}
    upstream["corpus"]["metrics"] |= {"labelling": labelling}
    ctx = StageContext(run_dir=run_dir, stage="report", upstream=upstream)
    ctx.stage_dir.mkdir(parents=True)
    run(cfg, ctx)
    md = (ctx.stage_dir / "report.md").read_text()
    assert LONG_REASON.replace(">", "&gt;") in md  # the whole reason (report.md escapes HTML), not 80 characters
    assert "in 12.5 s (audits before it: 30.5 s)" in md  # the audits' time is not credited to the chosen one


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


def test_report_shows_judge_failures_by_cause(tmp_path: Path) -> None:
    from definemed.report.sections import _judge_failures

    text = _judge_failures({"n_judgments": 48, "invalid_by_cause": {"timeout": 41, "unparsed": 7},
                            "endpoint": {"requests": 96, "retries": {"timeout": 48}}})
    assert "invalid verdicts by cause: timeout 41, unparsed 7" in text and "96 requests for 48 judgments" in text
    assert "retried: timeout 48" in text


def test_verbosity_is_measured_on_untruncated_answers_only() -> None:
    from definemed.analyze.stage import summarize

    def row(model: str, words: int, cut: bool) -> dict:
        return {"model": model, "words": words, "hit_limit": cut, "reference_words": 0, "line_pass": True,
                "foreign_line_share": 0.0, "tokens": words, "empty": False, "repetition": 0.0}

    rows = [row("a", 128, True), row("a", 20, False), row("b", 128, True), row("b", 40, False)]
    summary = summarize(rows, "a")
    assert summary["b"]["words_mean_untruncated"] == 40 and summary["b"]["n_untruncated"] == 1
    assert summary["b"]["length_ratio_untruncated"] == 2.0  # all answers: 84 / 74, which measures the budget
