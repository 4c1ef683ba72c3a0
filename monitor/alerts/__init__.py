"""Alerts and scheduled digests: telling people about new coverage where they work.

`prepare_delivery` before a pass, `deliver_alerts` and `run_due_digests` after it (the
daemon and `run --once` call them). One module per channel (`webhook`, `smtp`), the message
laid out per channel in `message`, when to send in `policy`, the schedule in `cron`, and the
delivery state in the database through `monitor.db.alerts`.
"""
from __future__ import annotations

from monitor.alerts.deliver import AlertSummary, deliver_alerts, prepare_delivery
from monitor.alerts.digests import DigestSummary, run_due_digests
from monitor.alerts.errors import DeliveryError

__all__ = ["AlertSummary", "DeliveryError", "DigestSummary", "deliver_alerts", "prepare_delivery",
           "run_due_digests"]
