"""Who may read and write through the workspace: the read API's token (serve.api_token or
$MONITOR_API_TOKEN), sent as a form field or remembered by a session cookie after /login.

No token configured: pages are open (as the read API is) and every write is refused, saying
how to set one. A token configured: pages need the cookie (or a bearer header), writes need the
cookie or the token in the form. The cookie holds an HMAC of the token, never the token, and is
SameSite=Strict; writes from another origin are refused too.
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Literal

from fastapi import Request

COOKIE = "monitor_workspace"
_SESSION_LABEL = b"monitor workspace session v1"

Refusal = Literal["no-token-configured", "token-needed", "wrong-token", "cross-origin"]


def session_value(token: str) -> str:
    """The cookie that stands for `token`: changing the token ends every session."""
    return hmac.new(token.encode(), _SESSION_LABEL, hashlib.sha256).hexdigest()


def token_matches(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.strip().encode(), token.encode())


def logged_in(request: Request, token: str | None) -> bool:
    """Whether the request carries the session cookie or the bearer token (False with no token set)."""
    if token is None:
        return False
    cookie = request.cookies.get(COOKIE)
    if cookie is not None and hmac.compare_digest(cookie.encode(), session_value(token).encode()):
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and token_matches(given, token)


def may_read(request: Request, token: str | None) -> bool:
    return token is None or logged_in(request, token)


def write_refusal(request: Request, token: str | None, form_token: str | None) -> Refusal | None:
    """Why a write is refused, or None when it may go ahead."""
    if token is None:
        return "no-token-configured"
    if not same_origin(request):
        return "cross-origin"
    if logged_in(request, token):
        return None
    if not form_token:
        return "token-needed"
    return None if token_matches(form_token, token) else "wrong-token"


def same_origin(request: Request) -> bool:
    """A form posted from this server's own pages (browsers send Origin with every POST)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True          # not a browser's cross-site form: curl, tests; the token still decides
    return origin == f"{request.url.scheme}://{request.headers.get('host', '')}"


def safe_next(target: str | None, default: str = "/stories") -> str:
    """A local path to go to after a form: never another site (//evil, https://evil, \\evil)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or any(
            c in target for c in "\r\n\\"):
        return default
    return target
