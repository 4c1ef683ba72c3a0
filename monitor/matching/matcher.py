"""Run every enabled story's rules on an article and combine them into a calibrated score.

A cheap prefilter comes first, in the manner of Lucene's Monitor: every story is indexed
(monitor.matching.index) by the words its facets, required query, required names or anchors
need, and only the stories an article holds enough of those words for are evaluated. Most
stories are never looked at, and the facet rules of those that are share one per-document table of where each alias occurs.

A story the calibrated reference rule decides (every derived story) is then kept only when an
upper bound of its reference similarity, computed for all such stories at once
(monitor.matching.bounds), reaches the similarity below which it could neither match nor be a
near miss whatever its other rules score: the decisions are those of evaluating every candidate.

Names a story learned from confident matches (monitor.matching.evolve) add a small, capped
amount to the logit; they are not facets, so they never make an article a candidate.
"""
from __future__ import annotations

import logging
import math
from array import array
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from monitor._types import Article, MatchResult
from monitor.matching.base import Document, Rule, RuleResult, Story
from monitor.matching.bounds import ReferenceBounds
from monitor.matching.evolve import LEARNED_WEIGHT, learned_contribution
from monitor.matching.index import StoryIndex, prefilter_words, title_word
from monitor.matching.loader import Registry, discover
from monitor.matching.profile import Background
from monitor.matching.profile import background as shipped_background
from monitor.matching.rules import (
    CoverageRule,
    FacetIndex,
    LeadRule,
    NamesRule,
    QueryRule,
    ReferenceRule,
    TitleRule,
    WindowRule,
    document_vector,
)
from monitor.matching.text import Alias, is_cjk, tokenize

__all__ = ["Matcher", "NEAR_MISS_MARGIN"]

log = logging.getLogger("monitor.matching")

# A decision this close under the threshold, in logit units, is kept as a near miss ("why not").
NEAR_MISS_MARGIN = 2.0


# Not facet labels a story could also use: those are TOML keys a person writes.
_QUERY_LABEL = "\x00required query"
_NAMES_LABEL = "\x00required names"


def _required_query_words(rules: list[tuple[Rule, float, bool]]) -> list[list[Alias]]:
    """For each group of words a required query needs one of (every operand of an AND, both
    sides of a NEAR), those words as aliases; a group naming a word the document vocabulary
    cannot hold (a CJK unit, which documents index as bigrams of their own) is left out."""
    groups = []
    for rule, _weight, required in rules:
        if not required or not hasattr(rule, "required_groups"):
            continue
        for terms in rule.required_groups():
            aliases = []
            for term in sorted(terms):
                in_title = term.startswith("title:")
                stem = term.removeprefix("title:").removesuffix("*")
                tokens = tokenize(stem)
                if tokens != [stem] or any(is_cjk(c) for c in stem):
                    break
                aliases.append(Alias(term, (title_word(stem) if in_title else stem,), term.endswith("*")))
            else:
                groups.append(aliases)
    return groups


def _required_names(rules: list[tuple[Rule, float, bool]]) -> list[Alias] | None:
    """The aliases one of which every article a required names rule lets through contains."""
    for rule, _weight, required in rules:
        if required and type(rule) is NamesRule:
            return rule.aliases()
    return None


# Rules whose score is known to lie in [0, 1]: a story with any other cannot be bounded.
_SCORED_IN_UNIT = (WindowRule, TitleRule, LeadRule, CoverageRule, QueryRule, ReferenceRule, NamesRule)


def _similarity_floor(story: Story, rules: list[tuple[Rule, float, bool]]) -> tuple[ReferenceRule, float] | None:
    """The story's reference rule and the similarity under which the story can neither match nor
    come within NEAR_MISS_MARGIN of its threshold, whatever its other rules and learned names
    add (math.inf: it never can); None when no such floor can be told."""
    references = [(rule, weight) for rule, weight, _ in rules if type(rule) is ReferenceRule]
    if (len(references) != 1 or references[0][1] <= 0.0 or not 0.0 < story.threshold < 1.0
            or not all(type(rule) in _SCORED_IN_UNIT for rule, _, _ in rules)):
        return None
    reference, weight = references[0]
    most_else = story.bias + sum(max(0.0, w) for rule, w, _ in rules if rule is not reference)
    if story.learned:
        most_else += max(0.0, LEARNED_WEIGHT)
    lowest_kept = math.log(story.threshold / (1.0 - story.threshold)) - NEAR_MISS_MARGIN
    # The reference rule scores min(1, similarity / full_at): the score it must reach, then the similarity.
    score = (lowest_kept - most_else) / weight
    if score <= 0.0:
        return None
    return reference, (math.inf if score > 1.0 else score * reference.full_at)


class _RequiredWindows:
    """The time windows of the stories whose window rule is required: an article published
    outside one is vetoed (no match, no near miss), so the story need not be evaluated."""

    # Seconds of leeway: a timestamp is a float, the rule compares datetimes.
    _LEEWAY = 1.0

    def __init__(self, stories_rules: Iterable[list[tuple[Rule, float, bool]]]) -> None:
        starts, ends = array("d"), array("d")
        for rules in stories_rules:
            window = next((r for r, _, required in rules if required and type(r) is WindowRule), None)
            start = window.start if window is not None else None
            end = window.end if window is not None else None
            # Naive times are left to the rule itself (their zone is the machine's).
            starts.append(start.timestamp() if start is not None and start.tzinfo is not None else -math.inf)
            ends.append(end.timestamp() if end is not None and end.tzinfo is not None else math.inf)
        self._starts, self._ends = np.frombuffer(starts), np.frombuffer(ends)
        self._any = bool(np.isfinite(self._starts).any() or np.isfinite(self._ends).any())

    def inside(self, candidates: list[int], published: datetime | None) -> list[int]:
        """The candidates whose required window (if any) may hold `published`."""
        if not self._any or published is None or published.tzinfo is None:
            return candidates
        when = published.timestamp()
        chosen = np.asarray(candidates, dtype=np.int64)
        keep = (self._starts[chosen] <= when + self._LEEWAY) & (when - self._LEEWAY <= self._ends[chosen])
        return candidates if keep.all() else [int(i) for i in chosen[keep]]


class _CompiledStory:
    __slots__ = ("story", "rules", "facets")

    def __init__(self, story: Story, rules: list[tuple[Rule, float, bool]], facets: FacetIndex | None) -> None:
        self.story = story
        self.rules = rules
        self.facets = facets


class Matcher:
    """Matches articles against the enabled stories. `rule_errors` counts rules that raised.

    `background` gives the document frequencies of the reference rule's tf-idf; None (what every
    command and daemon uses, monitor.db.story_models.CurrentMatcher) keeps the shipped prior.
    """

    def __init__(self, stories: Sequence[Story], *, background: Background | None = None) -> None:
        registry: Registry | None = None
        self.background = background
        self.rule_errors = 0
        self._stories: list[_CompiledStory] = []
        prior = (background or shipped_background()).df
        self._index = StoryIndex()
        self._bounds = ReferenceBounds()
        for story in stories:
            if not story.enabled:
                continue
            rules = []
            for spec in story.rules:
                factory: Callable[..., Rule] | None = spec.factory
                if factory is None:   # a Story built by hand rather than by load_stories
                    registry = registry or discover()
                    factory = registry.rules[spec.name][0]
                rules.append((factory(story, spec.params), spec.weight, spec.required))
            facets = FacetIndex(story) if story.facets else None
            self._stories.append(_CompiledStory(story, rules, facets))
            # What a candidate must hold: a word of each facet, of each group of words a required
            # query needs, and one of the names a required names rule needs.
            needs = facets.all_aliases() if facets is not None else {}
            for number, words in enumerate(_required_query_words(rules)):
                needs[f"{_QUERY_LABEL} {number}"] = words
            names = _required_names(rules)
            if names:
                needs[_NAMES_LABEL] = names
            self._index.add(needs, story.anchors, story.anchors_needed, prior)
            floor = _similarity_floor(story, rules)
            if floor is not None:
                reference, similarity = floor
                names_scale = reference.names_scale if reference.lang and reference.name_terms else 0.0
                self._bounds.add(len(self._stories) - 1, reference.terms, similarity, lang=reference.lang,
                                 names_scale=names_scale, norm=reference.norm)
        self._bounds.freeze(len(self._stories))
        self._windows = _RequiredWindows(s.rules for s in self._stories)
        self._judged = {i for i, s in enumerate(self._stories) if s.story.judged}

    @property
    def stories(self) -> list[Story]:
        return [s.story for s in self._stories]

    def candidates(self, doc: Document) -> list[int]:
        """Indexes of the stories that might match: every facet (and the required query and names)
        has a token in the document, and it holds as many of the story's anchors as the story needs."""
        words: frozenset[str] | None = doc.cache.get("prefilter words")
        if words is None:
            words = doc.cache["prefilter words"] = prefilter_words(doc.vocabulary, doc.title_tokens)
        return self._index.candidates(words)

    def to_evaluate(self, doc: Document) -> list[int]:
        """The candidates, ascending, that can match or be a near miss: all but those published
        outside their required window and those whose similarity bound stays under their floor;
        and always those an analyst judged on this article."""
        found = self.candidates(doc)
        if not found:
            return found
        kept = self._windows.inside(found, doc.published)
        if self._bounds and kept:
            vector, norm = document_vector(doc)
            kept = self._bounds.reachable(kept, vector, norm, doc.lang.lower()[:2] if doc.lang else None)
        if self._judged and len(kept) < len(found):
            judged = {i for i in found if i in self._judged and doc.url in self._stories[i].story.judged}
            if judged:
                kept = sorted(judged.union(kept))
        return kept

    def match(self, article: Article, *, every_candidate: bool = False) -> list[MatchResult]:
        """One result per story evaluated: every story that matches or is a near miss, and others.
        Stories the prefilter rules out are skipped, and so are those whose reference similarity
        cannot reach their floor, unless `every_candidate` (what a score for every article, as the
        evaluation's threshold sweep reads, needs)."""
        doc = Document.from_article(article, self.background)
        chosen = self.candidates(doc) if every_candidate else self.to_evaluate(doc)
        return [self._evaluate(self._stories[i], doc) for i in chosen]

    def explain(self, article: Article, story_id: str) -> tuple[MatchResult, dict[str, RuleResult], bool]:
        """One story's verdict on `article`, with each rule's own result, even when the prefilter
        would skip the story (third value False then): what `monitor stories test` prints."""
        index = next((i for i, s in enumerate(self._stories) if s.story.id == story_id), None)
        if index is None:
            raise KeyError(story_id)
        doc = Document.from_article(article, self.background)
        results: dict[str, RuleResult] = {}
        verdict = self._evaluate(self._stories[index], doc, results)
        return verdict, results, index in self.candidates(doc)

    def _evaluate(self, compiled: _CompiledStory, doc: Document,
                  keep: dict[str, RuleResult] | None = None) -> MatchResult:
        story = compiled.story
        logit = story.bias
        vetoed = False
        evidence: list[str] = []
        versions: dict[str, str] = {}
        details: dict[str, Any] = {}
        passage: str | None = None
        for rule, weight, required in compiled.rules:
            versions[rule.name] = rule.version
            result = self._run(rule, story, doc)
            if keep is not None:
                keep[rule.name] = result
            details[rule.name] = {"score": round(result.score, 4), **result.details}
            logit += weight * result.score
            if required and result.score == 0.0:
                vetoed = True
            evidence.extend(result.evidence)
            passage = passage or result.passage
        if story.learned:
            share, found = learned_contribution(story, doc)
            contribution = LEARNED_WEIGHT * share
            logit += contribution
            details["learned"] = {"score": share, "names": list(found), "contribution": contribution}
            versions["learned"] = "1"
            if found:
                evidence.append(f"names learned from earlier coverage: {', '.join(found)}")
        score = 0.0 if vetoed else 1.0 / (1.0 + math.exp(-logit))
        details["logit"] = round(logit, 4)
        matched = score >= story.threshold
        judged = story.judged.get(doc.url)
        if judged is not None:
            # An analyst's judgment decides its own article; the rules' verdict stays in the details.
            details["judged"] = {"label": judged, "rules_score": round(score, 4)}
            matched, score = judged == "on", (1.0 if judged == "on" else 0.0)
            evidence.insert(0, f"judged {judged} the story by an analyst")
        threshold_logit = math.log(story.threshold / (1.0 - story.threshold)) if 0.0 < story.threshold < 1.0 else 0.0
        near = not matched and not vetoed and judged is None and logit >= threshold_logit - NEAR_MISS_MARGIN
        return MatchResult(story_id=story.id, matched=matched, score=round(score, 4),
                           evidence=tuple(evidence), rule_versions=versions, best_passage=passage,
                           details=details, model_version=story.version, near_miss=near)

    def _run(self, rule: Rule, story: Story, doc: Document) -> RuleResult:
        try:
            result = rule.evaluate(doc)
            if not isinstance(result, RuleResult):
                raise TypeError(f"evaluate() returned {type(result).__name__}, not RuleResult")
            return result
        except Exception:
            # One broken rule must not cost the other rules or stories their verdict.
            self.rule_errors += 1
            log.exception("rule %r (version %s) failed on story %r, article %s",
                          rule.name, rule.version, story.id, doc.url)
            return RuleResult(0.0, (), {"error": True})

