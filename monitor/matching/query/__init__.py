"""The story query language: parse a boolean query once, evaluate it against many documents.

    summit AND (trump OR "donald trump") -cancelled
    title:summit  body:"Kim Jong Un"  denucleari*  trump NEAR/5 kim  김정은  首脑会谈

Rooms: `lexer` (text to lexemes), `parser` (lexemes to a tree), `syntax` (the tree, which
evaluates itself), `spans` (where a word, phrase or prefix occurs in a field's postings). The
document is matching's own (monitor.matching.document): its title and body are analysed once
into positional postings, so every query evaluated against it costs dictionary look-ups, not
text scans. Query words go through the same analyser, so case and accents never matter
(Corée == coree, Straße == strasse, lodz == Łódź). Scripts written without spaces (Chinese,
Japanese, Korean) are indexed as character unigrams and bigrams: a CJK word in a query is the
phrase of its consecutive bigrams and matches inside any longer run of text. See
docs/query-language.md for the user's reference.
"""
from __future__ import annotations

from monitor.matching.document import FIELDS, Document
from monitor.matching.query.parser import parse
from monitor.matching.query.syntax import (
    MAX_NEAR_DISTANCE,
    MIN_PREFIX_LENGTH,
    And,
    Hit,
    Near,
    Not,
    Or,
    Phrase,
    Prefix,
    Query,
    QueryMatch,
    Term,
)
from monitor.matching.text import Token, analyze

__all__ = [
    "FIELDS", "MIN_PREFIX_LENGTH", "MAX_NEAR_DISTANCE", "Token", "Document", "Hit", "QueryMatch", "Query",
    "Term", "Phrase", "Prefix", "Near", "And", "Or", "Not",
    "analyze", "make_document", "parse",
]


def make_document(title: str, body: str) -> Document:
    """A document of just a title and a body, for evaluating queries outside the matcher."""
    return Document(title=title, body=body)
