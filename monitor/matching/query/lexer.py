"""Query text to lexemes: parentheses, operators, field prefixes, words and quoted phrases."""
from __future__ import annotations

import re
from dataclasses import dataclass

from monitor.exceptions import QueryError
from monitor.matching.query.syntax import MAX_NEAR_DISTANCE

__all__ = ["Lexeme", "lex"]


@dataclass(frozen=True, slots=True)
class Lexeme:
    kind: str       # "(", ")", "AND", "OR", "NOT", "-", "NEAR", "FIELD", "WORD", "PHRASE"
    text: str       # the source text (for FIELD, just the name)
    position: int


_FIELD_PREFIX = re.compile(r"([A-Za-z_]+):")
_NEAR = re.compile(r"NEAR/([0-9]{1,4})")


def lex(query: str) -> list[Lexeme]:
    lexemes: list[Lexeme] = []
    i, length = 0, len(query)
    while i < length:
        char = query[i]
        if char.isspace():
            i += 1
        elif char in "()":
            lexemes.append(Lexeme(char, char, i))
            i += 1
        elif char == '"':
            close = query.find('"', i + 1)
            if close < 0:
                raise QueryError("unterminated phrase: missing closing quote", query, i)
            lexemes.append(Lexeme("PHRASE", query[i + 1:close], i))
            i = close + 1
        elif char == "-":
            lexemes.append(Lexeme("-", char, i))
            i += 1
        elif (field_match := _FIELD_PREFIX.match(query, i)) is not None:
            lexemes.append(Lexeme("FIELD", field_match.group(1), i))
            i = field_match.end()
        else:
            end = i
            while end < length and not query[end].isspace() and query[end] not in '()"':
                end += 1
            word = query[i:end]
            if word in ("AND", "OR", "NOT"):
                lexemes.append(Lexeme(word, word, i))
            elif word == "NEAR" or word.startswith("NEAR/"):
                near = _NEAR.fullmatch(word)
                if near is None or not 1 <= int(near.group(1)) <= MAX_NEAR_DISTANCE:
                    raise QueryError(
                        f"NEAR needs a distance from 1 to {MAX_NEAR_DISTANCE}, as in NEAR/5", query, i
                    )
                lexemes.append(Lexeme("NEAR", word, i))
            else:
                lexemes.append(Lexeme("WORD", word, i))
            i = end
    return lexemes


