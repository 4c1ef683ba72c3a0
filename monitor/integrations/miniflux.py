"""Miniflux's webhook (https://miniflux.app/docs/webhooks.html): its signature and its payload.

Miniflux POSTs JSON with two headers: `X-Miniflux-Event-Type` (`new_entries` during a feed
refresh, `save_entry` when a user saves an entry) and `X-Miniflux-Signature`, the hex
HMAC-SHA256 of the raw body under the secret shown in Settings > Integrations > Webhook.

The HTTP side (body size cap, status codes) is `monitor.server`'s; this module decides, for a
body already read, whether it is signed by the secret and what it asks of the monitor. Every
refusal is a `WebhookRefused` carrying the HTTP status and a message for the sender:

    401  no signature header          403  a signature that does not match
    400  a body that is not JSON      422  JSON that is not a Miniflux event of a known shape
"""
from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from monitor._types import FeedEntry
from monitor.feeds import external_entry

SIGNATURE_HEADER = "X-Miniflux-Signature"
EVENT_HEADER = "X-Miniflux-Event-Type"
NEW_ENTRIES = "new_entries"
SAVE_ENTRY = "save_entry"
# A feed URL becomes a stored, indexed key: 500 characters are at most 2000 UTF-8 bytes,
# the store's limit for indexed text.
MAX_FEED_URL_CHARS = 500


class WebhookRefused(Exception):
    """A webhook call the monitor does not act on: `status` and `detail` are the HTTP answer."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


# -- the payload, as Miniflux 2.0.48+ sends it (internal/integration/webhook/webhook.go) --------
# Extra fields are ignored (Miniflux adds some over time); the fields used are type-checked.

class MinifluxFeed(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: StrictInt
    feed_url: Annotated[StrictStr, Field(pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://", max_length=MAX_FEED_URL_CHARS,
                                         description="The feed's URL: the monitor files the entries under it.")]
    site_url: StrictStr = ""
    title: StrictStr = ""


class MinifluxEntry(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: StrictInt
    hash: StrictStr = Field("", description="Miniflux's identity of the entry; the monitor's entry key.")
    title: StrictStr = ""
    url: StrictStr = Field("", description="The article's address; fetched like the monitor's own entries.")
    published_at: AwareDatetime | None = None
    content: StrictStr = Field("", description="HTML: stands in for the page when it cannot be fetched.")
    author: StrictStr = ""


class NewEntriesEvent(BaseModel):
    """The body of a `new_entries` event: the entries a feed refresh found, with their feed."""

    model_config = ConfigDict(extra="ignore")

    event_type: Literal["new_entries"]
    feed: MinifluxFeed
    entries: list[MinifluxEntry]


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a verified webhook call asks of the monitor: entries of a feed to queue, or nothing."""

    event_type: str
    feed_url: str | None = None
    feed_title: str | None = None
    entries: tuple[FeedEntry, ...] = ()
    ignored: str | None = None         # why nothing is to be done, for the answer


def sign(secret: str, body: bytes) -> str:
    """The signature Miniflux sends for `body`: lower-case hex HMAC-SHA256 under `secret`."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def require_signature(signature: str | None) -> str:
    """The signature header's value; WebhookRefused (401) when there is none."""
    if not signature or not signature.strip():
        raise WebhookRefused(401, f"unsigned request: Miniflux signs every webhook call with {SIGNATURE_HEADER}")
    return signature


def verify(secret: str, body: bytes, signature: str | None) -> None:
    """Raise WebhookRefused unless `signature` (the header's value) signs `body` under `secret`.

    The comparison takes the same time wherever the strings differ (hmac.compare_digest).
    """
    signature = require_signature(signature)
    expected = sign(secret, body).encode("ascii")
    # ASGI headers are latin-1: any header value encodes, and a non-hex one simply differs.
    given = signature.strip().lower().encode("latin-1", "replace")
    if not hmac.compare_digest(expected, given):
        raise WebhookRefused(403, f"{SIGNATURE_HEADER} does not match the body: check that the secret in "
                                  "Miniflux (Settings > Integrations > Webhook) is the one the monitor has")


def read_event(body: bytes, event_header: str | None) -> Delivery:
    """The Delivery a verified body asks for. Only `new_entries` brings entries; `save_entry`
    (a user saving one entry already delivered by `new_entries`) and unknown events are ignored."""
    document = _json(body)
    if not isinstance(document, dict):
        raise WebhookRefused(422, f"expected a JSON object (a Miniflux event), got {_json_kind(document)}")
    in_body = document.get("event_type")
    if event_header is not None and in_body is not None and event_header.strip() != in_body:
        raise WebhookRefused(422, f"{EVENT_HEADER} {event_header.strip()!r} disagrees with the body's "
                                  f"event_type {str(in_body)[:80]!r}")
    event = event_header.strip() if event_header is not None else in_body
    if not isinstance(event, str) or not event:
        raise WebhookRefused(422, f"no event type: expected the {EVENT_HEADER} header or an event_type field")
    if event == SAVE_ENTRY:
        return Delivery(event, ignored="save_entry ignored: the entry reached the monitor with new_entries")
    if event != NEW_ENTRIES:
        return Delivery(event[:80], ignored=f"event type {event[:80]!r} ignored: the monitor acts on new_entries")
    try:
        parsed = NewEntriesEvent.model_validate(document)
    except ValidationError as e:
        raise WebhookRefused(422, f"not a Miniflux new_entries event: {_first_problem(e)}") from None
    return Delivery(event, feed_url=parsed.feed.feed_url, feed_title=parsed.feed.title or None,
                    entries=tuple(_entry(e, parsed.feed) for e in parsed.entries))


def _entry(entry: MinifluxEntry, feed: MinifluxFeed) -> FeedEntry:
    return external_entry(
        id=entry.hash or None,                # else the canonical URL, else a hash of the text
        link=entry.url or None,
        title=entry.title,
        content_html=entry.content or None,
        author=entry.author,
        published=_published(entry.published_at),
        base_url=feed.site_url or feed.feed_url,
    )


def _published(value: datetime | None) -> datetime | None:
    # Go's zero time (0001-01-01T00:00:00Z) is how Miniflux writes "no date".
    return None if value is None or value.year <= 1 else value


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except RecursionError:
        raise WebhookRefused(400, "malformed JSON: nested too deeply") from None
    except ValueError as e:           # JSONDecodeError and UnicodeDecodeError
        raise WebhookRefused(400, f"malformed JSON: {e}") from None


def _json_kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def _first_problem(error: ValidationError) -> str:
    """The first problem pydantic found, as `entries[3].url: Input should be a valid string`."""
    problems = error.errors(include_url=False, include_input=False)
    first = problems[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".") or "body"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{where}: {first['msg']}{more}"
