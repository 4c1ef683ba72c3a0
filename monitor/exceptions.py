"""One exception tree. Errors about a URL carry it; errors caused by another chain it (`raise ... from`)."""
from __future__ import annotations


class MonitorError(Exception):
    """Base of every error the monitor raises on purpose. Its message is meant for a person."""


class ConfigError(MonitorError):
    """The configuration is invalid. `where` names the file (and line, when known)."""

    def __init__(self, message: str, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class MissingExtraError(MonitorError):
    """A part of the monitor needs an optional extra that is not installed. The message says how to install it."""

    def __init__(self, extra: str, needed_by: str, missing: list[str]) -> None:
        self.extra = extra
        self.missing = missing
        super().__init__(f"{needed_by} needs the '{extra}' extra ({', '.join(missing)} not installed): "
                         f"pip install 'monitor[{extra}]'")


class StorageError(MonitorError):
    """The database cannot be used as asked."""


class SchemaOutdatedError(StorageError):
    """The database schema is older (or newer) than this version of the monitor expects."""


class PluginError(MonitorError):
    """A story or rule plugin could not be loaded or is invalid. The message names the plugin."""

    def __init__(self, plugin: str, message: str) -> None:
        self.plugin = plugin
        super().__init__(f"plugin {plugin!r}: {message}")


class QueryError(MonitorError):
    """A story query is malformed; `position` is the 0-based character offset of the problem."""

    def __init__(self, message: str, query: str, position: int) -> None:
        self.query = query
        self.position = position
        super().__init__(f"{message} at position {position}: {query!r}")


class FetchError(MonitorError):
    """Fetching `url` failed. Subclasses say why; `__cause__` holds the low-level error."""

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        super().__init__(f"{url}: {message}")


class BlockedAddressError(FetchError):
    """The URL's host resolves to an address we refuse (loopback, private, ...)."""


class UnsupportedURLError(FetchError):
    """Only http and https are fetched."""


class TooLargeError(FetchError):
    """The body (after decompression) exceeded the size cap."""


class DeadlineError(FetchError):
    """The request did not finish within its total deadline."""


class TooManyRedirectsError(FetchError):
    """Redirect limit reached or a redirect loop."""


class HTTPStatusError(FetchError):
    """The server answered with an error status."""

    def __init__(self, url: str, status: int, retry_after: float | None = None) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(url, f"HTTP {status}")


class ParseError(MonitorError):
    """A feed or page could not be parsed."""

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        super().__init__(f"{url}: {message}")
