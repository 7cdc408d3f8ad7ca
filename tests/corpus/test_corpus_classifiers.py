"""Classifier round trips (no pickle), label loading and the held-out split."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from definemed.corpus.classifier_config import ClassifierConfig
from definemed.corpus.classifiers import TfidfLogRegClassifier
from definemed.corpus.config import FileLabels
from definemed.corpus.fasttext_family import FastTextClassifier
from definemed.corpus.training import binary_metrics, is_heldout, load_labels


def _data(german_texts: dict[str, list[str]]) -> tuple[list[str], list[bool]]:
    texts = german_texts["medical"] + german_texts["general"]
    return texts, [True] * len(german_texts["medical"]) + [False] * len(german_texts["general"])


@pytest.mark.parametrize(
    "cls",
    [
        TfidfLogRegClassifier,
        lambda: FastTextClassifier(bucket=20_000, cutoff=2_000, quantize=True),
        lambda: FastTextClassifier(bucket=20_000),
        lambda: FastTextClassifier(bucket=20_000, quantize=False, maxn=0),
    ],
    ids=["tfidf", "fasttext-quantised", "fasttext-float-default", "fasttext-float-words-only"],
)
def test_save_load_round_trip_gives_identical_probabilities(cls, tmp_path: Path, german_texts) -> None:
    texts, labels = _data(german_texts)
    model = cls().fit(texts, labels)
    probe = [*texts, "Der Patient hat Fieber und Husten.", "Das Fußballspiel endete unentschieden."]
    before = model.predict_proba(probe)
    model.save(tmp_path / "m")
    loaded = type(model).load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(probe), before)
    assert before.shape == (len(probe),) and ((before >= 0) & (before <= 1)).all()
    if isinstance(model, FastTextClassifier):  # the file matches the choice: .ftz quantised, .bin float
        assert {p.name for p in (tmp_path / "m").iterdir()} == {"meta.json", model.model_file}
    # it learned something: training medical sentences score above training general ones on average
    assert before[:10].mean() > before[10:20].mean()


def test_fasttext_scores_a_batch_as_it_scores_each_text_and_reads_every_line(german_texts) -> None:
    from definemed.corpus.fasttext_family import _fasttext_line

    texts, labels = _data(german_texts)
    model = FastTextClassifier(bucket=20_000).fit(texts, labels)
    # one batch call == one call per text; an empty text scores, it does not shift the others
    probe = [texts[0], "", texts[12], "Blutdruck\nsenken"]
    batch = model.predict_proba(probe)
    np.testing.assert_array_equal(batch, np.concatenate([model.predict_proba([t]) for t in probe]))
    # fastText stops an example at "\n": the medical first line must not hide the rest of a page, and no-break or
    # thin spaces separate words as Python's split() does
    assert _fasttext_line("Fieber\nund\u00a0Husten\u2009heute\r") == "fieber und husten heute\r"
    medical_page = "Die Bundesliga spielt heute.\n" + texts[0]
    assert model.predict_proba([medical_page])[0] != model.predict_proba(["Die Bundesliga spielt heute."])[0]


def test_tfidf_saves_only_json_and_npz(tmp_path: Path, german_texts) -> None:
    TfidfLogRegClassifier().fit(*_data(german_texts)).save(tmp_path)
    assert {p.suffix for p in tmp_path.iterdir()} == {".json", ".npz"}
    with np.load(tmp_path / "weights.npz", allow_pickle=False) as weights:
        assert weights["coef"].shape[0] == 1


def test_loading_the_wrong_kind_fails(tmp_path: Path, german_texts) -> None:
    TfidfLogRegClassifier().fit(*_data(german_texts)).save(tmp_path)
    with pytest.raises(ValueError, match="holds a 'tfidf_logreg' classifier, not 'fasttext'"):
        FastTextClassifier.load(tmp_path)


def test_single_class_training_data_is_an_error(german_texts) -> None:
    with pytest.raises(ValueError, match="both medical and non-medical"):
        TfidfLogRegClassifier().fit(german_texts["medical"], [True] * 10)


def test_malformed_label_lines_are_counted_and_named(tmp_path: Path, caplog) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text(
        '{"id": "a", "medical": true}\n{broken\n{"id": "b", "medical": "yes"}\n'
        '{"id": "c"}\n\n{"id": "a", "medical": false}\n',
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING, logger="definemed"):
        labels = load_labels(FileLabels(path=path))
    assert labels.by_id == {"a": False}
    assert labels.malformed == 3 and labels.duplicates == 1
    assert f"{path}:2" in caplog.text and f"{path}:3" in caplog.text and f"{path}:4" in caplog.text


def test_holdout_split_is_deterministic_and_near_the_fraction() -> None:
    ids = [f"<urn:uuid:{i}>" for i in range(4000)]
    held = [is_heldout(i, 0.25, seed=0) for i in ids]
    assert held == [is_heldout(i, 0.25, seed=0) for i in ids]
    assert 0.22 < sum(held) / len(ids) < 0.28
    assert held != [is_heldout(i, 0.25, seed=1) for i in ids]
    assert ClassifierConfig(holdout_fraction=0.25).holdout_fraction == 0.25


def test_binary_metrics_values() -> None:
    m = binary_metrics([True, True, False, False, True], [True, False, True, False, True])
    assert m["confusion"] == {"tp": 2, "fp": 1, "fn": 1, "tn": 1}
    assert (m["precision"], m["recall"], m["f1"], m["accuracy"]) == (0.6667, 0.6667, 0.6667, 0.6)
    assert m["support"] == {"medical": 3, "other": 2}
    assert json.dumps(m)


def test_fasttext_nan_divergence_is_retried_at_half_the_learning_rate(monkeypatch) -> None:
    import fasttext

    from definemed.corpus.fasttext_family import _train_quantized

    calls: list[float] = []

    class Model:
        def __init__(self, lr: float) -> None:
            self.lr = lr

        def quantize(self, **_: object) -> None:
            if self.lr > 0.3:
                raise RuntimeError("Encountered NaN.")

    def train(path: str, **params: object) -> Model:
        calls.append(params["lr"])
        return Model(params["lr"])

    monkeypatch.setattr(fasttext, "train_supervised", train)
    model, lr = _train_quantized(fasttext, "unused.txt", {"lr": 1.0}, cutoff=10)
    assert calls == [1.0, 0.5, 0.25] and lr == 0.25 and model.lr == 0.25
    calls.clear()
    with pytest.raises(RuntimeError, match="NaN"):
        _train_quantized(fasttext, "unused.txt", {"lr": 8.0}, cutoff=10)
    assert calls == [8.0, 4.0, 2.0]


def test_fasttext_training_is_reproducible_whatever_the_process_did_before(german_texts) -> None:
    texts, labels = _data(german_texts)
    first = FastTextClassifier(bucket=20_000, cutoff=2_000).fit(texts, labels).predict_proba(texts)
    junk = [bytearray(1 << 20) for _ in range(64)]  # allocate and free: the wheel used to see such state
    del junk
    second = FastTextClassifier(bucket=20_000, cutoff=2_000).fit(texts, labels).predict_proba(texts)
    np.testing.assert_array_equal(first, second)


def test_fasttext_training_failure_names_the_cause(german_texts) -> None:
    model = FastTextClassifier(bucket=20_000)
    model.params["no_such_option"] = 1
    with pytest.raises(RuntimeError, match=r"(?s)fastText training failed \(exit 1\).*no_such_option"):
        model.fit(*_data(german_texts))
