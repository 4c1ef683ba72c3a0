"""Writing and inspecting stories from the command line: `monitor stories add / show / test`.

`read_article(source)` turns a URL (fetched under the configured SSRF guard and caps) or a
file (plain text or HTML) into an Article; `new_story` derives a story table from it (with
`story_table`, from a profile: monitor.matching.profile scores, this module authors);
`write_story` saves it as a plugin file, through tomlkit so that a file it replaces keeps the
comments its author wrote; `describe` and `explain` render a story and a decision.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from monitor._types import Article, MatchResult
from monitor.exceptions import ConfigError, FetchError, MonitorError, QueryError
from monitor.matching.base import RuleResult, Story
from monitor.matching.loader import parse_story
from monitor.matching.names import DerivedName, derive_names
from monitor.matching.profile import (
    ANCHOR_TERMS,
    ANCHORS_NEEDED,
    DERIVED_BIAS,
    DERIVED_NAMES_SCALE,
    DERIVED_SIMILARITY_WEIGHT,
    Profile,
    derive_profile,
)

__all__ = ["ReadArticle", "read_article", "check_story_id", "story_table", "new_story", "story_toml", "write_story",
           "describe", "explain"]

_STORY_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
_HTML_TYPES = {"text/html", "application/xhtml+xml"}
_PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, text/plain;q=0.8, */*;q=0.5"
_TITLE_MAX = 200   # a first line longer than this is body text, not a title


@dataclass(frozen=True, slots=True)
class ReadArticle:
    article: Article
    source: str            # the URL or the file's absolute path
    is_url: bool


def check_story_id(story_id: str) -> str:
    if not _STORY_ID.fullmatch(story_id):
        raise ConfigError(f"story ID {story_id!r} must be lower-case letters, digits, '-', '_' or '.', "
                          "starting with a letter or digit (it names the plugin file)")
    return story_id


def read_article(source: str, fetch_settings: Any, *, title: str | None = None) -> ReadArticle:
    """The article at an http(s) URL or in a file; MonitorError says what went wrong and where."""
    if re.match(r"^[a-z][a-z0-9+.-]*://", source, re.I):
        if not re.match(r"^https?://[^/\s]+", source, re.I):
            raise ConfigError(f"{source!r} is not an http(s) URL")
        return _read_url(source, fetch_settings, title)
    path = Path(source).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"reference {source!r} is neither an http(s) URL nor an existing file") from None
    except OSError as e:
        raise ConfigError(f"cannot read {source}: {e.strerror or e}") from e
    resolved = str(path.resolve())
    if path.suffix.lower() in (".html", ".htm", ".xhtml") or data.lstrip()[:1] == b"<":
        return ReadArticle(_from_html(data, path.resolve().as_uri(), None, title, source), resolved, False)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{source}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    first, _, rest = text.strip().partition("\n")
    # The first line is the title when it is short and followed by more text.
    if title is None and rest.strip() and len(first.strip()) <= _TITLE_MAX:
        title, text = first.strip(), rest
    if not text.strip():
        raise ConfigError(f"{source}: the file holds no article text")
    uri = path.resolve().as_uri()
    return ReadArticle(Article(url=uri, final_url=uri, feed_url="", title=title or path.stem, body=text.strip(),
                               fetched_at=datetime.now(UTC)), resolved, False)


def _read_url(url: str, fetch_settings: Any, title: str | None) -> ReadArticle:
    from monitor.fetch import Fetcher, FetchPolicy

    f = fetch_settings
    policy = FetchPolicy(allow_private_addresses=f.allow_private_addresses, user_agent=f.user_agent,
                         connect_timeout=f.connect_timeout, read_timeout=f.read_timeout,
                         total_timeout=f.total_timeout, max_bytes=f.max_page_bytes, max_redirects=f.max_redirects)
    try:
        with Fetcher(policy, max_connections=1, per_host=1) as fetcher:
            fetched = fetcher.fetch(url, accept=_PAGE_ACCEPT)
    except FetchError as e:
        raise MonitorError(f"cannot fetch the reference: {e}") from e
    charset = next((p.split("=", 1)[1].strip().strip('"') for p in fetched.headers.get("content-type", "").split(";")[1:]
                    if p.strip().lower().startswith("charset=")), None)
    if fetched.content_type == "text/plain":
        body = fetched.body.decode(charset or "utf-8", errors="replace").strip()
        if not body:
            raise MonitorError(f"{url}: the page is empty")
        return ReadArticle(Article(url=url, final_url=fetched.final_url, feed_url="", title=title or url, body=body,
                                   fetched_at=datetime.now(UTC)), url, True)
    if fetched.content_type not in _HTML_TYPES and fetched.content_type:
        raise MonitorError(f"{url}: not an HTML page ({fetched.content_type})")
    return ReadArticle(_from_html(fetched.body, fetched.final_url, charset, title, url), url, True)


def _from_html(data: bytes, url: str, charset: str | None, title: str | None, source: str) -> Article:
    from monitor.extract import extract_page

    page = extract_page(data, url=url, encoding=charset)
    if not page.body.strip():
        raise MonitorError(f"{source}: no article text found in the page")
    return Article(url=url, final_url=url, feed_url="", title=title or page.title or "", body=page.body,
                   summary=page.description or "", fetched_at=datetime.now(UTC), published=page.published,
                   lang=page.lang, author=page.author, outlet=page.site_name)


def story_table(profile: Profile, *, story_id: str, title: str, reference_url: str | None = None,
                published: date | None = None, window_days: int = 60, names: Sequence[DerivedName] = (),
                lang: str | None = None) -> dict[str, Any]:
    """A story (the table a `[[stories]]` entry or plugin .toml holds) derived from a profile alone.

    `profile` should hold every term of the reference (`derive_profile(..., max_terms=None)`):
    the similarity is computed against all of them. The window, when the article's date is
    known, runs `window_days` either side of it; `stories add --start/--end` sets it instead.
    """
    anchors = [t for t in profile.terms if not t.isdigit()][:ANCHOR_TERMS]
    reference_params: dict[str, Any] = {"full_at": 1.0}
    rules: list[dict[str, Any]] = [{"name": "reference", "weight": DERIVED_SIMILARITY_WEIGHT, "params": reference_params}]
    table: dict[str, Any] = {
        "id": story_id, "title": title,
        "bias": DERIVED_BIAS,
        "anchors": anchors,
        "anchors_needed": min(ANCHORS_NEEDED, len(anchors)),
        "terms": dict(profile.terms),
        "rules": rules,
    }
    if names:
        table["names"] = [{"name": n.name, **({"aliases": list(n.aliases)} if n.aliases else {})} for n in names]
        # Required: prose like the reference's about other people and places is another story.
        rules.insert(0, dict(_NAMES_RULE))
        if lang:
            reference_params.update(lang=lang, names_scale=DERIVED_NAMES_SCALE)
    if reference_url:
        table["reference"] = {"url": reference_url}
    if published is not None:
        table["start"] = (published - timedelta(days=window_days)).isoformat()
        table["end"] = (published + timedelta(days=window_days)).isoformat()
        table["rules"] = [_WINDOW_RULE, *rules]
    return table


_WINDOW_RULE: Mapping[str, Any] = {"name": "window", "required": True, "weight": 0.0}
_NAMES_RULE: Mapping[str, Any] = {"name": "names", "required": True, "weight": 0.0}


def new_story(story_id: str, read: ReadArticle, *, title: str | None = None, query: str | None = None,
              start: datetime | None = None, end: datetime | None = None) -> tuple[dict[str, Any], Profile]:
    """A starting story table derived from the article, validated; and the profile it came from."""
    article = read.article
    published = article.published.date() if article.published else None
    profile = derive_profile(article.body, title=article.title, year=published.year if published else None,
                             max_terms=None)
    if not profile.terms:
        raise MonitorError(f"{read.source}: too little text to derive a profile from")
    from monitor.extract import guess_language

    table = story_table(profile, story_id=story_id, title=title or article.title or story_id,
                        reference_url=read.source if read.is_url else None, published=published,
                        names=derive_names(article.title, article.body),
                        lang=(article.lang or guess_language(article.body) or "")[:2].lower() or None)
    if not read.is_url:
        table["reference"] = {"path": read.source, **({"title": article.title} if article.title else {})}
    if start is not None or end is not None:
        table.pop("start", None), table.pop("end", None)
        if start is not None:
            table["start"] = _day_or_time(start)
        if end is not None:
            table["end"] = _day_or_time(end)   # a bare date: the whole of that day is inside
        if not any(r["name"] == "window" for r in table["rules"]):
            table["rules"] = [_WINDOW_RULE, *table["rules"]]
    if query:
        from monitor.matching.query import parse

        try:
            parse(query)
        except QueryError as e:
            raise ConfigError(f"--query: {e}") from e
        # Required: the story's own words must hold; its weight lifts the articles they describe.
        table["rules"] = [*table["rules"], {"name": "query", "required": True, "weight": 1.0,
                                            "params": {"query": query}}]
    parse_story(table, origin="stories add")
    return table, profile


def _day_or_time(when: datetime) -> str:
    if when.utcoffset() == timedelta(0) and when.time() == time(0):
        return when.date().isoformat()
    return when.isoformat()


def story_toml(table: Mapping[str, Any], existing: str | None = None) -> str:
    """The story table as a plugin .toml file. Given the text of the file it replaces, the new
    values go into that document: the comments there (a curator's notes) are kept, and keys the
    new table lacks are dropped."""
    document = tomlkit.parse(existing) if existing is not None else tomlkit.document()
    _update(document, table)
    return tomlkit.dumps(document)


def _update(container: Any, table: Mapping[str, Any]) -> None:
    """Set `table`'s values into a tomlkit table in place: a sub-table that stays a table is
    updated rather than replaced, so the comments inside it stay too."""
    for key in [k for k in container if k not in table]:
        del container[key]
    for key, value in table.items():
        current = container.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping) and not isinstance(current, tomlkit.items.InlineTable):
            _update(current, value)
        else:
            container[key] = _toml_item(value)


def _toml_item(value: Any) -> Any:
    """Lists of tables as [[arrays of tables]], as a person writes a story's rules and names."""
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        tables = tomlkit.aot()
        for v in value:
            tables.append(tomlkit.item(dict(v)))
        return tables
    return tomlkit.item(dict(value) if isinstance(value, Mapping) else value)


def write_story(table: Mapping[str, Any], folder: Path, *, force: bool = False, source: str = "") -> Path:
    """Write `<folder>/<id>.toml`; refuse to replace an existing file unless `force`, and then
    keep the comments written in it."""
    path = folder / f"{table['id']}.toml"
    existing: str | None = None
    if path.exists():
        if not force:
            raise ConfigError(f"{path} already exists (use --force to replace it)")
        try:
            existing = path.read_text(encoding="utf-8")
            tomlkit.parse(existing)
        except (OSError, UnicodeDecodeError, TOMLKitError):
            existing = None     # not a TOML file to keep anything of: replaced whole
    header = (f"# Derived by `monitor stories add` from {source or 'a reference article'} on "
              f"{date.today().isoformat()}.\n# A starting point: curate the facets, names and window by hand.\n\n")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(story_toml(table, existing) if existing is not None else header + story_toml(table),
                        encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot write {path}: {e.strerror or e}") from e
    return path


def describe(story: Story) -> str:
    """The full definition of a story, for a person."""
    lines = [f"{story.id}: {story.title}", f"  origin      {story.origin}",
             f"  enabled     {'yes' if story.enabled else 'no'}", f"  window      {_window(story)}",
             f"  threshold   {story.threshold:.2f}   (score = sigmoid({story.bias:g} + sum of weight x rule score))"]
    if story.reference is not None:
        ref = story.reference
        lines.append("  reference   " + "; ".join(x for x in (ref.url, f"title {ref.title!r}" if ref.title else None,
                                                             f"text from {ref.path}" if ref.path else None) if x))
    if story.description:
        lines.append(f"  about       {' '.join(story.description.split())}")
    lines.append("  rules:")
    for spec in story.rules:
        version = getattr(spec.factory, "version", "?")
        params = ", ".join(f"{k}={v!r}" for k, v in spec.params.items())
        lines.append(f"    {spec.name:10} v{version:4} weight {spec.weight:<5g}{'  required' if spec.required else ''}"
                     f"{f'  ({params})' if params else ''}")
    if story.facets:
        lines.append("  facets (a passage is on the story when it engages each):")
        lines += [f"    {f.label}: {', '.join(f.entries)}" for f in story.facets]
    if story.anchors:
        lines.append(f"  anchors (an article is scored only when it has {story.anchors_needed} of these words):")
        lines.append(f"    {', '.join(story.anchors)}")
    for heading, names in (("names", story.names), ("places", story.places)):
        if names:
            lines.append(f"  {heading}:")
            for n in names:
                extra = "; ".join(x for x in (f"aliases {', '.join(n.aliases)}" if n.aliases else "",
                                              f"weak {', '.join(n.weak)}" if n.weak else "") if x)
                lines.append(f"    {n.name}{f'  ({extra})' if extra else ''}")
    if story.learned:
        lines.append(f"  learned names (from confident matches): {', '.join(story.learned)}")
    if story.terms:
        top = sorted(story.terms.items(), key=lambda kv: (-kv[1], kv[0]))
        lines.append(f"  top terms ({len(top)} in all): " + ", ".join(f"{t} {w:.2f}" for t, w in top[:20]))
    return "\n".join(lines)


def explain(story: Story, result: MatchResult, rules: Mapping[str, RuleResult], candidate: bool) -> str:
    """A decision rule by rule: score, weight, contribution to the logit, evidence; then the verdict."""
    lines = [f"story {story.id}: {story.title}"]
    if not candidate:
        lines.append("  prefilter: the article lacks a word of some facet, of the required query or of the required "
                     "names, or enough anchors, so the daemon "
                     "would not even score it (scored here anyway)")
    lines.append(f"  {'rule':10} {'score':>6} {'weight':>7} {'adds':>7}")
    lines.append(f"  {'bias':10} {'':>6} {'':>7} {story.bias:>+7.2f}")
    for spec in story.rules:
        r = rules.get(spec.name)
        if r is None:
            continue
        flag = "  REQUIRED, scored 0: vetoes the match" if spec.required and r.score == 0.0 else (
            "  required" if spec.required else "")
        lines.append(f"  {spec.name:10} {r.score:>6.2f} {spec.weight:>7g} {spec.weight * r.score:>+7.2f}{flag}")
        lines += [f"      {e}" for e in r.evidence]
    learned = result.details.get("learned")
    if isinstance(learned, Mapping):
        lines.append(f"  {'learned':10} {learned['score']:>6.2f} {'':>7} {learned['contribution']:>+7.2f}"
                     f"  {', '.join(learned['names']) or 'none of ' + ', '.join(story.learned)}")
    lines.append(f"  logit {result.details.get('logit')} -> score {result.score:.3f}, threshold {story.threshold:.2f}: "
                 f"{'MATCH' if result.matched else 'no match'}")
    if result.best_passage:
        lines.append(f"  best passage: {result.best_passage}")
    return "\n".join(lines)


def _window(story: Story) -> str:
    if story.start is None and story.end is None:
        return "open-ended"
    return f"{story.start.isoformat() if story.start else 'any time'} to {story.end.isoformat() if story.end else 'now'}"
