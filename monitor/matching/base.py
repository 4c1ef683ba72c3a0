"""The data a story is made of, the analysed document rules read, and the rule interface."""
from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

from monitor._types import Article
from monitor.matching.profile import Background
from monitor.matching.text import Alias, find_phrase, split_paragraphs, tokenize

__all__ = ["Name", "Facet", "RuleSpec", "Reference", "Story", "RuleResult", "Rule", "RuleFactory",
           "Document"]


@dataclass(frozen=True, slots=True)
class Name:
    """A person, place or organisation and the ways texts write it.

    `weak` aliases (a bare "Kim") are ambiguous on their own: they count only in a text that
    also uses one of the strong ones (the name itself or an alias).
    """

    name: str
    aliases: tuple[str, ...] = ()
    weak: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Facet:
    """One side of the story a passage must engage (e.g. the US side, the North, the meeting).

    Each entry is either the `name` of one of the story's `Name`s (expanded to its aliases) or a
    literal term; a trailing '*' makes a prefix ('gipfel*' for German compounds).
    """

    label: str
    entries: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """A rule as configured for one story: its plugin name, parameters and weight in the score.

    A `required` rule that scores 0 vetoes the match (the story window, for instance).
    `factory` is the rule class the loader resolved `name` to (plugin rules included).
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    weight: float = 1.0
    required: bool = False
    factory: RuleFactory | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Reference:
    """The article that defines the story; `path` holds its full text when configured."""

    url: str | None = None
    title: str | None = None
    path: str | None = None


@dataclass(frozen=True, slots=True)
class Story:
    """A tracked story: data only. Rules get it at construction and read what they need.

    The score is logistic: sigmoid(bias + sum(weight * rule score)); matched when >= threshold.
    """

    id: str
    title: str
    description: str = ""
    enabled: bool = True
    threshold: float = 0.5
    bias: float = 0.0
    start: datetime | None = None
    end: datetime | None = None
    reference: Reference | None = None
    names: tuple[Name, ...] = ()
    places: tuple[Name, ...] = ()
    facets: tuple[Facet, ...] = ()
    terms: Mapping[str, float] = field(default_factory=dict)
    rules: tuple[RuleSpec, ...] = ()
    origin: str = "config"
    # The prefilter of a story without facets: an article is scored only when it holds at least
    # `anchors_needed` of these words (a derived story's heaviest reference terms).
    anchors: tuple[str, ...] = ()
    anchors_needed: int = 1
    # Names learned from confident matches (monitor.matching.evolve): never facets, small weight.
    learned: tuple[str, ...] = ()
    # The model version (monitor.db.story_models) this story is, and the articles (canonical URL
    # -> on / off / brief) analysts judged, which decide themselves.
    version: str | None = None
    judged: Mapping[str, str] = field(default_factory=dict)

    def name(self, label: str) -> Name | None:
        """The Name or place whose `name` is `label`, if the story has one."""
        return next((n for n in (*self.names, *self.places) if n.name == label), None)


@dataclass(frozen=True, slots=True)
class RuleResult:
    """What one rule found: a score in [0, 1], sentences for a person, numbers for `stories test`."""

    score: float
    evidence: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    passage: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"rule score {self.score!r} is outside [0, 1]")


@runtime_checkable
class Rule(Protocol):
    """A rule plugin instance, built once per story by its factory (usually the class itself)."""

    name: ClassVar[str]
    version: ClassVar[str]

    def evaluate(self, doc: Document) -> RuleResult: ...


class RuleFactory(Protocol):
    """Builds a rule for one story from its configured parameters; raise ValueError on bad ones."""

    name: str
    version: str

    def __call__(self, story: Story, params: Mapping[str, Any]) -> Rule: ...


class Document:
    """An article analysed once and shared by every story's rules.

    Parts are the title, the summary and each body paragraph; each part is a token list with a
    positional index, so rules can ask "does this alias occur in paragraph 3?" cheaply.
    """

    __slots__ = ("url", "title", "summary", "paragraphs", "published", "lang", "background",
                 "title_tokens", "summary_tokens", "paragraph_tokens", "vocabulary",
                 "_index", "_token_parts", "_alias_parts", "_cache", "_sorted")

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
