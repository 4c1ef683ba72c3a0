"""Lexemes to a syntax tree: recursive descent, with errors that point at the problem."""
from __future__ import annotations

from monitor.exceptions import QueryError
from monitor.matching.document import FIELDS
from monitor.matching.query.lexer import Lexeme, lex
from monitor.matching.query.syntax import MIN_PREFIX_LENGTH, And, Atom, Near, Not, Or, Phrase, Prefix, Query, Term
from monitor.matching.text import WORD, fold, segments

__all__ = ["MAX_NESTING", "parse"]

MAX_NESTING = 100          # deeper parentheses (or longer NOT chains) are refused, not recursed into
_STARTS_OPERAND = frozenset({"(", "NOT", "-", "FIELD", "WORD", "PHRASE"})


class Parser:
    """Recursive descent. Precedence, loosest first: OR, AND (explicit or implicit), NOT, NEAR."""

    def __init__(self, query: str) -> None:
        self.query = query
        self.lexemes = lex(query)
        self.i = 0
        self.depth = 0

    def error(self, message: str, position: int) -> QueryError:
        return QueryError(message, self.query, position)

    def peek(self) -> Lexeme | None:
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

    def expect_operand(self, after: Lexeme) -> Lexeme:
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
        return combine(Or, children)

    def and_expr(self) -> Query:
        children = [self.unary()]
        while (lexeme := self.peek()) is not None:
            if lexeme.kind == "AND":
                self.i += 1
                self.expect_operand(lexeme)
            elif lexeme.kind not in _STARTS_OPERAND:
                break
            children.append(self.unary())
        return combine(And, children)

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
            if negations > MAX_NESTING:
                raise self.error(f"more than {MAX_NESTING} negations in a row", lexeme.position)
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
        if not isinstance(left, Atom):
            raise self.error("NEAR joins a word, phrase or wildcard on each side", left_start)
        if not isinstance(right, Atom):
            raise self.error("NEAR joins a word, phrase or wildcard on each side", right_start.position)
        following = self.peek()
        if following is not None and following.kind == "NEAR":
            raise self.error("NEAR cannot be chained; join two NEARs with AND", following.position)
        if left.field is not None and right.field is not None and left.field != right.field:
            raise self.error("both sides of NEAR must be in the same field", right_start.position)
        scope = left.field or right.field
        return Near(left.with_field(scope), right.with_field(scope), int(lexeme.text.removeprefix("NEAR/")))

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

    def group(self, opening: Lexeme, scope: str | None) -> Query:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"parentheses nested deeper than {MAX_NESTING}", opening.position)
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
        if isinstance(node, Atom):
            return self.scope_atom(node, name, position)
        if isinstance(node, Near):
            return Near(self.scope_atom(node.left, name, position), self.scope_atom(node.right, name, position),
                        node.distance)
        if isinstance(node, Not):
            return Not(self.scope(node.child, name, position))
        assert isinstance(node, (And, Or))
        return type(node)(tuple(self.scope(child, name, position) for child in node.children))

    def scope_atom(self, atom: Atom, name: str, position: int) -> Atom:
        if atom.field not in (None, name):
            raise self.error(f"{atom.field}: inside {name}:( ... )", position)
        return atom.with_field(name)

    def atom(self, lexeme: Lexeme, scope: str | None) -> Atom:
        self.i += 1
        text = lexeme.text
        if lexeme.kind == "PHRASE":
            star = text.find("*")
            if star >= 0:
                raise self.error("wildcards do not work inside a phrase", lexeme.position + 1 + star)
            words = tuple(s.text for s in segments(text))
            if not words:
                raise self.error("empty phrase", lexeme.position)
            return Term(words[0], scope) if len(words) == 1 else Phrase(words, scope)
        star = text.find("*")
        if star >= 0:
            if star != len(text) - 1:
                raise self.error("'*' is allowed only at the end of a word", lexeme.position + star)
            stem = text[:-1]
            found = segments(stem)
            if len(found) > 1 or found and (
                found[0].kind != WORD or len(found[0].text) != len(fold(stem))
            ):
                raise self.error("a wildcard applies to one word of letters or digits", lexeme.position)
            if not found or len(found[0].text) < MIN_PREFIX_LENGTH:
                raise self.error(
                    f"a wildcard needs at least {MIN_PREFIX_LENGTH} characters before '*'", lexeme.position
                )
            return Prefix(found[0].text, scope)
        words = tuple(s.text for s in segments(text))
        if not words:
            raise self.error(f"{text!r} has no letters or digits to search for", lexeme.position)
        return Term(words[0], scope) if len(words) == 1 else Phrase(words, scope)


def combine(kind: type[And] | type[Or], children: list[Query]) -> Query:
    """One child stays itself; nested nodes of the same kind flatten, so a OR (b OR c) == a OR b OR c."""
    if len(children) == 1:
        return children[0]
    flat: list[Query] = []
    for child in children:
        flat.extend(child.children if isinstance(child, kind) else (child,))
    return kind(tuple(flat))


def parse(query: str) -> Query:
    """Parse `query`; raise QueryError (with the 0-based position of the problem) if malformed."""
    return Parser(query).parse()
