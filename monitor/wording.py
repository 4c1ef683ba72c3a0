"""Counted nouns in messages: "1 story", "2 stories", "1 new match", "3 errors in a row"."""
from __future__ import annotations

import re

_SIBILANT = re.compile(r"(s|x|z|ch|sh)$")
_CONSONANT_Y = re.compile(r"[^aeiou]y$")


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """`count` and `noun` ("new match") in the right number, the plural regular unless given."""
    if count == 1:
        return f"{count} {noun}"
    if plural_form is None:
        head, _, last = noun.rpartition(" ")
        plural_form = f"{head} {_plural_word(last)}".lstrip()
    return f"{count} {plural_form}"


def _plural_word(word: str) -> str:
    if _CONSONANT_Y.search(word):
        return word[:-1] + "ies"
    if _SIBILANT.search(word):
        return word + "es"
    return word + "s"
