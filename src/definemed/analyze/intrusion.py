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
* an English function-word list adds 1 (the, of, with, which, ...); German/English homographs ("in", "an", "also", "will",
  "man", "die", ...) carry no evidence at all: they can join a span next to an English word but never fire alone;
* an allow-list of German medical loanwords and Latin terms ("Stent", "Compliance", "Diabetes mellitus", drug
  names, units) is neutral, as are numbers and abbreviations written in capitals (EKG, MRT, COPD).

Adjacent non-German words form a segment (punctuation and clearly German words end it); a segment with at
least one word above `word_threshold` becomes a span, trimmed to its English words plus bordering homographs,
and is reported when its summed evidence reaches `threshold`. Word look-ups are cached, so throughput is
dominated by the regex tokeniser. Optionally fastText LID vetoes longer spans it reads as German.

The word lists live in `definemed/assets/lexicon/` and are loaded on first use.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

_WORD = r"(\w+(?:['’\-]\w+)*)"
_PUNCT = r"([,;:.!?()\[\]{}\"“”„«»–—/|•\n])"
_LINK = r"((?:https?://|www\.)\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\b[\w-]+(?:\.[\w-]+)*\.(?:de|com|org|net|eu|at|ch)\b)"
# group 1: URLs, e-mail addresses and domain names (skipped), group 2: words, group 3: clause punctuation.
# Links are rare and the link alternative triples tokenising time, so texts without a hint of one use _PLAIN,
# whose group 1 never matches.
_TOKEN = re.compile(f"{_LINK}|{_WORD}|{_PUNCT}")
_PLAIN = re.compile(f"(?!)(.)|{_WORD}|{_PUNCT}")
_DOMAIN_HINT = re.compile(r"\.(?:de|com|org|net|eu|at|ch)\b")
_ARTICLE_A = re.compile(r" +[^\W\d_]")
_SENTENCE_ENDS = frozenset('.!?:\n•"“„«')
_GERMAN_CHARS = frozenset("äöüß")
_INFLECTIONS = ("s", "e", "n", "en", "es", "er")

# word kinds; only WORD, FUNCTION and TITLE (capitalised mid-sentence, English-looking) carry evidence
WORD, FUNCTION, HOMOGRAPH, ALLOW = "word", "function", "homograph", "allow"
NEUTRAL, BREAK, TITLE = "neutral", "break", "title"
_EVIDENCE_KINDS = (WORD, FUNCTION, TITLE)
_Tok = tuple[int, int, float, str, int]  # start, end, evidence, kind, number of words


@dataclass(frozen=True)
class Span:
    """An English span: character offsets into the analysed text, its text, and summed evidence (log10 odds)."""

    start: int
    end: int
    text: str
    score: float


@dataclass(frozen=True)
class Lexicon:
    """The word lists of `definemed/assets/lexicon/`, lower-cased."""

    allow: frozenset[str]
    allow_phrases: dict[str, tuple[tuple[str, ...], ...]]  # first word -> word tuples of multiword entries
    function_words: frozenset[str]
    homographs: frozenset[str]
    drug_endings: tuple[str, ...]


def _read_list(name: str) -> list[str]:
    text = resources.files("definemed").joinpath("assets", "lexicon", name).read_text(encoding="utf-8")
    return [ln.strip().lower() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


@cache
def load_lexicon() -> Lexicon:
    """Allow-list, English function words and homographs from the package assets (read once)."""
    allow, phrases = set(), {}
    for entry in _read_list("allow_de_medical.txt"):
        words = tuple(word for _, word, _ in _TOKEN.findall(entry) if word)
        if len(words) == 1:
            allow.add(words[0])
        elif words:
            phrases.setdefault(words[0], []).append(words)
    return Lexicon(
        allow=frozenset(allow),
        allow_phrases={k: tuple(sorted(v, key=len, reverse=True)) for k, v in phrases.items()},
        function_words=frozenset(_read_list("function_words_en.txt")),
        homographs=frozenset(_read_list("homographs_de_en.txt")),
        drug_endings=tuple(_read_list("inn_stems.txt")),
    )


@cache
def _frequency_tables() -> tuple[dict[str, float], dict[str, float]]:
    """English and German word frequencies from wordfreq (about 1 s to load, then a dict look-up per word
    instead of the ~20 us `zipf_frequency` spends re-tokenising its argument)."""
    try:
        from wordfreq import get_frequency_dict
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "English-intrusion detection needs the 'wordfreq' package: pip install wordfreq"
        ) from err
    return get_frequency_dict("en"), get_frequency_dict("de")


def _zipf(word: str, table: dict[str, float]) -> float:
    """wordfreq's Zipf value (log10 of frequency per billion words, 2 decimals); 0.0 for unknown words."""
    freq = table.get(word, 0.0)
    return round(math.log10(freq) + 9.0, 2) if freq > 0.0 else 0.0


def _allowed(word: str, lex: Lexicon) -> bool:
    """Allow-listed (also inflected: Stents, Screenings) or shaped like a drug name (INN stem ending)."""
    if word in lex.allow:
        return True
    if any(word.endswith(suf) and word[: -len(suf)] in lex.allow for suf in _INFLECTIONS):
        return True
    bare = word.removesuffix("e")
    return len(bare) > 5 and bare.endswith(lex.drug_endings)


@lru_cache(maxsize=500_000)
def word_evidence(word: str) -> tuple[float, str]:
    """(English-vs-German log10 odds, kind) of a lower-cased word, before casing and context."""
    lex = load_lexicon()
    if any(ch.isdigit() for ch in word):
        return 0.0, NEUTRAL
    if _allowed(word, lex):
        return 0.0, ALLOW
    if "-" in word:
        return _compound_evidence(word)
    if _GERMAN_CHARS.intersection(word):
        return -4.0, WORD
    en_table, de_table = _frequency_tables()
    en, de = _zipf(word, en_table), _zipf(word, de_table)
    if en <= 0.0 and de <= 0.0:
        return 0.0, NEUTRAL
    diff = max(-4.0, min(4.0, en - de))
    if word in lex.homographs:
        return diff, HOMOGRAPH  # the lean only decides whether it may join a neighbouring span
    if word in lex.function_words:
        return max(diff, 0.0) + 1.0, FUNCTION
    return diff, WORD


def _compound_evidence(word: str) -> tuple[float, str]:
    """Hyphenated words: German if any part is clearly German (Follow-up-Termin), else the mean of the parts."""
    parts = [word_evidence(p) for p in word.split("-") if p]
    scored = [s for s, kind in parts if kind in (WORD, FUNCTION)]
    if not scored:
        return 0.0, ALLOW if any(kind == ALLOW for _, kind in parts) else NEUTRAL
    if min(scored) <= -1.5:
        return min(scored), WORD
    return sum(scored) / len(scored), WORD


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
        for match in (_TOKEN if has_link else _PLAIN).finditer(text):
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
            return word == part or (word.startswith(part) and word[len(part) :] in _INFLECTIONS)

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
                anchored = anchored or (token[2] >= anchor and kind in _EVIDENCE_KINDS)
        return out

    def _span_of(self, text: str, segment: list[_Tok]) -> tuple[Span, int] | None:
        """The segment trimmed to its English anchors plus joining neighbours, if its evidence suffices."""
        anchors = [
            i for i, t in enumerate(segment) if t[2] >= self.word_threshold and t[3] in _EVIDENCE_KINDS
        ]
        if not anchors:
            return None
        first, last = anchors[0], anchors[-1]
        while first > 0 and self._joins(segment[first - 1], left=True):
            first -= 1
        while last < len(segment) - 1 and self._joins(segment[last + 1], left=False):
            last += 1
        chosen = segment[first : last + 1]
        score = sum(t[2] for t in chosen if t[3] in _EVIDENCE_KINDS)
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
        kinds = (WORD, FUNCTION, HOMOGRAPH) if left else _EVIDENCE_KINDS
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


def _prf(tp_p: int, n_pred: int, tp_r: int, n_gold: int) -> dict[str, float]:
    precision = tp_p / n_pred if n_pred else 1.0
    recall = tp_r / n_gold if n_gold else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def evaluate_detector(
    detector: EnglishIntrusionDetector, rows: Sequence[dict]
) -> dict[str, dict[str, float]]:
    """Sentence- and span-level precision/recall/F1 against rows of {"text", "mixed", "english_spans"}.

    A sentence is predicted mixed when any span is found. A gold span is found when a predicted span overlaps
    it; a predicted span is correct when it overlaps a gold span.
    """
    predicted = detector.detect_many([row["text"] for row in rows])
    sent_tp = sent_pred = sent_gold = 0
    span_ok = n_pred = gold_found = n_gold = 0
    for row, spans in zip(rows, predicted, strict=True):
        gold = _gold_offsets(row["text"], row.get("english_spans") or [])
        sent_pred += bool(spans)
        sent_gold += bool(row["mixed"])
        sent_tp += bool(spans) and bool(row["mixed"])
        overlaps = [[s.start < g_end and g_start < s.end for g_start, g_end in gold] for s in spans]
        n_pred += len(spans)
        span_ok += sum(any(row_) for row_ in overlaps)
        n_gold += len(gold)
        gold_found += sum(any(o[j] for o in overlaps) for j in range(len(gold)))
    return {
        "sentence": _prf(sent_tp, sent_pred, sent_tp, sent_gold),
        "span": _prf(span_ok, n_pred, gold_found, n_gold),
    }
