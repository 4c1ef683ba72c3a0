"""The one document model of matching: an article analysed once, read by every story's rules.

Parts (title, summary, body paragraphs) are token lists with a positional index, which facets,
anchors and profiles read; fields (title, body) are positional postings with character offsets,
which the query language (monitor.matching.query) reads. Both come from the one analyser of
monitor.matching.text, so a word folds the same for every rule.
"""
from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from monitor._types import Article
from monitor.matching.text import Alias, Token, analyze, find_phrase, split_paragraphs, tokenize, word_spans

if TYPE_CHECKING:
    from monitor.matching.profile import Background

__all__ = ["Document", "FieldIndex", "FIELDS"]

# The fields the query language searches, in the order its evidence lists them.
FIELDS: tuple[str, ...] = ("title", "body")


@dataclass(frozen=True, slots=True)
class FieldIndex:
    """One field's tokens as positional postings."""

    postings: Mapping[str, Mapping[int, tuple[int, int]]]   # token -> position -> (start, end)
    vocabulary: tuple[str, ...]                              # sorted, for prefix look-ups

    @classmethod
    def build(cls, tokens: Sequence[Token]) -> FieldIndex:
        postings: dict[str, dict[int, tuple[int, int]]] = {}
        for token in sorted(tokens, key=lambda t: t.position):
            postings.setdefault(token.text, {})[token.position] = (token.start, token.end)
        return cls(postings, tuple(sorted(postings)))

    @classmethod
    def of_text(cls, text: str) -> FieldIndex:
        """`build(analyze(text))`, from the word spans alone when the text allows (word_spans)."""
        spans = word_spans(text)
        if spans is None:
            return cls.build(analyze(text))
        postings: dict[str, dict[int, tuple[int, int]]] = {}
        for position, (token, start, end) in enumerate(spans):
            postings.setdefault(token, {})[position] = (start, end)
        return cls(postings, tuple(sorted(postings)))


EMPTY_FIELD = FieldIndex({}, ())


class Document:
    """An article analysed once and shared by every story's rules.

    Parts are the title, the summary and each body paragraph; each part is a token list with a
    positional index, so rules can ask "does this alias occur in paragraph 3?" cheaply.
    """

    __slots__ = ("url", "title", "summary", "paragraphs", "published", "lang", "background",
                 "title_tokens", "summary_tokens", "paragraph_tokens", "vocabulary",
                 "_index", "_token_parts", "_alias_parts", "_cache", "_sorted", "_fields")

    def __init__(self, *, url: str = "", title: str = "", body: str = "", summary: str = "",
                 published: datetime | None = None, lang: str | None = None,
                 background: Background | None = None) -> None:
        self.url = url
        # Document frequencies for tf-idf (the reference rule); None = the shipped prior.
        self.background = background
        self.title = title
        self.summary = summary
        self.paragraphs: tuple[str, ...] = tuple(split_paragraphs(body))
        self.published = published
        self.lang = lang
        self.title_tokens = tuple(tokenize(title))
        self.summary_tokens = tuple(tokenize(summary))
        self.paragraph_tokens = tuple(tuple(tokenize(p)) for p in self.paragraphs)
        self._index: dict[int, dict[str, list[int]]] = {}
        self._token_parts: dict[str, list[int]] | None = None
        self._alias_parts: dict[tuple[tuple[str, ...], bool], tuple[int, ...]] = {}
        self.vocabulary: frozenset[str] = frozenset(self.title_tokens).union(
            self.summary_tokens, *self.paragraph_tokens)
        # Rules of many stories ask the same questions; answers are kept per document.
        self._cache: dict[Any, Any] = {}
        self._sorted: list[str] | None = None
        self._fields: dict[str, FieldIndex] = {}

    @classmethod
    def from_article(cls, article: Article, background: Background | None = None) -> Document:
        return cls(url=article.url, title=article.title, body=article.body, summary=article.summary,
                   published=article.published, lang=article.lang, background=background)

    @property
    def body(self) -> str:
        return "\n\n".join(self.paragraphs)

    @property
    def cache(self) -> dict[Any, Any]:
        return self._cache

    def parts(self) -> tuple[tuple[str, ...], ...]:
        """Token lists: 0 = title, 1 = summary, 2.. = paragraphs."""
        return (self.title_tokens, self.summary_tokens, *self.paragraph_tokens)

    def _positions(self, part: int) -> dict[str, list[int]]:
        index = self._index.get(part)
        if index is None:
            index = {}
            for i, token in enumerate(self.parts()[part]):
                index.setdefault(token, []).append(i)
            self._index[part] = index
        return index

    def has(self, alias: Alias, part: int) -> bool:
        """Whether `alias` occurs in the part (0 = title, 1 = summary, 2.. = paragraphs)."""
        if alias.prefix and len(alias.tokens) == 1:
            head = alias.tokens[0]
            return any(t.startswith(head) for t in self._positions(part))
        if alias.prefix:
            return find_phrase(self.parts()[part], alias, self._positions(part).get(alias.first, ()))
        starts = self._positions(part).get(alias.first)
        if not starts:
            return False
        return len(alias.tokens) == 1 or find_phrase(self.parts()[part], alias, starts)

    def has_anywhere(self, alias: Alias) -> bool:
        return bool(self.parts_with(alias))

    def parts_with(self, alias: Alias) -> tuple[int, ...]:
        """The parts `alias` occurs in, ascending. Cached: many stories share aliases ("talks")."""
        if alias.first not in self.vocabulary and not alias.prefix:
            return ()   # most aliases of most stories: answered without building anything
        key = (alias.tokens, alias.prefix)
        found = self._alias_parts.get(key)
        if found is not None:
            return found
        if self._token_parts is None:
            self._token_parts = {}
            for part, tokens in enumerate(self.parts()):
                for token in dict.fromkeys(tokens):
                    self._token_parts.setdefault(token, []).append(part)
        if alias.prefix and len(alias.tokens) == 1:
            found = tuple(sorted({p for token in self._tokens_starting(alias.tokens[0])
                                  for p in self._token_parts[token]}))
        elif len(alias.tokens) == 1:
            found = tuple(self._token_parts.get(alias.first, ()))
        else:
            found = tuple(p for p in self._token_parts.get(alias.first, ()) if self.has(alias, p))
        self._alias_parts[key] = found
        return found

    def _tokens_starting(self, head: str) -> list[str]:
        """The vocabulary tokens that start with `head`: a range of the sorted vocabulary."""
        if self._sorted is None:
            self._sorted = sorted(self.vocabulary)
        start = bisect_left(self._sorted, head)
        end = start
        while end < len(self._sorted) and self._sorted[end].startswith(head):
            end += 1
        return self._sorted[start:end]

    def field(self, name: str) -> FieldIndex:
        """The positional postings of field `name` (title or body), built on first use.

        Offsets point into `title` and `body` (the paragraphs joined by blank lines)."""
        index = self._fields.get(name)
        if index is None:
            text = self.title if name == "title" else self.body if name == "body" else None
            index = EMPTY_FIELD if text is None else FieldIndex.of_text(text)
            self._fields[name] = index
        return index
