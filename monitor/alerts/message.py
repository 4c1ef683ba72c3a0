"""What an alert says: a batch of new matches, laid out for each channel.

Every channel carries the same facts per match: title, outlet, time, score, evidence, link
and the best passage. Text from the web is made inert for each channel (escaped for Slack, by
the autoescaping template templates/alert.html for HTML, one clean line for e-mail headers), and
only http(s) addresses become links.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from monitor._types import StoredMatch
from monitor.report._safe import iso, link_target, one_line, short_time
from monitor.report.cluster import outlet_key
from monitor.report.digest import Passage, clamp_score, highlight, highlight_terms, passage_of
from monitor.templating import environment
from monitor.wording import plural

# Matches shown in one message; the rest are counted ("and 12 more").
MAX_ITEMS = 20
_SLACK_SECTION_CHARS = 2900      # Slack refuses section texts over 3000 characters
_SLACK_HEADER_CHARS = 150


@dataclass(frozen=True, slots=True)
class AlertBatch:
    alert_id: str
    story_id: str
    story_title: str
    matches: tuple[StoredMatch, ...]     # most relevant first, then earliest

    @property
    def shown(self) -> tuple[StoredMatch, ...]:
        return self.matches[:MAX_ITEMS]

    @property
    def more(self) -> int:
        return max(0, len(self.matches) - MAX_ITEMS)

    @property
    def headline(self) -> str:
        n = len(self.matches)
        return f"{plural(n, 'new match')}: {one_line(self.story_title)}"


def batch_of(alert_id: str, story_id: str, story_title: str, matches: Sequence[StoredMatch]) -> AlertBatch:
    ordered = sorted(matches, key=lambda m: (-clamp_score(m.score), m.when, m.url))
    return AlertBatch(alert_id, story_id, story_title or story_id, tuple(ordered))


def json_body(batch: AlertBatch, sent_at: datetime) -> bytes:
    """monitor's own webhook body: every fact of each match, as the JSON report has them."""
    document = {
        "alert": batch.alert_id,
        "story": {"id": batch.story_id, "title": batch.story_title},
        "sent_at": iso(sent_at),
        "count": len(batch.matches),
        "more": batch.more,
        "matches": [_json_match(m) for m in batch.shown],
    }
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def _json_match(m: StoredMatch) -> dict[str, Any]:
    return {
        "title": m.title, "url": m.url, "outlet": outlet_key(m), "published": iso(m.published),
        "first_seen": iso(m.fetched_at), "score": round(clamp_score(m.score), 3),
        "evidence": list(m.evidence), "passage": passage_of(m),
    }


def slack_body(batch: AlertBatch) -> bytes:
    """A Slack incoming-webhook message: a plain `text` fallback and one block per match."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(batch.headline, _SLACK_HEADER_CHARS)}}]
    for m in batch.shown:
        lines = [f"*{_slack_link(one_line(m.title) or '(untitled)', m.url)}*",
                 _slack(f"{outlet_key(m)} · {short_time(m.when)} · score {clamp_score(m.score):.2f}")]
        passage = passage_of(m)
        if passage:
            lines.append("> " + _slack(passage))
        if m.evidence:
            lines.append("_" + _slack("why: " + "; ".join(one_line(e) for e in m.evidence)) + "_")
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": _cut("\n".join(lines), _SLACK_SECTION_CHARS)}})
    if batch.more:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"and {batch.more} more"}]})
    return json.dumps({"text": _slack(batch.headline), "blocks": blocks}, ensure_ascii=False).encode("utf-8")


def _slack(text: str) -> str:
    """Web text as inert Slack mrkdwn: one line, and the three characters Slack reads as markup escaped."""
    return one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(label: str, url: str) -> str:
    target = link_target(url)
    if target is None:
        return _slack(label)
    safe_target = target.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")
    return f"<{safe_target}|{_slack(label).replace('|', '¦')}>"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def email_message(batch: AlertBatch, sender: str, recipients: Sequence[str]) -> EmailMessage:
    """A multipart e-mail: plain text, and the same as HTML with the evidence highlighted."""
    message = envelope(f"monitor: {batch.headline}", sender, recipients)
    message.set_content(_text(batch))
    message.add_alternative(_html(batch), subtype="html")
    return message


def envelope(subject: str, sender: str, recipients: Sequence[str]) -> EmailMessage:
    """An e-mail with its headers set; the subject made one clean line."""
    message = EmailMessage()
    message["Subject"] = _cut(one_line(subject), 200)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    return message


def _text(batch: AlertBatch) -> str:
    lines = [batch.headline, ""]
    for m in batch.shown:
        lines += [f"[{clamp_score(m.score):.2f}] {one_line(m.title) or '(untitled)'}",
                  f"  {one_line(outlet_key(m))}, {short_time(m.when)}",
                  f"  {one_line(m.url)}"]
        passage = passage_of(m)
        if passage:
            lines.append(f"  “{passage}”")
        if m.evidence:
            lines.append("  why: " + "; ".join(one_line(e) for e in m.evidence))
        lines.append("")
    if batch.more:
        lines.append(f"and {batch.more} more (monitor report --story {one_line(batch.story_id)})")
    return "\n".join(lines).rstrip() + "\n"


def _html(batch: AlertBatch) -> str:
    return _templates.get_template("alert.html").render(batch=batch, highlighted=_highlighted)


def _highlighted(m: StoredMatch) -> Passage:
    """The match's best passage in runs, the words its evidence names marked; none without a passage."""
    passage = passage_of(m)
    return highlight(passage, highlight_terms(m.evidence)) if passage else ()


_templates = environment("monitor.alerts")
