"""Text analysis for all of matching: folding, tokens (with their offsets), paragraphs, sentences.

One analyser serves facets, profiles, anchors and the query language, so a word folds the same
wherever it is written. Tokens are case- and accent-folded words: `fold` strips the marks of
the diacritic blocks (é -> e, Pyŏngyang -> pyongyang) but keeps marks that change a letter (a
kana voicing mark: が is not か; an Indic vowel sign stays inside its word). Scripts written
without spaces (Chinese, Japanese, Korean) become overlapping character bigrams, so a name like
김정은 is found inside a longer run such as 김정은은: an alias is matched as the sequence of its
tokens (a phrase). `analyze` gives the same tokens with their positions and character offsets,
which the query language indexes (a CJK run there holds its unigrams as well).
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["CALENDAR_WORDS", "FOLD_EXTRA", "fold", "is_cjk", "tokenize", "Token", "analyze", "Segment", "segments",
           "WORD", "CJK", "split_paragraphs", "split_sentences", "find_phrase", "Alias", "parse_alias"]

# Letters that do not decompose under NFKD but that readers take for their base letter.
FOLD_EXTRA = str.maketrans({"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ł": "l", "ı": "i"})
# Diacritic blocks only: marks in other blocks (Indic vowel signs, kana voicing) change letters.
# Also dropped: variation selectors and the invisible characters that must not split a word
# (soft hyphen, zero-width (non-)joiner, word joiner, BOM).
_DIACRITICS = re.compile(
    "[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
    "\ufe00-\ufe0f\U000e0100-\U000e01ef\u00ad\u200c\u200d\u2060\ufeff]"
)
# Han, Hiragana, Katakana, Hangul syllables and jamo: written without spaces between words.
_CJK_RANGES = ("\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
               "\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f")
_IS_CJK = re.compile(f"[{_CJK_RANGES}]")
# ASCII letters and digits: what a word is in a text without any other character.
_ASCII_WORD = re.compile(r"[a-z0-9]+")
# In a text marked by `_mark_run` (separators made spaces): runs of CJK characters, or of others
# but ASCII punctuation and spaces.
_MARKED_TOKEN = re.compile(f"[{_CJK_RANGES}]+|[^\\x00-\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7f{_CJK_RANGES}]+")
_NON_ASCII_RUN = re.compile(r"([^\x00-\x7f]+)")
# ASCII letters/digits, or ASCII separators: the common case, analysed without per-character work.
_ASCII_CHUNK = re.compile(r"[A-Za-z0-9]+|[\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+")
# Analysed non-ASCII runs, kept between calls: the same few (quotes, dashes, accented letters) recur.
_FOLDED_RUNS: dict[str, str] = {}
_MARKED_RUNS: dict[str, str] = {}
_MAX_KEPT_RUNS = 20_000
_MAX_KEPT_RUN = 32
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

WORD, CJK, _SEPARATOR = 0, 1, 2


# --------------------------------------------------------------------------------------------
# Folding: one character cluster (a base character and the marks that follow it) at a time
# --------------------------------------------------------------------------------------------

@lru_cache(maxsize=8192)
def _fold_cluster(cluster: str) -> str:
    # Twice: case folding can produce characters that decompose again (e.g. U+0130 -> i + dot).
    folded = cluster
    for _ in range(2):
        folded = _DIACRITICS.sub("", unicodedata.normalize("NFKD", folded)).casefold()
    return unicodedata.normalize("NFC", folded).translate(FOLD_EXTRA)


def is_cjk(char: str) -> bool:
    """Whether `char` is of a script written without spaces (indexed as character bigrams)."""
    return _IS_CJK.match(char) is not None


@lru_cache(maxsize=8192)
def _char_class(char: str) -> int:
    if is_cjk(char):
        return CJK
    # Letters, digits and combining marks (Indic vowel signs belong inside their word).
    return WORD if unicodedata.category(char)[0] in "LNM" else _SEPARATOR


@lru_cache(maxsize=8192)
def _is_mark(char: str) -> bool:
    return unicodedata.category(char)[0] == "M"


def _cluster_end(text: str, i: int) -> int:
    """The end of the cluster starting at i: a base character and the marks that follow it."""
    j = i + 1
    conjoining = "\u1100" <= text[i] <= "\u115f"   # a hangul leading jamo takes the vowel/final jamo
    while j < len(text) and (_is_mark(text[j]) or conjoining and "\u1160" <= text[j] <= "\u11ff"):
        j += 1
    return j


def _folded_clusters(run: str) -> Iterable[str]:
    i = 0
    while i < len(run):
        end = _cluster_end(run, i)
        yield _fold_cluster(run[i:end])
        i = end


def _kept(cache: dict[str, str], run: str, value: str) -> str:
    if len(run) <= _MAX_KEPT_RUN:
        if len(cache) >= _MAX_KEPT_RUNS:
            cache.clear()
        cache[run] = value
    return value


def _fold_run(run: str) -> str:
    folded = _FOLDED_RUNS.get(run)
    if folded is None:
        folded = _kept(_FOLDED_RUNS, run, "".join(_folded_clusters(run)))
    return folded


def _mark_run(run: str) -> str:
    """A folded non-ASCII run with every separator made a space: what `tokenize` splits."""
    marked = _MARKED_RUNS.get(run)
    if marked is None:
        marked = _kept(_MARKED_RUNS, run, "".join(c if _char_class(c) != _SEPARATOR else " "
                                                  for c in _fold_run(run)))
    return marked


def _by_runs(text: str, analyse_run: Callable[[str], str]) -> str:
    # An ASCII run only needs lower-casing; a mark opening a non-ASCII run folds on its own as it
    # would with the ASCII letter before it (no mark outside the dropped blocks composes with
    # one), so runs fold apart (tests/test_matching_equivalence.py checks it against `analyze`).
    pieces = _NON_ASCII_RUN.split(text)
    for i in range(0, len(pieces), 2):
        pieces[i] = pieces[i].lower()
    for i in range(1, len(pieces), 2):
        pieces[i] = analyse_run(pieces[i])
    return "".join(pieces)


def fold(text: str) -> str:
    """Lower-case, compatibility-normalise and strip accents: 'Corée' -> 'coree', 'ẞ' -> 'ss'."""
    if text.isascii():
        return text.lower()
    return _by_runs(text, _fold_run)


def _bigrams(run: str) -> list[str]:
    return [run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)]


def tokenize(text: str) -> list[str]:
    """Folded word tokens; runs of CJK characters become their character bigrams.

    The tokens `analyze` gives, without offsets and CJK unigrams (a run of one character is
    its own token): the fast path every article and story goes through."""
    if text.isascii():
        return _ASCII_WORD.findall(text.lower())
    marked = _by_runs(text, _mark_run)
    if _IS_CJK.search(marked) is None:
        return _MARKED_TOKEN.findall(marked)
    out: list[str] = []
    for run in _MARKED_TOKEN.findall(marked):
        if _IS_CJK.match(run):
            out.extend(_bigrams(run))
        else:
            out.append(run)
    return out


# --------------------------------------------------------------------------------------------
# Analysis with offsets: what the query language indexes
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Token:
    """One indexed token: folded text, position in its field, character offsets in the original."""

    text: str
    position: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of folded word characters (kind WORD) or of CJK characters (kind CJK)."""

    kind: int
    text: str
    starts: Sequence[int]     # original offsets of each folded character
    ends: Sequence[int]


class _SegmentBuilder:
    def __init__(self) -> None:
        self.segments: list[Segment] = []
        self.kind = _SEPARATOR
        self.parts: list[str] = []
        self.starts: list[int] = []
        self.ends: list[int] = []

    def add(self, folded: str, kind: int, start: int, end: int) -> None:
        """Append `folded` characters of one kind, each spanning [start, end) of the original
        (a run of ASCII characters passes end - start == len(folded), one offset each)."""
        if kind != self.kind:
            self.close()
            self.kind = kind
        if kind == _SEPARATOR:
            return
        self.parts.append(folded)
        if end - start == len(folded):
            self.starts.extend(range(start, end))
            self.ends.extend(range(start + 1, end + 1))
        else:
            self.starts.extend([start] * len(folded))
            self.ends.extend([end] * len(folded))

    def close(self) -> None:
        if self.parts:
            self.segments.append(Segment(self.kind, "".join(self.parts), tuple(self.starts), tuple(self.ends)))
            self.parts.clear()
            self.starts.clear()
            self.ends.clear()


def segments(text: str) -> list[Segment]:
    """The folded words and CJK runs of `text`, with the offsets of each folded character."""
    builder = _SegmentBuilder()
    i, length = 0, len(text)
    while i < length:
        chunk = _ASCII_CHUNK.match(text, i)
        if chunk is not None:
            end = chunk.end()
            whole = end == length or text[end].isascii()
            if not whole and _is_mark(text[end]):
                end -= 1    # the mark belongs to the chunk's last character: fold them together
            if end > i:
                kind = WORD if text[i].isalnum() else _SEPARATOR
                if kind == WORD and whole and not builder.parts:
                    # A whole ASCII word: no neighbour can join it, so it is a segment of its own.
                    builder.segments.append(Segment(WORD, text[i:end].lower(), range(i, end), range(i + 1, end + 1)))
                else:
                    builder.add(text[i:end].lower(), kind, i, end)
                i = end
                continue
        end = _cluster_end(text, i)
        for char in _fold_cluster(text[i:end]):
            builder.add(char, _char_class(char), i, end)
        i = end
    builder.close()
    return builder.segments


@lru_cache(maxsize=8192)
def _separates(char: str) -> bool:
    """Whether `char` (not ASCII) only ever separates words: neither it nor what it folds to is
    a letter, digit, mark or CJK character (a curly quote, a dash; not '™', which folds to 'tm')."""
    return _char_class(char) == _SEPARATOR and all(_char_class(c) == _SEPARATOR for c in _fold_cluster(char))


def word_spans(text: str) -> list[tuple[str, int, int]] | None:
    """`analyze`'s tokens as (text, start, end), their positions in order, for a text whose words
    are all ASCII and whose other characters all separate (most English news: curly quotes,
    dashes); None for any other text. Without the per-character work `analyze` does."""
    if not text.isascii() and not all(_separates(c) for run in _NON_ASCII_RUN.findall(text) for c in run):
        return None
    # Every character left is ASCII or separates, so lower() keeps the offsets.
    return [(m.group(), m.start(), m.end()) for m in _ASCII_WORD.finditer(text.lower())]


def analyze(text: str) -> list[Token]:
    """Fold and tokenise `text`, with offsets. A CJK run of n characters takes n positions: each
    position holds that character (unigram) and, but for the last, the bigram it starts."""
    tokens: list[Token] = []
    position = 0
    for segment in segments(text):
        if segment.kind == WORD:
            tokens.append(Token(segment.text, position, segment.starts[0], segment.ends[-1]))
            position += 1
            continue
        run = segment.text
        for k, char in enumerate(run):
            tokens.append(Token(char, position + k, segment.starts[k], segment.ends[k]))
            if k + 1 < len(run):
                tokens.append(Token(run[k:k + 2], position + k, segment.starts[k], segment.ends[k + 1]))
        position += len(run)
    return tokens


# --------------------------------------------------------------------------------------------
# Paragraphs, sentences, aliases
# --------------------------------------------------------------------------------------------

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

