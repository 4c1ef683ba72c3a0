"""Article extraction in one process: body F1 and CPU time of `extract_page` against plain trafilatura.

    python bench/extraction.py [--shared ../shared] [--repeat 3]

On the 181 real pages of the article-extraction benchmark (shared/aeb), with the benchmark's
metric (word 4-gram shingles, precision and recall averaged over pages, F1 of the averages;
the scorer of shared/tools/extraction_eval.py), `monitor.extract.extract_page` against
`trafilatura.extract` with its defaults: F1, precision, recall, and CPU time a page (the best
of --repeat runs of each page: the machine is shared, CPU time is what the pipeline's workers
spend). Then, to check that nothing is fitted to those pages, the same on the pages that
shared/corpus/build_site.py renders from the labelled corpora (other markup, other furniture:
cookie banners, "most read" boxes, related links, reader comments).

This measures the extraction alone; shared/tools/extraction_eval.py measures the whole pipeline
(fetching, the process pool, storing). Targets: body F1 >= 0.970 on the benchmark, not below
plain trafilatura on the corpora, and CPU time at most 0.65 x plain trafilatura's.
"""
from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.extract import extract_page, guess_language  # noqa: E402

F1_TARGET = 0.970
CPU_RATIO_TARGET = 0.65
CORPORA = ("dev.jsonl", "stories/notre-dame-fire-2019/corpus.jsonl", "stories/skripal-2018/corpus.jsonl")

Extractor = Callable[[bytes, str], str]


def _scorer(shared: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("extraction_eval", shared / "tools" / "extraction_eval.py")
    assert spec is not None and spec.loader is not None
    sys.path.insert(0, str(shared / "tools"))   # it imports story_eval beside it
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def monitor_body(raw: bytes, url: str) -> str:
    return extract_page(raw, url=url).body


def plain_body(raw: bytes, url: str) -> str:
    import trafilatura

    return trafilatura.extract(raw) or ""


def run(pages: dict[str, tuple[bytes, str]], extractor: Extractor, repeat: int) -> tuple[dict[str, str], float]:
    """Bodies by key, and CPU seconds (the best of `repeat` runs of each page, summed)."""
    bodies, seconds = {}, 0.0
    for key, (raw, url) in pages.items():
        best = float("inf")
        for _ in range(repeat):
            start = time.process_time()
            bodies[key] = extractor(raw, url)
            best = min(best, time.process_time() - start)
        seconds += best
    return bodies, seconds


def benchmark_pages(shared: Path) -> tuple[dict[str, tuple[bytes, str]], dict[str, str]]:
    truth = json.loads((shared / "aeb" / "ground-truth.json").read_text(encoding="utf-8"))
    html = shared / "aeb" / "html"
    pages = {key: (gzip.open(html / f"{key}.html.gz").read(), row.get("url", "")) for key, row in truth.items()}
    return pages, {key: row.get("articleBody", "") for key, row in truth.items()}


def corpus_pages(shared: Path, corpus: str, out: Path) -> tuple[dict[str, tuple[bytes, str]], dict[str, str]]:
    subprocess.run([sys.executable, str(shared / "corpus" / "build_site.py"), str(shared / "corpus" / corpus), str(out),
                    "--base", "http://127.0.0.1:8123"], check=True, capture_output=True)
    rows = [json.loads(line) for line in (shared / "corpus" / corpus).read_text(encoding="utf-8").splitlines() if line.strip()]
    bodies = {row["id"]: row["body"] for row in rows}
    pages, truth = {}, {}
    for line in (out / "truth.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        pages[row["id"]] = ((out / "site" / row["path"].strip("/") / "index.html").read_bytes(), row["url"])
        truth[row["id"]] = bodies[row["id"]]
    return pages, truth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_shared = ROOT.parent / "shared" if (ROOT.parent / "shared").exists() else Path("/work/shared")
    parser.add_argument("--shared", type=Path, default=default_shared)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    score = _scorer(args.shared).score
    guess_language("a warm-up: each extraction worker loads the language model once")
    plain_body(b"<html><body><p>warm-up</p></body></html>", "")
    verdicts = []

    pages, truth = benchmark_pages(args.shared)
    mine, mine_s = run(pages, monitor_body, args.repeat)
    plain, plain_s = run(pages, plain_body, args.repeat)
    m, p = score(truth, mine), score(truth, plain)
    ratio = mine_s / plain_s
    print(f"benchmark ({len(pages)} pages): extract_page F1 {m['f1']:.4f} (P {m['precision']:.4f} R {m['recall']:.4f}), "
          f"{1000 * mine_s / len(pages):.1f} ms a page; plain trafilatura F1 {p['f1']:.4f} "
          f"(P {p['precision']:.4f} R {p['recall']:.4f}), {1000 * plain_s / len(pages):.1f} ms a page; "
          f"F1 ratio {m['f1'] / p['f1']:.3f}, CPU ratio {ratio:.3f}")
    verdicts.append((f"benchmark body F1 >= {F1_TARGET}", m["f1"] >= F1_TARGET))
    verdicts.append((f"CPU time <= {CPU_RATIO_TARGET} x plain trafilatura", ratio <= CPU_RATIO_TARGET))

    with tempfile.TemporaryDirectory(prefix="extraction-bench-") as tmp:
        for index, corpus in enumerate(CORPORA):
            pages, truth = corpus_pages(args.shared, corpus, Path(tmp) / str(index))
            m, p = score(truth, run(pages, monitor_body, 1)[0]), score(truth, run(pages, plain_body, 1)[0])
            print(f"corpus {corpus} ({len(pages)} rendered pages): extract_page F1 {m['f1']:.4f} "
                  f"(P {m['precision']:.4f} R {m['recall']:.4f}); plain trafilatura F1 {p['f1']:.4f} "
                  f"(P {p['precision']:.4f} R {p['recall']:.4f})")
            verdicts.append((f"{corpus}: F1 not below plain trafilatura", m["f1"] >= p["f1"]))
    for what, held in verdicts:
        print(f"target {what}: {'met' if held else 'not met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
