"""URL hygiene: one canonical spelling per article address, and safe resolution of links.

Feeds hand out the same article under many spellings (tracking parameters, fragments,
upper-case hosts, default ports, trailing slashes). `canonicalize` maps them to one string so
an article is stored once. Links come from hostile documents, so `absolute_http_url` only
ever returns absolute http(s) URLs.
"""
from __future__ import annotations

import re
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

__all__ = ["TRACKING_PARAMS", "TRACKING_PREFIXES", "absolute_http_url", "canonicalize", "is_http_url"]

#: Query parameters that identify a campaign or a click, never the page (compared lower-case).
TRACKING_PARAMS: frozenset[str] = frozenset({
    "fbclid", "gclid", "gclsrc", "dclid", "msclkid", "yclid", "twclid", "igshid", "mc_cid", "mc_eid",
    "ocid", "cmpid", "ref", "ref_src", "ref_url", "_ga", "_gl", "_hsenc", "_hsmi", "mkt_tok",
    "wt.mc_id", "at_medium", "at_campaign", "at_custom1", "at_custom2", "at_custom3", "at_custom4",
    "__twitter_impression", "spm", "smid", "smtyp", "cmp", "sr_share",
})
#: Prefixes of tracking parameter families (compared lower-case).
TRACKING_PREFIXES: tuple[str, ...] = ("utm_", "pk_", "mtm_", "hsa_")

_DEFAULT_PORTS = {"http": 80, "https": 443}
_HTTP_SCHEMES = frozenset(_DEFAULT_PORTS)
_PERCENT_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Characters left as they are in a path or query (RFC 3986 pchar, "/" and "?"), plus "%" so
# that escapes already present are not escaped twice.
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_QUERY_SAFE = _PATH_SAFE + "?"
# Browsers drop these from links before resolving them; so do we.
_LINK_JUNK = re.compile(r"[\x00-\x20\x7f]")


def canonicalize(url: str) -> str:
    """The canonical spelling of an http(s) URL; other input comes back stripped, unchanged.

    Lower-cases scheme and host, IDNA-encodes the host, drops the default port, the fragment,
    tracking parameters (`TRACKING_PARAMS`, `TRACKING_PREFIXES`) and a trailing slash (not the
    root's), sorts the remaining query parameters by name and normalises percent-encoding.
    Never raises.
    """
    stripped = url.strip()
    try:
        return _canonicalize(stripped)
    except (ValueError, UnicodeError):
        return stripped


def is_http_url(url: str) -> bool:
    """True when `url` is an absolute http or https URL with a host."""
    try:
        parts = urlsplit(url.strip())
        return parts.scheme.lower() in _HTTP_SCHEMES and _usable_host(parts.hostname)
    except ValueError:
        return False


def _usable_host(hostname: str | None) -> bool:
    """A host a request could go to: not empty once normalised ("." is not a host), no control
    characters or spaces."""
    if not hostname:
        return False
    host = _normalize_host(hostname)
    return bool(host) and not any(ord(c) < 0x21 or c in '<>"{}|\\^`' for c in host)


def absolute_http_url(href: str | None, base: str | None) -> str | None:
    """`href` resolved against `base`, if the result is an absolute http(s) URL; else None.

    javascript:, data:, file:, mailto: and every other scheme give None, as does junk.
    """
    if not href:
        return None
    cleaned = _LINK_JUNK.sub("", href.strip()) if href.isascii() else href.strip()
    try:
        resolved = urljoin(base or "", cleaned)
    except ValueError:
        return None
    return resolved if is_http_url(resolved) else None


def _canonicalize(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    hostname = parts.hostname
    if scheme not in _HTTP_SCHEMES or hostname is None or not _usable_host(hostname):
        return url
    host = _normalize_host(hostname)
    port = parts.port   # raises ValueError for a junk port: the caller returns the input
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    path = _normalize_escapes(parts.path, _PATH_SAFE) or "/"
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    return urlunsplit((scheme, netloc, path, _normalize_query(parts.query), ""))


def _normalize_host(hostname: str) -> str:
    host = hostname.rstrip(".")
    if host.isascii():
        return host.lower()
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host.lower()


def _normalize_escapes(text: str, safe: str) -> str:
    """Decode escapes of unreserved characters, upper-case the others, escape what must be."""
    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return quote(_PERCENT_ESCAPE.sub(fix, text), safe=safe, encoding="utf-8", errors="surrogatepass")


def _normalize_query(query: str) -> str:
    kept: list[tuple[str, str]] = []
    for pair in query.split("&"):
        if not pair:
            continue
        name = pair.partition("=")[0]
        decoded = unquote(name.replace("+", " ")).lower()
        if decoded in TRACKING_PARAMS or decoded.startswith(TRACKING_PREFIXES):
            continue
        kept.append((_normalize_escapes(name, _QUERY_SAFE), _normalize_escapes(pair, _QUERY_SAFE)))
    # Stable sort by name: repeated names keep their order, which some sites give meaning to.
    kept.sort(key=lambda item: item[0])
    return "&".join(pair for _, pair in kept)
