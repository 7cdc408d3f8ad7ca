from __future__ import annotations

from pathlib import Path

from tests.helpers import minimal_config_dict

from definemed.analyze.config import AnalyzeConfig
from definemed.analyze.contract import bind
from definemed.analyze.langid import identify, split_lines
from definemed.analyze.metrics import AnalyzeMetrics
from definemed.analyze.stage import analyze_answers, repetition_share, run, summarize
from definemed.artifacts import read_json, read_jsonl, write_jsonl
from definemed.config import DefinemedConfig
from definemed.stage import StageContext

GERMAN = "Bei anhaltendem Fieber sollten Sie unbedingt einen Arzt aufsuchen und viel trinken."
ENGLISH = "It is important to see a doctor if the fever lasts longer than three days."


def test_identify_and_split_lines() -> None:
    langs = identify([GERMAN, ENGLISH])
    assert [lang for lang, _ in langs] == ["de", "en"]
    assert all(0 < score <= 1 for _, score in langs)
    assert split_lines("kurz\n\n" + GERMAN + "\n  ", min_tokens=5) == [(GERMAN, len(GERMAN.split()))]


def test_line_level_mixing_and_lengths() -> None:
    rows = [
        {"prompt_id": "p1", "model": "a", "answer": GERMAN + "\n" + GERMAN, "reference": GERMAN, "n_tokens": 30},
        {
            "prompt_id": "p1",
            "model": "b",
            "answer": GERMAN + "\n" + ENGLISH,
            "reference": GERMAN,
            "n_tokens": 40,
            "hit_limit": True,
        },
        {"prompt_id": "p2", "model": "b", "answer": "", "reference": GERMAN, "n_tokens": 0},
    ]
    per = analyze_answers(rows, AnalyzeConfig())
    assert [r["line_pass"] for r in per] == [True, False, True]
    assert per[1]["foreign_line_share"] == 0.5 and per[1]["foreign_lines"][0]["lang"] == "en"
    assert per[2]["empty"] and per[2]["lines_checked"] == 0
    summary = summarize(per, reference_model="a")
    assert summary["b"]["mixing_rate"] == 0.5
    assert summary["b"]["truncation_rate"] == 0.5 and summary["b"]["empty_rate"] == 0.5
    words_b = (len(GERMAN.split()) + len(ENGLISH.split())) / 2
    assert summary["b"]["words_mean"] == round(words_b, 4)
    assert summary["b"]["length_ratio_to_reference_model"] == round(words_b / (2 * len(GERMAN.split())), 4)
    assert summary["a"]["length_ratio_to_reference_answers"] == 2.0


def test_repetition_share() -> None:
    assert repetition_share("eins zwei drei vier fünf sechs") == 0.0
    looping = " ".join(["der Patient soll trinken"] * 10)
    assert repetition_share(looping) > 0.8


def test_stage_writes_outputs_and_examples(tmp_path: Path) -> None:
    data = minimal_config_dict(tmp_path)
    data["analyze"] = {"reference_model": "b"}
    cfg = DefinemedConfig.model_validate(data)
    answers = tmp_path / "run" / "evaluate" / "answers"
    write_jsonl(
        answers / "a.jsonl",
        [{"prompt_id": "p1", "model": "a", "answer": GERMAN + "\n" + ENGLISH, "reference": GERMAN, "n_tokens": 10}],
    )
    write_jsonl(
        answers / "b.jsonl",
        [{"prompt_id": "p1", "model": "b", "answer": GERMAN, "reference": GERMAN, "n_tokens": 5, "hit_limit": True}],
    )
    ctx = StageContext(
        run_dir=tmp_path / "run",
        stage="analyze",
        upstream={"evaluate": {"outputs": {"answers": "answers"}, "metrics": {}}},
    )
    ctx.stage_dir.mkdir(parents=True)
    result = run(bind(cfg), ctx)
    m = result.metrics
    assert isinstance(m, AnalyzeMetrics) and m.n_answers == 2 and m.expected_language == "de"
    assert m.models["a"].mixing_rate == 1.0 and m.models["b"].mixing_rate == 0.0
    ratio = (len(GERMAN.split()) + len(ENGLISH.split())) / len(GERMAN.split())
    assert m.models["a"].length_ratio_to_reference_model == round(ratio, 4)
    # b's only answer was cut: no untruncated length to compare against
    assert m.models["b"].words_mean_untruncated is None and m.models["a"].length_ratio_untruncated is None
    assert AnalyzeMetrics.model_validate(m.model_dump(mode="json")) == m  # what the manifest stores reads back
    assert len(read_jsonl(ctx.stage_dir / "per_answer.jsonl")) == 2
    examples = read_json(ctx.stage_dir / "examples.json")
    assert examples["language_mixing"]["a"][0]["foreign_lines"][0]["line"] == ENGLISH


def test_word_level_mixing_inside_german_lines_only() -> None:
    mixed = "Der Patient sollte die Tabletten regularly einnehmen, und das ist very important für die Therapie."
    clean = "Bei Diabetes mellitus ist die Compliance und ein regelmäßiges Screening wichtig für den Verlauf."
    rows = [
        {"prompt_id": "p", "model": "a", "answer": mixed},
        {"prompt_id": "p", "model": "b", "answer": clean},
        {"prompt_id": "p", "model": "c", "answer": ENGLISH},
    ]
    per = analyze_answers(rows, AnalyzeConfig())
    assert per[0]["line_pass"] and {"regularly", "very important"} <= set(per[0]["english_spans"])
    assert per[0]["english_word_share"] == round(3 / len(mixed.split()), 4)
    assert per[1]["english_spans"] == [] and per[1]["english_word_share"] == 0.0
    # an all-English line is counted once, at line level, not again word by word
    assert not per[2]["line_pass"] and per[2]["english_spans"] == []
    summary = summarize(per, None)
    assert summary["a"]["word_mixing_rate"] == 1.0 and summary["b"]["word_mixing_rate"] == 0.0
    off = analyze_answers(rows, AnalyzeConfig(word_level=False))
    assert "english_spans" not in off[0]


def _lcb_line_pass(answer: str, expected: str, threshold: float) -> bool:
    """The Language Confusion Benchmark's line-level definition, recomputed independently: split on newlines,
    keep lines of >= 5 whitespace tokens, identify each with fastText lid.176 (top-1), and call the response
    confused if any kept line's top language differs from the expected one with probability above 0.3."""
    import fasttext

    from definemed.analyze.langid import bundled_model_path

    model = fasttext.load_model(str(bundled_model_path()))
    for raw in answer.split("\n"):
        line = raw.strip()
        if len(line.split()) < 5:
            continue
        labels, probs = model.predict(line, k=1)
        if labels[0] != f"__label__{expected}" and probs[0] > threshold:
            return False
    return True


def test_line_level_pass_rate_matches_lcb_definition() -> None:
    french = "Il est important de consulter un médecin si la fièvre persiste plus de trois jours."
    answers = [
        GERMAN,
        GERMAN + "\n" + ENGLISH,
        "kurz\n" + GERMAN,
        french + "\n" + GERMAN,
        "",
        "Ja.\nNein, danke.",
        ENGLISH + "\n" + ENGLISH,
        GERMAN + "\n\n" + GERMAN + "\nOK thanks",
    ]
    rows = [{"prompt_id": str(i), "model": "m", "answer": a} for i, a in enumerate(answers)]
    per = analyze_answers(rows, AnalyzeConfig())
    expected = [_lcb_line_pass(a, "de", 0.3) for a in answers]
    assert [r["line_pass"] for r in per] == expected
    assert expected.count(False) == 3  # the English, French and all-English answers
    summary = summarize(per, None)
    assert summary["m"]["line_pass_rate"] == round(sum(expected) / len(expected), 4)
