"""The offline demo: a small bundled news web that `monitor demo` serves on 127.0.0.1 and polls once."""
from monitor.demo.site import (
    ARTICLE_FIELDS,
    BUNDLED_ARTICLES,
    FeedFormat,
    LocalSite,
    article_url,
    build_and_serve,
    feed_url,
    load_articles,
    render_site,
)

__all__ = [
    "ARTICLE_FIELDS",
    "BUNDLED_ARTICLES",
    "FeedFormat",
    "LocalSite",
    "article_url",
    "build_and_serve",
    "feed_url",
    "load_articles",
    "render_site",
]
