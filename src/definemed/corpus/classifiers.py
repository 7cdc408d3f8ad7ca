"""Light medical/non-medical students trained on the labelled sample, behind one small interface.

The paper fine-tunes XLM-RoBERTa on Mixtral labels (`finetune`, in encoders.py); the light students that
FineWeb-Edu-style pipelines: TF-IDF + logistic regression here, fastText in fasttext_family.py. A frozen encoder with a
trained head (`embedding`, encoders.py) and a two-stage `cascade` (cascade.py) complete the registry. Every
family saves without pickle, so loading a model folder never executes code from it.

Interface (a plugin family implements the same, see `MedicalClassifier`): `fit(texts, labels)`,
`predict_proba(texts) -> p(medical)`, `save(dir)`, `Cls.load(dir)`, and how it is built from the config:
`Cls.from_config(cfg, workdir=None, seed=0)`, or else `Cls(params)` with its parameter section, or `Cls()`.
`build_classifier(cfg)` builds the configured family through the registry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from definemed.artifacts import atomic_path, read_json, write_json

if TYPE_CHECKING:
    from definemed.corpus.classifier_config import ClassifierConfig

META = "meta.json"


class MedicalClassifier(Protocol):
    """What the corpus stage needs of a classifier family (built-in or registered by a plugin).

    `kind`: its registry name (also written to `meta.json`, which `load` checks). `fit` on texts and boolean
    labels (both classes present), `predict_proba` -> p(medical) per text, `save(model_dir)` writes the folder
    (without pickle: the classify workers load it), `load(model_dir)` (a classmethod) reads it back. Optional:
    `from_config(cfg, workdir=None, seed=0)` (a classmethod; `cfg` is the `corpus.classifier` section with `kind`
    set to this family, so `cfg.params()` is its parameter section), `use_cache` / `save_cache` (an embedding
    cache), `heldout_report(...)` (extra held-out statistics, as the cascade's)."""

    kind: str

    def fit(self, texts: list[str], labels: list[bool]) -> MedicalClassifier: ...
    def predict_proba(self, texts: list[str]) -> np.ndarray: ...
    def save(self, model_dir: str | Path) -> Path: ...


def build_classifier(cfg: ClassifierConfig, workdir: Path | None = None, seed: int = 0) -> MedicalClassifier:
    """An unfitted classifier of `cfg.kind` from the registry, with its parameter section (`cfg.params()`).

    `workdir` is the folder the model will be saved to; families with caches (embedding) keep them there. A family
    without `from_config` gets its parameter section as the only argument, or none when it registered no config
    model.
    """
    from definemed import registry

    cls = registry.get("classifier", cfg.kind)
    if hasattr(cls, "from_config"):
        return cls.from_config(cfg, workdir=workdir, seed=seed)
    params = cfg.params()
    return cls(params) if params is not None else cls()


def check_training_data(texts: list[str], labels: list[bool]) -> None:
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    if len(set(labels)) < 2:
        raise ValueError(
            "the classifier needs both medical and non-medical training examples; "
            f"got only {'medical' if labels and labels[0] else 'non-medical'} ones"
        )


def check_kind(model_dir: Path, kind: str) -> dict[str, Any]:
    meta = read_json(model_dir / META)
    if meta.get("kind") != kind:
        raise ValueError(f"{model_dir} holds a '{meta.get('kind')}' classifier, not '{kind}'")
    return meta


# ------------------------------------------------------------------------------------------ tfidf + logreg
class TfidfLogRegClassifier:
    """Word (1-2)-gram and character (3-5)-gram TF-IDF features, class-balanced logistic regression.

    Character n-grams carry German compounds (`Herzinsuffizienz`, `Blutdrucksenker`) that word features see as
    unique tokens. Saved as JSON vocabularies plus an .npz of idf weights and coefficients.
    """

    kind = "tfidf_logreg"
    VECTORIZERS = {
        "word": {"analyzer": "word", "ngram_range": [1, 2], "min_df": 1, "max_features": 200_000},
        "char": {"analyzer": "char_wb", "ngram_range": [3, 5], "min_df": 1, "max_features": 300_000},
    }

    def __init__(self, C: float = 4.0, content_words: bool = False) -> None:  # noqa: N803 - scikit-learn's name
        self.C = C
        self.content_words = content_words
        self._vectorizers: dict[str, Any] = {}
        self._model: Any = None

    @classmethod
    def from_config(cls, cfg: ClassifierConfig, workdir: Path | None = None, seed: int = 0) -> TfidfLogRegClassifier:
        params = cfg.params(cls.kind)
        return cls(C=params.C, content_words=params.content_words)

    @staticmethod
    def _new_vectorizer(params: dict[str, Any]) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(
            analyzer=params["analyzer"],
            ngram_range=tuple(params["ngram_range"]),
            min_df=params["min_df"],
            max_features=params["max_features"],
            sublinear_tf=True,
            lowercase=True,
            dtype=np.float64,
        )

    def _prepare(self, texts: list[str]) -> list[str]:
        if not self.content_words:
            return texts
        drop = function_words()
        return [content_words(t.lower(), drop) for t in texts]

    def _features(self, texts: list[str]) -> Any:
        from scipy.sparse import hstack

        texts = self._prepare(texts)
        return hstack([self._vectorizers[name].transform(texts) for name in self.VECTORIZERS]).tocsr()

    def fit(self, texts: list[str], labels: list[bool]) -> TfidfLogRegClassifier:
        from sklearn.linear_model import LogisticRegression

        check_training_data(texts, labels)
        prepared = self._prepare(texts)
        self._vectorizers = {name: self._new_vectorizer(p).fit(prepared) for name, p in self.VECTORIZERS.items()}
        self._model = LogisticRegression(C=self.C, class_weight="balanced", max_iter=2000)
        self._model.fit(self._features(texts), np.asarray(labels, dtype=int))
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            raise RuntimeError("TfidfLogRegClassifier: fit() or load() first")
        return self._model.predict_proba(self._features(texts))[:, 1]

    def save(self, model_dir: str | Path) -> Path:
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        arrays = {f"idf_{name}": vec.idf_ for name, vec in self._vectorizers.items()}
        arrays |= {"coef": self._model.coef_, "intercept": self._model.intercept_}
        with atomic_path(model_dir / "weights.npz") as tmp, tmp.open("wb") as fh:
            np.savez(fh, **arrays)
        for name, vec in self._vectorizers.items():
            write_json(model_dir / f"vocabulary_{name}.json", {t: int(i) for t, i in vec.vocabulary_.items()})
        write_json(
            model_dir / META,
            {"kind": self.kind, "C": self.C, "vectorizers": self.VECTORIZERS, "content_words": self.content_words},
        )
        return model_dir

    @classmethod
    def load(cls, model_dir: str | Path) -> TfidfLogRegClassifier:
        from sklearn.linear_model import LogisticRegression

        model_dir = Path(model_dir)
        meta = check_kind(model_dir, cls.kind)
        self = cls(C=meta["C"], content_words=meta.get("content_words", False))
        with np.load(model_dir / "weights.npz", allow_pickle=False) as weights:
            for name, params in meta["vectorizers"].items():
                vec = self._new_vectorizer(params)
                vec.vocabulary_ = read_json(model_dir / f"vocabulary_{name}.json")
                vec.idf_ = weights[f"idf_{name}"]  # the setter rebuilds the fitted TfidfTransformer
                self._vectorizers[name] = vec
            self._model = LogisticRegression(C=self.C)
            self._model.coef_, self._model.intercept_ = weights["coef"], weights["intercept"]
        self._model.classes_ = np.array([0, 1])
        return self


# ------------------------------------------------------------------------------------- content words
_EDGE_PUNCT = ".,;:!?()[]{}\"'„“”‚‘’«»-–—/*•…"


def content_words(lowered: str, drop: frozenset[str]) -> str:
    """`lowered` without the words in `drop` (compared without surrounding punctuation)."""
    return " ".join(w for w in lowered.split() if w.strip(_EDGE_PUNCT) not in drop)


_FUNCTION_WORDS: frozenset[str] | None = None


def function_words() -> frozenset[str]:
    """German function words (assets/function_words_de.txt), read once per process."""
    global _FUNCTION_WORDS  # noqa: PLW0603 - a read-only table, loaded lazily so imports stay cheap
    if _FUNCTION_WORDS is None:
        from importlib import resources

        text = resources.files("definemed").joinpath("assets", "function_words_de.txt").read_text(encoding="utf-8")
        _FUNCTION_WORDS = frozenset(w for line in text.splitlines() if (w := line.split("#", 1)[0].strip()))
    return _FUNCTION_WORDS


def describe(model_dir: str | Path) -> dict[str, Any]:
    """The saved classifier's meta.json plus its on-disk size (all files below the folder), for the report."""
    model_dir = Path(model_dir)
    size = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
    return {**json.loads((model_dir / META).read_text(encoding="utf-8")), "size_bytes": size}
