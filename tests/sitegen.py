"""Small news sites for tests: article dicts in; real feeds and pages over real HTTP on 127.0.0.1 out.

    from sitegen import make_article, serve_articles

    with serve_articles(tmp_path, [make_article("a1", title="Summit off")]) as (site, feed_urls):
        ...  # fetch feed_urls[0]; article_url(site.base_url, article) is the page

Feeds take formats in turn by sorted slug (rss2, atom, rss2-full); pass `feed_formats` to choose.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from monitor.demo.site import (
    ARTICLE_FIELDS,
    FeedFormat,
    LocalSite,
    article_url,
    build_and_serve,
    feed_url,
    load_articles,
    render_site,
)

__all__ = ["ARTICLE_FIELDS", "FeedFormat", "LocalSite", "article_url", "build_and_serve", "feed_url",
           "load_articles", "make_article", "render_site", "serve_articles"]


def make_article(id: str, **fields: str) -> dict:
    """An article dict with plain defaults for every field not given (one outlet, one date)."""
    unknown = set(fields) - set(ARTICLE_FIELDS)
    if unknown:
        raise TypeError(f"unknown article fields {sorted(unknown)}")
    article = {
        "id": id,
        "outlet": "Test Gazette",
        "feed": "test-gazette",
        "path": f"/2018/06/12/{id}",
        "title": f"Article {id}",
        "author": "Jo Tester",
        "published": "2018-06-12T10:00:00+00:00",
        "summary": f"The summary of article {id}.",
        "body": f"The first paragraph of article {id}.\n\nThe second paragraph of article {id}.",
        "lang": "en",
        "dup_of": "",
    }
    article.update(fields)
    return article


@contextmanager
def serve_articles(
    tmp_path: Path,
    articles: list[dict] | None = None,
    *,
    feed_formats: Mapping[str, FeedFormat] | None = None,
) -> Iterator[tuple[LocalSite, list[str]]]:
    """Render and serve `articles` (default: the bundled demo articles) for the duration of the block."""
    site, urls = build_and_serve(tmp_path, articles, feed_formats=feed_formats)
    with site:
        yield site, urls
