"""monitor: media monitoring for news feeds.

Polls RSS/Atom feeds, extracts every new article, decides per tracked story whether the
article covers it (with a score and evidence), stores everything, and writes digests.
"""
__version__ = "0.1.0"
USER_AGENT = f"monitor/{__version__} (media monitoring; +https://github.com/monitor-news/monitor)"
