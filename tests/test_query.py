"""The story query language: grammar, every operator, folding, CJK, errors, round trips."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.exceptions import QueryError
from monitor.matching.query import (
    And,
    Document,
    Hit,
    Near,
    Not,
    Or,
    Phrase,
    Prefix,
    Query,
    Term,
    analyze,
    make_document,
    parse,
)


def matches(query: str, title: str = "", body: str = "") -> bool:
    return parse(query).evaluate(make_document(title, body))


# ---------------------------------------------------------------------------------- grammar

@pytest.mark.parametrize(("query", "tree"), [
    ("kim", Term("kim")),
    ("a OR b c", Or((Term("a"), And((Term("b"), Term("c")))))),
    ("a b OR c AND d", Or((And((Term("a"), Term("b"))), And((Term("c"), Term("d")))))),
    ("a AND b c", And((Term("a"), Term("b"), Term("c")))),
    ("NOT a b", And((Not(Term("a")), Term("b")))),
    ("-a b", And((Not(Term("a")), Term("b")))),
    ("NOT (a OR b)", Not(Or((Term("a"), Term("b"))))),
    ("-(a OR b) c", And((Not(Or((Term("a"), Term("b")))), Term("c")))),
    ("NOT NOT a", Not(Not(Term("a")))),
    ("NOT a NEAR/3 b", Not(Near(Term("a"), Term("b"), 3))),
    ("a OR (b OR c)", Or((Term("a"), Term("b"), Term("c")))),
    ("(a b) (c d)", And((Term("a"), Term("b"), Term("c"), Term("d")))),
    ('"Kim Jong Un"', Phrase(("kim", "jong", "un"))),
    ('"summit"', Term("summit")),
    ("Kim-Jong-Un", Phrase(("kim", "jong", "un"))),
    ("denucleari*", Prefix("denucleari")),
    ("title:summit", Term("summit", "title")),
    ("TITLE:Summit", Term("summit", "title")),
    ('body:"Kim Jong Un"', Phrase(("kim", "jong", "un"), "body")),
    ("title:(kim OR summ*)", Or((Term("kim", "title"), Prefix("summ", "title")))),
    ("title:(summit OR meeting) -iran", And((Or((Term("summit", "title"), Term("meeting", "title"))),
                                             Not(Term("iran"))))),
    ("title:kim NEAR/4 summit", Near(Term("kim", "title"), Term("summit", "title"), 4)),
    ("g7峰会", Phrase(("g7", "峰会"))),
    ("and or not near", And((Term("and"), Term("or"), Term("not"), Term("near")))),
])
def test_parse_builds_the_expected_tree(query: str, tree: Query) -> None:
    assert parse(query) == tree


@pytest.mark.parametrize(("query", "canonical"), [
    ('summit AND (Trump OR "Donald Trump") -cancelled',
     'summit AND (trump OR "donald trump") AND NOT cancelled'),
    ("a b OR c", "(a AND b) OR c"),
    ("-(a b)", "NOT (a AND b)"),
    ("NOT a NEAR/3 b", "NOT (a NEAR/3 b)"),
    ("title:(Corée OR Straße)", "title:coree OR title:strasse"),
    ('"kim jong" NEAR/3 title:summit', 'title:"kim jong" NEAR/3 title:summit'),
    ("a NEAR/05 b", "a NEAR/5 b"),
])
def test_str_is_canonical_text(query: str, canonical: str) -> None:
    assert str(parse(query)) == canonical
    assert parse(canonical) == parse(query)


# -------------------------------------------------------------------------------- operators

def test_and_or_not() -> None:
    body = "Trump met Kim in Singapore."
    assert matches("trump kim", body=body)
    assert matches("trump AND kim", body=body)
    assert not matches("trump AND putin", body=body)
    assert matches("putin OR kim", body=body)
    assert not matches("putin OR xi", body=body)
    assert matches("NOT putin", body=body)
    assert not matches("trump -kim", body=body)
    assert matches("trump -(putin OR helsinki)", body=body)
    # NOT binds tighter than AND, AND tighter than OR
    assert matches("putin kim OR singapore", body=body)
    assert not matches("putin (kim OR singapore)", body=body)


def test_phrase_needs_consecutive_words_in_order() -> None:
    assert matches('"kim jong un"', body="Leader Kim Jong Un arrived.")
    assert matches('"kim jong un"', body="Leader KIM JONG-UN arrived.")
    assert not matches('"kim jong un"', body="Kim and Jong Un")
    assert not matches('"jong un kim"', body="Kim Jong Un")
    assert not matches('"kim jong un"', title="Kim Jong", body="Un")


@pytest.mark.parametrize(("body", "expected"), [
    ("Trump met Kim", True),                     # 1 token between
    ("Kim met Trump", True),                     # either order
    ("Trump said he would meet Kim", True),      # 4 tokens between: distance 5
    ("Trump said that he would meet Kim", False),  # 5 tokens between: distance 6
    ("Kim said that he would meet Trump", False),
    ("Trump Kim", True),
])
def test_near_counts_distance_in_tokens_either_order(body: str, expected: bool) -> None:
    assert matches("trump NEAR/5 kim", body=body) is expected


def test_near_with_phrases_and_wildcards() -> None:
    body = "Kim Jong Un will meet the US president at the Singapore summit."
    assert matches('"kim jong un" NEAR/3 meet', body=body)
    # distance runs from the end of the earlier operand: "un" ... "president" is 5
    assert matches('"kim jong un" NEAR/5 president', body=body)
    assert not matches('"kim jong un" NEAR/4 president', body=body)
    assert matches('summ* NEAR/2 singapore', body=body)
    assert matches('"us president" NEAR/5 "kim jong un"', body=body)


def test_near_needs_two_separate_occurrences_in_one_field() -> None:
    assert not matches("kim NEAR/3 kim", body="Kim met Trump")
    assert matches("kim NEAR/3 kim", body="Kim met Kim")
    assert not matches('"kim jong" NEAR/3 "jong un"', body="Kim Jong Un")
    assert not matches("trump NEAR/5 kim", title="Trump", body="Kim")
    assert matches("title:trump NEAR/2 kim", title="Trump and Kim", body="")
    assert not matches("title:trump NEAR/2 kim", title="Trump", body="Trump and Kim")


def test_prefix_wildcard() -> None:
    assert matches("denucleari*", body="The denuclearization of the peninsula")
    assert matches("denucleari*", body="North Korea will denuclearize")
    assert matches("denucleari*", body="Denucleari")
    assert not matches("denucleari*", body="nuclear weapons")
    assert matches("coré*", body="les Coréens")
    assert matches("coree*", body="les Coréens")


def test_fields_scope_title_or_body() -> None:
    assert matches("summit", title="Summit cancelled", body="")
    assert matches("summit", title="", body="The summit is off")
    assert matches("title:summit", title="Summit cancelled", body="")
    assert not matches("title:summit", title="Cancelled", body="The summit is off")
    assert matches('body:"Kim Jong Un"', title="", body="Kim Jong Un wrote")
    assert not matches('body:"Kim Jong Un"', title="Kim Jong Un wrote", body="")
    assert matches("title:(summit OR meeting) -body:iran", title="Meeting", body="Trade")
    assert not matches("title:(summit OR meeting) -body:iran", title="Meeting", body="Iran deal")


# ---------------------------------------------------------------------------------- folding

@pytest.mark.parametrize(("query", "text"), [
    ("Corée", "coree du nord"),
    ("coree", "La Corée du Nord"),
    ("COREE", "la corée"),
    ("Straße", "STRASSE"),
    ("strasse", "Die Straße"),
    ("São Paulo", "SAO PAULO"),
    ("pyongyang", "Pyŏngyang"),
    ("abc", "ＡＢＣ"),                         # full-width letters
    ("ete", "e\u0301te\u0301"),                # decomposed accents
    ("İstanbul", "istanbul"),
])
def test_case_and_accent_folding(query: str, text: str) -> None:
    assert matches(query, body=text)


def test_folding_keeps_letters_that_are_not_accented_latin() -> None:
    # Kana voicing marks change the word: が is not か
    assert not matches("か", body="が")
    assert matches("が", body="か\u3099")          # decomposed が
    # Devanagari vowel signs stay inside their word
    assert [t.text for t in analyze("किम जोंग")] == ["किम", "जोंग"]


# -------------------------------------------------------------------------------------- CJK

@pytest.mark.parametrize(("query", "text"), [
    ("김정은", "북한 김정은은 싱가포르에서"),            # particle attached
    ("김정은", "김정은국무위원장"),
    ("金正恩", "朝鲜领导人金正恩今天抵达新加坡"),
    ("金正恩", "北朝鮮の金正恩委員長は"),
    ("首脑会谈", "朝美首脑会谈在新加坡举行"),
    ("トランプ", "トランプ大統領が"),
    ("朝", "北朝鮮"),                                # a single character
    ('"首脑 会谈"', "首脑会谈"),
    ('"首脑 会谈"', "首脑 会谈"),
    ("트럼프 김정은", "트럼프 대통령과 김정은 위원장"),
])
def test_cjk_matches_inside_longer_runs(query: str, text: str) -> None:
    assert matches(query, body=text)


@pytest.mark.parametrize(("query", "text"), [
    ("金正恩", "金正日"),
    ("金正恩", "金正 恩"),                 # not consecutive
    ("金正恩", "恩正金"),
    ("首脑会谈", "首脑会议与会谈"),
    ("김정은", "김정일"),
])
def test_cjk_needs_the_consecutive_bigrams(query: str, text: str) -> None:
    assert not matches(query, body=text)


def test_cjk_tokens_are_unigrams_and_bigrams_with_one_position_per_character() -> None:
    tokens = analyze("A 金正恩")
    assert [(t.text, t.position, t.start, t.end) for t in tokens] == [
        ("a", 0, 0, 1),
        ("金", 1, 2, 3), ("金正", 1, 2, 4),
        ("正", 2, 3, 4), ("正恩", 2, 3, 5),
        ("恩", 3, 4, 5),
    ]


def test_cjk_near_counts_characters() -> None:
    assert matches("金正恩 NEAR/3 特朗普", body="金正恩与特朗普")
    assert not matches("金正恩 NEAR/1 特朗普", body="金正恩与特朗普")
    assert matches("trump NEAR/1 김정은", body="Trump 김정은")


# ------------------------------------------------------------------------------- evidence

def test_hits_point_at_the_original_text() -> None:
    title = "Trump: Sommet annulé avec Kim"
    body = "Le président a écrit à Kim Jong Un. Le sommet de Singapour est annulé."
    result = parse('sommet annul* "kim jong un" -iran').matches(make_document(title, body))
    assert result.matched
    texts = {("title" if h.field == "title" else "body", (title if h.field == "title" else body)[h.start:h.end])
             for h in result.hits}
    assert texts == {
        ("title", "Sommet"), ("title", "annulé"),
        ("body", "Kim Jong Un"), ("body", "sommet"), ("body", "annulé"),
    }
    assert Hit("annul*", "title", 14, 20) in result.hits


def test_hits_of_near_and_or() -> None:
    body = "Kim met Trump. Later, Putin spoke."
    result = parse("(kim NEAR/2 trump) OR xi OR putin").matches(make_document("", body))
    assert [(h.term, body[h.start:h.end]) for h in result.hits] == [
        ("kim", "Kim"), ("trump", "Trump"), ("putin", "Putin")
    ]
    assert parse("kim -trump").matches(make_document("", body)).hits == ()
    assert not parse("kim -trump").matches(make_document("", body)).matched


def test_cjk_hit_covers_the_whole_word() -> None:
    body = "朝鲜领导人金正恩今天"
    [hit] = parse("金正恩").matches(make_document("", body)).hits
    assert body[hit.start:hit.end] == "金正恩"


def test_queries_read_the_document_every_rule_reads() -> None:
    # One document model: the matcher's Document, whose title and body the query searches
    # (the summary is not a query field).
    doc = Document(title="Summit", summary="Trump", body="First paragraph.\n\nKim   Jong Un arrives.")
    assert parse("title:summit").evaluate(doc)
    assert not parse("body:summit").evaluate(doc)
    assert not parse("trump").evaluate(doc)
    assert not parse("summit").evaluate(Document())
    [hit] = parse('"kim jong un"').matches(doc).hits
    assert doc.body[hit.start:hit.end] == "Kim Jong Un"     # offsets point into the paragraphs as joined


def test_query_words_and_facets_share_one_tokeniser() -> None:
    from monitor.matching.text import tokenize

    # The same analyser: a word a facet finds is a word a query finds, and the other way round.
    for text in ("Łódź", "die Straße", "が", "किम जोंग", "Kim\u00adJong", "김정은은", "ＡＢＣ"):
        words = [t.text for t in analyze(text) if len(t.text) > 1 or not text.isascii()]
        assert set(tokenize(text)) <= set(words), text


# ------------------------------------------------------------------------------ prefilter

@pytest.mark.parametrize(("query", "required"), [
    ("kim", {"kim"}),
    ('"kim jong un"', {"jong"}),
    ("kim AND summit*", {"kim"}),
    ("kim OR summit*", {"kim", "summit*"}),
    ("trump NEAR/5 kim", {"trump"}),
    ("summit -iran", {"summit"}),
    ("NOT iran", None),
    ("kim OR NOT iran", None),
    ("(NOT a) (NOT b)", None),
    ("金正恩", {"金正"}),
    ("朝", {"朝"}),
])
def test_required_terms(query: str, required: set[str] | None) -> None:
    expected = None if required is None else frozenset(required)
    assert parse(query).required_terms() == expected


@pytest.mark.parametrize(("query", "groups"), [
    ("kim", [{"kim"}]),
    ("kim AND summit*", [{"kim"}, {"summit*"}]),
    ("trump NEAR/5 kim", [{"trump"}, {"kim"}]),
    ('"kim jong un" AND (talks OR summit)', [{"jong"}, {"talks", "summit"}]),
    ("title:singapore", [{"title:singapore"}]),
    ('title:summit OR "kim jong un"', [{"title:summit", "jong"}]),
    ("(kim AND moon) OR trump", [{"kim", "trump"}]),
    ("summit -iran", [{"summit"}]),
    ("NOT iran", []),
    ("kim OR NOT iran", []),
])
def test_required_groups(query: str, groups: list[set[str]]) -> None:
    assert parse(query).required_groups() == tuple(frozenset(g) for g in groups)


# --------------------------------------------------------------------------------- errors

@pytest.mark.parametrize(("query", "position"), [
    ("", 0),
    ("   ", 0),
    ("(kim OR trump", 0),
    ("kim (OR trump)", 5),
    ("kim OR trump)", 12),
    ("((kim)", 0),
    ("kim OR", 4),
    ("kim AND", 4),
    ("OR kim", 0),
    ("kim AND OR trump", 8),
    ("kim NOT", 4),
    ("kim -", 4),
    ("kim - trump", 4),
    ('kim ""', 4),
    ('kim "  !! "', 4),
    ('kim "summit', 4),
    ("kim NEAR/x trump", 4),
    ("kim NEAR/0 trump", 4),
    ("kim NEAR/1001 trump", 4),
    ("kim NEAR trump", 4),
    ("kim NEAR/5", 4),
    ("NEAR/5 kim", 0),
    ("(kim OR xi) NEAR/5 trump", 0),
    ("kim NEAR/5 -trump", 11),
    ("kim NEAR/5 trump NEAR/5 xi", 17),
    ("title:kim NEAR/5 body:trump", 17),
    ("kim titel:summit", 4),
    ("kim url:summit", 4),
    ("kim title: summit", 4),
    ("kim title:", 4),
    ("title:(kim OR body:trump)", 6),
    ("kim de*", 4),
    ("kim *", 4),
    ("kim dé*", 4),
    ("kim nu*ear", 6),
    ("kim **", 4),
    ('kim "nucle* arms"', 10),
    ("kim ()", 4),
    ("kim & trump", 4),
    ("金正*", 0),
    ("(" * 101 + "kim" + ")" * 101, 100),
    ("NOT " * 101 + "kim", 400),
])
def test_malformed_queries_name_the_position(query: str, position: int) -> None:
    with pytest.raises(QueryError) as info:
        parse(query)
    assert info.value.position == position
    assert info.value.query == query
    assert f"position {position}" in str(info.value)


def test_error_messages_name_the_operator() -> None:
    with pytest.raises(QueryError, match="NEAR/5 must be followed by a term"):
        parse("kim NEAR/5")
    with pytest.raises(QueryError, match="unknown field 'titel'"):
        parse("titel:summit")


def test_deep_but_allowed_nesting_parses() -> None:
    assert parse("(" * 100 + "kim" + ")" * 100) == Term("kim")
    assert parse("NOT " * 99 + "kim").evaluate(make_document("", "")) is True   # odd: NOT kim
    assert parse("NOT " * 100 + "kim").evaluate(make_document("", "")) is False


def test_ast_nodes_refuse_invalid_values() -> None:
    with pytest.raises(ValueError):
        Term("Kim")                      # not folded
    with pytest.raises(ValueError):
        Term("kim jong")                 # two words
    with pytest.raises(ValueError):
        Phrase(("kim",))
    with pytest.raises(ValueError):
        Prefix("de")
    with pytest.raises(ValueError):
        Near(Term("a", "title"), Term("b"), 3)
    with pytest.raises(ValueError):
        And((Term("a"),))


# ----------------------------------------------------------------------------- properties

_WORDS = ["kim", "trump", "summit", "coree", "strasse", "2018", "g7", "김정은", "金正恩", "首脑会谈", "トランプ",
          "Corée", "Straße", "KIM"]


def _atoms() -> st.SearchStrategy[str]:
    word = st.sampled_from(_WORDS)
    phrase = st.lists(word, min_size=1, max_size=3).map(lambda ws: '"' + " ".join(ws) + '"')
    prefix = st.sampled_from(["denucleari*", "summ*", "Coré*", "sanct*"])
    bare = st.one_of(word, phrase, prefix)
    fielded = st.tuples(st.sampled_from(["title:", "body:", "TITLE:"]), bare).map("".join)
    return st.one_of(bare, fielded)


def _near() -> st.SearchStrategy[str]:
    bare = st.one_of(st.sampled_from(_WORDS), st.sampled_from(['"kim jong un"', "summ*"]))
    return st.builds(lambda a, n, b, f: f"{f}{a} NEAR/{n} {f}{b}", bare, st.integers(1, 30), bare,
                     st.sampled_from(["", "title:", "body:"]))


_queries = st.recursive(
    st.one_of(_atoms(), _near()),
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"{a} {b}", inner, inner),
        st.builds(lambda a, b: f"{a} AND {b}", inner, inner),
        st.builds(lambda a, b: f"{a} OR {b}", inner, inner),
        inner.map(lambda a: f"NOT {a}"),
        inner.map(lambda a: f"-({a})"),
        inner.map(lambda a: f"({a})"),
        st.builds(lambda f, a: f"{f}({a})", st.sampled_from(["title:", "body:"]), inner),
    ),
    max_leaves=12,
)


def _parse_or_none(text: str) -> Query | None:
    try:
        return parse(text)
    except QueryError:
        return None     # e.g. a field scope around a conflicting field


@settings(max_examples=400)
@given(_queries)
def test_round_trip_of_generated_queries(text: str) -> None:
    query = _parse_or_none(text)
    if query is None:
        return
    assert parse(str(query)) == query
    assert str(parse(str(query))) == str(query)


@settings(max_examples=1000)
@given(st.lists(st.sampled_from(list('()"-*:/ aAb1éß金正恩김정은')
                                + ["AND", "OR", "NOT", "NEAR/", "NEAR/3", "title:", "body:", "x:", "abc*", "  "]),
                max_size=30).map("".join) | st.text(max_size=60))
def test_random_strings_raise_only_query_error(text: str) -> None:
    try:
        query = parse(text)
    except QueryError as error:
        assert 0 <= error.position <= len(text)
        return
    assert parse(str(query)) == query


_doc_text = st.lists(st.sampled_from(["Kim", "Jong", "Un", "Trump", "summit", "Corée", "金正恩", "김정은은", "denuclearize",
                                      "of", "the", ",", "."]), max_size=20).map(" ".join)


@settings(max_examples=300)
@given(st.sampled_from(["kim", "jong", "un", "trump", "summit", "coree", "denuclearize", "the", "zzz", "金正恩", "김정은은"]),
       st.sampled_from([None, "title", "body"]), _doc_text, _doc_text)
def test_a_term_is_found_where_its_spans_are(word: str, field: str | None, title: str, body: str) -> None:
    # Term.evaluate looks a word up in the field's postings; the spans are what every atom walks.
    term, doc = Term(word, field), make_document(title, body)
    fields = ("title", "body") if field is None else (field,)
    assert term.evaluate(doc) == any(next(term._spans(doc.field(name)), None) is not None for name in fields)


@settings(max_examples=300)
@given(_queries, _doc_text, _doc_text)
def test_required_terms_and_groups_hold_on_every_match(text: str, title: str, body: str) -> None:
    query = _parse_or_none(text)
    if query is None:
        return
    doc = make_document(title, body)
    result = query.matches(doc)
    assert result.matched == query.evaluate(doc)
    if not result.matched:
        return
    fields = {"title": {t.text for t in analyze(title)}, "": {t.text for t in analyze(title) + analyze(body)}}

    def held(term: str) -> bool:
        scope, _, word = term.rpartition(":")
        tokens = fields[scope]
        return word in tokens if not word.endswith("*") else any(x.startswith(word[:-1]) for x in tokens)

    required = query.required_terms()
    if required is not None:
        assert any(held(t) for t in required), (text, required)
    for group in query.required_groups():
        assert any(held(t) for t in group), (text, group)


@settings(max_examples=300)
@given(st.text(max_size=80))
def test_token_offsets_point_at_text_that_folds_to_the_token(text: str) -> None:
    for token in analyze(text):
        assert 0 <= token.start < token.end <= len(text)
        assert token.text in {t.text for t in analyze(text[token.start:token.end])}


@pytest.mark.parametrize(("query", "text"), [("lodz", "Protest in Łódź"), ("oeuvre", "son œuvre complète"),
                                             ("strasse", "die Straße war voll"), ("kobenhavn", "i København")])
def test_query_words_fold_like_facets_and_profiles(query: str, text: str) -> None:
    from monitor.matching.text import tokenize

    assert parse(query).matches(make_document("", text)).matched
    # ... which is how the rest of matching folds them (docs/query-language.md: accents never matter)
    assert tokenize(query)[0] in tokenize(text)
