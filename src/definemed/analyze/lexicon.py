"""Per-word English-vs-German evidence for the intrusion detector (`intrusion.py`): the word lists of
`definemed/assets/lexicon/` (allow-list, English function words, homographs, drug-name stems), wordfreq Zipf
values, and the kind of each word. Also the tokeniser both share, so multiword allow-list entries split into words
exactly as the detector splits text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

WORD_PATTERN = r"(\w+(?:['’\-]\w+)*)"
PUNCT_PATTERN = r"([,;:.!?()\[\]{}\"“”„«»–—/|•\n])"
LINK_PATTERN = (
    r"((?:https?://|www\.)\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
    r"|\b[\w-]+(?:\.[\w-]+)*\.(?:de|com|org|net|eu|at|ch)\b)"
)
# group 1: URLs, e-mail addresses and domain names (skipped), group 2: words, group 3: clause punctuation.
# Links are rare and the link alternative triples tokenising time, so texts without a hint of one use PLAIN,
# whose group 1 never matches.
TOKEN = re.compile(f"{LINK_PATTERN}|{WORD_PATTERN}|{PUNCT_PATTERN}")
PLAIN = re.compile(f"(?!)(.)|{WORD_PATTERN}|{PUNCT_PATTERN}")
_GERMAN_CHARS = frozenset("äöüß")
INFLECTIONS = ("s", "e", "n", "en", "es", "er")

# word kinds; only WORD, FUNCTION and TITLE (capitalised mid-sentence, English-looking) carry evidence
WORD, FUNCTION, HOMOGRAPH, ALLOW = "word", "function", "homograph", "allow"
NEUTRAL, BREAK, TITLE = "neutral", "break", "title"
EVIDENCE_KINDS = (WORD, FUNCTION, TITLE)


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
        words = tuple(word for _, word, _ in TOKEN.findall(entry) if word)
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
        raise RuntimeError("English-intrusion detection needs the 'wordfreq' package: pip install wordfreq") from err
    return get_frequency_dict("en"), get_frequency_dict("de")


def _zipf(word: str, table: dict[str, float]) -> float:
    """wordfreq's Zipf value (log10 of frequency per billion words, 2 decimals); 0.0 for unknown words."""
    freq = table.get(word, 0.0)
    return round(math.log10(freq) + 9.0, 2) if freq > 0.0 else 0.0


def _allowed(word: str, lex: Lexicon) -> bool:
    """Allow-listed (also inflected: Stents, Screenings) or shaped like a drug name (INN stem ending)."""
    if word in lex.allow:
        return True
    if any(word.endswith(suf) and word[: -len(suf)] in lex.allow for suf in INFLECTIONS):
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
