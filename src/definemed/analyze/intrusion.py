"""Word-level detection of English spans inside German answers (code-switching within a sentence).

The Language Confusion Benchmark switches its word-level metric off for Latin-script languages, so line-level
LID (see `langid.py`) misses the typical failure of an English-centric model answering in German: "Die Dosis
wird je nach Körpergewicht adjusted." This module finds such spans, one per run of English words.

Evidence per word, summed over a span as English-vs-German log10 odds:

* word frequency: Zipf value in English minus Zipf value in German, from the `wordfreq` lists (each Zipf
  unit is a factor of ten), clipped to +-4;
* German orthography (ä, ö, ü, ß) is decisive for German;
* casing: German capitalises nouns, English words inside a German sentence are almost never capitalised, so a
  capitalised word that does not start a sentence gets `capital_penalty` subtracted;
* an English function-word list adds 1 (the, of, with, which, ...); German/English homographs ("in", "an",
  "also", "will", "man", "die", ...) carry no evidence at all: they can join a span next to an English word but
  never fire alone;
* an allow-list of German medical loanwords and Latin terms ("Stent", "Compliance", "Diabetes mellitus", drug
  names, units) is neutral, as are numbers and abbreviations written in capitals (EKG, MRT, COPD).

Adjacent non-German words form a segment (punctuation and clearly German words end it); a segment with at
least one word above `word_threshold` becomes a span, trimmed to its English words plus bordering homographs,
and is reported when its summed evidence reaches `threshold`. Word look-ups are cached, so throughput is
dominated by the regex tokeniser. Optionally fastText LID vetoes longer spans it reads as German.

Per-word evidence and the word lists (`definemed/assets/lexicon/`, loaded on first use) are in `lexicon.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

from definemed.analyze.lexicon import (
    ALLOW,
    BREAK,
    EVIDENCE_KINDS,
    FUNCTION,
    HOMOGRAPH,
    INFLECTIONS,
    NEUTRAL,
    PLAIN,
    TITLE,
    TOKEN,
    WORD,
    load_lexicon,
    word_evidence,
)

__all__ = [
    "EnglishIntrusionDetector",
    "Span",
    "default_detector",
    "detect_english_spans",
    "detect_many",
    "evaluate_detector",
    "intrusion_rate",
    "word_evidence",
]

_DOMAIN_HINT = re.compile(r"\.(?:de|com|org|net|eu|at|ch)\b")
_ARTICLE_A = re.compile(r" +[^\W\d_]")
_SENTENCE_ENDS = frozenset('.!?:\n•"“„«')
_Tok = tuple[int, int, float, str, int]  # start, end, evidence, kind, number of words


@dataclass(frozen=True)
class Span:
    """An English span: character offsets into the analysed text, its text, and summed evidence (log10 odds)."""

    start: int
    end: int
    text: str
    score: float


class EnglishIntrusionDetector:
    """Finds English spans in German text.

    `threshold` is the summed log10 English-vs-German odds a span needs to be reported (the knob that trades
    precision for recall); `word_threshold` is the evidence one word needs to anchor a span; words at or below
    `-german_threshold` end a span. With `confirm_with_lid`, spans of `lid_min_words` or more words that
    fastText reads as German with probability above `lid_veto` are dropped (one batched call per `detect_many`).
    """

    def __init__(
        self,
        threshold: float = 1.0,
        word_threshold: float = 0.8,
        german_threshold: float = 1.0,
        capital_penalty: float = 3.0,
        edge_min: float = -0.3,
        confirm_with_lid: bool = False,
        lid_min_words: int = 3,
        lid_veto: float = 0.8,
    ) -> None:
        self.threshold = threshold
        self.word_threshold = word_threshold
        self.german_threshold = german_threshold
        self.edge_min = edge_min
        self.confirm_with_lid = confirm_with_lid
        self.lid_min_words = lid_min_words
        self.lid_veto = lid_veto
        self._capital_penalty = capital_penalty
        self._cache: dict[tuple[str, bool], tuple[float, str, int, bool]] = {}

    @property
    def capital_penalty(self) -> float:
        """Fixed at construction: it is baked into the per-word cache."""
        return self._capital_penalty

    def detect(self, text: str) -> list[Span]:
        """English spans of one text, in order of position."""
        return self.detect_many([text])[0]

    def detect_many(self, texts: Sequence[str]) -> list[list[Span]]:
        """English spans for each text; fastText (if enabled) runs once over all long candidate spans."""
        found = [self._candidates(text, self._tokens(text)) for text in texts]
        if self.confirm_with_lid:
            found = self._lid_veto(found)
        return [[span for span, _ in spans] for spans in found]

    def intrusion_rate(self, text: str) -> float:
        """Share of the text's words that lie inside English spans (0.0 for a text without words)."""
        tokens = self._tokens(text)
        n_words = sum(t[4] for t in tokens)
        if not n_words:
            return 0.0
        return sum(words for _, words in self._candidates(text, tokens)) / n_words

    # -- internals --------------------------------------------------------------------------------------
    # Tokens are plain tuples (_Tok) for speed; clause punctuation and links are BREAK tokens.

    def _word(self, word: str, sentence_start: bool) -> tuple[float, str, int, bool]:
        """(score, kind, n_words, may start an allow-listed phrase) of a word as written, cached."""
        key = (word, sentence_start)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        lower = word.lower()
        score, kind = word_evidence(lower)
        if len(word) == 1:
            score, kind = 0.0, NEUTRAL  # letters, units and abbreviations: z. B., u. a.; "a" is decided later
        elif word[0].isupper():
            if word.isupper() or word[1:].lower() != word[1:]:
                score, kind = 0.0, NEUTRAL  # EKG, MRT, HbA1c, mRNA-like casing: abbreviations
            elif not sentence_start and kind != ALLOW:
                # a German noun, or (TITLE) a word of an English name: "Journal of Medicine"
                score, kind = score - self._capital_penalty, TITLE if score > 0 else WORD
        if len(self._cache) > 1_000_000:
            self._cache.clear()
        result = self._cache[key] = (score, kind, word.count("-") + 1, lower in load_lexicon().allow_phrases)
        return result

    def _tokens(self, text: str) -> list[_Tok]:
        """Words with context-adjusted evidence, and BREAK tokens for clause punctuation and links."""
        tokens: list[_Tok] = []
        phrase_starts: list[int] = []
        sentence_start = True
        cache = self._cache  # the hot loop: one dict look-up per word once the vocabulary is warm
        has_link = "@" in text or "://" in text or "www." in text or _DOMAIN_HINT.search(text) is not None
        for match in (TOKEN if has_link else PLAIN).finditer(text):
            start, end = match.span()
            if match.lastindex != 2:
                tokens.append((start, end, 0.0, BREAK, 0))
                sentence_start = match.lastindex == 3 and text[start] in _SENTENCE_ENDS
                continue
            word = match.group(2)
            cached = cache.get((word, sentence_start)) or self._word(word, sentence_start)
            score, kind, n_words, phrase_start = cached
            if word == "a" and _ARTICLE_A.match(text, end):
                score, kind = word_evidence("a")  # the article only when a word follows (not "u. a.")
            if phrase_start:
                phrase_starts.append(len(tokens))
            tokens.append((start, end, score, kind, n_words))
            sentence_start = False
        if phrase_starts:
            self._mark_allowed_phrases(text, tokens, phrase_starts)
        return tokens

    @staticmethod
    def _mark_allowed_phrases(text: str, tokens: list[_Tok], starts: list[int]) -> None:
        """Neutralise multiword allow-list entries (Diabetes mellitus, Stroke Unit, Angina pectoris)."""
        phrases = load_lexicon().allow_phrases

        def matches(i: int, part: str) -> bool:
            word = text[tokens[i][0] : tokens[i][1]].lower()
            return word == part or (word.startswith(part) and word[len(part) :] in INFLECTIONS)

        for first in starts:
            window = [i for i in range(first, min(first + 8, len(tokens))) if tokens[i][3] != BREAK]
            for phrase in phrases[text[tokens[first][0] : tokens[first][1]].lower()]:
                if len(window) >= len(phrase) and all(
                    matches(i, p) for i, p in zip(window[1:], phrase[1:], strict=False)
                ):
                    for i in window[: len(phrase)]:
                        tokens[i] = (tokens[i][0], tokens[i][1], 0.0, ALLOW, tokens[i][4])
                    break

    def _candidates(self, text: str, tokens: list[_Tok]) -> list[tuple[Span, int]]:
        """(span, number of words) for every segment of non-German words that holds an English anchor."""
        out: list[tuple[Span, int]] = []
        segment: list[_Tok] = []
        german, anchor, anchored = -self.german_threshold, self.word_threshold, False
        opener = BREAK  # kind of the token before the current segment
        for token in [*tokens, (0, 0, 0.0, BREAK, 0)]:
            kind = token[3]
            if kind == BREAK or (token[2] <= german and kind != HOMOGRAPH):
                if anchored and not (opener == kind == TITLE and _only_function_words(segment)):
                    span = self._span_of(text, segment)
                    if span is not None:
                        out.append(span)
                if segment:
                    segment, anchored = [], False
                opener = kind
            else:
                segment.append(token)
                anchored = anchored or (token[2] >= anchor and kind in EVIDENCE_KINDS)
        return out

    def _span_of(self, text: str, segment: list[_Tok]) -> tuple[Span, int] | None:
        """The segment trimmed to its English anchors plus joining neighbours, if its evidence suffices."""
        anchors = [i for i, t in enumerate(segment) if t[2] >= self.word_threshold and t[3] in EVIDENCE_KINDS]
        if not anchors:
            return None
        first, last = anchors[0], anchors[-1]
        while first > 0 and self._joins(segment[first - 1], left=True):
            first -= 1
        while last < len(segment) - 1 and self._joins(segment[last + 1], left=False):
            last += 1
        chosen = segment[first : last + 1]
        score = sum(t[2] for t in chosen if t[3] in EVIDENCE_KINDS)
        if score < self.threshold:
            return None
        start, end = chosen[0][0], chosen[-1][1]
        return Span(start, end, text[start:end], round(score, 3)), sum(t[4] for t in chosen)

    def _joins(self, token: _Tok, left: bool) -> bool:
        """Whether a word bordering an English run belongs to it.

        Weak words join when they do not lean German. Homographs join only on the left, where they open an
        English phrase ("in most cases", "so that"); on the right they usually start German again ("pain in
        der Brust").
        """
        kinds = (WORD, FUNCTION, HOMOGRAPH) if left else EVIDENCE_KINDS
        return token[3] in kinds and token[2] >= self.edge_min

    def _lid_veto(self, found: list[list[tuple[Span, int]]]) -> list[list[tuple[Span, int]]]:
        from definemed.analyze.langid import identify

        long_spans = [s.text for spans in found for s, words in spans if words >= self.lid_min_words]
        verdicts = iter(identify(long_spans))
        kept = []
        for spans in found:
            keep = []
            for span, words in spans:
                lang, prob = next(verdicts) if words >= self.lid_min_words else ("en", 1.0)
                if not (lang == "de" and prob > self.lid_veto):
                    keep.append((span, words))
            kept.append(keep)
        return kept


def _only_function_words(segment: list[_Tok]) -> bool:
    """'of' in "Society of Cardiology": function words inside an English proper name are not an intrusion."""
    return all(t[3] != WORD for t in segment)


@cache
def default_detector() -> EnglishIntrusionDetector:
    """The detector behind the module-level helpers (thresholds calibrated in benchmarks/intrusion_calibration.py)."""
    return EnglishIntrusionDetector()


def detect_english_spans(text: str) -> list[Span]:
    """English spans in a German text with the default detector."""
    return default_detector().detect(text)


def detect_many(texts: Iterable[str]) -> list[list[Span]]:
    """English spans for each of many German texts with the default detector."""
    return default_detector().detect_many(list(texts))


def intrusion_rate(text: str) -> float:
    """English words / all words of a German text with the default detector."""
    return default_detector().intrusion_rate(text)


def _gold_offsets(text: str, spans: Sequence[str]) -> list[tuple[int, int]]:
    offsets, cursor = [], 0
    for span in spans:
        start = text.find(span, cursor)
        start = text.find(span) if start < 0 else start
        if start < 0:
            raise ValueError(f"gold span {span!r} not found in {text!r}")
        offsets.append((start, start + len(span)))
        cursor = start + len(span)
    return offsets


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _rounded(precision: float, recall: float, f1: float) -> dict[str, float]:
    return {"precision": round(float(precision), 4), "recall": round(float(recall), 4), "f1": round(float(f1), 4)}


def evaluate_detector(detector: EnglishIntrusionDetector, rows: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Sentence- and span-level precision/recall/F1 against rows of {"text", "mixed", "english_spans"}.

    A sentence is predicted mixed when any span is found (scikit-learn's binary scores; 1.0 where nothing was
    predicted or nothing is gold). A gold span is found when a predicted span overlaps it; a predicted span is
    correct when it overlaps a gold span. Span-level precision and recall thus count different things (a long
    predicted span may cover two gold spans), which is no confusion matrix: they stay two shares and their
    harmonic mean (ADR 0007, "Own code kept").
    """
    from sklearn.metrics import precision_recall_fscore_support

    predicted = detector.detect_many([row["text"] for row in rows])
    gold_mixed, pred_mixed = [], []
    pred_correct: list[bool] = []  # per predicted span: overlaps a gold span
    gold_found: list[bool] = []  # per gold span: overlapped by a predicted span
    for row, spans in zip(rows, predicted, strict=True):
        gold = _gold_offsets(row["text"], row.get("english_spans") or [])
        gold_mixed.append(bool(row["mixed"]))
        pred_mixed.append(bool(spans))
        overlaps = [[s.start < g_end and g_start < s.end for g_start, g_end in gold] for s in spans]
        pred_correct += [any(o) for o in overlaps]
        gold_found += [any(o[j] for o in overlaps) for j in range(len(gold))]
    sentence = precision_recall_fscore_support(
        gold_mixed, pred_mixed, average="binary", pos_label=True, zero_division=1.0
    )[:3]
    span_p = sum(pred_correct) / len(pred_correct) if pred_correct else 1.0
    span_r = sum(gold_found) / len(gold_found) if gold_found else 1.0
    return {"sentence": _rounded(*sentence), "span": _rounded(span_p, span_r, _f1(span_p, span_r))}
