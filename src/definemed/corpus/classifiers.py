"""Light medical/non-medical students trained on the labelled sample, behind one small interface.

The paper fine-tunes XLM-RoBERTa on Mixtral labels (`finetune`, in encoders.py); the light students that
FineWeb-Edu-style pipelines use live here: TF-IDF + logistic regression, and fastText. A frozen encoder with a
trained head (`embedding`, encoders.py) and a two-stage `cascade` (cascade.py) complete the registry. Every
family saves without pickle, so loading a model folder never executes code from it.

Interface (a plugin family implements the same, see `MedicalClassifier`): `fit(texts, labels)`,
`predict_proba(texts) -> p(medical)`, `save(dir)`, `Cls.load(dir)`, and how it is built from the config:
`Cls.from_config(cfg, workdir=None, seed=0)`, or else `Cls(params)` with its parameter section, or `Cls()`.
`build_classifier(cfg)` builds the configured family through the registry.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
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


def classifier_class(kind: str) -> Any:
    """The registered class of family `kind`. A fresh worker process (datatrove's forkserver workers, Slurm, Ray)
    has not imported the plugins yet: it imports those named in $DEFINEMED_PLUGINS before giving up."""
    from definemed import registry

    if kind not in registry.names("classifier"):
        registry.load_plugins()
    return registry.get("classifier", kind)


def build_classifier(cfg: ClassifierConfig, workdir: Path | None = None, seed: int = 0) -> MedicalClassifier:
    """An unfitted classifier of `cfg.kind` from the registry, with its parameter section (`cfg.params()`).

    `workdir` is the folder the model will be saved to; families with caches (embedding) keep them there. A family
    without `from_config` gets its parameter section as the only argument, or none when it registered no config
    model.
    """
    cls = classifier_class(cfg.kind)
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


# ------------------------------------------------------------------------------------------------- fastText
# fastText splits words on ' ', \t, \r, \v, \f and ends the example at \n; these are the other characters
# Python calls whitespace (no-break and thin spaces, line separators). Replacing only them costs a fifth of a
# `\s+` substitution per document (7 vs 41 us on the demo texts), the largest part of scoring after fastText.
_NOT_FASTTEXT_SPACE = re.compile(r"[\n\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")
LABEL_MEDICAL, LABEL_OTHER = "__label__medical", "__label__other"


def _fasttext_line(text: str, drop: frozenset[str] | None = None) -> str:
    """One example on one line, split into words where Python splits them; lower-casing pools sentence-initial
    forms. `drop`: function words to leave out (`content_words`). Training and scoring use this same function."""
    line = _NOT_FASTTEXT_SPACE.sub(" ", text).lower()
    return line if drop is None else content_words(line, drop)


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


def _train_quantized(
    fasttext: Any, train_file: str, params: dict[str, Any], cutoff: int | None, attempts: int = 3
) -> tuple[Any, float]:
    """Train and quantise; on fastText's "Encountered NaN" (a divergence it reports in training or, when the
    weights already hold NaNs, in quantize) retry with half the learning rate. Returns the model and the lr used."""
    lr = params["lr"]
    for attempt in range(1, attempts + 1):
        try:
            model = fasttext.train_supervised(train_file, thread=1, verbose=0, **{**params, "lr": lr})
            if cutoff is not None:
                model.quantize(input=train_file, cutoff=cutoff, retrain=False, qnorm=True)
            elif np.isnan(model.get_output_matrix()).any():
                raise RuntimeError("Encountered NaN in the trained weights")
            return model, lr
        except RuntimeError as exc:
            if "NaN" not in str(exc) or attempt == attempts:
                raise
            logging.getLogger("definemed").warning(
                "fastText: %s at lr %g; retrying with lr %g (%d/%d)", exc, lr, lr / 2, attempt, attempts
            )
            lr /= 2
    raise AssertionError("unreachable")


def _train_in_subprocess(train_file: Path, params: dict[str, Any], cutoff: int | None, model_file: Path) -> float:
    """Train (and quantise) in a fresh Python process; returns the learning rate that trained the saved model.

    The fastText wheel's training reads memory it did not initialise: in a process that had allocated and freed
    other things (a labelling model, earlier tests) the same data and seed gave different weights, sometimes NaN
    losses. A fresh process starts from the same state every time, so a run is reproducible; it costs ~0.3 s.
    """
    import subprocess
    import sys

    job = {"train_file": str(train_file), "params": params, "cutoff": cutoff, "model_file": str(model_file)}
    proc = subprocess.run(
        [sys.executable, "-m", "definemed.corpus.fasttext_train", json.dumps(job)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not model_file.exists():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise RuntimeError(f"fastText training failed (exit {proc.returncode}): {tail}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["lr"])


class FastTextClassifier:
    """fastText supervised classifier: word bigrams plus character 4-grams (German compounds), 16 dimensions.

    The default is a float model (.bin, ~14 MB with 200k buckets): product quantisation (`quantize: true`, .ftz,
    under 1 MB) makes every scored document 1.5-2.5x slower, because each looked-up row is decoded from its
    codebooks, and scoring 428M documents is the expensive side. A quantised model is quantised right after
    training, so predictions before `save` equal those after `load`. One training thread: fastText is only
    deterministic single-threaded, and training on a few hundred thousand labelled documents still takes seconds.
    """

    kind = "fasttext"
    MODEL = "model.ftz"
    FLOAT_MODEL = "model.bin"

    def __init__(
        self,
        dim: int = 16,
        epoch: int = 50,
        lr: float = 1.0,
        word_ngrams: int = 2,
        bucket: int = 200_000,
        cutoff: int = 10_000,
        seed: int = 0,
        minn: int = 4,
        maxn: int = 4,
        quantize: bool = False,
        content_words: bool = False,
    ) -> None:
        self.params = {
            "dim": dim,
            "epoch": epoch,
            "lr": lr,
            "wordNgrams": word_ngrams,
            "bucket": bucket,
            "minCount": 1,
            "minn": minn if maxn else 0,
            "maxn": maxn,
            "seed": seed,
        }
        self.content_words = content_words
        # Rows kept by quantisation (the highest-norm words and n-gram buckets): size and quantise time scale with it.
        # None: a float model (.bin), larger but faster to score.
        self.cutoff = cutoff if quantize else None
        self._model: Any = None

    @property
    def model_file(self) -> str:
        return self.MODEL if self.cutoff is not None else self.FLOAT_MODEL

    @classmethod
    def from_config(cls, cfg: ClassifierConfig, workdir: Path | None = None, seed: int = 0) -> FastTextClassifier:
        p = cfg.params(cls.kind)
        return cls(
            dim=p.dim,
            epoch=p.epoch,
            lr=p.lr,
            word_ngrams=p.word_ngrams,
            bucket=p.bucket,
            cutoff=p.cutoff,
            seed=seed,
            minn=p.minn,
            maxn=p.maxn,
            quantize=p.quantize,
            content_words=p.content_words,
        )

    @property
    def _drop(self) -> frozenset[str] | None:
        return function_words() if self.content_words else None

    def fit(self, texts: list[str], labels: list[bool]) -> FastTextClassifier:
        import fasttext

        check_training_data(texts, labels)
        with tempfile.TemporaryDirectory(prefix="definemed-fasttext-") as tmp:
            train_file = Path(tmp) / "train.txt"
            drop = self._drop
            train_file.write_text(
                "".join(
                    f"{LABEL_MEDICAL if y else LABEL_OTHER} {_fasttext_line(t, drop)}\n"
                    for t, y in zip(texts, labels, strict=True)
                ),
                encoding="utf-8",
            )
            model_file = Path(tmp) / self.model_file
            lr = _train_in_subprocess(train_file, self.params, self.cutoff, model_file)
            self._model = fasttext.load_model(str(model_file))
        self.params["lr"] = lr  # saved in the metadata: the rate that actually trained this model
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            raise RuntimeError("FastTextClassifier: fit() or load() first")
        # One call for the whole batch through the low-level multi-line predict (the high-level wrapper breaks on
        # numpy 2). k=2: both labels, so p(medical) is there even when it is the smaller one.
        drop = self._drop
        labels, probs = self._model.f.multilinePredict(
            [_fasttext_line(t, drop) + "\n" for t in texts], 2, 0.0, "replace"
        )
        scores = np.fromiter(
            (
                next((float(p) for lab, p in zip(labs, ps, strict=True) if lab == LABEL_MEDICAL), 0.0)
                for labs, ps in zip(labels, probs, strict=True)
            ),
            dtype=np.float64,
            count=len(texts),
        )
        return np.clip(scores, 0.0, 1.0)

    def save(self, model_dir: str | Path) -> Path:
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(model_dir / self.model_file) as tmp:
            self._model.save_model(str(tmp))
        write_json(
            model_dir / META,
            {"kind": self.kind, "params": self.params, "cutoff": self.cutoff, "content_words": self.content_words},
        )
        return model_dir

    @classmethod
    def load(cls, model_dir: str | Path) -> FastTextClassifier:
        import fasttext

        model_dir = Path(model_dir)
        meta = check_kind(model_dir, cls.kind)
        self = cls(
            cutoff=meta["cutoff"] or 0,
            quantize=meta["cutoff"] is not None,
            content_words=meta.get("content_words", False),
        )
        self.params = meta["params"]
        self._model = fasttext.load_model(str(model_dir / self.model_file))
        return self


def describe(model_dir: str | Path) -> dict[str, Any]:
    """The saved classifier's meta.json plus its on-disk size (all files below the folder), for the report."""
    model_dir = Path(model_dir)
    size = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
    return {**json.loads((model_dir / META).read_text(encoding="utf-8")), "size_bytes": size}
