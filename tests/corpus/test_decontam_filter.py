"""Benchmark decontamination: which documents the n-gram filter drops, and which benchmark texts it indexes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from datatrove.data import Document

from definemed.config import DefinemedConfig
from definemed.corpus.contract import CorpusInputs, bind
from definemed.corpus.decontam import (
    REASON,
    BenchmarkDecontaminationFilter,
    NgramIndex,
    benchmark_items,
    normalize_words,
    write_benchmark_items,
)

LONG_QUESTION = (
    "Ein 54-jähriger Patient stellt sich mit seit 40 Minuten bestehendem retrosternalem Druckgefühl, "
    "Ausstrahlung in den linken Arm und Kaltschweißigkeit vor. Was ist die wahrscheinlichste Diagnose?"
)
SHORT_QUESTION = "Welches Enzym schreibt bei Retroviren RNA in DNA um?"  # 9 words: matched as a whole
TINY_QUESTION = "Wie viele Halswirbel gibt es?"  # 5 words: too generic to match
REFERENCE = (
    "Fieber und Halsschmerzen sind meist Zeichen eines harmlosen Virusinfekts, der nach einigen Tagen von "
    "selbst abklingt. Ruhe, ausreichend Flüssigkeit und bei Bedarf fiebersenkende Mittel helfen."
)
FILLER = (
    "Die Praxis hat montags bis freitags geöffnet. Termine vergeben wir telefonisch oder online. Bitte bringen "
    "Sie Ihre Versichertenkarte und eine Liste Ihrer Medikamente mit. "
)


@pytest.fixture
def bench(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "mcq"
    folder.mkdir()
    rows = [
        {"id": "q-long", "question": LONG_QUESTION, "choices": ["STEMI", "Perikarditis", "LE", "NSTEMI"]},
        {"id": "q-short", "question": SHORT_QUESTION, "choices": ["Integrase", "Reverse Transkriptase"]},
        {"id": "q-tiny", "question": TINY_QUESTION, "choices": ["7", "12"]},
    ]
    (folder / "a.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[:2]), "utf-8")
    (folder / "b.jsonl").write_text(json.dumps(rows[2], ensure_ascii=False) + "\n{broken\n", "utf-8")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        json.dumps(
            {"id": "open-1", "prompt": "Wann sollte ich mit Fieber zum Arzt gehen?", "reference": REFERENCE},
            ensure_ascii=False,
        )
        + "\n",
        "utf-8",
    )
    return {"mcq": folder, "prompts": prompts}


def _inputs(tmp_path: Path, bench: dict[str, Path], **decontam: Any) -> CorpusInputs:
    """The corpus stage's bound inputs: decontamination on, with the benchmarks of the evaluate section."""
    return bind(
        DefinemedConfig.model_validate(
            {
                "models": {"instruct": {"id": "x"}},
                "corpus": {
                    "input": {"paths": [str(tmp_path)]},
                    "labels": {"path": str(tmp_path / "l.jsonl")},
                    "decontamination": decontam,
                },
                "evaluate": {
                    "mcq": {"tasks": [{"name": "medmcq", "path": str(bench["mcq"])}]},
                    "prompts": str(bench["prompts"]),
                },
            }
        )
    )


def _filter(tmp_path: Path, bench: dict[str, Path], **decontam: Any) -> BenchmarkDecontaminationFilter:
    inputs = _inputs(tmp_path, bench, **decontam)
    items = tmp_path / "items.jsonl"
    d = inputs.corpus.decontamination
    write_benchmark_items(inputs.benchmarks, d, items)
    return BenchmarkDecontaminationFilter(
        str(items), ngram=d.ngram, min_matches=d.min_matches, min_item_words=d.min_item_words
    )


def test_normalisation_ignores_case_and_punctuation() -> None:
    assert normalize_words("Ausstrahlung in den LINKEN Arm, und  Kaltschweißigkeit vor.") == [
        "ausstrahlung",
        "in",
        "den",
        "linken",
        "arm",
        "und",
        "kaltschweissigkeit",
        "vor",
    ]
    assert normalize_words("KALTSCHWEISSIGKEIT") == normalize_words("Kaltschweißigkeit")
    assert normalize_words("54-jähriger") == ["54", "jähriger"]


def test_benchmark_items_cover_questions_options_prompts_and_references(tmp_path: Path, bench: dict) -> None:
    inputs = _inputs(tmp_path, bench)
    items = {i["id"]: i for i in benchmark_items(inputs.benchmarks)}
    assert set(items) == {"medmcq/q-long", "medmcq/q-short", "medmcq/q-tiny", "prompts/open-1"}
    assert items["medmcq/q-long"]["texts"] == [LONG_QUESTION, f"{LONG_QUESTION} STEMI Perikarditis LE NSTEMI"]
    assert items["prompts/open-1"]["texts"][1] == REFERENCE
    info = write_benchmark_items(inputs.benchmarks, inputs.corpus.decontamination, tmp_path / "items.jsonl")
    assert info["items"] == 4 and info["sources"] == {"medmcq": 3, "prompts": 1}
    assert info["items_too_short"] == 1  # the 5-word question


def test_verbatim_question_inside_a_page_is_dropped(tmp_path: Path, bench: dict) -> None:
    flt = _filter(tmp_path, bench)
    doc = Document(text=FILLER + "Fallbeispiel: " + LONG_QUESTION.upper() + " " + FILLER, id="d1")
    assert flt.filter(doc) == (False, REASON)
    assert doc.metadata["decontam_item"] == "medmcq/q-long"
    assert doc.metadata["decontam_source"] == "medmcq"
    assert doc.metadata["decontam_ngrams"] >= 10


def test_thirteen_gram_of_a_reference_answer_is_dropped(tmp_path: Path, bench: dict) -> None:
    flt = _filter(tmp_path, bench)
    words = REFERENCE.split()
    doc = Document(text=FILLER + " ".join(words[3:16]) + ". " + FILLER, id="d2")  # exactly 13 words of it
    assert flt.filter(doc) == (False, REASON)
    assert doc.metadata["decontam_item"] == "prompts/open-1"
    twelve = Document(text=FILLER + " ".join(words[3:15]) + ". " + FILLER, id="d3")
    assert flt.filter(twelve) is True


def test_short_question_matches_whole_and_tiny_one_is_ignored(tmp_path: Path, bench: dict) -> None:
    flt = _filter(tmp_path, bench)
    short = Document(text=f"{FILLER} Frage: {SHORT_QUESTION} {FILLER}", id="s")
    assert flt.filter(short) == (False, REASON) and short.metadata["decontam_item"] == "medmcq/q-short"
    assert flt.filter(Document(text=f"{FILLER} {TINY_QUESTION} {FILLER}", id="t")) is True


def test_page_sharing_only_short_common_phrases_is_kept(tmp_path: Path, bench: dict) -> None:
    flt = _filter(tmp_path, bench)
    text = (
        "Ein 54-jähriger Patient stellt sich mit Fieber vor. Was ist die wahrscheinlichste Diagnose? "
        "Fieber und Halsschmerzen sind meist harmlos. Ausstrahlung in den linken Arm kann auf das Herz "
        "hinweisen. Welches Enzym wirkt hier? " + FILLER
    )
    doc = Document(text=text, id="clean")
    assert flt.filter(doc) is True
    assert "decontam_item" not in doc.metadata


def test_min_matches_requires_several_ngrams_but_not_more_than_an_item_has(tmp_path: Path, bench: dict) -> None:
    flt = _filter(tmp_path, bench, min_matches=3)
    words = REFERENCE.split()
    two = Document(text=FILLER + " ".join(words[0:14]) + ". " + FILLER, id="two")  # 2 shared 13-grams
    three = Document(text=FILLER + " ".join(words[0:15]) + ". " + FILLER, id="three")
    assert flt.filter(two) is True
    assert flt.filter(three) == (False, REASON)
    # a short question is one whole-text key: its verbatim copy still counts
    assert flt.filter(Document(text=f"{FILLER} {SHORT_QUESTION}", id="s"))[0] is False


def test_index_counts_distinct_ngrams_per_item() -> None:
    index = NgramIndex.build(
        [{"id": "a", "source": "x", "texts": ["eins zwei drei vier fünf sechs"]}], ngram=4, min_item_words=3
    )
    assert index.size == 3 and index.text_keys == [3]
    assert index.matches("EINS zwei drei vier, fünf! eins zwei drei vier") == {0: 2}
    assert index.contamination("eins zwei drei vier", min_matches=1) == ("a", 1)
    assert index.contamination("eins zwei drei vier", min_matches=2) is None


def test_missing_benchmark_path_is_an_error(tmp_path: Path, bench: dict) -> None:
    bench["mcq"] = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="benchmark data not found"):
        benchmark_items(_inputs(tmp_path, bench).benchmarks)


def test_hub_tasks_without_local_files_are_skipped_not_fatal(tmp_path) -> None:
    from tests.helpers import minimal_config_dict

    from definemed.config import DefinemedConfig
    from definemed.corpus.contract import BenchmarkRefs
    from definemed.corpus.decontam import benchmark_items

    data = minimal_config_dict(tmp_path)
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"id": "q1", "question": "Welches Organ produziert Insulin?", "choices": ["Pankreas", "Leber"]}\n')
    data["evaluate"] = {
        "models": ["instruct"],
        "mcq": {
            "tasks": [
                {"kind": "lm_eval", "name": "definemed_global_mmlu_de_med"},
                {"kind": "local", "name": "mine", "path": str(qa)},
            ]
        },
    }
    evaluate = DefinemedConfig.model_validate(data).evaluate
    items = benchmark_items(BenchmarkRefs.of(evaluate))
    assert [i["id"] for i in items] == ["mine/q1"]


def _brute_force_matches(index: NgramIndex, text: str) -> dict[int, int]:
    """Every window of every indexed length looked up: the definition `matches` must agree with."""
    words, found = normalize_words(text), {}
    for length, table in index.by_length.items():
        for i in range(len(words) - length + 1):
            for text_id in table.get(" ".join(words[i : i + length]), ()):
                found.setdefault(text_id, set()).add(" ".join(words[i : i + length]))
    return {t: len(keys) for t, keys in found.items()}


@pytest.mark.parametrize("min_item_words", [1, 3, 8])
def test_indexed_lookup_finds_exactly_what_every_window_finds(min_item_words: int) -> None:
    import random

    rng = random.Random(min_item_words)
    vocab = [
        "der",
        "die",
        "das",
        "Fieber",
        "Husten",
        "Patient",
        "Arzt",
        "Blut",
        "Herz",
        "und",
        "oder",
        "mit",
        "ohne",
        "heute",
        "Niere",
        "Leber",
    ]
    items = [
        {"id": f"i{k}", "source": "s", "texts": [" ".join(rng.choices(vocab, k=rng.randint(1, 20))) for _ in range(2)]}
        for k in range(40)
    ]
    index = NgramIndex.build(items, ngram=5, min_item_words=min_item_words)
    assert index.size > 0
    hits = 0
    for _ in range(200):
        text = " ".join(rng.choices(vocab, k=rng.randint(0, 60)))
        expected = _brute_force_matches(index, text)
        assert dict(index.matches(text)) == expected, text
        hits += bool(expected)
    assert hits >= 3  # the random pages do overlap the random items: the comparison is not vacuous
