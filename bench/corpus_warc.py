"""The dev corpus's news web, polled and archived: does `monitor ingest warc` match what polling matches?

    python bench/corpus_warc.py [--corpus ../shared/corpus/dev.jsonl] [--story trump-kim-summit-2018]
                                [--since 2017-01-01] [--until 2020-01-01] [--story-eval]

1. Renders the corpus with ../shared/corpus/build_site.py and serves it on 127.0.0.1, as
   ../shared/tools/story_eval.py does.
2. Polling: a config made the way story_eval.py makes it (config.example.toml with the
   database, `fetch.allow_private_addresses` and the corpus's feeds replaced), `monitor run
   --once`, then `monitor report --story ID --format json --since --until`.
3. Archive: every article page of the web (truth.jsonl) and every feed fetched over HTTP and
   written with warcio into one .warc.gz (WARC-Date: the article's publication time), as a crawl
   of a news site holds its feeds too; `monitor ingest warc` into a fresh database with the same
   config, then the same `monitor report`. (--pages-only leaves the feeds out: the pages alone.)
4. Compares the two reports' matches by URL path (story_eval.py's `path_key`) and title, and
   scores both against the corpus labels exactly as story_eval.py does (precision, recall, F1;
   `brief` rows count neither way). With --story-eval, also runs story_eval.py --json itself and
   prints its figures next to those of step 2.

Every `monitor` command runs as a separate process of this interpreter. Exit status 0 when the
two sets of matches are equal, 1 otherwise.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import tomllib
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" if (ROOT.parent / "shared").is_dir() else Path("/work/shared")
sys.path.insert(0, str(ROOT / "tests"))

from warcgen import ArchivedResponse, crawl, write_warc  # noqa: E402


def load_story_eval(shared: Path):
    spec = importlib.util.spec_from_file_location("story_eval", shared / "tools" / "story_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def monitor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1")
    env.pop("MONITOR_CONFIG", None)
    result = subprocess.run([sys.executable, "-m", "monitor", "--config", str(config), *args],
                            capture_output=True, text=True, env=env, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"monitor {' '.join(args)} exited with {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def score(se, matches: list[dict], truth: dict[str, dict]) -> dict[str, float]:
    """story_eval.py's precision, recall and F1 of `matches` against the labels."""
    flagged = {se.path_key(m["url"]) for m in matches}
    tp = sum(1 for k, t in truth.items() if t["label"] == "on" and k in flagged)
    fn = sum(1 for k, t in truth.items() if t["label"] == "on" and k not in flagged)
    fp = sum(1 for k, t in truth.items() if t["label"] == "off" and k in flagged)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"flagged": len(matches), "tp": tp, "fp": fp, "fn": fn, "precision": round(p, 4), "recall": round(r, 4),
            "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared folder (corpus/, tools/)")
    parser.add_argument("--corpus", type=Path, default=None, help="default: SHARED/corpus/dev.jsonl")
    parser.add_argument("--story", default="trump-kim-summit-2018")
    parser.add_argument("--since", default="2017-01-01")
    parser.add_argument("--until", default="2020-01-01")
    parser.add_argument("--story-eval", action="store_true", help="also run story_eval.py --json and print its figures")
    parser.add_argument("--pages-only", action="store_true", help="archive the article pages without the feeds")
    args = parser.parse_args(argv)
    corpus = args.corpus or args.shared / "corpus" / "dev.jsonl"
    se = load_story_eval(args.shared)
    rows = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    published = {row["id"]: row["published"] for row in rows}

    work = Path(tempfile.mkdtemp(prefix="monitor-corpus-warc-"))
    port = se.free_port()
    base = f"http://127.0.0.1:{port}"
    subprocess.run([sys.executable, str(args.shared / "corpus" / "build_site.py"), str(corpus), str(work / "web"),
                    "--base", base], check=True)
    truth_rows = [json.loads(line) for line in (work / "web" / "truth.jsonl").read_text().splitlines()]
    truth = {se.path_key(t["url"]): t for t in truth_rows}
    httpd = se.serve(work / "web" / "site", port)
    try:
        cfg = tomllib.loads((ROOT / "config.example.toml").read_text(encoding="utf-8"))
        cfg.setdefault("fetch", {})["allow_private_addresses"] = True
        cfg["feeds"] = [{"url": u} for u in (work / "web" / "feeds.txt").read_text().split()]
        configs = {}
        for name in ("poll", "warc"):
            (work / name).mkdir()
            cfg.setdefault("database", {})["url"] = f"sqlite:///{work / name / 'monitor.db'}"
            configs[name] = work / name / "monitor.toml"
            configs[name].write_text(se.dump_toml(cfg), encoding="utf-8")
        report_args = ["report", "--story", args.story, "--format", "json", "--since", args.since, "--until", args.until]

        poll = monitor(configs["poll"], "run", "--once")
        print(f"polling: {poll.stderr.strip().splitlines()[-1]}")
        polled = json.loads(monitor(configs["poll"], *report_args).stdout)["stories"][0]["matches"]

        pages = crawl(t["url"] for t in truth_rows)
        dated = [ArchivedResponse(p.url, p.body, p.headers, p.status, datetime.fromisoformat(published[t["id"]]))
                 for p, t in zip(pages, truth_rows)]
        if not args.pages_only:
            dated += crawl((work / "web" / "feeds.txt").read_text().split())
        warc = write_warc(work / "corpus.warc.gz", dated)
        print(f"archive: {len(dated)} pages crawled from {base} into {warc} ({warc.stat().st_size / 1024:.0f} KiB)")
    finally:
        httpd.shutdown()
    # The web is down now: whatever the ingest stores comes from the archive.
    ingest = monitor(configs["warc"], "ingest", "warc", str(warc))
    print(f"ingest: {ingest.stdout.strip().splitlines()[-1]}")
    archived = json.loads(monitor(configs["warc"], *report_args).stdout)["stories"][0]["matches"]

    stored = {name: {se.path_key(a["url"]): a for a in map(json.loads, monitor(configs[name], "export", "articles")
                                                          .stdout.splitlines())} for name in configs}
    same = {field: sum(stored["warc"].get(k, {}).get(field) == a[field] for k, a in stored["poll"].items())
            for field in ("title", "body", "published", "summary")}
    print(f"stored articles: polling {len(stored['poll'])}, archive {len(stored['warc'])}; the same " +
          ", ".join(f"{field} {n}/{len(stored['poll'])}" for field, n in same.items()) +
          ("" if same["summary"] == len(stored["poll"]) else
           " (a feed's summary is not on these pages: without the feeds in the archive, articles take the "
           "page's description, and these pages have none)"))
    evidence = {se.path_key(m["url"]): (m["score"], m["evidence"]) for m in polled + archived}
    by_poll = {se.path_key(m["url"]): m["title"] for m in polled}
    by_warc = {se.path_key(m["url"]): m["title"] for m in archived}
    both = by_poll.keys() & by_warc.keys()
    same_titles = sum(by_poll[k] == by_warc[k] for k in both)
    print(f"matches of {args.story} in [{args.since}, {args.until}): polling {len(by_poll)}, archive {len(by_warc)}, "
          f"both {len(both)} (same title {same_titles}/{len(both)})")
    for label, keys, titles in (("only polling", by_poll.keys() - both, by_poll),
                                ("only archive", by_warc.keys() - both, by_warc)):
        for k in sorted(keys):
            score_, why = evidence[k]
            print(f"  {label}: {k}  {titles[k]!r}  (label {truth.get(k, {}).get('label')}; score {score_}: "
                  f"{'; '.join(why)})")
    print(f"scored as story_eval.py scores: polling {json.dumps(score(se, polled, truth))}")
    print(f"scored as story_eval.py scores: archive {json.dumps(score(se, archived, truth))}")
    if args.story_eval:
        result = subprocess.run([sys.executable, str(args.shared / "tools" / "story_eval.py"), "--corpus", str(corpus),
                                 "--json", "--since", args.since, "--until", args.until],
                                capture_output=True, text=True, cwd=ROOT, timeout=3600)
        figures = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
        print("story_eval.py --json: " + json.dumps({k: figures[k] for k in
                                                   ("flagged", "tp", "fp", "fn", "precision", "recall", "f1")}))
    equal = by_poll == by_warc
    print(f"same matches (URL and title): {'yes' if equal else 'NO'}")
    return 0 if equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
