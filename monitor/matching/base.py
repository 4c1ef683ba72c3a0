"""The data a story is made of and the rule interface (rules read a `monitor.matching.document.Document`)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

# Re-exported: rules and the matcher have long imported the document from here.
from monitor.matching.document import Document

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

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    def evaluate(self, doc: Document) -> RuleResult: ...


class RuleFactory(Protocol):
    """Builds a rule for one story from its configured parameters; raise ValueError on bad ones."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    def __call__(self, story: Story, params: Mapping[str, Any]) -> Rule: ...
