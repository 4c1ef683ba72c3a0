"""Language and charset detection: the library the monitor uses against the hand-written code it replaced.

    python bench/detection.py [--aeb DIR] [--corpus DIR] [--repeat 3]

Language: `monitor.extract.guess_language` (py3langid, langid.py's model shipped in the wheel)
against the former hand-written guesser (a script check, then ~20 stop words for each of ten
languages; kept below as `stopword_guess`). Texts with a known language: the true article
bodies of the extraction benchmark whose page declares its language (<html lang>,
Content-Language, og:locale), and the article bodies of the labelled corpora (their `lang`).
A guess of None counts as wrong. Also run on the first 200 characters of each text (a summary).

Charset: `monitor.extract.decode_html` (BOM, HTTP charset, <meta charset>, strict UTF-8, then
Windows-1252) against charset-normalizer for the pages that declare nothing and are not UTF-8
(its best guess; and its guess with Windows-1252 preferred among equally clean decodings). On
the benchmark pages as served (all UTF-8: time only), and on the same pages re-encoded in the
legacy charset of their script with the declaration removed (what an old site sends): correct
when the decoded text equals the original. The monitor keeps whichever decodes more pages right.
Prints figures and ratios (CPU time: the machine is shared); targets: the kept language guesser at
least as accurate as the other and at most 2 ms a text, the kept decoding at most 5 ms a page.
"""
from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import charset_normalizer
import lxml.html

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.extract import declared_language, decode_html, guess_language  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" if (ROOT.parent / "shared").exists() else Path("/work/shared")
LANGUAGE_TARGET_MS = 2.0
CHARSET_TARGET_MS = 5.0

# --- the hand-written code that was replaced (the baseline) ---------------------------------
_STOPWORDS: dict[str, frozenset[str]] = {lang: frozenset(words.split()) for lang, words in {
    "en": "the and of to in is that for was on with said he it as by at from his have has are were be",
    "de": "der die und das ist nicht den mit von zu sich auf für dem ein eine des auch im wurde sie",
    "fr": "le la les et des est une dans que pour qui pas sur au du par avec il elle sont ont été",
    "es": "el la los las y que en del se por una con para es su al lo como más pero fue han",
    "it": "il di che la per un una sono del della non con gli le si è anche ha nel alla",
    "pt": "o os que de da do em um uma para com não é se na no dos das foi ao pelo",
    "nl": "de het een van en is dat op te niet in zijn met voor die er aan ook wordt",
    "sv": "och att det som en på är av för med till den har inte om ett var de",
    "pl": "i w na nie się z do że to jest jak po o co ale od za przez było",
    "ru": "и в не на что с по как это он она из но за от для так его было",
}.items()}
_SCRIPT_LANGS = ((re.compile(r"[\uac00-\ud7a3]"), "ko"), (re.compile(r"[\u3040-\u30ff]"), "ja"),
                 (re.compile(r"[\u4e00-\u9fff]"), "zh"), (re.compile(r"[\u0600-\u06ff]"), "ar"),
                 (re.compile(r"[\u0590-\u05ff]"), "he"), (re.compile(r"[\u0370-\u03ff]"), "el"),
                 (re.compile(r"[\u0e00-\u0e7f]"), "th"))
_WORD = re.compile(r"\w+")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)


def stopword_guess(body: str) -> str | None:
    sample = body[:3000]
    if not sample:
        return None
    for pattern, lang in _SCRIPT_LANGS:
        if len(pattern.findall(sample)) > 20:
            return lang
    words = [w.lower() for w in _WORD.findall(sample)]
    if len(words) < 20:
        return None
    scores = {lang: sum(1 for w in words if w in stop) for lang, stop in _STOPWORDS.items()}
    best = max(scores, key=scores.__getitem__)
    return best if scores[best] >= max(5, len(words) // 20) else None


def normalizer_guess(html: bytes) -> str:
    """charset-normalizer's best guess for a page that declares nothing (declarations read alike)."""
    try:
        return html.decode("utf-8")
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(html).best()
    return html.decode(best.encoding if best is not None else "cp1252", errors="replace")


def normalizer_web_default(html: bytes) -> str:
    """charset-normalizer's guess, with Windows-1252 (the web's default) where it is as clean as the best."""
    try:
        return html.decode("utf-8")
    except UnicodeDecodeError:
        pass
    matches = charset_normalizer.from_bytes(html)
    best = matches.best()
    if best is None:
        return html.decode("cp1252", errors="replace")
    codec = best.encoding
    if any(m.encoding in ("cp1252", "latin_1") and m.chaos <= best.chaos for m in matches):
        codec = "cp1252"
    return html.decode(codec, errors="replace")


# --- data ------------------------------------------------------------------------------------
def aeb_pages(aeb: Path) -> list[tuple[bytes, str]]:
    truth = json.loads((aeb / "ground-truth.json").read_text(encoding="utf-8"))
    return [(gzip.open(aeb / "html" / f"{key}.html.gz").read(), truth[key].get("articleBody", "")) for key in sorted(truth)]


def labelled_texts(aeb: Path, corpus: Path) -> dict[str, list[tuple[str, str]]]:
    """(text, language) by source."""
    sources: dict[str, list[tuple[str, str]]] = {"extraction benchmark": []}
    for raw, body in aeb_pages(aeb):
        lang = declared_language(lxml.html.document_fromstring(decode_html(raw, None)))
        if lang and body.strip():
            sources["extraction benchmark"].append((body, lang))
    for path in [corpus / "dev.jsonl", *sorted(corpus.glob("stories/*/corpus.jsonl"))]:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        sources[str(path.relative_to(corpus))] = [(r["body"], r["lang"]) for r in rows if r.get("lang") and r.get("body")]
    return sources


# Legacy charsets by script, as old sites used them.
_LEGACY = ((re.compile(r"[\u0400-\u04ff]"), "cp1251"), (re.compile(r"[\u3040-\u30ff]"), "shift_jis"),
           (re.compile(r"[\uac00-\ud7a3]"), "euc_kr"), (re.compile(r"[\u4e00-\u9fff]"), "gb18030"),
           (re.compile(r"[\u0370-\u03ff]"), "cp1253"), (re.compile(r"[\u0590-\u05ff]"), "cp1255"),
           (re.compile(r"[\u0600-\u06ff]"), "cp1256"), (re.compile(r"[\u0100-\u017f]"), "cp1250"))


def legacy_pages(aeb: Path) -> list[tuple[bytes, str, str]]:
    """(bytes without a declaration, original text, charset) for every page its legacy charset can hold."""
    out = []
    for raw, _body in aeb_pages(aeb):
        text = raw.decode("utf-8")
        if text.isascii():
            continue
        text = _META_CHARSET.sub(b"", raw).decode("utf-8")
        charset = next((cs for pattern, cs in _LEGACY if len(pattern.findall(text)) > 20), "cp1252")
        try:
            out.append((text.encode(charset), text, charset))
        except UnicodeEncodeError:   # the page mixes scripts the charset cannot hold
            continue
    return out


STRATEGIES: tuple[tuple[str, Callable[[bytes], str]], ...] = (
    ("decode_html", lambda raw: decode_html(raw, None)), ("charset-normalizer", normalizer_guess),
    ("charset-normalizer, 1252 on ties", normalizer_web_default))


def timed(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aeb", type=Path, default=SHARED / "aeb")
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpus")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    verdicts = []

    print("== language: py3langid (monitor.extract.guess_language) vs the former stop-word guesser")
    guess_language("warm-up: the model is loaded once per process")
    sources = labelled_texts(args.aeb, args.corpus)
    for length, label in ((None, "whole text"), (200, "first 200 characters")):
        correct = {"library": 0, "stop words": 0}
        total = 0
        seconds = {"library": 0.0, "stop words": 0.0}
        for source, texts in sources.items():
            cut = [(text[:length] if length else text, lang) for text, lang in texts]
            row = {}
            for name, guess in (("library", guess_language), ("stop words", stopword_guess)):
                right = sum(1 for text, lang in cut if guess(text) == lang)
                seconds[name] += timed(lambda guess=guess, cut=cut: [guess(t) for t, _ in cut], args.repeat)
                correct[name] += right
                row[name] = right
            total += len(cut)
            langs = sorted({lang for _, lang in cut})
            print(f"  {label:21} {source:40} {len(cut):4} texts ({', '.join(langs)}): "
                  f"library {row['library']}/{len(cut)}, stop words {row['stop words']}/{len(cut)}")
        lib_ms, old_ms = (1000 * seconds[n] / total for n in ("library", "stop words"))
        print(f"  {label}: accuracy library {correct['library'] / total:.3f}, stop words {correct['stop words'] / total:.3f}; "
              f"{lib_ms:.2f} ms vs {old_ms:.2f} ms a text (ratio {lib_ms / old_ms:.1f})")
        verdicts.append((f"language accuracy ({label}) library >= stop words", correct["library"] >= correct["stop words"]))
        verdicts.append((f"language time ({label}) <= {LANGUAGE_TARGET_MS} ms", lib_ms <= LANGUAGE_TARGET_MS))

    print("== charset: decode_html (declarations, UTF-8, then Windows-1252) vs charset-normalizer")
    pages = [raw for raw, _ in aeb_pages(args.aeb)]
    for name, fn in STRATEGIES:
        same = sum(1 for raw in pages if fn(raw) == raw.decode("utf-8"))
        ms = 1000 * timed(lambda fn=fn: [fn(raw) for raw in pages], args.repeat) / len(pages)
        print(f"  pages as served ({len(pages)}, all UTF-8): {name:33} correct {same}/{len(pages)}, {ms:.2f} ms a page")
        if name == "decode_html":
            verdicts.append((f"charset time as served <= {CHARSET_TARGET_MS} ms", ms <= CHARSET_TARGET_MS))
    legacy = legacy_pages(args.aeb)
    charsets = sorted({cs for _, _, cs in legacy})
    results = {}
    for name, fn in STRATEGIES:
        right = sum(1 for raw, text, _ in legacy if fn(raw) == text)
        ms = 1000 * timed(lambda fn=fn: [fn(raw) for raw, _, _ in legacy], args.repeat) / len(legacy)
        results[name] = (right, ms)
        wrong = sorted({cs for raw, text, cs in legacy if fn(raw) != text})
        print(f"  legacy, undeclared ({len(legacy)} pages in {', '.join(charsets)}): {name:33} correct {right}/{len(legacy)}, "
              f"{ms:.2f} ms a page; wrong in {', '.join(wrong) or '-'}")
    others = max(right for name, (right, _) in results.items() if name != "decode_html")
    print(f"  legacy: decode_html {results['decode_html'][0]} right against {others} for the best charset-normalizer use; "
          f"time ratio {results['charset-normalizer'][1] / results['decode_html'][1]:.0f}")
    verdicts.append(("charset correct on legacy pages: decode_html >= charset-normalizer", results["decode_html"][0] >= others))
    for what, held in verdicts:
        print(f"target {what}: {'met' if held else 'not met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
