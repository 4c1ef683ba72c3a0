"""The people, places and organisations a reference article names, with the short forms it uses.

`derive_names(title, body)` reads the capitalisation of the text itself, so it needs no word
list of any language: a word is part of a name when the text writes it capitalised inside
sentences and never in lower case ("Salisbury", "Skripal"; not "Want", which the text also
writes as "want"). Runs of such words are the candidate names ("Sergei Skripal", "Kim Jong
Un", "Notre-Dame de Paris"); a word of a longer name that the text also uses on its own
becomes that name's short form ("Skripal", "Kim"), the way the press writes it after the
first mention.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from monitor.matching.text import CALENDAR_WORDS, fold, split_paragraphs, split_sentences

__all__ = ["DerivedName", "derive_names"]

_WORD = re.compile(r"[^\W\d_][\w'’.-]*[\w]|[^\W\d_]")
# Lower-case words that may sit inside a name ("Notre-Dame de Paris", "Bank of England").
_CONNECTORS = frozenset("of de la le du des del della di da al el bin ibn van von der den y".split())
_MIN_MENTIONS = 2
# Titles written before a name ("President Tomas Okonkwo", "Detective Inspector Claire Beaumont"),
# in the languages the monitor reads: they are not part of the name.
_TITLES = frozenset("""
mr mrs ms miss dr prof professor sir dame lord lady president vice prime minister chancellor secretary
governor mayor senator representative rep congressman congresswoman ambassador king queen prince princess
pope cardinal bishop archbishop general gen colonel col major captain capt lieutenant lt sergeant sgt admiral
detective inspector chief superintendent constable officer judge justice deputy former foreign interior
defence defense finance home health state premier chairman chairwoman chair ceo director leader speaker
presidente ministro ministra primer primera rey reina general alcalde alcaldesa juez señor señora don doña
président présidente premier ministre roi reine maire juge monsieur madame
präsident präsidentin kanzler kanzlerin bundeskanzler bundeskanzlerin minister ministerin könig königin
bürgermeister bürgermeisterin richter herr frau
""".split())


@dataclass(frozen=True, slots=True)
class DerivedName:
    name: str
    aliases: tuple[str, ...]
    mentions: int            # the full name and its short forms, in the whole text


def _words(sentence: str) -> list[tuple[str, bool]]:
    """(word, first word of the sentence) pairs; possessive endings dropped. A punctuation mark
    between two words ("Russia, Britain") is given as an empty word, which ends a name."""
    out: list[tuple[str, bool]] = []
    end = 0
    for i, match in enumerate(_WORD.finditer(sentence)):
        if sentence[end:match.start()].strip():
            out.append(("", False))
        end = match.end()
        word = re.sub(r"['’]s$", "", match.group()).strip(".'’-")
        if word:
            out.append((word, i == 0))
    return out


def _is_title_case(text: str) -> bool:
    words = [w for w, _ in _words(text) if len(w) > 3]
    return len(words) >= 3 and sum(w[:1].isupper() for w in words) >= 0.8 * len(words)


def derive_names(title: str, body: str, *, limit: int = 15) -> list[DerivedName]:
    """The names of the text, most mentioned first (each at least twice, short forms included)."""
    sentences = [s for p in split_paragraphs(body) for s in split_sentences(p)]
    if title and not _is_title_case(title):   # a headline in Title Case says nothing of names
        sentences.insert(0, title)
    capital_inside: Counter[str] = Counter()
    lower: Counter[str] = Counter()
    for sentence in sentences:
        for word, first in _words(sentence):
            if word[:1].isupper():
                if not first:
                    capital_inside[fold(word)] += 1
            elif word[:1].islower():
                lower[fold(word)] += 1

    def name_word(word: str) -> bool:
        key = fold(word)
        return (word[:1].isupper() and capital_inside[key] > 0 and lower[key] == 0 and len(key) > 1
                and key not in CALENDAR_WORDS)

    raw: list[tuple[list[str], bool]] = []   # capitalised runs, and whether each opens its sentence
    for sentence in sentences:
        current: list[str] = []
        opens_sentence = False
        for word, first in [*_words(sentence), ("", False)]:
            if word and name_word(word):
                if not current:
                    opens_sentence = first
                current.append(word)
            elif word and current and word.lower() in _CONNECTORS:
                current.append(word)
            else:
                if current:
                    raw.append((current, opens_sentence))
                current = []
    alone = {fold(" ".join(words)) for words, _ in raw}
    runs: Counter[str] = Counter()
    for words, opens_sentence in raw:
        # A lone capitalised word opening a sentence may be capitalised only for that.
        if len(words) == 1 and opens_sentence:
            continue
        for name in _split_run(words, alone):
            runs[" ".join(name)] += 1
    return _with_short_forms(runs, limit)


def _split_run(words: list[str], alone: set[str]) -> list[list[str]]:
    """A run of capitalised words as names: titles dropped from its front, and split at a
    connector when a person's full name stands before it ("Elena Marchetti of Valdoria")."""
    while words and words[-1].lower() in _CONNECTORS:
        words = words[:-1]
    start = 0
    while start < len(words) - 1 and fold(words[start]) in _TITLES:
        start += 1
    words = words[start:] if start else words
    for i, word in enumerate(words):
        if word.lower() in _CONNECTORS and i >= 2 and fold(" ".join(words[i + 1:])) in alone:
            return [words[:i], *_split_run(words[i + 1:], alone)]
    return [words] if words else []


def _with_short_forms(runs: Counter[str], limit: int) -> list[DerivedName]:
    """Fold single words used on their own into the longer names they belong to."""
    by_key: dict[str, str] = {}
    counts: Counter[str] = Counter()
    for run, n in runs.items():   # one spelling per folded form: the most frequent
        key = fold(run)
        if key not in by_key or runs[by_key[key]] < n:
            by_key[key] = run
        counts[key] += n
    longer = sorted((k for k in counts if " " in k), key=lambda k: (-counts[k], k))
    aliases: dict[str, list[str]] = {k: [] for k in longer}
    absorbed: set[str] = set()
    for key in sorted((k for k in counts if " " not in k), key=lambda k: (-counts[k], k)):
        # "Kim" alone may be Kim Jong Un or Kim Hong-ji: a short form of every name it ends or starts.
        owners = [k for k in longer if key in k.split() and key not in _CONNECTORS]
        for owner in owners:
            aliases[owner].append(by_key[key])
        if owners:
            absorbed.add(key)
    names = []
    for key in counts:
        if key in absorbed:
            continue
        mentions = counts[key] + sum(counts[fold(a)] for a in aliases.get(key, []))
        if mentions >= _MIN_MENTIONS:
            names.append(DerivedName(by_key[key], tuple(aliases.get(key, [])), mentions))
    names.sort(key=lambda n: (-n.mentions, n.name))
    return names[:limit]
