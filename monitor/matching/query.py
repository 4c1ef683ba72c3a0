"""The story query language: parse a boolean query once, evaluate it against many documents.

    summit AND (trump OR "donald trump") -cancelled
    title:summit  body:"Kim Jong Un"  denucleari*  trump NEAR/5 kim  김정은  首脑会谈

Text is analysed once per document (`make_document`) into positional postings per field, so
every query evaluated against it costs dictionary look-ups, not text scans. The same analyser
folds query words, so case and accents never matter (Corée == coree, Straße == strasse).
Scripts written without spaces (Chinese, Japanese, Korean) are indexed as character unigrams and
bigrams: a CJK word in a query is the phrase of its consecutive bigrams and matches inside any
longer run of text. See docs/query-language.md for the user's reference.
"""
from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from monitor.exceptions import QueryError
from monitor.matching.text import FOLD_EXTRA

__all__ = [
    "FIELDS", "Token", "Document", "Hit", "QueryMatch", "Query",
    "Term", "Phrase", "Prefix", "Near", "And", "Or", "Not",
    "analyze", "make_document", "parse",
]

FIELDS: tuple[str, ...] = ("title", "body")
MIN_PREFIX_LENGTH = 3
MAX_NEAR_DISTANCE = 1000
_MAX_NESTING = 100          # deeper parentheses (or longer NOT chains) are refused, not recursed into


# --------------------------------------------------------------------------------------------
# Analysis: folding, tokenising, CJK bigrams
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Token:
    """One indexed token: folded text, position in its field, character offsets in the original."""

    text: str
    position: int
    start: int
    end: int


# Diacritic blocks only: marks in other blocks (Indic vowel signs, kana voicing) change letters.
# Also dropped: variation selectors and the invisible characters that must not split a word
# (soft hyphen, zero-width (non-)joiner, word joiner, BOM).
_DIACRITICS = re.compile(
    "[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
    "\ufe00-\ufe0f\U000e0100-\U000e01ef\u00ad\u200c\u200d\u2060\ufeff]"
)


@lru_cache(maxsize=8192)
def _fold(cluster: str) -> str:
    # Twice: case folding can produce characters that decompose again (e.g. U+0130 -> i + dot).
    folded = cluster
    for _ in range(2):
        folded = _DIACRITICS.sub("", unicodedata.normalize("NFKD", folded)).casefold()
    # The letters NFKD leaves whole (ł, ø, đ, ß, œ, æ) fold as the facets and profiles fold them.
    return unicodedata.normalize("NFC", folded).translate(FOLD_EXTRA)


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return (
        0x3040 <= code <= 0x30FF            # hiragana, katakana
        or 0x31F0 <= code <= 0x31FF         # katakana phonetic extensions
        or 0x3400 <= code <= 0x4DBF         # CJK extension A
        or 0x4E00 <= code <= 0x9FFF         # CJK unified ideographs
        or 0xF900 <= code <= 0xFAFF         # CJK compatibility ideographs
        or 0x20000 <= code <= 0x3134F       # CJK extensions B-G
        or 0xAC00 <= code <= 0xD7AF         # hangul syllables
        or 0x1100 <= code <= 0x11FF         # hangul jamo
        or 0x3130 <= code <= 0x318F         # hangul compatibility jamo
    )


_WORD, _CJK, _SEPARATOR = 0, 1, 2


@lru_cache(maxsize=8192)
def _char_class(char: str) -> int:
    if _is_cjk(char):
        return _CJK
    # Letters, digits and combining marks (Indic vowel signs belong inside their word).
    return _WORD if unicodedata.category(char)[0] in "LNM" else _SEPARATOR


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


# ASCII letters/digits, or ASCII separators: the common case, folded without per-character work.
_ASCII_CHUNK = re.compile(r"[A-Za-z0-9]+|[\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+")


@dataclass(frozen=True, slots=True)
class _Segment:
    """A run of folded word characters (kind _WORD) or of CJK characters (kind _CJK)."""

    kind: int
    text: str
    starts: Sequence[int]     # original offsets of each folded character
    ends: Sequence[int]


class _SegmentBuilder:
    def __init__(self) -> None:
        self.segments: list[_Segment] = []
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
            self.segments.append(_Segment(self.kind, "".join(self.parts), tuple(self.starts), tuple(self.ends)))
            self.parts.clear()
            self.starts.clear()
            self.ends.clear()


def _segments(text: str) -> list[_Segment]:
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
                kind = _WORD if text[i].isalnum() else _SEPARATOR
                if kind == _WORD and whole and not builder.parts:
                    # A whole ASCII word: no neighbour can join it, so it is a segment of its own.
                    builder.segments.append(_Segment(_WORD, text[i:end].lower(), range(i, end), range(i + 1, end + 1)))
                else:
                    builder.add(text[i:end].lower(), kind, i, end)
                i = end
                continue
        end = _cluster_end(text, i)
        for char in _fold(text[i:end]):
            builder.add(char, _char_class(char), i, end)
        i = end
    builder.close()
    return builder.segments


def analyze(text: str) -> list[Token]:
    """Fold and tokenise `text`. A CJK run of n characters takes n positions: each position
    holds that character (unigram) and, but for the last, the bigram it starts."""
    tokens: list[Token] = []
    position = 0
    for segment in _segments(text):
        if segment.kind == _WORD:
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


@dataclass(frozen=True, slots=True)
class _FieldIndex:
    postings: Mapping[str, Mapping[int, tuple[int, int]]]   # token -> position -> (start, end)
    vocabulary: tuple[str, ...]                              # sorted, for prefix look-ups

    @classmethod
    def build(cls, tokens: Sequence[Token]) -> _FieldIndex:
        postings: dict[str, dict[int, tuple[int, int]]] = {}
        for token in sorted(tokens, key=lambda t: t.position):
            postings.setdefault(token.text, {})[token.position] = (token.start, token.end)
        return cls(postings, tuple(sorted(postings)))


_EMPTY_INDEX = _FieldIndex({}, ())


@dataclass(frozen=True)
class Document:
    """The analysed text of one article: tokens per field, plus positional postings."""

    fields: Mapping[str, Sequence[Token]]
    _indexes: Mapping[str, _FieldIndex] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "_indexes", {name: _FieldIndex.build(tokens) for name, tokens in self.fields.items()}
        )

    def _index(self, field_name: str) -> _FieldIndex:
        return self._indexes.get(field_name, _EMPTY_INDEX)


def make_document(title: str, body: str) -> Document:
    return Document({"title": analyze(title), "body": analyze(body)})


# --------------------------------------------------------------------------------------------
# The query AST
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Hit:
    """Where a query term matched: `term` as written canonically, character offsets in `field`."""

    term: str
    field: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class QueryMatch:
    matched: bool
    hits: tuple[Hit, ...] = ()


@dataclass(frozen=True, slots=True)
class _Span:
    first: int      # first and last token positions covered
    last: int
    start: int      # character offsets
    end: int


class Query:
    """An immutable query AST node. Build one with `parse`; `str()` gives canonical text."""

    __slots__ = ()

    def evaluate(self, doc: Document) -> bool:
        raise NotImplementedError

    def _hits(self, doc: Document) -> Iterator[Hit]:
        """Evidence of a node already known to match `doc`."""
        raise NotImplementedError

    def required_terms(self) -> frozenset[str] | None:
        """Folded tokens (and prefixes, written with a trailing '*') such that the query can match
        only a document containing at least one of them; None when no such set exists."""
        raise NotImplementedError

    def matches(self, doc: Document) -> QueryMatch:
        if not self.evaluate(doc):
            return QueryMatch(False)
        hits = sorted(set(self._hits(doc)), key=lambda h: (FIELDS.index(h.field), h.start, h.end, h.term))
        return QueryMatch(True, tuple(hits))


def _fields_of(field_name: str | None) -> tuple[str, ...]:
    return FIELDS if field_name is None else (field_name,)


def _scoped(text: str, field_name: str | None) -> str:
    return text if field_name is None else f"{field_name}:{text}"


class _Atom(Query):
    """A query term with positions: a word, a phrase or a prefix, optionally scoped to a field."""

    __slots__ = ()
    field: str | None

    def _spans(self, index: _FieldIndex) -> Iterator[_Span]:
        raise NotImplementedError

    def _text(self) -> str:
        """The canonical text without the field scope."""
        raise NotImplementedError

    def _with_field(self, field_name: str | None) -> _Atom:
        raise NotImplementedError

    def evaluate(self, doc: Document) -> bool:
        return any(next(self._spans(doc._index(name)), None) is not None for name in _fields_of(self.field))

    def _hits(self, doc: Document) -> Iterator[Hit]:
        term = self._text()
        for name in _fields_of(self.field):
            for span in self._spans(doc._index(name)):
                yield Hit(term, name, span.start, span.end)

    def __str__(self) -> str:
        return _scoped(self._text(), self.field)


@lru_cache(maxsize=4096)
def _plan(words: tuple[str, ...]) -> tuple[tuple[tuple[str, int], ...], int]:
    """The (token, relative position) units a phrase of folded words must hit, and its width.
    A CJK word is the chain of its bigrams (or its single character)."""
    units: list[tuple[str, int]] = []
    position = 0
    for word in words:
        if _is_cjk(word[0]):
            if len(word) == 1:
                units.append((word, position))
            else:
                units.extend((word[k:k + 2], position + k) for k in range(len(word) - 1))
            position += len(word)
        else:
            units.append((word, position))
            position += 1
    return tuple(units), position


def _phrase_spans(words: tuple[str, ...], index: _FieldIndex) -> Iterator[_Span]:
    units, width = _plan(words)
    postings = []
    for token, _ in units:
        positions = index.postings.get(token)
        if not positions:
            return
        postings.append(positions)
    # Walk the rarest unit's positions; look the others up by position.
    anchor = min(range(len(units)), key=lambda u: len(postings[u]))
    last_unit = len(units) - 1
    for anchor_position in postings[anchor]:
        base = anchor_position - units[anchor][1]
        if all(base + rel in postings[u] for u, (_, rel) in enumerate(units)):
            yield _Span(base, base + width - 1, postings[0][base][0], postings[last_unit][base + units[last_unit][1]][1])


def _check_word(word: str) -> None:
    segments = _segments(word)
    if len(segments) != 1 or segments[0].text != word:
        raise ValueError(f"{word!r} is not a single folded word; use parse() to build queries")


@dataclass(frozen=True, slots=True)
class Term(_Atom):
    """One folded word (or CJK run)."""

    word: str
    field: str | None = None

    def __post_init__(self) -> None:
        _check_word(self.word)

    def _spans(self, index: _FieldIndex) -> Iterator[_Span]:
        return _phrase_spans((self.word,), index)

    def _text(self) -> str:
        return self.word

    def _with_field(self, field_name: str | None) -> Term:
        return Term(self.word, field_name)

    def required_terms(self) -> frozenset[str] | None:
        return frozenset({max((u for u, _ in _plan((self.word,))[0]), key=len)})


@dataclass(frozen=True, slots=True)
class Phrase(_Atom):
    """Folded words at consecutive positions."""

    words: tuple[str, ...]
    field: str | None = None

    def __post_init__(self) -> None:
        if len(self.words) < 2:
            raise ValueError("a phrase has at least two words; one word is a Term")
        for word in self.words:
            _check_word(word)

    def _spans(self, index: _FieldIndex) -> Iterator[_Span]:
        return _phrase_spans(self.words, index)

    def _text(self) -> str:
        return '"' + " ".join(self.words) + '"'

    def _with_field(self, field_name: str | None) -> Phrase:
        return Phrase(self.words, field_name)

    def required_terms(self) -> frozenset[str] | None:
        return frozenset({max((u for u, _ in _plan(self.words)[0]), key=len)})


@dataclass(frozen=True, slots=True)
class Prefix(_Atom):
    """Every word starting with `stem`."""

    stem: str
    field: str | None = None

    def __post_init__(self) -> None:
        _check_word(self.stem)
        if len(self.stem) < MIN_PREFIX_LENGTH or _is_cjk(self.stem[0]):
            raise ValueError(f"a prefix needs at least {MIN_PREFIX_LENGTH} non-CJK characters: {self.stem!r}")

    def _spans(self, index: _FieldIndex) -> Iterator[_Span]:
        vocabulary = index.vocabulary
        i = bisect_left(vocabulary, self.stem)
        while i < len(vocabulary) and vocabulary[i].startswith(self.stem):
            for position, (start, end) in index.postings[vocabulary[i]].items():
                yield _Span(position, position, start, end)
            i += 1

    def _text(self) -> str:
        return self.stem + "*"

    def _with_field(self, field_name: str | None) -> Prefix:
        return Prefix(self.stem, field_name)

    def required_terms(self) -> frozenset[str] | None:
        return frozenset({self.stem + "*"})


@dataclass(frozen=True, slots=True)
class Near(Query):
    """Both atoms, in the same field, in either order, with at most distance-1 tokens between."""

    left: _Atom
    right: _Atom
    distance: int

    def __post_init__(self) -> None:
        if self.left.field != self.right.field:
            raise ValueError("both sides of NEAR must be scoped to the same field")
        if not 1 <= self.distance <= MAX_NEAR_DISTANCE:
            raise ValueError(f"NEAR distance must be between 1 and {MAX_NEAR_DISTANCE}")

    def _pairs(self, index: _FieldIndex) -> Iterator[tuple[_Span, _Span]]:
        lefts = list(self.left._spans(index))
        if not lefts:
            return
        by_first = sorted(self.right._spans(index), key=lambda s: s.first)
        if not by_first:
            return
        firsts = [s.first for s in by_first]
        by_last = sorted(by_first, key=lambda s: s.last)
        lasts = [s.last for s in by_last]
        n = self.distance
        for a in lefts:
            # right after left: right.first - left.last in [1, n]
            for b in by_first[bisect_left(firsts, a.last + 1):bisect_right(firsts, a.last + n)]:
                yield a, b
            # right before left: left.first - right.last in [1, n]
            for b in by_last[bisect_left(lasts, a.first - n):bisect_right(lasts, a.first - 1)]:
                yield a, b

    def evaluate(self, doc: Document) -> bool:
        return any(
            next(self._pairs(doc._index(name)), None) is not None for name in _fields_of(self.left.field)
        )

    def _hits(self, doc: Document) -> Iterator[Hit]:
        left_term, right_term = self.left._text(), self.right._text()
        for name in _fields_of(self.left.field):
            for a, b in self._pairs(doc._index(name)):
                yield Hit(left_term, name, a.start, a.end)
                yield Hit(right_term, name, b.start, b.end)

    def required_terms(self) -> frozenset[str] | None:
        return _narrowest((self.left.required_terms(), self.right.required_terms()))

    def __str__(self) -> str:
        return f"{self.left} NEAR/{self.distance} {self.right}"


def _narrowest(candidates: Sequence[frozenset[str] | None]) -> frozenset[str] | None:
    known = [c for c in candidates if c is not None]
    return min(known, key=len) if known else None


@dataclass(frozen=True, slots=True)
class And(Query):
    children: tuple[Query, ...]

    def __post_init__(self) -> None:
        if len(self.children) < 2:
            raise ValueError("AND needs at least two operands")

    def evaluate(self, doc: Document) -> bool:
        return all(child.evaluate(doc) for child in self.children)

    def _hits(self, doc: Document) -> Iterator[Hit]:
        for child in self.children:
            yield from child._hits(doc)

    def required_terms(self) -> frozenset[str] | None:
        # Every operand must match, so any one operand's requirement is enough.
        return _narrowest([child.required_terms() for child in self.children])

    def __str__(self) -> str:
        return " AND ".join(f"({c})" if isinstance(c, Or) else str(c) for c in self.children)


@dataclass(frozen=True, slots=True)
class Or(Query):
    children: tuple[Query, ...]

    def __post_init__(self) -> None:
        if len(self.children) < 2:
            raise ValueError("OR needs at least two operands")

    def evaluate(self, doc: Document) -> bool:
        return any(child.evaluate(doc) for child in self.children)

    def _hits(self, doc: Document) -> Iterator[Hit]:
        for child in self.children:
            if child.evaluate(doc):
                yield from child._hits(doc)

    def required_terms(self) -> frozenset[str] | None:
        union: set[str] = set()
        for child in self.children:
            terms = child.required_terms()
            if terms is None:
                return None
            union |= terms
        return frozenset(union)

    def __str__(self) -> str:
        return " OR ".join(f"({c})" if isinstance(c, And) else str(c) for c in self.children)


@dataclass(frozen=True, slots=True)
class Not(Query):
    child: Query

    def evaluate(self, doc: Document) -> bool:
        return not self.child.evaluate(doc)

    def _hits(self, doc: Document) -> Iterator[Hit]:
        return iter(())

    def required_terms(self) -> frozenset[str] | None:
        return None

    def __str__(self) -> str:
        inner = str(self.child)
        return f"NOT ({inner})" if isinstance(self.child, (And, Or, Near)) else f"NOT {inner}"


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Lexeme:
    kind: str       # "(", ")", "AND", "OR", "NOT", "-", "NEAR", "FIELD", "WORD", "PHRASE"
    text: str       # the source text (for FIELD, just the name)
    position: int


_FIELD_PREFIX = re.compile(r"([A-Za-z_]+):")
_NEAR = re.compile(r"NEAR/([0-9]{1,4})")


def _lex(query: str) -> list[_Lexeme]:
    lexemes: list[_Lexeme] = []
    i, length = 0, len(query)
    while i < length:
        char = query[i]
        if char.isspace():
            i += 1
        elif char in "()":
            lexemes.append(_Lexeme(char, char, i))
            i += 1
        elif char == '"':
            close = query.find('"', i + 1)
            if close < 0:
                raise QueryError("unterminated phrase: missing closing quote", query, i)
            lexemes.append(_Lexeme("PHRASE", query[i + 1:close], i))
            i = close + 1
        elif char == "-":
            lexemes.append(_Lexeme("-", char, i))
            i += 1
        elif (field_match := _FIELD_PREFIX.match(query, i)) is not None:
            lexemes.append(_Lexeme("FIELD", field_match.group(1), i))
            i = field_match.end()
        else:
            end = i
            while end < length and not query[end].isspace() and query[end] not in '()"':
                end += 1
            word = query[i:end]
            if word in ("AND", "OR", "NOT"):
                lexemes.append(_Lexeme(word, word, i))
            elif word == "NEAR" or word.startswith("NEAR/"):
                near = _NEAR.fullmatch(word)
                if near is None or not 1 <= int(near.group(1)) <= MAX_NEAR_DISTANCE:
                    raise QueryError(
                        f"NEAR needs a distance from 1 to {MAX_NEAR_DISTANCE}, as in NEAR/5", query, i
                    )
                lexemes.append(_Lexeme("NEAR", word, i))
            else:
                lexemes.append(_Lexeme("WORD", word, i))
            i = end
    return lexemes


_STARTS_OPERAND = frozenset({"(", "NOT", "-", "FIELD", "WORD", "PHRASE"})


class _Parser:
    """Recursive descent. Precedence, loosest first: OR, AND (explicit or implicit), NOT, NEAR."""

    def __init__(self, query: str) -> None:
        self.query = query
        self.lexemes = _lex(query)
        self.i = 0
        self.depth = 0

    def error(self, message: str, position: int) -> QueryError:
        return QueryError(message, self.query, position)

    def peek(self) -> _Lexeme | None:
        return self.lexemes[self.i] if self.i < len(self.lexemes) else None

    def parse(self) -> Query:
        if not self.lexemes:
            raise self.error("empty query", 0)
        node = self.or_expr()
        extra = self.peek()
        if extra is not None:
            if extra.kind == ")":
                raise self.error("unbalanced ')': no '(' to close", extra.position)
            raise self.error(f"unexpected {extra.text!r}", extra.position)
        return node

    def expect_operand(self, after: _Lexeme) -> _Lexeme:
        """The lexeme that must start an operand following `after` (an operator)."""
        nxt = self.peek()
        if nxt is None or nxt.kind == ")":
            raise self.error(f"{after.text} must be followed by a term", after.position)
        if nxt.kind not in _STARTS_OPERAND:
            raise self.error(f"unexpected {nxt.text} after {after.text}", nxt.position)
        return nxt

    def or_expr(self) -> Query:
        children = [self.and_expr()]
        while (lexeme := self.peek()) is not None and lexeme.kind == "OR":
            self.i += 1
            self.expect_operand(lexeme)
            children.append(self.and_expr())
        return _combine(Or, children)

    def and_expr(self) -> Query:
        children = [self.unary()]
        while (lexeme := self.peek()) is not None:
            if lexeme.kind == "AND":
                self.i += 1
                self.expect_operand(lexeme)
            elif lexeme.kind not in _STARTS_OPERAND:
                break
            children.append(self.unary())
        return _combine(And, children)

    def unary(self) -> Query:
        lexeme = self.peek()
        assert lexeme is not None   # callers check that an operand follows
        if lexeme.kind in ("AND", "OR", "NEAR"):
            raise self.error(f"{lexeme.text} needs a term on its left", lexeme.position)
        if lexeme.kind == ")":
            raise self.error("unexpected ')'", lexeme.position)
        negations = 0
        while lexeme.kind in ("NOT", "-"):
            self.i += 1
            negations += 1
            if negations > _MAX_NESTING:
                raise self.error(f"more than {_MAX_NESTING} negations in a row", lexeme.position)
            operand = self.expect_operand(lexeme)
            if lexeme.kind == "-" and operand.position != lexeme.position + 1:
                raise self.error("'-' must be directly followed by a term, as in -cancelled", lexeme.position)
            lexeme = operand
        node = self.near()
        for _ in range(negations):
            node = Not(node)
        return node

    def near(self) -> Query:
        left_start = self.lexemes[self.i].position
        left = self.primary()
        lexeme = self.peek()
        if lexeme is None or lexeme.kind != "NEAR":
            return left
        self.i += 1
        right_start = self.expect_operand(lexeme)
        right = self.primary()
        if not isinstance(left, _Atom):
            raise self.error("NEAR joins a word, phrase or wildcard on each side", left_start)
        if not isinstance(right, _Atom):
            raise self.error("NEAR joins a word, phrase or wildcard on each side", right_start.position)
        following = self.peek()
        if following is not None and following.kind == "NEAR":
            raise self.error("NEAR cannot be chained; join two NEARs with AND", following.position)
        if left.field is not None and right.field is not None and left.field != right.field:
            raise self.error("both sides of NEAR must be in the same field", right_start.position)
        scope = left.field or right.field
        return Near(left._with_field(scope), right._with_field(scope), int(lexeme.text.removeprefix("NEAR/")))

    def primary(self) -> Query:
        lexeme = self.peek()
        assert lexeme is not None   # callers check that an operand follows
        if lexeme.kind == "(":
            return self.group(lexeme, None)
        if lexeme.kind == "FIELD":
            name = lexeme.text.lower()
            if name not in FIELDS:
                raise self.error(
                    f"unknown field {lexeme.text!r} (fields: {', '.join(FIELDS)})", lexeme.position
                )
            self.i += 1
            target = self.peek()
            if target is None or target.kind not in ("(", "WORD", "PHRASE") or (
                target.position != lexeme.position + len(lexeme.text) + 1
            ):
                raise self.error(
                    f"{lexeme.text}: must be directly followed by a word, a phrase or '('", lexeme.position
                )
            if target.kind == "(":
                return self.group(target, name)
            return self.atom(target, name)
        if lexeme.kind in ("WORD", "PHRASE"):
            return self.atom(lexeme, None)
        raise self.error(f"unexpected {lexeme.text}", lexeme.position)

    def group(self, opening: _Lexeme, scope: str | None) -> Query:
        self.depth += 1
        if self.depth > _MAX_NESTING:
            raise self.error(f"parentheses nested deeper than {_MAX_NESTING}", opening.position)
        self.i += 1
        inner = self.peek()
        if inner is None:
            raise self.error("unbalanced '(': no ')' closes it", opening.position)
        if inner.kind == ")":
            raise self.error("empty parentheses", opening.position)
        node = self.or_expr()
        closing = self.peek()
        if closing is None or closing.kind != ")":
            raise self.error("unbalanced '(': no ')' closes it", opening.position)
        self.i += 1
        self.depth -= 1
        return node if scope is None else self.scope(node, scope, opening.position)

    def scope(self, node: Query, name: str, position: int) -> Query:
        """Apply `name:` to every atom inside a group."""
        if isinstance(node, _Atom):
            return self.scope_atom(node, name, position)
        if isinstance(node, Near):
            return Near(self.scope_atom(node.left, name, position), self.scope_atom(node.right, name, position),
                        node.distance)
        if isinstance(node, Not):
            return Not(self.scope(node.child, name, position))
        assert isinstance(node, (And, Or))
        return type(node)(tuple(self.scope(child, name, position) for child in node.children))

    def scope_atom(self, atom: _Atom, name: str, position: int) -> _Atom:
        if atom.field not in (None, name):
            raise self.error(f"{atom.field}: inside {name}:( ... )", position)
        return atom._with_field(name)

    def atom(self, lexeme: _Lexeme, scope: str | None) -> _Atom:
        self.i += 1
        text = lexeme.text
        if lexeme.kind == "PHRASE":
            star = text.find("*")
            if star >= 0:
                raise self.error("wildcards do not work inside a phrase", lexeme.position + 1 + star)
            words = tuple(s.text for s in _segments(text))
            if not words:
                raise self.error("empty phrase", lexeme.position)
            return Term(words[0], scope) if len(words) == 1 else Phrase(words, scope)
        star = text.find("*")
        if star >= 0:
            if star != len(text) - 1:
                raise self.error("'*' is allowed only at the end of a word", lexeme.position + star)
            stem = text[:-1]
            segments = _segments(stem)
            if len(segments) > 1 or segments and (
                segments[0].kind != _WORD or len(segments[0].text) != len(_fold(stem))
            ):
                raise self.error("a wildcard applies to one word of letters or digits", lexeme.position)
            if not segments or len(segments[0].text) < MIN_PREFIX_LENGTH:
                raise self.error(
                    f"a wildcard needs at least {MIN_PREFIX_LENGTH} characters before '*'", lexeme.position
                )
            return Prefix(segments[0].text, scope)
        words = tuple(s.text for s in _segments(text))
        if not words:
            raise self.error(f"{text!r} has no letters or digits to search for", lexeme.position)
        return Term(words[0], scope) if len(words) == 1 else Phrase(words, scope)


def _combine(kind: type[And] | type[Or], children: list[Query]) -> Query:
    """One child stays itself; nested nodes of the same kind flatten, so a OR (b OR c) == a OR b OR c."""
    if len(children) == 1:
        return children[0]
    flat: list[Query] = []
    for child in children:
        flat.extend(child.children if isinstance(child, kind) else (child,))
    return kind(tuple(flat))


def parse(query: str) -> Query:
    """Parse `query`; raise QueryError (with the 0-based position of the problem) if malformed."""
    return _Parser(query).parse()
