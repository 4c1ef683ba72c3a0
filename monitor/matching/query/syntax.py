"""The query syntax tree: immutable nodes that evaluate themselves against a document.

`str(node)` is the canonical text of the query; `required_groups` is what the matcher's
prefilter needs (groups of words: every matching document holds one word of each group), and
`required_terms` the narrowest of those groups.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from monitor.matching.document import FIELDS, Document, FieldIndex
from monitor.matching.query.spans import Span, phrase_spans, plan, prefix_spans
from monitor.matching.text import is_cjk, segments

__all__ = ["MIN_PREFIX_LENGTH", "MAX_NEAR_DISTANCE", "Hit", "QueryMatch", "Query", "Atom", "Term", "Phrase", "Prefix",
           "Near", "And", "Or", "Not"]

MIN_PREFIX_LENGTH = 3
MAX_NEAR_DISTANCE = 1000


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

    def required_groups(self) -> tuple[frozenset[str], ...]:
        """Sets of such tokens, every one of which a matching document holds a token of: one
        per operand of an AND and per side of a NEAR; none when nothing is required. A token
        only the title can hold (the query says `title:`) is written `title:token`."""
        terms = self.required_terms()
        return (terms,) if terms is not None else ()

    def matches(self, doc: Document) -> QueryMatch:
        if not self.evaluate(doc):
            return QueryMatch(False)
        hits = sorted(set(self._hits(doc)), key=lambda h: (FIELDS.index(h.field), h.start, h.end, h.term))
        return QueryMatch(True, tuple(hits))


def _fields_of(field_name: str | None) -> tuple[str, ...]:
    return FIELDS if field_name is None else (field_name,)


def _scoped(text: str, field_name: str | None) -> str:
    return text if field_name is None else f"{field_name}:{text}"


class Atom(Query):
    """A query term with positions: a word, a phrase or a prefix, optionally scoped to a field."""

    __slots__ = ()
    field: str | None

    def _spans(self, index: FieldIndex) -> Iterator[Span]:
        raise NotImplementedError

    def _text(self) -> str:
        """The canonical text without the field scope."""
        raise NotImplementedError

    def with_field(self, field_name: str | None) -> Atom:
        raise NotImplementedError

    def evaluate(self, doc: Document) -> bool:
        return any(next(self._spans(doc.field(name)), None) is not None for name in _fields_of(self.field))

    def required_groups(self) -> tuple[frozenset[str], ...]:
        terms = self.required_terms()
        if terms is None:
            return ()
        return (frozenset(f"title:{t}" for t in terms) if self.field == "title" else terms,)

    def _hits(self, doc: Document) -> Iterator[Hit]:
        term = self._text()
        for name in _fields_of(self.field):
            for span in self._spans(doc.field(name)):
                yield Hit(term, name, span.start, span.end)

    def __str__(self) -> str:
        return _scoped(self._text(), self.field)


def check_word(word: str) -> None:
    found = segments(word)
    if len(found) != 1 or found[0].text != word:
        raise ValueError(f"{word!r} is not a single folded word; use parse() to build queries")


@dataclass(frozen=True, slots=True)
class Term(Atom):
    """One folded word (or CJK run)."""

    word: str
    field: str | None = None

    def __post_init__(self) -> None:
        check_word(self.word)

    def _spans(self, index: FieldIndex) -> Iterator[Span]:
        return phrase_spans((self.word,), index)

    def evaluate(self, doc: Document) -> bool:
        if is_cjk(self.word[0]):    # a chain of bigrams: phrase_spans walks it
            return Atom.evaluate(self, doc)
        # One word occurs where the field's postings hold it: no span to build.
        return any(self.word in doc.field(name).postings for name in _fields_of(self.field))

    def _text(self) -> str:
        return self.word

    def with_field(self, field_name: str | None) -> Term:
        return Term(self.word, field_name)

    def required_terms(self) -> frozenset[str] | None:
        return frozenset({max((u for u, _ in plan((self.word,))[0]), key=len)})


@dataclass(frozen=True, slots=True)
class Phrase(Atom):
    """Folded words at consecutive positions."""

    words: tuple[str, ...]
    field: str | None = None

    def __post_init__(self) -> None:
        if len(self.words) < 2:
            raise ValueError("a phrase has at least two words; one word is a Term")
        for word in self.words:
            check_word(word)

    def _spans(self, index: FieldIndex) -> Iterator[Span]:
        return phrase_spans(self.words, index)

    def _text(self) -> str:
        return '"' + " ".join(self.words) + '"'

    def with_field(self, field_name: str | None) -> Phrase:
        return Phrase(self.words, field_name)

    def required_terms(self) -> frozenset[str] | None:
        return frozenset({max((u for u, _ in plan(self.words)[0]), key=len)})


@dataclass(frozen=True, slots=True)
class Prefix(Atom):
    """Every word starting with `stem`."""

    stem: str
    field: str | None = None

    def __post_init__(self) -> None:
        check_word(self.stem)
        if len(self.stem) < MIN_PREFIX_LENGTH or is_cjk(self.stem[0]):
            raise ValueError(f"a prefix needs at least {MIN_PREFIX_LENGTH} non-CJK characters: {self.stem!r}")

    def _spans(self, index: FieldIndex) -> Iterator[Span]:
        return prefix_spans(self.stem, index)

    def _text(self) -> str:
        return self.stem + "*"

    def with_field(self, field_name: str | None) -> Prefix:
        return Prefix(self.stem, field_name)

    def required_terms(self) -> frozenset[str] | None:
        return frozenset({self.stem + "*"})


@dataclass(frozen=True, slots=True)
class Near(Query):
    """Both atoms, in the same field, in either order, with at most distance-1 tokens between."""

    left: Atom
    right: Atom
    distance: int

    def __post_init__(self) -> None:
        if self.left.field != self.right.field:
            raise ValueError("both sides of NEAR must be scoped to the same field")
        if not 1 <= self.distance <= MAX_NEAR_DISTANCE:
            raise ValueError(f"NEAR distance must be between 1 and {MAX_NEAR_DISTANCE}")

    def _pairs(self, index: FieldIndex) -> Iterator[tuple[Span, Span]]:
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
            next(self._pairs(doc.field(name)), None) is not None for name in _fields_of(self.left.field)
        )

    def _hits(self, doc: Document) -> Iterator[Hit]:
        left_term, right_term = self.left._text(), self.right._text()
        for name in _fields_of(self.left.field):
            for a, b in self._pairs(doc.field(name)):
                yield Hit(left_term, name, a.start, a.end)
                yield Hit(right_term, name, b.start, b.end)

    def required_terms(self) -> frozenset[str] | None:
        return _narrowest((self.left.required_terms(), self.right.required_terms()))

    def required_groups(self) -> tuple[frozenset[str], ...]:
        return _distinct((*self.left.required_groups(), *self.right.required_groups()))

    def __str__(self) -> str:
        return f"{self.left} NEAR/{self.distance} {self.right}"


def _narrowest(candidates: Sequence[frozenset[str] | None]) -> frozenset[str] | None:
    known = [c for c in candidates if c is not None]
    return min(known, key=len) if known else None


def _distinct(groups: Sequence[frozenset[str]]) -> tuple[frozenset[str], ...]:
    return tuple(dict.fromkeys(groups))


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

    def required_groups(self) -> tuple[frozenset[str], ...]:
        # Every operand must match, so every operand's requirements hold together.
        return _distinct([group for child in self.children for group in child.required_groups()])

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

    def required_groups(self) -> tuple[frozenset[str], ...]:
        # One operand must match: one group of each (its narrowest) holds a word of any match.
        union: set[str] = set()
        for child in self.children:
            groups = child.required_groups()
            if not groups:
                return ()
            union |= min(groups, key=len)
        return (frozenset(union),)

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


