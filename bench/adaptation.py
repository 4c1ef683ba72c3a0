#!/usr/bin/env python3
"""Does what the database holds change the decisions? The summit story, scored end to end on the
dev corpus, after 1,000 unrelated articles were stored first; then after a story rebuild.

    python bench/adaptation.py [--unrelated 1000] [--shared ../shared]

1. Generates `--unrelated` news articles on other subjects (paragraphs of the 181 real articles of
   the article-extraction benchmark, dated inside the summit's window) and stores them through a
   real `monitor run --once` over a local site.
2. Runs ../shared/tools/story_eval.py, unchanged, on that same database (its scratch folder is the
   one prepared here): the F1 of the summit story with those articles already stored.
3. `monitor stories rebuild` makes the summit story's next version from what the dev corpus taught
   it; the learned names are printed (a name of the setting, such as "Oval Office" or the White
   House press secretary, must not be among them); `stories backfill` applies it and
   story_eval runs again.

Needs the shared folder (the dev corpus, story_eval.py, the benchmark's texts).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import random
import subprocess
import sys
import tempfile
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.demo.site import LocalSite, render_site

ROOT = Path(__file__).resolve().parent.parent
SETTING = ("Oval Office", "Sarah Huckabee Sanders", "Sarah Sanders", "White House", "Washington")


def _story_eval(shared: Path):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("story_eval", shared / "tools" / "story_eval.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _unrelated(shared: Path, count: int) -> list[dict]:
    texts = [v["articleBody"] for v in json.loads((shared / "aeb" / "ground-truth.json").read_text()).values()]
    paragraphs = [p.strip() for t in texts for p in t.split("\n\n") if len(p.split()) > 25]
    rng = random.Random(11)
    start = datetime(2018, 3, 10, tzinfo=UTC)
    articles = []
    for i in range(count):
        body = "\n\n".join(rng.sample(paragraphs, 6))
        when = start + timedelta(hours=rng.randrange(150 * 24))
        outlet = i % 20
        articles.append({"id": f"u{i}", "outlet": f"Other News {outlet}", "feed": f"other-news-{outlet}",
                         "path": f"/{when:%Y/%m/%d}/other-{i}", "title": " ".join(body.split()[:9]).rstrip(".,;:"),
                         "author": "", "published": when.isoformat(), "summary": body.split(". ")[0] + ".",
                         "body": body, "lang": "en", "dup_of": ""})
    return articles


def _monitor(venv: Path, config: Path, *args: str) -> str:
    p = subprocess.run([str(venv / "bin" / "monitor"), "--config", str(config), *args], capture_output=True,
                       text=True, timeout=1800)
    if p.returncode != 0:
        raise SystemExit(f"monitor {' '.join(args)} failed: {p.stderr[-2000:]}")
    return p.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--unrelated", type=int, default=1000)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    args = ap.parse_args()
    story_eval = _story_eval(args.shared)
    venv = story_eval.venv_for(ROOT)
    work = Path(tempfile.mkdtemp(prefix="adaptation-"))

    # 1. the unrelated articles, through a real pass
    site = LocalSite(work / "other-site")
    (work / "other-site").mkdir()
    feeds = render_site(_unrelated(args.shared, args.unrelated), work / "other-site", site.base_url)
    site.start()
    try:
        cfg = tomllib.loads((ROOT / "config.example.toml").read_text(encoding="utf-8"))
        cfg["database"]["url"] = f"sqlite:///{work / 'monitor.db'}"
        cfg["fetch"]["allow_private_addresses"] = True
        cfg["feeds"] = [{"url": u} for u in feeds]
        config = work / "unrelated.toml"
        config.write_text(story_eval.dump_toml(cfg), encoding="utf-8")
        _monitor(venv, config, "run", "--once")
    finally:
        site.close()
    stored = sum(1 for _ in _monitor(venv, config, "export", "articles").splitlines())
    print(f"stored first: {stored} unrelated articles")

    # 2. story_eval, unchanged, on that database
    story_eval.tempfile.mkdtemp = lambda prefix=None: str(work)     # its scratch folder is ours
    eval_args = argparse.Namespace(project=ROOT, corpus=args.shared / "corpus" / "dev.jsonl",
                                   story="trump-kim-summit-2018", story_dir=None, since="2017-01-01",
                                   until="2020-01-01", timeout=900)
    before = story_eval.evaluate(eval_args)
    line = (f"F1 {before['f1']:.3f} (P {before['precision']:.3f} R {before['recall']:.3f}) stored "
            f"{before['articles_stored']}/{before['articles_in_corpus']} idempotent {before['second_pass_changed_nothing']}")
    print(f"with {stored} unrelated articles stored first: {line}")

    # 3. the next version, from what the corpus taught the story; applied; scored again
    config = work / "monitor.toml"      # story_eval's own configuration of this database
    print(_monitor(venv, config, "stories", "rebuild", "trump-kim-summit-2018").strip())
    show = _monitor(venv, config, "stories", "show", "trump-kim-summit-2018")
    learned = next((line.split(":", 1)[1].strip() for line in show.splitlines() if "learned names" in line), "none")
    print(f"learned names: {learned}")
    generic = [name for name in SETTING if name in learned.split(", ")]
    print(f"names of the setting learned: {', '.join(generic) or 'none'}")
    _monitor(venv, config, "stories", "backfill", "trump-kim-summit-2018", "--keep-version")
    after = story_eval.evaluate(eval_args)
    print(f"after the rebuild and backfill: F1 {after['f1']:.3f} (P {after['precision']:.3f} R {after['recall']:.3f})")
    ok = before["f1"] >= 0.97 and after["f1"] >= 0.97 and not generic
    print(f"target: F1 >= 0.97 with {stored} unrelated articles stored first and after the rebuild, no name of "
          f"the setting learned: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
