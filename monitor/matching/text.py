"""Text analysis shared by rules and profiles: folding, tokens, paragraphs, sentences.

Tokens are case- and accent-folded words. Scripts written without spaces (Chinese, Japanese,
Korean) become overlapping character bigrams, so a name like 김정은 is found inside a longer
run such as 김정은은: an alias is matched as the sequence of its tokens (a phrase).
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

__all__ = ["CALENDAR_WORDS", "FOLD_EXTRA", "fold", "is_cjk", "tokenize", "split_paragraphs", "split_sentences", "find_phrase",
           "Alias", "parse_alias"]

# Han, Hiragana, Katakana, Hangul syllables and jamo: written without spaces between words.
_CJK = r"\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+")
_IS_CJK = re.compile(rf"[{_CJK}]")
# _TOKEN for a text without CJK characters (the regular expression is twice as fast).
_WORD = re.compile(r"[^\W_]+")
_NON_ASCII_RUN = re.compile(r"([^\x00-\x7f]+)")
# Folded non-ASCII runs, kept between calls: the same few (quotes, dashes, accented letters) recur.
_FOLDED_RUNS: dict[str, str] = {}
_MAX_FOLDED_RUNS = 20_000
_MAX_KEPT_RUN = 32
# Letters that do not decompose under NFKD but that readers take for their base letter.
FOLD_EXTRA = str.maketrans({"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ł": "l", "ı": "i"})
# Capitalised in English texts without being names (the days and months of other languages are not).
CALENDAR_WORDS = frozenset("january february march april may june july august september october november december "
                           "monday tuesday wednesday thursday friday saturday sunday".split())
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# A sentence ends at . ! ? (or their full-width forms) followed by space and an opening capital,
# digit or quote; abbreviations such as "Mr." or "U.S." before a capital are joined back below.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’»)]?\s+(?=[\"'“‘«(]?[A-Z0-9\u00C0-\u024F])|(?<=[。！？])")
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "st", "gen", "sen", "rep", "gov", "lt", "col",
                            "adm", "sgt", "capt", "prof", "jr", "sr", "vs", "no", "u.s", "u.n",
                            "jan", "feb", "mar", "apr", "aug", "sept", "sep", "oct", "nov", "dec", "m"})


def fold(text: str) -> str:
    """Lower-case, compatibility-normalise and strip accents: 'Corée' -> 'coree', 'ẞ' -> 'ss'."""
    if text.isascii():
        return text.lower()
    # ASCII runs only need lower-casing; the rest is folded run by run (runs repeat: ’ é – ...).
    # Equivalent to folding the whole text: normalisation never reorders or composes across an
    # ASCII character (tests/test_matching_text.py checks it against the whole-text version).
    pieces = _NON_ASCII_RUN.split(text)
    for i in range(0, len(pieces), 2):
        pieces[i] = pieces[i].lower()
    for i in range(1, len(pieces), 2):
        pieces[i] = _fold_run(pieces[i])
    return "".join(pieces)


def _fold_run(run: str) -> str:
    folded = _FOLDED_RUNS.get(run)
    if folded is not None:
        return folded
    decomposed = unicodedata.normalize("NFKD", run.casefold())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    # Hangul decomposes into jamo under NFKD; recompose so syllables stay whole.
    folded = unicodedata.normalize("NFC", stripped).translate(FOLD_EXTRA)
    if len(run) <= _MAX_KEPT_RUN:
        if len(_FOLDED_RUNS) >= _MAX_FOLDED_RUNS:
            _FOLDED_RUNS.clear()
        _FOLDED_RUNS[run] = folded
    return folded


def is_cjk(char: str) -> bool:
    """Whether `char` is of a script written without spaces (indexed as character bigrams)."""
    return _IS_CJK.match(char) is not None


def tokenize(text: str) -> list[str]:
    """Folded word tokens; runs of CJK characters become their character bigrams."""
    folded = fold(text)
    if _IS_CJK.search(folded) is None:
        return _WORD.findall(folded)
    out: list[str] = []
    for run in _TOKEN.findall(folded):
        if _IS_CJK.match(run):
            if len(run) == 1:
                out.append(run)
            else:
                out.extend(run[i:i + 2] for i in range(len(run) - 1))
        else:
            out.append(run)
    return out


def split_paragraphs(body: str) -> list[str]:
    """Paragraphs separated by blank lines; a body without blank lines splits on line breaks."""
    parts = [p.strip() for p in _PARAGRAPH_BREAK.split(body)]
    if len(parts) == 1 and "\n" in body.strip():
        parts = [p.strip() for p in body.splitlines()]
    return [" ".join(p.split()) for p in parts if p]


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of one paragraph, good enough for evidence and passages (not a linguistic parser)."""
    pieces = [p.strip() for p in _SENTENCE_END.split(paragraph) if p and p.strip()]
    sentences: list[str] = []
    for piece in pieces:
        if sentences:
            last_word = sentences[-1].rsplit(None, 1)[-1].rstrip(".").lower()
            if last_word in _ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha()):
                sentences[-1] = f"{sentences[-1]} {piece}"
                continue
        sentences.append(piece)
    return sentences


class Alias:
    """A name or term as tokens; a trailing '*' on the last word makes it a prefix ('nordkorea*')."""

    __slots__ = ("text", "tokens", "prefix")

    def __init__(self, text: str, tokens: tuple[str, ...], prefix: bool) -> None:
        self.text = text
        self.tokens = tokens
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"Alias({self.text!r})"

    @property
    def first(self) -> str:
        return self.tokens[0]


def parse_alias(text: str) -> Alias:
    """Analyse an alias once; raises ValueError when it has no word in it."""
    raw = text.strip()
    prefix = raw.endswith("*")
    tokens = tuple(tokenize(raw.rstrip("*")))
    if not tokens:
        raise ValueError(f"alias {text!r} has no words")
    return Alias(raw, tokens, prefix)


def find_phrase(tokens: Sequence[str], alias: Alias, positions: Iterable[int]) -> bool:
    """Whether `alias` occurs in `tokens` starting at one of `positions` (candidates for its first token)."""
    n = len(alias.tokens)
    last = alias.tokens[-1]
    for start in positions:
        end = start + n
        if end > len(tokens):
            continue
        if all(tokens[start + i] == alias.tokens[i] for i in range(n - 1)):
            token = tokens[end - 1]
            if token == last or (alias.prefix and token.startswith(last)):
                return True
    return False

