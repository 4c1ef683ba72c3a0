"""Built-in rules. Each is a class built as `Rule(story, params)`; `evaluate(doc)` never mutates.

- window:    published inside the story's time window (usually `required`: outside vetoes).
- title:     which facets of the story (e.g. US side, North Korean side, the meeting) the title names.
- lead:      whether title, summary and first paragraph together engage every facet.
- coverage:  the share of body paragraphs that engage the story's facets together: separates
             articles about the story from passing mentions.
- reference: tf-idf cosine similarity with the story's reference profile terms.
- query:     a boolean query (monitor.matching.query) over title and body.
- names:     whether the article names one of the story's people, places or organisations
             (usually `required`: a derived story's gate, and the matcher indexes it).
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from monitor.matching.base import RuleFactory, RuleResult, Story
from monitor.matching.document import Document
from monitor.matching.profile import similarity, tfidf_vector
from monitor.matching.query import parse as parse_query
from monitor.matching.text import Alias, parse_alias, tokenize

__all__ = ["WindowRule", "TitleRule", "LeadRule", "CoverageRule", "ReferenceRule", "QueryRule", "NamesRule",
           "BUILTIN_RULES", "FacetIndex", "document_vector"]


def _number(params: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"parameter {key!r} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def _no_unknown(params: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown parameter(s): {', '.join(unknown)}")


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


class FacetIndex:
    """A story's facets compiled to aliases; answers "which facets does this part engage?".

    Weak aliases (a bare "Kim") count only when the document also has a strong alias of the
    same name somewhere. Answers are cached on the document, keyed by story.
    """

    def __init__(self, story: Story) -> None:
        self.story_id = story.id
        self.labels: tuple[str, ...] = tuple(f.label for f in story.facets)
        # facet label -> [(display, strong aliases, weak aliases)]
        self.entries: dict[str, list[tuple[str, tuple[Alias, ...], tuple[Alias, ...]]]] = {}
        for facet in story.facets:
            compiled: list[tuple[str, tuple[Alias, ...], tuple[Alias, ...]]] = []
            for entry in facet.entries:
                name = story.name(entry)
                if name is None:
                    compiled.append((entry.rstrip("*"), (parse_alias(entry),), ()))
                else:
                    strong = tuple(parse_alias(a) for a in (name.name, *name.aliases))
                    compiled.append((name.name, strong, tuple(parse_alias(a) for a in name.weak)))
            self.entries[facet.label] = compiled

    def all_aliases(self) -> dict[str, list[Alias]]:
        """Facet label -> every alias (strong and weak) that can satisfy it: the prefilter's terms."""
        return {label: [a for _, strong, weak in entries for a in (*strong, *weak)]
                for label, entries in self.entries.items()}

    def _where(self, doc: Document) -> dict[str, dict[int, str]]:
        """Facet label -> {part: the first entry engaging the label in that part}, once per document.

        Built from the parts each alias occurs in, so its cost is one lookup per alias rather
        than one per alias and paragraph: a thousand stories stay cheap.
        """
        key = ("facet-parts", self.story_id)
        cached: dict[str, dict[int, str]] | None = doc.cache.get(key)
        if cached is not None:
            return cached
        table: dict[str, dict[int, str]] = {}
        for label, entries in self.entries.items():
            where: dict[int, str] = {}
            for display, strong, weak in entries:
                parts = {p for alias in strong for p in doc.parts_with(alias)}
                if weak and parts:   # a bare "Kim" counts only beside a full name somewhere
                    parts.update(p for alias in weak for p in doc.parts_with(alias))
                for part in parts:
                    where.setdefault(part, display)
            table[label] = where
        doc.cache[key] = table
        return table

    def engaged(self, doc: Document, part: int) -> dict[str, str]:
        """Facet label -> the entry that engaged it in this part (title 0, summary 1, paragraphs 2..)."""
        return {label: where[part] for label, where in self._where(doc).items() if part in where}

    def count(self, doc: Document, part: int) -> int:
        """How many facets the part engages."""
        return sum(part in where for where in self._where(doc).values())


class WindowRule:
    """1 when the article was published inside [story.start, story.end]; undated articles pass."""

    name = "window"
    version = "1"

    def __init__(self, story: Story, params: Mapping[str, Any]) -> None:
        _no_unknown(params, set())
        if story.start is None and story.end is None:
            raise ValueError("the story has no time window (start/end)")
        self.start: datetime | None = story.start
        self.end: datetime | None = story.end

    def evaluate(self, doc: Document) -> RuleResult:
        when = doc.published
        if when is None:
            return RuleResult(1.0, ("no publication date; story window not checked",), {"inside": None})
        inside = (self.start is None or when >= self.start) and (self.end is None or when <= self.end)
        where = "inside" if inside else "outside"
        return RuleResult(1.0 if inside else 0.0, (f"published {when.date().isoformat()}, {where} the story window",),
                          {"inside": inside})


class TitleRule:
    """The share of the story's facets named in the title (the summary counts at `summary_weight`)."""

    name = "title"
    version = "1"

    def __init__(self, story: Story, params: Mapping[str, Any]) -> None:
        _no_unknown(params, {"summary_weight"})
        if not story.facets:
            raise ValueError("the story defines no facets")
        self.summary_weight = _number(params, "summary_weight", 0.5, 0.0, 1.0)
        self.facets = FacetIndex(story)

    def evaluate(self, doc: Document) -> RuleResult:
        n = len(self.facets.labels)
        in_title = self.facets.engaged(doc, 0)
        in_summary = self.facets.engaged(doc, 1)
        score = max(len(in_title) / n, self.summary_weight * len(in_summary) / n)
        evidence = (f"title names {_join(list(in_title.values()))}",) if in_title else ()
        return RuleResult(score, evidence, {"title_facets": sorted(in_title), "summary_facets": sorted(in_summary)})


class LeadRule:
    """1 when the lead (title, summary and first paragraph together) engages every facet.

    News writing puts the subject first; an article whose lead never brings the sides and the
    meeting together is rarely about the story, whatever its later paragraphs mention.
    """

    name = "lead"
    version = "1"

    def __init__(self, story: Story, params: Mapping[str, Any]) -> None:
        _no_unknown(params, set())
        if not story.facets:
            raise ValueError("the story defines no facets")
        self.facets = FacetIndex(story)

    def evaluate(self, doc: Document) -> RuleResult:
        engaged: dict[str, str] = {}
        for part in (0, 1, 2):
            if part < len(doc.parts()):
                engaged = {**self.facets.engaged(doc, part), **engaged}
        if len(engaged) < len(self.facets.labels):
            return RuleResult(0.0, (), {"lead_facets": sorted(engaged)})
        return RuleResult(1.0, (f"the lead names {_join(list(engaged.values()))}",),
                          {"lead_facets": sorted(engaged)})


class CoverageRule:
    """How much of the body is about the story.

    A paragraph is on the story when it engages at least `min_facets` of the story's facets
    (default: all of them, e.g. both sides and the meeting); one that engages all but one counts
    `partial` of a paragraph. The score ramps from 0 at the share `floor` (what a passing
    mention fills) to 1 at `full_at` (the share at which an article is plainly about the story).
    """

    name = "coverage"
    version = "1"

    def __init__(self, story: Story, params: Mapping[str, Any]) -> None:
        _no_unknown(params, {"min_facets", "partial", "floor", "full_at"})
        if not story.facets:
            raise ValueError("the story defines no facets")
        self.facets = FacetIndex(story)
        n = len(self.facets.labels)
        self.min_facets = int(_number(params, "min_facets", n, 1, n))
        self.partial = _number(params, "partial", 0.25, 0.0, 1.0)
        self.floor = _number(params, "floor", 0.0, 0.0, 0.9)
        self.full_at = _number(params, "full_at", 0.5, self.floor + 0.05, 1.0)

    def evaluate(self, doc: Document) -> RuleResult:
        total = len(doc.paragraphs)
        if total == 0:
            return RuleResult(0.0, (), {"paragraphs": 0})
        full = partial = 0
        best: tuple[int, int] = (0, -1)
        for i in range(total):
            count = self.facets.count(doc, i + 2)
            if count >= self.min_facets:
                full += 1
            elif count == self.min_facets - 1 and count > 0:
                partial += 1
            if count > best[0]:
                best = (count, i)
        share = (full + self.partial * partial) / total
        evidence: tuple[str, ...] = ()
        if full:
            evidence = (f"{full} of {total} paragraphs ({round(100 * full / total)}%) are about the story",)
        passage = doc.paragraphs[best[1]] if best[1] >= 0 else None
        score = min(1.0, max(0.0, (share - self.floor) / (self.full_at - self.floor)))
        return RuleResult(score, evidence,
                          {"paragraphs": total, "on_story": full, "partial": partial, "share": round(share, 3)},
                          passage)


def document_vector(doc: Document) -> tuple[dict[str, float], float]:
    """The document's tf-idf vector (the title counts twice) and its norm, once per document:
    what the reference rule compares every story's terms with."""
    cached: tuple[dict[str, float], float] | None = doc.cache.get("tfidf")
    if cached is None:
        tokens = [*doc.title_tokens, *doc.title_tokens, *doc.summary_tokens,
                  *(t for part in doc.paragraph_tokens for t in part)]
        vector = tfidf_vector(tokens, doc.background)
        cached = doc.cache["tfidf"] = (vector, math.sqrt(sum(w * w for w in vector.values())))
    return cached


class ReferenceRule:
    """Cosine similarity of the document with the story's weighted terms; `full_at` maps to 1.

    The evidence names the words that weigh most in the similarity, so a person sees what the
    article shares with the reference rather than a bare number.

    With `lang` (the reference's language) and `names_scale`, an article in another language is
    also compared on the story's names alone, the one vocabulary two languages share ("Skripal",
    "Salisbury"): that similarity, times `names_scale`, stands in when it is the larger.
    """

    name = "reference"
    version = "2"
    _SHOWN = 6
    _EXPLAINED = 0.05   # below this, which words are shared says nothing worth reading

    def __init__(self, story: Story, params: Mapping[str, Any]) -> None:
        _no_unknown(params, {"full_at", "lang", "names_scale"})
        if not story.terms:
            raise ValueError("the story has no weighted terms (set `terms` or a reference path)")
        self.terms = story.terms   # shared, not copied: a hundred thousand stories hold theirs once
        self.norm = math.sqrt(sum(w * w for w in self.terms.values()))
        self.full_at = _number(params, "full_at", 0.3, 0.01, 1.0)
        lang = params.get("lang")
        if lang is not None and (not isinstance(lang, str) or not re.fullmatch(r"[a-z]{2}", lang)):
            raise ValueError(f"parameter 'lang' must be an ISO 639-1 code such as 'en', got {lang!r}")
        self.lang: str | None = lang
        self.names_scale = _number(params, "names_scale", 0.0, 0.0, 1.0)
        name_tokens = {t for n in (*story.names, *story.places) for a in (n.name, *n.aliases) for t in tokenize(a)}
        self.name_terms = {t: w for t, w in self.terms.items() if t in name_tokens}

    def _shared(self, vector: Mapping[str, float], terms: Mapping[str, float]) -> str:
        shared = sorted(((w * terms[t], t) for t, w in vector.items() if t in terms), reverse=True)
        return ", ".join(t for _, t in shared[:self._SHOWN])

    def evaluate(self, doc: Document) -> RuleResult:
        vector, norm = document_vector(doc)
        # similarity() with both norms known: this runs for every candidate story of every article.
        terms = self.terms
        dot = sum(vector[t] * terms[t] for t in vector.keys() & terms.keys())
        value = min(1.0, dot / (norm * self.norm)) if dot > 0.0 else 0.0
        evidence = [f"reference similarity {value:.2f}" + (f" (shares {self._shared(vector, terms)})"
                                                           if value >= self._EXPLAINED else "")]
        details: dict[str, Any] = {"similarity": round(value, 4)}
        if self.names_scale and self.lang and doc.lang and doc.lang.lower()[:2] != self.lang and self.name_terms:
            names_only = {t: w for t, w in vector.items() if t in self.name_terms}
            by_names = similarity(names_only, self.name_terms)
            details["names_similarity"] = round(by_names, 4)
            if self.names_scale * by_names > value:
                value = self.names_scale * by_names
                evidence = [f"written in {doc.lang}, the reference in {self.lang}: names similarity "
                            f"{by_names:.2f} (shares {self._shared(names_only, self.name_terms)})"]
        return RuleResult(min(1.0, value / self.full_at), tuple(evidence), details)


class QueryRule:
    """1 when the story's boolean query matches title and body (see docs/query-language.md)."""

    name = "query"
    version = "1"

    def __init__(self, story: Story, params: Mapping[str, Any]) -> None:
        _no_unknown(params, {"query"})
        text = params.get("query")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("parameter 'query' must be a non-empty string")
        self.query = parse_query(text)

    def required_terms(self) -> frozenset[str] | None:
        return self.query.required_terms()

    def required_groups(self) -> tuple[frozenset[str], ...]:
        return self.query.required_groups()

    def evaluate(self, doc: Document) -> RuleResult:
        result = self.query.matches(doc)
        if not result.matched:
            return RuleResult(0.0, (), {"matched": False})
        terms = sorted({hit.term for hit in result.hits})
        return RuleResult(1.0, (f"query matched ({', '.join(terms[:6])})",), {"matched": True})


class NamesRule:
    """1 when the article names one of the story's names or places (the name itself or an alias;
    a weak alias does not count on its own).

    Coverage of an event names its people, places or organisations; prose that only resembles
    the reference (another summit, another fire, told in the same everyday words) names others.
    Required, it is a derived story's gate, and the matcher's prefilter indexes its names
    (`aliases()`), so a story whose names an article never writes costs that article nothing.
    """

    name = "names"
    version = "1"
    _SHOWN = 4

    def __init__(self, story: Story, params: Mapping[str, Any]) -> None:
        _no_unknown(params, set())
        entries = []
        for name in (*story.names, *story.places):
            aliases = []
            for text in (name.name, *name.aliases):
                try:
                    aliases.append(parse_alias(text))
                except ValueError:      # no word in it: it can name nothing
                    continue
            if aliases:
                entries.append((name.name, tuple(aliases)))
        if not entries:
            raise ValueError("the story has no names or places")
        self.entries: tuple[tuple[str, tuple[Alias, ...]], ...] = tuple(entries)

    def aliases(self) -> list[Alias]:
        """Every alias that satisfies the rule: one of them is in any article it scores 1."""
        return [alias for _, aliases in self.entries for alias in aliases]

    def evaluate(self, doc: Document) -> RuleResult:
        found = [display for display, aliases in self.entries if any(doc.parts_with(a) for a in aliases)]
        if not found:
            return RuleResult(0.0, ("names none of the story's people, places or organisations",), {"names": []})
        shown = _join(found[:self._SHOWN]) + (f" and {len(found) - self._SHOWN} more" if len(found) > self._SHOWN else "")
        return RuleResult(1.0, (f"names {shown}",), {"names": found})


_BUILTIN: tuple[RuleFactory, ...] = (WindowRule, TitleRule, LeadRule, CoverageRule, ReferenceRule, QueryRule,
                                     NamesRule)
BUILTIN_RULES: dict[str, RuleFactory] = {r.name: r for r in _BUILTIN}
