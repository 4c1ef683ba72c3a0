"""The error of a message that could not be delivered."""
from __future__ import annotations

from monitor.exceptions import MonitorError


class DeliveryError(MonitorError):
    """A message could not be handed to `destination` (a redacted URL or an SMTP server); `__cause__` says why."""

    def __init__(self, destination: str, message: str) -> None:
        self.destination = destination
        super().__init__(f"{destination}: {message}")
