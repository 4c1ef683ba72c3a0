"""`monitor serve`: the Miniflux webhook and the read API over HTTP (FastAPI, served by uvicorn).

    POST /webhooks/miniflux     Miniflux's new_entries events, signed; the entries are queued
                                (MonitorService.submit) and processed by the service's worker
    GET  /api/health            database, schema and inbox backlog
    GET  /api/stories[/{id}]    the stories tracked, with their match counts
    GET  /api/matches           stored matches, filtered and paged
    GET  /api/digest            the digest, in any of the report formats
    GET  /api/stories/{id}/near-misses   the articles that came close and did not match ("why not")
    GET  /api/stories/{id}/judgments     the analysts' judgments on a story, newest first
    POST /api/stories/{id}/judgments     judge an article on or off a story (needs the API token)
    GET  /, /docs, /redoc       a front page and the API's documentation, all served from here

Every answer other than the digest is JSON, described precisely at /openapi.json (and /docs);
errors are {"detail": "..."}, plus "errors": [{"loc", "msg"}, ...] when parameters or the body are
invalid (422). Reads are open unless an API token is set; writes always need it (403 while none
is set). Webhook refusals: 503 while no secret is configured, 401 unsigned,
403 a signature that does not match, 413 a body over serve.max_body_bytes, 400 not JSON, 422
not a Miniflux event; events other than new_entries are answered 202 and ignored.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import signal
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlencode

from monitor.extras import require_extra

# Before FastAPI is first imported: without the extra, `monitor serve` stops with one line saying what
# to install, not an ImportError's traceback. (Hence the imports below this line: E402 in pyproject.)
require_extra("serve", "`monitor serve`")

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field
from pydantic.json_schema import models_json_schema

from monitor import __version__
from monitor._types import JudgmentLabel
from monitor.config import API_TOKEN_ENV, MINIFLUX_SECRET_ENV, Settings
from monitor.db import browse, inbox, story_models
from monitor.db.migrate import schema_status
from monitor.exceptions import StorageError
from monitor.integrations import miniflux
from monitor.report import FORMATS, StoryInfo, build_digest, render
from monitor.report.digest import clamp_score
from monitor.server_pages import add_pages
from monitor.web import add_workspace
from monitor.wording import plural

if TYPE_CHECKING:
    from monitor.service import MonitorService

log = logging.getLogger("monitor.server")

WEBHOOK_PATH = "/webhooks/miniflux"
MAX_OFFSET = 1_000_000_000
API_AUTHOR = "api"          # the author of a judgment posted without one
_MEDIA_TYPES = {"json": "application/json", "markdown": "text/markdown; charset=utf-8",
                "html": "text/html; charset=utf-8", "text": "text/plain; charset=utf-8",
                "csv": "text/csv; charset=utf-8"}
_ISO_DATE_START = re.compile(r"\d{4}-\d{2}-\d{2}")
# The HTML digest is self-contained (inline CSS and SVG, no script): forbid everything else,
# as its own <meta> does, in case a browser is handed it from here.
_DIGEST_CSP = "default-src 'none'; style-src 'unsafe-inline'"


# -- response models (the OpenAPI schema is built from these) ------------------------------------

class FieldProblem(BaseModel):
    loc: list[str | int] = Field(description='Where: ["query", "since"], ["path", "story_id"], ...')
    msg: str = Field(description="What is wrong there.")


class Problem(BaseModel):
    """Every error answer: `detail` always a sentence; `errors` too when parameters are invalid (422)."""
    detail: str = Field(description="What is wrong, for a person.")
    errors: list[FieldProblem] | None = Field(
        None, description="Only on 422 for invalid parameters: each parameter that is wrong and why.")


class WebhookAnswer(BaseModel):
    queued: int = Field(ge=0, description="Entries queued for processing.")
    ignored: str | None = Field(default=None, description="Why nothing was queued, when the event is not acted on.")


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(description="degraded: the database schema is not current.")
    version: str
    database: str = Field(description="The database's dialect: sqlite or postgresql.")
    schema_status: str = Field(description="current, outdated, ahead, empty or unversioned (`monitor db status`).")
    inbox_pending: int = Field(ge=0, description="Handed-over entries' batches waiting to be processed.")
    inbox_failed: int = Field(ge=0, description="Batches given up after repeated failures (kept, not retried).")
    miniflux_webhook: Literal["ready", "disabled"] = Field(
        description=f"disabled: no secret configured (serve.miniflux_secret or ${MINIFLUX_SECRET_ENV}).")


class StoryOut(BaseModel):
    id: str
    title: str
    description: str
    enabled: bool
    start: datetime | None = Field(description="Start of the story's window, if it has one.")
    end: datetime | None = Field(description="End of the story's window, if it has one.")
    matches: int = Field(ge=0, description="Stored matches.")


class StoryDetail(StoryOut):
    threshold: float
    reference_url: str | None
    rules: list[str] = Field(description="Names of the rules that score an article.")


class MatchOut(BaseModel):
    story_id: str
    article_id: int
    score: float = Field(ge=0, le=1)
    title: str
    url: str = Field(description="The article's own address.")
    canonical_url: str
    feed_url: str
    outlet: str | None
    lang: str | None
    published: datetime | None
    first_seen: datetime
    filed_at: datetime = Field(description="The time the match is filed under: published, else first seen.")
    matched_at: datetime
    evidence: list[str]
    best_passage: str | None


class MatchPage(BaseModel):
    items: list[MatchOut] = Field(description="Newest first.")
    total: int = Field(ge=0, description="Matches the filters select, over all pages.")
    limit: int
    offset: int
    next: str | None = Field(description="The next page's path and query; null on the last page.")


class NearMissOut(BaseModel):
    story_id: str
    article_id: int
    score: float = Field(ge=0, le=1, description="The calibrated score, under the story's threshold.")
    logit: float = Field(description="The score's logit: within a small margin under the threshold's.")
    evidence: list[str] = Field(description="What the rules found, in words: why it came close, and why not closer.")
    model_version: str = Field(description="The story model version that decided (`monitor stories show ID --versions`).")
    decided_at: datetime
    title: str
    url: str = Field(description="The article's own address.")
    canonical_url: str
    outlet: str | None
    published: datetime | None
    first_seen: datetime
    filed_at: datetime = Field(description="The time it is filed under: published, else first seen.")


class NearMissPage(BaseModel):
    items: list[NearMissOut] = Field(description="Closest to the threshold first.")
    total: int = Field(ge=0, description="Near misses the filters select, over all pages.")
    limit: int
    offset: int
    next: str | None = Field(description="The next page's path and query; null on the last page.")


def _checked(check: Any) -> Any:
    """A pydantic validator from one of story_models' checks (the CLI uses the same ones)."""
    return AfterValidator(lambda value: check(value) if value is not None else None)


class JudgmentIn(BaseModel):
    url: Annotated[str, _checked(story_models.checked_url)] = Field(
        min_length=1, max_length=story_models.MAX_URL,
        # The ASCII form, as links are copied; the server also takes a host written in Unicode.
        json_schema_extra={"pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?([/?#][\s\S]*)?$"},
        description="The article's address: canonicalised as articles are stored; its address after redirects "
                    "finds it too. An article not stored yet may be judged: the judgment waits for it.")
    label: JudgmentLabel = Field(
        description="on: the article covers the story; off: it does not; brief: it mentions it in passing.")
    note: Annotated[str | None, _checked(story_models.checked_note)] = Field(
        None, max_length=story_models.MAX_NOTE, description="Why, for whoever reviews the story's decisions later.")
    author: Annotated[str | None, _checked(story_models.checked_author)] = Field(
        None, max_length=story_models.MAX_AUTHOR, pattern=r"[^\s\x1c-\x1f\x85]",
        description=f"Who judges; default `{API_AUTHOR}`.")


class JudgmentOut(BaseModel):
    story_id: str
    url: str = Field(description="The judged article's canonical address.")
    label: JudgmentLabel
    author: str
    note: str | None
    created_at: datetime
    in_force: bool = Field(description="False once a later judgment of the same article replaced it.")
    article_stored: bool = Field(description="False while no article is stored at the address: the judgment waits.")
    title: str | None = Field(description="The judged article's title, when it is stored.")


def _iso_8601(value: Any) -> Any:
    """Only ISO 8601 text: pydantic would also read "7" as seven seconds after 1970."""
    if isinstance(value, str) and not _ISO_DATE_START.match(value):
        raise ValueError("expected an ISO 8601 date or date-time, e.g. 2018-06-12 or 2018-06-12T08:00:00Z")
    return value


# A date means its midnight; a date-time without an offset is UTC.
IsoTime = Annotated[datetime | date, BeforeValidator(_iso_8601)]

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "No such story."}}
_STORAGE_ERROR: dict[int | str, dict[str, Any]] = {503: {"model": Problem, "description": "The database is unavailable."}}


# -- the app ---------------------------------------------------------------------------------------

def create_app(svc: MonitorService) -> FastAPI:
    """The HTTP face of `svc`: the Miniflux webhook (queues into `svc`) and the read API."""
    app = FastAPI(title="monitor", version=__version__, docs_url=None, redoc_url=None,  # add_pages serves them
                  description="Media monitoring: the Miniflux webhook and the read API of stored matches "
                              "and digests. Errors are JSON objects with a `detail` sentence; a 422 for "
                              "invalid parameters adds `errors`, one `{loc, msg}` per parameter.")
    secret = svc.settings.serve.webhook_secret
    token = svc.settings.serve.read_token
    max_body = svc.settings.serve.max_body_bytes

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse(_invalid_parameters(error.errors()), status_code=422)

    @app.exception_handler(StorageError)
    async def _storage_error(request: Request, error: StorageError) -> JSONResponse:
        log.error("%s %s: %s", request.method, request.url.path, error)
        return JSONResponse({"detail": f"database unavailable: {error}"}, status_code=503)

    @app.middleware("http")
    async def _no_sniffing(request: Request, call_next: Any) -> Response:
        if token is not None and request.url.path.startswith("/api/") and not _bearer_ok(request, token):
            response: Response = JSONResponse(
                {"detail": f"this API needs `Authorization: Bearer TOKEN` with serve.api_token (or ${API_TOKEN_ENV})"},
                status_code=401, headers={"WWW-Authenticate": 'Bearer realm="monitor"'})
        else:
            response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    @app.post(WEBHOOK_PATH, status_code=202, response_model=WebhookAnswer, tags=["miniflux"],
              summary="Miniflux webhook: queue a feed refresh's new entries",
              responses={
                  202: {"description": "Queued; or acknowledged and ignored, saying why in `ignored`."},
                  400: {"model": Problem, "description": "The body is not JSON."},
                  401: {"model": Problem, "description": f"No {miniflux.SIGNATURE_HEADER} header."},
                  403: {"model": Problem, "description": "The signature does not match the body and the secret."},
                  413: {"model": Problem, "description": "The body is larger than serve.max_body_bytes."},
                  422: {"model": Problem, "description": "Not a Miniflux event of a known shape."},
                  503: {"model": Problem, "description": "No secret configured: the webhook refuses every call."},
              },
              openapi_extra=_webhook_openapi())
    async def miniflux_webhook(request: Request) -> WebhookAnswer:
        """Miniflux (Settings > Integrations > Webhook) POSTs here. The body must be signed:
        `X-Miniflux-Signature` is the hex HMAC-SHA256 of the raw body under the shared secret.
        `new_entries` events are queued and answered 202 with the number of entries; other
        events (`save_entry`) are answered 202 and ignored."""
        if secret is None:
            raise HTTPException(503, "the Miniflux webhook is disabled: set serve.miniflux_secret in the "
                                     f"configuration or ${MINIFLUX_SECRET_ENV} to the secret Miniflux shows "
                                     "in Settings > Integrations > Webhook")
        try:
            signature = miniflux.require_signature(request.headers.get(miniflux.SIGNATURE_HEADER))
            body = await _read_body(request, max_body)
            # Hashing and parsing megabytes is work: off the event loop.
            delivery = await run_in_threadpool(_verified_event, secret, body, signature,
                                               request.headers.get(miniflux.EVENT_HEADER))
        except miniflux.WebhookRefused as refused:
            if refused.status in (401, 403):
                log.warning("miniflux webhook from %s refused: %s", _client(request), refused.detail)
            raise HTTPException(refused.status, refused.detail) from None
        if delivery.ignored or delivery.feed_url is None:
            log.info("miniflux webhook: %s", delivery.ignored)
            return WebhookAnswer(queued=0, ignored=delivery.ignored)
        queued = await run_in_threadpool(svc.submit, "miniflux", delivery.feed_url, list(delivery.entries),
                                         feed_title=delivery.feed_title)
        log.info("miniflux webhook: %s of %s queued", plural(queued, "entry"), delivery.feed_url)
        return WebhookAnswer(queued=queued)

    @app.get("/api/health", response_model=Health, tags=["read"], responses=_STORAGE_ERROR)
    def health() -> Health:
        """Whether the monitor's database is reachable and current, and the inbox backlog."""
        status = schema_status(svc.store.engine)
        pending, failed = inbox.counts(svc.store)
        return Health(status="ok" if status == "current" else "degraded", version=__version__,
                      database=svc.store.dialect_name, schema_status=status, inbox_pending=pending,
                      inbox_failed=failed, miniflux_webhook="ready" if secret else "disabled")

    @app.get("/api/stories", response_model=list[StoryOut], tags=["read"], responses=_STORAGE_ERROR)
    def stories() -> list[StoryOut]:
        """Every configured story, enabled or not, with its number of stored matches."""
        counts = browse.match_counts(svc.store)
        return [_story_out(s, counts.get(s.id, 0)) for s in svc.stories]

    @app.get("/api/stories/{story_id}", response_model=StoryDetail, tags=["read"],
             responses={**_NOT_FOUND, **_STORAGE_ERROR})
    def story(story_id: Annotated[str, Path(description="The story's id.")]) -> StoryDetail:
        """One story: its definition in brief and its number of stored matches."""
        found = next((s for s in svc.stories if s.id == story_id), None)
        if found is None:
            raise HTTPException(404, f"no story {story_id[:200]!r}; configured: {_ids(svc.stories)}")
        count = browse.match_counts(svc.store).get(found.id, 0)
        return StoryDetail(**_story_out(found, count).model_dump(), threshold=found.threshold,
                           reference_url=StoryInfo.of(found).reference_url,
                           rules=[r.name for r in found.rules])

    @app.get("/api/matches", response_model=MatchPage, tags=["read"], responses={**_NOT_FOUND, **_STORAGE_ERROR})
    def matches(
        request: Request,
        story: Annotated[list[str] | None, Query(description="Only this story's matches (repeatable).")] = None,
        since: Annotated[IsoTime | None, Query(description="Filed at or after (ISO 8601; no offset = UTC).")] = None,
        until: Annotated[IsoTime | None, Query(description="Filed before (ISO 8601; no offset = UTC).")] = None,
        min_score: Annotated[float, Query(ge=0, le=1, description="Only matches scoring at least this.")] = 0.0,
        limit: Annotated[int, Query(ge=1, le=500, description="Matches per page.")] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Matches skipped.")] = 0,
    ) -> MatchPage:
        """Stored matches, newest first (by the time they are filed under: publication, else first
        seen), in the window [since, until). A window that is empty (since >= until) selects none.
        `next` is the path of the following page."""
        if story:
            known = {s.id for s in svc.stories} | set(browse.match_counts(svc.store))
            unknown = [s for s in story if s not in known]
            if unknown:
                raise HTTPException(404, f"no story {unknown[0][:200]!r}; configured: {_ids(svc.stories)}")
        where = browse.MatchFilter(story_ids=story, since=_utc(since), until=_utc(until), min_score=min_score)
        rows, total = browse.page_of_matches(svc.store, where, limit=limit, offset=offset)
        following = offset + len(rows)
        return MatchPage(items=[_match_out(r) for r in rows], total=total, limit=limit, offset=offset,
                         next=_page_link(request, limit, following) if rows and following < total else None)

    @app.get("/api/digest", tags=["read"], response_class=Response,
             responses={200: {"description": "The digest in the format asked for.",
                              "content": {_MEDIA_TYPES[f].split(";")[0]: {"schema": _digest_schema(f)} for f in FORMATS}},
                        **_NOT_FOUND, **_STORAGE_ERROR})
    def digest(
        story: Annotated[list[str] | None, Query(description="Only this enabled story (repeatable); "
                                                             "default: every enabled story.")] = None,
        since: Annotated[IsoTime | None, Query(description="Start of the window (ISO 8601; no offset = UTC).")] = None,
        until: Annotated[IsoTime | None, Query(description="End of the window, exclusive.")] = None,
        format: Annotated[Literal["json", "markdown", "html", "text", "csv"],
                          Query(description="The report format (as `monitor report --format`).")] = "json",
    ) -> Response:
        """The digest `monitor report` writes, for the window [since, until) (open ends: everything)."""
        chosen = [s for s in svc.stories if s.enabled]
        if story:
            enabled = {s.id for s in chosen}
            unknown = [s for s in story if s not in enabled]
            if unknown:
                raise HTTPException(404, f"no enabled story {unknown[0][:200]!r}; enabled: {_ids(chosen)}")
            chosen = [s for s in chosen if s.id in story]
        start, end = _utc(since), _utc(until)
        stored = svc.store.matches([s.id for s in chosen], start, end)
        report = build_digest([StoryInfo.of(s) for s in chosen], stored, since=start, until=end,
                              generated_at=datetime.now(UTC))
        headers = {"Content-Security-Policy": _DIGEST_CSP} if format == "html" else {}
        return Response(render(report, format), media_type=_MEDIA_TYPES[format], headers=headers)

    add_pages(app, svc, token_required=token is not None)

    def known_story(story_id: str) -> Any:
        found = next((s for s in svc.stories if s.id == story_id), None)
        if found is None:
            raise HTTPException(404, f"no story {story_id[:200]!r}; configured: {_ids(svc.stories)}")
        return found

    def may_write(request: Request) -> None:
        """Writes need the API token even where reads are open (the middleware checks it when set)."""
        if token is None:
            raise HTTPException(403, "writing through the API needs a token: set serve.api_token in the "
                                     f"configuration or ${API_TOKEN_ENV}, restart `monitor serve`, and send "
                                     "`Authorization: Bearer TOKEN`")

    @app.get("/api/stories/{story_id}/near-misses", response_model=NearMissPage, tags=["read"],
             responses={**_NOT_FOUND, **_STORAGE_ERROR})
    def near_misses(
        request: Request,
        story_id: Annotated[str, Path(description="The story's id.")],
        since: Annotated[IsoTime | None, Query(description="Filed at or after (ISO 8601; no offset = UTC).")] = None,
        until: Annotated[IsoTime | None, Query(description="Filed before (ISO 8601; no offset = UTC).")] = None,
        limit: Annotated[int, Query(ge=1, le=500, description="Near misses per page.")] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Near misses skipped.")] = 0,
    ) -> NearMissPage:
        """The "why not" beside the matches' "why": articles the story scored close under its
        threshold and did not match, closest first, each with its score, logit, evidence and the
        story model version that decided. An article matched since is no longer listed."""
        story = known_story(story_id)
        rows, total = browse.near_misses(svc.store, [story.id], since=_utc(since), until=_utc(until),
                                         limit=limit, offset=offset)
        following = offset + len(rows)
        return NearMissPage(items=[_near_miss_out(r) for r in rows], total=total, limit=limit, offset=offset,
                            next=_page_link(request, limit, following) if rows and following < total else None)

    @app.get("/api/stories/{story_id}/judgments", response_model=list[JudgmentOut], tags=["judgments"],
             responses={**_NOT_FOUND, **_STORAGE_ERROR})
    def judgments(story_id: Annotated[str, Path(description="The story's id.")]) -> list[JudgmentOut]:
        """Every judgment made on the story, newest first: who, when, why; `in_force` says which
        one counts for each article (the latest)."""
        story = known_story(story_id)
        return [_judgment_out(j) for j in story_models.judgment_history(svc.store, story.id)]

    @app.post("/api/stories/{story_id}/judgments", response_model=JudgmentOut, status_code=201, tags=["judgments"],
              dependencies=[Depends(may_write)],
              responses={201: {"description": "Recorded; it takes effect with the story's next version."},
                         400: {"model": Problem, "description": "The body is not JSON."},
                         401: {"model": Problem, "description": "The API token is set and the request lacks it."},
                         403: {"model": Problem, "description": "No API token is set: writes are refused."},
                         **_NOT_FOUND, **_STORAGE_ERROR})
    def judge(story_id: Annotated[str, Path(description="The story's id.")], body: JudgmentIn) -> JudgmentOut:
        """Judge an article on, off or a brief mention of a story, as `monitor judge` does. The
        judgment takes effect with the story's next version: `monitor stories backfill ID --dry-run`
        shows what that version changes, `monitor stories backfill ID` applies it."""
        story = known_story(story_id)
        recorded = story_models.judge(svc.store, story.id, body.url, body.label, author=body.author or API_AUTHOR,
                                      note=body.note)
        log.info("judgment %s on story %s by %s: %s", recorded.label, story.id, recorded.author, recorded.url)
        return _judgment_out(recorded)

    # The analyst's workspace: HTML pages and forms, in a package of their own.
    add_workspace(app, svc)
    _publish_webhook_models(app)
    return app


def serve(settings: Settings, *, host: str | None = None, port: int | None = None) -> int:
    """Run `monitor serve` until interrupted: the service's inbox worker and the HTTP server."""
    import uvicorn

    from monitor.service import MonitorService

    host = host or settings.serve.host
    port = settings.serve.port if port is None else port
    # uvicorn stops gracefully on SIGINT/SIGTERM, then raises the signal again: SIGTERM's default
    # action would end the process before the service is closed, so it becomes an exception too.
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        with MonitorService(settings) as svc:
            svc.start()
            app = create_app(svc)
            base = f"http://{f'[{host}]' if ':' in host else host}:{port}"
            log.info("serving on %s: read API %s/api (documented at %s/docs), Miniflux webhook %s%s",
                     base, base, base, base, WEBHOOK_PATH)
            if settings.serve.webhook_secret is None:
                log.warning("no Miniflux secret set (serve.miniflux_secret or $%s): the webhook refuses every call",
                            MINIFLUX_SECRET_ENV)
            if not _is_loopback(host):
                log.warning("listening on %s, beyond this machine: the traffic is plain HTTP%s; put a TLS proxy "
                            "in front or listen on 127.0.0.1", host,
                            "" if settings.serve.read_token else " and the read API has no token (serve.api_token)")
            server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None, server_header=False,
                                                   lifespan="off"))
            server.run()
    except (KeyboardInterrupt, _Stop):
        pass            # a requested stop: the server finished its requests, the service is closed
    finally:
        signal.signal(signal.SIGTERM, previous)
    log.info("stopped serving")
    return 0


class _Stop(Exception):
    """SIGTERM, raised where `serve` can close the service."""


def _stopped(signum: int, frame: Any) -> None:
    raise _Stop()


# -- helpers -----------------------------------------------------------------------------------------

async def _read_body(request: Request, cap: int) -> bytes:
    """The request body, refused (413) as soon as it exceeds `cap` bytes, whatever it declares."""
    declared = request.headers.get("content-length")
    too_large = f"request body larger than {cap} bytes (serve.max_body_bytes)"
    if declared is not None and declared.strip().isdigit() and int(declared) > cap:
        raise miniflux.WebhookRefused(413, too_large)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise miniflux.WebhookRefused(413, too_large)
        chunks.append(chunk)
    return b"".join(chunks)


def _bearer_ok(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _verified_event(secret: str, body: bytes, signature: str, event_header: str | None) -> miniflux.Delivery:
    miniflux.verify(secret, body, signature)        # before anything reads the body
    return miniflux.read_event(body, event_header)


def _webhook_openapi() -> dict[str, Any]:
    """The webhook's request as Miniflux sends it: the documented headers and the new_entries body."""
    return {
        "parameters": [
            {"name": miniflux.SIGNATURE_HEADER, "in": "header", "required": True,
             "description": "Hex HMAC-SHA256 of the raw body under the shared secret.",
             "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}},
            {"name": miniflux.EVENT_HEADER, "in": "header", "required": False,
             "description": "new_entries (acted on) or save_entry (ignored); must agree with the body's event_type.",
             "schema": {"type": "string", "enum": [miniflux.NEW_ENTRIES]}},
        ],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/NewEntriesEvent"}}}},
    }


def _publish_webhook_models(app: FastAPI) -> None:
    """Add the webhook body's models to the schema's components (the route reads the raw body, to
    check its signature before parsing it, so FastAPI does not know them)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()   # which FastAPI keeps as app.openapi_schema
        _, defs = models_json_schema([(miniflux.NewEntriesEvent, "validation")],
                                     ref_template="#/components/schemas/{model}")
        schema.setdefault("components", {}).setdefault("schemas", {}).update(defs["$defs"])
        _document_invalid_parameters(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _invalid_parameters(errors: Sequence[Any]) -> dict[str, Any]:
    """The 422 body: a sentence naming each wrong parameter once, and the problems one by one."""
    problems: list[dict[str, Any]] = [
        {"loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
        for e in errors]
    said: dict[str, str] = {}
    for p in problems:
        where = " ".join(str(x) for x in p["loc"][:2]) or "request"
        said.setdefault(where, p["msg"])
    detail = "; ".join(f"{where}: {msg}" for where, msg in said.items())
    return {"detail": f"invalid parameters: {detail}" if detail else "invalid request", "errors": problems}


def _document_invalid_parameters(schema: dict[str, Any]) -> None:
    """FastAPI documents 422 with its own body; ours is the Problem every error answers."""
    problem = {"$ref": "#/components/schemas/Problem"}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            invalid = operation.get("responses", {}).get("422")
            if invalid is not None:
                invalid["content"] = {"application/json": {"schema": problem}}
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)


def _digest_schema(fmt: str) -> dict[str, Any]:
    return {"type": "object"} if fmt == "json" else {"type": "string"}


def _utc(value: datetime | date | None) -> datetime | None:
    """`value` in UTC (a date is its midnight, naive is UTC already); beyond the representable range, its end."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0))
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:     # 9999-12-31T23:00-05:00, 0001-01-01T01:00+05:00
        return datetime.max.replace(tzinfo=UTC) if value.year > 1 else datetime.min.replace(tzinfo=UTC)


def _story_out(story: Any, matches: int) -> StoryOut:
    return StoryOut(id=story.id, title=story.title or story.id, description=story.description or "",
                    enabled=story.enabled, start=story.start, end=story.end, matches=matches)


def _match_out(row: browse.MatchRow) -> MatchOut:
    return MatchOut(story_id=row.story_id, article_id=row.article_id, score=clamp_score(row.score), title=row.title,
                    url=row.url, canonical_url=row.canonical_url, feed_url=row.feed_url, outlet=row.outlet,
                    lang=row.lang, published=row.published, first_seen=row.first_seen,
                    filed_at=row.published or row.first_seen, matched_at=row.matched_at,
                    evidence=list(row.evidence), best_passage=row.best_passage)


def _near_miss_out(row: Any) -> NearMissOut:
    return NearMissOut(story_id=row.story_id, article_id=row.article_id, score=clamp_score(row.score), logit=row.logit,
                       evidence=list(row.evidence), model_version=row.model_version, decided_at=row.decided_at,
                       title=row.title, url=row.url, canonical_url=row.canonical_url, outlet=row.outlet,
                       published=row.published, first_seen=row.fetched_at, filed_at=row.when)


def _judgment_out(judgment: story_models.Judgment) -> JudgmentOut:
    return JudgmentOut(story_id=judgment.story_id, url=judgment.url, label=judgment.label,
                       author=judgment.author, note=judgment.note, created_at=judgment.created_at,
                       in_force=judgment.in_force, article_stored=judgment.stored, title=judgment.title)


def _page_link(request: Request, limit: int, offset: int) -> str:
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("limit", "offset")]
    return f"{request.url.path}?{urlencode([*kept, ('limit', limit), ('offset', offset)])}"


def _ids(stories: list[Any]) -> str:
    return ", ".join(sorted(s.id for s in stories)) or "none"


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
