"""POSTing to webhooks under the fetcher's rules: guarded addresses, timeouts, no redirects.

A webhook address is configuration, not web input, but it still goes through
`monitor.netguard`: no loopback or private address unless `fetch.allow_private_addresses`,
no proxy from the environment, each step bounded by the `[fetch]` timeouts and the whole
exchange by `fetch.total_timeout` (a receiver trickling its answer cannot hold delivery). Only the
status line and a few bytes of an error body are read. Webhook URLs often carry their secret
in the path (Slack's do), so messages name only the scheme and host.
"""
from __future__ import annotations

import threading

import httpx

from monitor.alerts.errors import DeliveryError
from monitor.config import FetchSettings
from monitor.exceptions import BlockedAddressError
from monitor.fetch import DeadlineTransport, total_deadline

_ERROR_DETAIL_BYTES = 200


def post(url: str, body: bytes, content_type: str, fetch: FetchSettings) -> None:
    """POST `body` to `url`; raise DeliveryError unless the answer is a 2xx."""
    where = redact(url)
    timeout = httpx.Timeout(connect=float(fetch.connect_timeout), read=float(fetch.read_timeout),
                            write=float(fetch.read_timeout), pool=float(fetch.connect_timeout))
    headers = {"Content-Type": content_type, "User-Agent": fetch.user_agent}
    try:
        with total_deadline(float(fetch.total_timeout)), \
                httpx.Client(transport=DeadlineTransport(fetch.allow_private_addresses, 1, threading.Event()),
                             timeout=timeout, follow_redirects=False, trust_env=False) as client:
            with client.stream("POST", url, content=body, headers=headers) as response:
                status = response.status_code
                detail = _detail(response) if status >= 300 else ""
    except BlockedAddressError as e:
        raise DeliveryError(where, f"refused: {e} (set fetch.allow_private_addresses for a local receiver)") from e
    except httpx.TimeoutException as e:
        raise DeliveryError(where, f"timed out ({type(e).__name__})") from e
    except httpx.HTTPError as e:
        raise DeliveryError(where, f"{type(e).__name__}: {e}") from e
    except httpx.InvalidURL as e:
        raise DeliveryError(where, f"invalid URL: {e}") from e
    if not 200 <= status < 300:
        kind = "redirect, not followed" if 300 <= status < 400 else "refused"
        raise DeliveryError(where, f"HTTP {status} ({kind}){detail}")


def redact(url: str) -> str:
    """`url` as messages and logs may show it: scheme and host, never the path that holds a secret."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "<invalid webhook URL>"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}/…"


def _detail(response: httpx.Response) -> str:
    for chunk in response.iter_bytes(_ERROR_DETAIL_BYTES):
        text = " ".join(chunk[:_ERROR_DETAIL_BYTES].decode("utf-8", "replace").split())
        return f": {text}" if text else ""
    return ""
