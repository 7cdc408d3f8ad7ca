"""datatrove's German quality heuristics, made cheap enough to run before the classifier on every document.

datatrove's Gopher repetition, Gopher quality and FineWeb quality filters each split the text into words with
a blank spaCy `de` pipeline. Three things made that the corpus stage's bottleneck (about 90 % of its time):

1. every filter tokenised the same text again;
2. datatrove wraps each call in a spaCy `memory_zone`, which empties spaCy's per-word cache after every
   document, so every word of every document went through the prefix/suffix/infix rules again (about 6x slower
   than with the cache; the zone itself is needed: without it spaCy's string store grows for the whole run);
3. the sentencizer ran on every call although word splitting does not use sentences.

`GermanWordTokenizer` plugs in at datatrove's extension point (a `WordTokenizer` passed as `language=`): the
same spaCy rules give the same words, the memory zone is closed every `zone_docs` documents instead of every
document, and the last text's words are kept so the next filter looking at the same document reuses them.
`GopherRepetitionFilter` keeps datatrove's checks, thresholds, order and drop reasons; only the n-gram counting
runs in C (Counter over tuples, set sizes) with datatrove's own sequential scan kept for documents that do
repeat. Both are checked against datatrove's originals in tests/corpus/test_quality_filters.py.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from datatrove.pipeline.filters import FineWebQualityFilter, GopherQualityFilter
from datatrove.pipeline.filters import GopherRepetitionFilter as DatatroveGopherRepetitionFilter
from datatrove.pipeline.filters.base_filter import BaseFilter as DatatroveBaseFilter
from datatrove.pipeline.filters.gopher_repetition_filter import find_all_duplicate, find_duplicates
from datatrove.utils.text import split_into_words
from datatrove.utils.word_tokenizers import WordTokenizer, strip_strings

if TYPE_CHECKING:
    from datatrove.data import Document
    from datatrove.pipeline.filters.base_filter import BaseFilter

    from definemed.corpus.config import QualityConfig

SPACY_LANGUAGE = "de"


class GermanWordTokenizer(WordTokenizer):
    """datatrove's spaCy German word tokenizer (blank `de`), with a cache of whitespace chunks across documents.

    spaCy splits text on whitespace first and tokenises each chunk on its own (prefix, suffix, infix rules and
    special cases never cross whitespace; that is why spaCy's own cache is keyed on chunks), and datatrove drops
    the whitespace tokens. So a document's words are the concatenation of its chunks' tokens, and a plain dict
    `chunk -> tokens` gives exactly `SpaCyTokenizer("de").word_tokenize`. spaCy then only sees chunks it has
    not seen before (a few per document once the cache is warm), inside a memory zone as datatrove does, and the
    cache is emptied when it holds `max_chunks` entries, so memory stays bounded on a 428M-document run.
    The last text's words are kept, so the three quality filters tokenise each document once. Pickles without
    spaCy or the cache (each worker builds its own).
    """

    def __init__(self, max_chunks: int = 200_000) -> None:
        super().__init__(SPACY_LANGUAGE)
        self.max_chunks = max_chunks
        self._nlp: Any = None
        self._chunks: dict[str, tuple[str, ...]] = {}
        self._last_text: str | None = None
        self._last_words: list[str] = []

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_nlp": None, "_chunks": {}, "_last_text": None, "_last_words": []}

    @property
    def nlp(self) -> Any:
        if self._nlp is None:
            import spacy

            self._nlp = spacy.blank(SPACY_LANGUAGE)
            self._nlp.add_pipe("sentencizer")
        return self._nlp

    def _tokenize_chunks(self, chunks: list[str]) -> None:
        """spaCy on the unseen chunks, joined by single spaces in one call; tokens mapped back by offset."""
        text = " ".join(chunks)
        starts = list(accumulate((len(c) + 1 for c in chunks[:-1]), initial=0))
        found: list[list[str]] = [[] for _ in chunks]
        with self.nlp.memory_zone():
            for token in self.nlp.tokenizer(text):
                found[bisect_right(starts, token.idx) - 1].append(token.text)
        for chunk, tokens in zip(chunks, found, strict=True):
            self._chunks[chunk] = tuple(tokens)

    def word_tokenize(self, text: str) -> list[str]:
        # Strings are immutable and we hold a reference to the last one, so identity means the same text.
        if text is not self._last_text:
            if len(self._chunks) > self.max_chunks:
                self._chunks.clear()  # before the lookup, so every chunk of this text is cached below
            chunks = text.split()
            if unseen := list(dict.fromkeys(c for c in chunks if c not in self._chunks)):
                self._tokenize_chunks(unseen)
            cache = self._chunks
            self._last_text, self._last_words = text, strip_strings([w for c in chunks for w in cache[c]])
        return list(self._last_words)

    def _doc(self, text: str) -> Any:
        self.nlp.max_length = len(text) + 10
        return self.nlp(text)

    def sent_tokenize(self, text: str) -> list[str]:
        with self.nlp.memory_zone():
            return strip_strings([sent.text for sent in self._doc(text).sents])

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        with self.nlp.memory_zone():
            return [(sent.start_char, sent.end_char) for sent in self._doc(text).sents]


def _top_ngram_chars(words: list[str], n: int, min_count: int = 1) -> int | None:
    """datatrove's `find_top_duplicate(get_n_grams(words, n))` without building the joined strings.

    Counter keeps first-seen order among equal counts, as it does for the strings, so ties pick the same n-gram.
    None when the document has fewer than n words (datatrove skips the check then) or the top n-gram occurs fewer
    than `min_count` times.
    """
    if len(words) < n:
        return None
    gram, count = Counter(zip(*(words[i:] for i in range(n)), strict=False)).most_common(1)[0]
    if count < min_count:
        return None
    return (sum(map(len, gram)) + n - 1) * count


def _all_duplicate_chars(words: list[str], n: int) -> int:
    """datatrove's `find_all_duplicate(words, n)`; the set-size test in C settles documents without repeats."""
    grams = list(map("".join, zip(*(words[i:] for i in range(n)), strict=False)))
    if len(set(grams)) == len(grams):
        return 0
    return find_all_duplicate(words, n)


class GopherRepetitionFilter(DatatroveGopherRepetitionFilter):
    """datatrove's Gopher repetition filter (same checks, order and drop reasons), with n-gram counting in C.

    `min_top_ngram_count` > 1 skips the top n-gram check when the most frequent n-gram occurs fewer times: with
    datatrove's 1, a short paragraph fails it with no repetition at all (one bigram of a 9-word text is > 20 %).
    """

    def __init__(self, *args: Any, min_top_ngram_count: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.min_top_ngram_count = min_top_ngram_count

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text = doc.text
        if not text:
            return False, "empty"
        paragraphs = self.paragraph_exp.split(text.strip())
        paragraphs_duplicates, char_duplicates = find_duplicates(paragraphs)
        if self.dup_para_frac and paragraphs_duplicates / len(paragraphs) > self.dup_para_frac:
            return False, "dup_para_frac"
        if self.dup_para_char_frac and char_duplicates / len(text) > self.dup_para_char_frac:
            return False, "dup_para_char_frac"
        lines = self._line_splitter.split(text)
        line_duplicates, char_duplicates = find_duplicates(lines)
        if self.dup_line_frac and line_duplicates / len(lines) > self.dup_line_frac:
            return False, "dup_line_frac"
        if self.dup_line_char_frac and char_duplicates / len(text) > self.dup_line_char_frac:
            return False, "dup_line_char_frac"
        words = split_into_words(text, self.language)
        for n, n_frac in self.top_n_grams:
            top_chars = _top_ngram_chars(words, n, self.min_top_ngram_count)
            if top_chars is not None and top_chars / len(text) > n_frac:
                return False, f"top_{n}_gram"
        for n, n_frac in self.dup_n_grams:
            if _all_duplicate_chars(words, n) / len(text) > n_frac:
                return False, f"duplicated_{n}_n_grams"
        return True


class MinLengthFilter(DatatroveBaseFilter):
    """Drop documents with fewer than `min_chars` characters (stripped): reason `too_short`."""

    name = "📏 Minimum length"

    def __init__(self, min_chars: int, exclusion_writer: Any = None) -> None:
        super().__init__(exclusion_writer)
        self.min_chars = min_chars

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return True if len(doc.text.strip()) >= self.min_chars else (False, "too_short")


def build_quality_filters(
    quality: QualityConfig, writer_for: Any, tokenizer: WordTokenizer | str | None = None
) -> list[tuple[str, BaseFilter]]:
    """Gopher repetition, Gopher quality and FineWeb quality filters from `corpus.quality`, German settings.

    Returns (reject folder name, filter) pairs in pipeline order; a section set to null is left out.
    `writer_for(name)` gives the exclusion writer for a reject folder. All filters share one tokenizer, so each
    document is split into words once. `tokenizer` may also be a datatrove language code (its own spaCy setup).
    """
    from definemed.corpus.filters import load_stopwords

    words = tokenizer or GermanWordTokenizer()
    steps: list[tuple[str, BaseFilter]] = []
    if quality.min_doc_chars is not None:
        steps.append(("min_length", MinLengthFilter(quality.min_doc_chars, exclusion_writer=writer_for("min_length"))))
    if (rep := quality.gopher_repetition) is not None:
        settings = rep.model_dump()
        ngrams = {k: tuple(map(tuple, settings.pop(k) or ())) for k in ("top_n_grams", "dup_n_grams")}
        steps.append(
            (
                "gopher_repetition",
                GopherRepetitionFilter(
                    **settings, **ngrams, exclusion_writer=writer_for("gopher_repetition"), language=words
                ),
            )
        )
    if (gq := quality.gopher_quality) is not None:
        steps.append(
            (
                "gopher_quality",
                GopherQualityFilter(
                    **gq.model_dump(),
                    stop_words=load_stopwords(),
                    exclusion_writer=writer_for("gopher_quality"),
                    language=words,
                ),
            )
        )
    if (fw := quality.fineweb_quality) is not None:
        # FineWebQualityFilter has no "off" value per rule; these bounds can never trigger.
        steps.append(
            (
                "fineweb_quality",
                FineWebQualityFilter(
                    line_punct_thr=fw.line_punct_thr if fw.line_punct_thr is not None else 0.0,
                    short_line_thr=fw.short_line_thr if fw.short_line_thr is not None else 1.0,
                    short_line_length=fw.short_line_length,
                    char_duplicates_ratio=fw.char_duplicates_ratio if fw.char_duplicates_ratio is not None else 1.0,
                    new_line_ratio=fw.new_line_ratio if fw.new_line_ratio is not None else float("inf"),
                    exclusion_writer=writer_for("fineweb_quality"),
                    language=words,
                ),
            )
        )
    return steps
