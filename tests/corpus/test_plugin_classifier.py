"""A classifier family registered by a plugin is built from its own parameter section, can be the main kind, be
compared with the others on the same split, and be a cascade stage (issue #12: open kinds)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from pydantic import Field

from definemed import registry
from definemed.artifacts import read_json, write_json, write_jsonl
from definemed.corpus.classifier_config import ClassifierConfig
from definemed.corpus.classifiers import META, build_classifier, check_kind, check_training_data
from definemed.corpus.comparison import compare_in_stage
from definemed.corpus.config import FileLabels
from definemed.corpus.training import Split, fit_and_evaluate
from definemed.schema import Strict


class StemParams(Strict):
    """`corpus.classifier.stems`: the word stems that make a text medical."""

    stems: list[str] = Field(
        default_factory=lambda: [
            "patient",
            "therap",
            "arzt",
            "herz",
            "blut",
            "klinik",
            "medikament",
            "diagnos",
            "behandl",
            "pflege",
        ],
        min_length=1,
    )


class StemClassifier:
    """Share of words that contain a stem: no training at all, saved as its stems. Built without `from_config`,
    so `build_classifier` hands it its parameter section."""

    kind = "stems"

    def __init__(self, params: StemParams | None = None) -> None:
        self.stems = list((params or StemParams()).stems)

    def fit(self, texts: list[str], labels: list[bool]) -> StemClassifier:
        check_training_data(texts, labels)
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        shares = [
            sum(any(s in w for s in self.stems) for w in t.lower().split()) / max(len(t.split()), 1) for t in texts
        ]
        return np.clip(np.asarray(shares, dtype=np.float64) * 5, 0.0, 1.0)

    def save(self, model_dir: str | Path) -> Path:
        write_json(Path(model_dir) / META, {"kind": self.kind, "stems": self.stems})
        return Path(model_dir)

    @classmethod
    def load(cls, model_dir: str | Path) -> StemClassifier:
        return cls(StemParams(stems=check_kind(Path(model_dir), cls.kind)["stems"]))


@pytest.fixture
def stems_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `registry.register("classifier", "stems", StemClassifier, config=StemParams)` does, undone afterwards
    (classifier kinds are checked against the registry when a config is validated: no schema rebuild needed)."""
    monkeypatch.setitem(registry._ENTRIES["classifier"], "stems", (StemClassifier, "test plugin: stem share"))
    monkeypatch.setitem(registry._CONFIGS["classifier"], "stems", StemParams)


def _documents(german_texts: dict[str, list[str]]) -> list[tuple[str, str, bool]]:
    """(id, text, medical) of every pair of medical and of general sentences, the classes alternating."""
    medical, general = (
        [(" ".join(pair), kind == "medical") for pair in itertools.combinations(german_texts[kind], 2)]
        for kind in ("medical", "general")
    )
    alternating = itertools.chain(*zip(medical, general, strict=True))
    return [(f"d{i}", text, label) for i, (text, label) in enumerate(alternating)]


def test_plugin_kind_is_rejected_until_registered() -> None:
    with pytest.raises(ValueError, match="'stems' is not a registered classifier"):
        ClassifierConfig(kind="stems")


def test_plugin_family_is_built_from_its_section_and_trained_like_the_built_ins(
    stems_plugin: None, german_texts: dict, tmp_path: Path
) -> None:
    cfg = ClassifierConfig.model_validate({"kind": "stems", "stems": {"stems": ["herz", "blut"]}})
    assert cfg.params() == StemParams(stems=["herz", "blut"])
    assert build_classifier(cfg).stems == ["herz", "blut"]
    assert build_classifier(ClassifierConfig(kind="stems")).stems == StemParams().stems  # section's defaults
    with pytest.raises(ValueError, match="stems: settings for kind 'stems', but the classifier is 'fasttext'"):
        ClassifierConfig.model_validate({"kind": "fasttext", "stems": {"stems": ["herz"]}})

    docs = _documents(german_texts)
    train, test = docs[::3] + docs[1::3], docs[2::3]  # classes alternate: both in each part
    split = Split(
        train_x=[t for _, t, _ in train],
        train_y=[y for *_, y in train],
        test_x=[t for _, t, _ in test],
        test_y=[y for *_, y in test],
    )
    report = fit_and_evaluate(ClassifierConfig(kind="stems", threshold={"by": "f1"}), split, tmp_path / "main", 0)
    assert report["kind"] == "stems" and report["n_heldout"] == len(split.test_x) and report["f1"] > 0.5
    assert read_json(tmp_path / "main" / META) == {"kind": "stems", "stems": StemParams().stems}


def test_plugin_family_is_compared_and_can_be_a_cascade_stage(
    stems_plugin: None, german_texts: dict, tmp_path: Path
) -> None:
    docs = _documents(german_texts)
    survivors = tmp_path / "filtered"
    write_jsonl(survivors / "00000.jsonl", ({"id": i, "text": t} for i, t, _ in docs))
    labels = FileLabels(path=tmp_path / "labels.jsonl")
    write_jsonl(labels.path, ({"id": i, "medical": y} for i, _, y in docs))
    clf = ClassifierConfig.model_validate(
        {
            "kind": "tfidf_logreg",
            "holdout_fraction": 0.3,
            "compare": ["stems", "cascade"],
            "stems": {"stems": ["patient", "therap", "arzt", "blut"]},
            "cascade": {"stage1": "stems", "stage2": "tfidf_logreg", "folds": 2, "target_recall": 0.9},
        }
    )
    main = fit_and_evaluate(
        clf,
        Split(
            train_x=[t for _, t, _ in docs],
            train_y=[y for *_, y in docs],
            test_x=[t for _, t, _ in docs],
            test_y=[y for *_, y in docs],
        ),
        tmp_path / "classifier",
        seed=0,
    )
    result = compare_in_stage(clf, survivors, labels, 0, main, tmp_path / "classifier")
    rows = {row["kind"]: row for row in result["rows"]}
    assert [row["status"] for row in rows.values()] == ["ok", "ok", "ok"], rows
    assert rows["stems"]["heldout_docs"] == rows["cascade"]["heldout_docs"] > 0
    compare = tmp_path / "classifier" / "compare"
    assert read_json(compare / "stems" / META)["stems"] == ["patient", "therap", "arzt", "blut"]
    cascade_meta = read_json(compare / "cascade" / META)
    assert (cascade_meta["stage1_kind"], cascade_meta["stage2_kind"]) == ("stems", "tfidf_logreg")
    assert read_json(compare / "cascade" / "stage1" / META)["kind"] == "stems"
    with pytest.raises(ValueError, match="a cascade stage is a single family"):
        ClassifierConfig.model_validate({"kind": "cascade", "cascade": {"stage1": "cascade"}})
