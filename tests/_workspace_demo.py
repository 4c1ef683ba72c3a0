"""A database holding the bundled demo, stored through a real pass over the demo site served on
127.0.0.1, plus one wire copy under a hostile title: what the workspace's tests open.

    folder, settings = store_demo(tmp_path)     # settings: that database, the demo's story
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sitegen import load_articles, serve_articles

from monitor.config import API_TOKEN_ENV, Settings, settings_from_dict
from monitor.daemon import run_once
from monitor.demo.kept import STORY
from monitor.matching import load_stories
from monitor.runtime import Runtime

GONE_FEED = "/closed-down/feed.xml"      # a feed the site no longer serves: its failure is recorded
HOSTILE_TITLE = "<script>alert(1)</script> Trump & Kim: \"summit off\""
OFF_STORY_NEAR_MISS = "Trump sides with Putin over US intelligence at Helsinki summit"


def demo_articles() -> list[dict[str, Any]]:
    """The demo's articles and a copy of its cancellation story at a new address, retitled by a hostile feed."""
    articles = load_articles()
    original = next(a for a in articles if a["id"] == "demo-03")
    copy = {**original, "id": "demo-hostile", "feed": "seoul-morning-post", "outlet": "Seoul Morning Post",
            "path": "/2018/05/24/hostile-copy", "title": HOSTILE_TITLE, "dup_of": "demo-03",
            "published": "2018-05-24T18:30:00+00:00"}
    return [*articles, copy]


def settings_for(db_file: Path, *, token: str | None) -> Settings:
    os.environ.pop(API_TOKEN_ENV, None)          # the token in force is the one the test chooses
    table: dict[str, Any] = {"database": {"url": f"sqlite:///{db_file}"}, "stories": [{"id": STORY}]}
    if token is not None:
        table["serve"] = {"api_token": token}
    return settings_from_dict(table)


def store_demo(folder: Path) -> Path:
    """Serve the demo site, run one real pass into folder/monitor.db (its six feeds and one that is
gone); the database's path."""
    db_file = folder / "monitor.db"
    with serve_articles(folder / "site", demo_articles()) as (site, feed_urls):
        feeds = [*feed_urls, site.base_url.rstrip("/") + GONE_FEED]
        settings = settings_from_dict({"database": {"url": f"sqlite:///{db_file}"},
                                       "fetch": {"allow_private_addresses": True},
                                       "feeds": [{"url": u} for u in feeds], "stories": [{"id": STORY}]})
        with Runtime.open(settings, stories=load_stories(settings.stories)) as runtime:
            run_once(runtime)
    return db_file
