"""A small, real DeFineMed plugin: a judge kind `length` and a corpus classifier kind `keywords`.

Importing this module registers both (`DEFINEMED_PLUGINS=tests.plugins.demo_plugin definemed run cfg.yaml`); the
config then accepts `evaluate.judge.kind: length` and `corpus.classifier.kind: keywords` with a `keywords:`
parameter section. It is the worked example of docs/extending.md and what tests/plugins/test_plugins.py runs
through `validate`, `ls` and the whole pipeline. Neither component is meant for findings: the judge rewards an
answer of the reference's length, the classifier counts medical word stems.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, field_validator

from definemed import registry
from definemed.artifacts import atomic_path, write_json
from definemed.corpus.classifiers import META, check_kind, check_training_data
from definemed.evaluate.verdicts import JudgeItem, Verdict, Winner
from definemed.schema import Strict

if TYPE_CHECKING:
    from definemed.corpus.classifier_config import ClassifierConfig


# ------------------------------------------------------------------------------------------------ judge
class LengthJudgeConfig(Strict):
    """`evaluate.judge` with `kind: length`: the answer whose length is closer to the reference's wins."""

    kind: Literal["length"] = "length"
    unit: Literal["words", "chars"] = "words"
    tie_margin: float = Field(
        0.1,
        ge=0,
        description="a difference in relative length error at or below this "
        "(a share of the reference's length) is a tie",
    )


def relative_length_error(answer: str, reference: str, unit: str) -> float:
    """|len(answer) - len(reference)| / len(reference), lengths in words or characters."""
    size = (lambda s: len(s.split())) if unit == "words" else len
    return abs(size(answer) - size(reference)) / max(size(reference), 1)


class LengthJudge:
    """Offline toy judge: the answer whose length is closer to the reference answer's wins.

    Same interface as the built-in `ReferenceJudge`: built as `LengthJudge(config, workdir)` by the evaluate
    stage, `judge_batch(items) -> list[Verdict]` with one verdict per item in order. Deterministic and
    position-blind, so both orders of a pair always agree. `kind`, `model` and `note` go into the stage's metrics.
    """

    kind = "length"
    model = "length"
    note = "toy judge: length closest to the reference answer, not a judgment of quality"

    def __init__(self, config: LengthJudgeConfig | None = None, workdir: Path | None = None) -> None:
        self.config = config or LengthJudgeConfig()

    def judge_batch(self, items: list[JudgeItem]) -> list[Verdict]:
        verdicts = []
        for item in items:
            if not item.reference:
                raise ValueError("the length judge needs a 'reference' answer for every prompt")
            a = relative_length_error(item.answer_a, item.reference, self.config.unit)
            b = relative_length_error(item.answer_b, item.reference, self.config.unit)
            winner: Winner = "tie" if abs(a - b) <= self.config.tie_margin else ("A" if a < b else "B")
            verdicts.append(Verdict(winner=winner, raw=f"length error A={a:.3f} B={b:.3f}"))
        return verdicts


# ------------------------------------------------------------------------------------------- classifier
# Lower-case word stems of German medical text; a word counts for every stem it contains ("Herzinsuffizienz":
# herz, insuffizienz), so compounds need no splitting.
MEDICAL_STEMS = (
    "arzt",
    "ärzt",
    "patient",
    "klinik",
    "krankenhaus",
    "notaufnahme",
    "therap",
    "diagnos",
    "symptom",
    "behandl",
    "medikament",
    "tablette",
    "dosis",
    "wirkstoff",
    "antibiot",
    "impf",
    "virus",
    "viren",
    "bakteri",
    "infekt",
    "entzünd",
    "fieber",
    "schmerz",
    "krank",
    "blut",
    "herz",
    "lunge",
    "niere",
    "leber",
    "diabet",
    "insulin",
    "tumor",
    "krebs",
    "operation",
    "chirurg",
    "pflege",
    "prophylaxe",
    "thrombo",
    "ekg",
    "insuffizienz",
)


class KeywordParams(Strict):
    """`corpus.classifier.keywords`: the stems counted and the regularisation of the logistic model."""

    stems: list[str] = Field(default_factory=lambda: list(MEDICAL_STEMS), min_length=1)
    C: float = Field(1.0, gt=0)  # noqa: N815 - scikit-learn's name

    @field_validator("stems")
    @classmethod
    def _lower_case_words(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if not s or s != s.strip().lower() or " " in s]
        if bad:
            raise ValueError(f"stems must be single lower-case words, got {bad}")
        return v


class KeywordClassifier:
    """Class-balanced logistic regression on medical stem counts: log(1 + words containing each stem), plus the
    share of words containing any stem.

    Implements the corpus classifier interface: `from_config`, `fit`, `predict_proba`, `save`, and `load` (the
    classify step loads the saved folder in its workers by kind). Saved without pickle, like the built-ins: the
    stems in `meta.json`, the coefficients in `weights.npz`.
    """

    kind = "keywords"

    def __init__(self, stems: list[str] | tuple[str, ...] = MEDICAL_STEMS, C: float = 1.0) -> None:  # noqa: N803
        self.stems = list(stems)
        self.C = C
        self._model = None

    @classmethod
    def from_config(cls, cfg: ClassifierConfig, workdir: Path | None = None, seed: int = 0) -> KeywordClassifier:
        params: KeywordParams = cfg.params(cls.kind)  # the `keywords:` section, or its defaults
        return cls(stems=params.stems, C=params.C)

    def features(self, texts: list[str]) -> np.ndarray:
        rows = np.zeros((len(texts), len(self.stems) + 1), dtype=np.float64)
        for i, text in enumerate(texts):
            words = text.lower().split()
            hits = np.array([sum(stem in w for w in words) for stem in self.stems], dtype=np.float64)
            rows[i, :-1] = np.log1p(hits)
            rows[i, -1] = sum(any(stem in w for stem in self.stems) for w in words) / max(len(words), 1)
        return rows

    def fit(self, texts: list[str], labels: list[bool]) -> KeywordClassifier:
        from sklearn.linear_model import LogisticRegression

        check_training_data(texts, labels)
        self._model = LogisticRegression(C=self.C, class_weight="balanced", max_iter=1000)
        self._model.fit(self.features(texts), np.asarray(labels, dtype=int))
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            raise RuntimeError("KeywordClassifier: fit() or load() first")
        return self._model.predict_proba(self.features(texts))[:, 1]

    def save(self, model_dir: str | Path) -> Path:
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(model_dir / "weights.npz") as tmp, tmp.open("wb") as fh:
            np.savez(fh, coef=self._model.coef_, intercept=self._model.intercept_)
        write_json(model_dir / META, {"kind": self.kind, "stems": self.stems, "C": self.C})
        return model_dir

    @classmethod
    def load(cls, model_dir: str | Path) -> KeywordClassifier:
        from sklearn.linear_model import LogisticRegression

        model_dir = Path(model_dir)
        meta = check_kind(model_dir, cls.kind)
        self = cls(stems=meta["stems"], C=meta["C"])
        self._model = LogisticRegression(C=self.C)
        with np.load(model_dir / "weights.npz", allow_pickle=False) as weights:
            self._model.coef_, self._model.intercept_ = weights["coef"], weights["intercept"]
        self._model.classes_ = np.array([0, 1])
        return self


registry.register(
    "judge", "length", LengthJudge, "demo plugin: answer length closest to the reference wins", config=LengthJudgeConfig
)
registry.register(
    "classifier",
    "keywords",
    KeywordClassifier,
    "demo plugin: logistic regression on medical word-stem counts",
    config=KeywordParams,
)
