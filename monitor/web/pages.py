"""The workspace's routes: each reads through monitor.db, renders a Jinja2 template, and writes
only through the storage functions the CLI uses (judge, rebuild, backfill, set_feed_enabled)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from monitor import __version__
from monitor.backfill import BackfillSummary, backfill
from monitor.config import API_TOKEN_ENV
from monitor.db import browse
from monitor.db import workspace as reads
from monitor.db.story_models import current_stories, judge, judgments, rebuild
from monitor.report import StoryInfo, build_digest
from monitor.report.cluster import outlet_key
from monitor.report.digest import clamp_score, timeline
from monitor.report.render_html import timeline_chart
from monitor.templating import environment
from monitor.web import access
from monitor.web.charts import sparkline
from monitor.wording import plural

# Near misses a story page lists at the most, the closest to the threshold first.
_NEAR_MISSES_SHOWN = 200

if TYPE_CHECKING:
    from monitor.service import MonitorService

ASSETS = "/assets/workspace"
# Everything from this server; no script at all; forms post only here.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
ARTICLES_PER_PAGE = 50
PREVIEW_SAMPLES = 50
AUTHOR = "workspace"

_env = environment("monitor.web")
_env.filters.update(score=lambda s: f"{clamp_score(s):.3f}", q=lambda s: quote(s, safe=""))
_env.globals.update(version=__version__, plural=plural, assets=ASSETS)


@dataclass
class Filters:
    """The story page's GET form, as given (to fill the form again) and as understood."""
    since: str = ""
    until: str = ""
    outlet: str = ""
    lang: str = ""
    min_score: str = ""
    problems: list[str] = field(default_factory=list)

    def start(self) -> datetime | None:
        return self._day(self.since, "from")

    def end(self) -> datetime | None:
        day = self._day(self.until, "to")
        return day + timedelta(days=1) if day else None      # "to" includes its day

    def lowest(self) -> float:
        if not self.min_score.strip():
            return 0.0
        try:
            value = float(self.min_score)
        except ValueError:
            value = math.nan
        if not 0.0 <= value <= 1.0:
            self.problems.append(f"minimum score {self.min_score[:40]!r} is not a number from 0 to 1: ignored")
            return 0.0
        return value

    def _day(self, text: str, what: str) -> datetime | None:
        if not text.strip():
            return None
        try:
            return datetime.combine(date.fromisoformat(text.strip()), time(0), tzinfo=UTC)
        except ValueError:
            self.problems.append(f"{what} {text[:40]!r} is not a date like 2018-06-12: ignored")
            return None

    def keeps(self, outlet: str, lang: str | None) -> bool:
        return (not self.outlet or outlet == self.outlet) and (not self.lang or (lang or "") == self.lang)

    def query(self, **changes: str) -> str:
        values = {"since": self.since, "until": self.until, "outlet": self.outlet, "lang": self.lang,
                  "min_score": self.min_score, **changes}
        return urlencode({k: v for k, v in values.items() if v})


def add_workspace(app: FastAPI, svc: MonitorService) -> None:
    """Add the workspace's pages and forms to `app` (out of the API schema)."""
    token = svc.settings.serve.read_token
    app.mount(ASSETS, StaticFiles(directory=Path(__file__).parent / "static"), name="workspace-assets")

    def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.update(request=request, logged_in=access.logged_in(request, token), token_configured=token is not None,
                       here=_here(request))
        response = HTMLResponse(_env.get_template(template).render(**context), status_code=status)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["Referrer-Policy"] = "same-origin"   # links out carry rel=noreferrer; forms here keep their Origin
        response.headers["Cache-Control"] = "no-store"
        return response

    def login_first(request: Request) -> Response | None:
        if access.may_read(request, token):
            return None
        return RedirectResponse(f"/login?{urlencode({'next': _here(request)})}", status_code=303)

    def refused(request: Request, form_token: str | None, back: str) -> Response | None:
        why = access.write_refusal(request, token, form_token)
        if why is None:
            return None
        status = {"no-token-configured": 403, "cross-origin": 403, "token-needed": 401, "wrong-token": 401}[why]
        return page(request, "refused.html", status=status, why=why, env_name=API_TOKEN_ENV, back=access.safe_next(back))

    def story_or_none(story_id: str) -> Any:
        return next((s for s in svc.stories if s.id == story_id), None)

    def not_found(request: Request, what: str) -> HTMLResponse:
        return page(request, "missing.html", status=404, what=what,
                    known=[s.id for s in svc.stories])

    @app.get("/stories", include_in_schema=False)
    def stories_page(request: Request) -> Response:
        if (redirect := login_first(request)) is not None:
            return redirect
        enabled = [s for s in svc.stories if s.enabled]
        ids = [s.id for s in enabled]
        midnight = datetime.combine(datetime.now(UTC).date(), time(0), tzinfo=UTC)
        activity = reads.story_activity(svc.store, ids, midnight)
        times = reads.filed_times(svc.store, ids)
        versions = {s.id: s.version for s in current_stories(svc.store, enabled, record=False)}
        rows = [{"story": s, "activity": activity[s.id], "version": versions.get(s.id),
                 "spark": sparkline(timeline(times[s.id], None, None))} for s in enabled]
        return page(request, "stories.html", rows=rows, disabled=[s for s in svc.stories if not s.enabled])

    @app.get("/stories/{story_id}", include_in_schema=False)
    def story_page(request: Request, story_id: str, tab: str = "matches", since: str = "", until: str = "",
                   outlet: str = "", lang: str = "", min_score: str = "", applied: str = "") -> Response:
        if (redirect := login_first(request)) is not None:
            return redirect
        story = story_or_none(story_id)
        if story is None:
            return not_found(request, f"story {story_id[:200]!r}")
        filters = Filters(since, until, outlet, lang, min_score)
        start, end, lowest = filters.start(), filters.end(), filters.lowest()
        stored = svc.store.matches([story.id], start, end)
        outlets = sorted({outlet_key(m) for m in stored})
        langs = sorted({m.lang for m in stored if m.lang})
        kept = [m for m in stored if filters.keeps(outlet_key(m), m.lang) and clamp_score(m.score) >= lowest]
        [digest] = build_digest([StoryInfo.of(story)], kept, since=start, until=end,
                                generated_at=datetime.now(UTC)).stories
        near, _ = browse.near_misses(svc.store, [story.id], since=start, until=end, limit=_NEAR_MISSES_SHOWN)
        misses = [n for n in near if filters.keeps(n.outlet or "", n.lang) and clamp_score(n.score) >= lowest]
        return page(request, "story.html", story=story, digest=digest, tab="near-misses" if tab == "near-misses" else "matches",
                    chart=timeline_chart(digest.timeline) if digest.timeline.buckets else "",
                    filters=filters, outlets=outlets, langs=langs, misses=misses,
                    judged=judgments(svc.store, story.id), applied=_applied(applied),
                    version=current_stories(svc.store, [story], record=False)[0].version)

    @app.post("/stories/{story_id}/judge", include_in_schema=False)
    def judge_form(request: Request, story_id: str, url: str = Form(""), label: str = Form(""),
                   note: str = Form(""), token_field: str | None = Form(None, alias="token"),
                   back: str = Form("")) -> Response:
        story = story_or_none(story_id)
        if story is None:
            return not_found(request, f"story {story_id[:200]!r}")
        if (refusal := refused(request, token_field, back or f"/stories/{quote(story.id, safe='')}")) is not None:
            return refusal
        if label not in ("on", "off") or not reads.is_stored(svc.store, url):
            return page(request, "missing.html", status=400,
                        what=f"a stored article {url[:200]!r} to judge {label[:10]!r} (on or off)", known=[])
        judge(svc.store, story.id, url, label, author=AUTHOR, note=note.strip()[:500] or None)
        return RedirectResponse(f"/stories/{quote(story.id, safe='')}/changes", status_code=303)

    @app.get("/stories/{story_id}/changes", include_in_schema=False)
    def changes_page(request: Request, story_id: str) -> Response:
        if (redirect := login_first(request)) is not None:
            return redirect
        story = story_or_none(story_id)
        if story is None:
            return not_found(request, f"story {story_id[:200]!r}")
        rebuilt, changed = rebuild(svc.store, story, reason="workspace judgment", dry_run=True)
        summary = backfill(svc.store, rebuilt, dry_run=True, samples=PREVIEW_SAMPLES, progress=_quiet)
        return page(request, "changes.html", story=story, rebuilt=rebuilt, changed=changed, summary=summary,
                    judged=judgments(svc.store, story.id))

    @app.post("/stories/{story_id}/apply", include_in_schema=False)
    def apply_form(request: Request, story_id: str, token_field: str | None = Form(None, alias="token")) -> Response:
        story = story_or_none(story_id)
        if story is None:
            return not_found(request, f"story {story_id[:200]!r}")
        path = f"/stories/{quote(story.id, safe='')}"
        if (refusal := refused(request, token_field, f"{path}/changes")) is not None:
            return refusal
        rebuilt, _ = rebuild(svc.store, story, reason="workspace judgment")
        summary = backfill(svc.store, rebuilt, progress=_quiet)
        return RedirectResponse(f"{path}?{urlencode({'applied': _applied_value(rebuilt.version, summary)})}",
                                status_code=303)

    @app.get("/feeds", include_in_schema=False)
    def feeds_page(request: Request) -> Response:
        if (redirect := login_first(request)) is not None:
            return redirect
        return page(request, "feeds.html", feeds=svc.store.list_feeds(), now=datetime.now(UTC))

    @app.post("/feeds/enabled", include_in_schema=False)
    def feed_enabled_form(request: Request, url: str = Form(""), enabled: str = Form(""),
                          token_field: str | None = Form(None, alias="token")) -> Response:
        if (refusal := refused(request, token_field, "/feeds")) is not None:
            return refusal
        if enabled not in ("0", "1") or not svc.store.set_feed_enabled(url, enabled == "1"):
            return page(request, "missing.html", status=400, what=f"a stored feed {url[:200]!r}", known=[])
        return RedirectResponse("/feeds", status_code=303)

    @app.get("/articles", include_in_schema=False)
    def articles_page(request: Request, q: str = "", page_number: str = "1") -> Response:
        if (redirect := login_first(request)) is not None:
            return redirect
        number = int(page_number) if page_number.isdigit() and 0 < int(page_number) < 1_000_000 else 1
        hits, total = reads.search_articles(svc.store, q.strip()[:200], limit=ARTICLES_PER_PAGE,
                                            offset=(number - 1) * ARTICLES_PER_PAGE)
        pages = max(1, math.ceil(total / ARTICLES_PER_PAGE))
        return page(request, "articles.html", q=q, hits=hits, total=total, number=number, pages=pages,
                    link=lambda n: "/articles?" + urlencode({"q": q, "page_number": n} if q else {"page_number": n}))

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request, next: str = "") -> Response:
        return page(request, "login.html", next=access.safe_next(next), wrong=False, env_name=API_TOKEN_ENV)

    @app.post("/login", include_in_schema=False)
    def login_form(request: Request, token_field: str = Form("", alias="token"), next: str = Form("")) -> Response:
        target = access.safe_next(next)
        if token is None or not access.same_origin(request) or not access.token_matches(token_field, token):
            return page(request, "login.html", status=401 if token else 403, next=target, wrong=token is not None,
                        env_name=API_TOKEN_ENV)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(access.COOKIE, access.session_value(token), httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")
        return response

    @app.post("/logout", include_in_schema=False)
    def logout_form(request: Request) -> Response:
        response = RedirectResponse("/stories", status_code=303)
        response.delete_cookie(access.COOKIE, path="/")
        return response


def _here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def _quiet(message: str) -> None:
    """Backfill's progress lines: a page shows the summary instead."""


def _applied_value(version: str | None, summary: BackfillSummary) -> str:
    return f"{version}:{summary.added}:{summary.removed}"


def _applied(value: str) -> dict[str, Any] | None:
    """The notice after "apply", read back from the redirect's query (numbers only are shown)."""
    parts = value.split(":")
    if len(parts) != 3 or not parts[0].isalnum() or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return {"version": parts[0], "added": int(parts[1]), "removed": int(parts[2])}
