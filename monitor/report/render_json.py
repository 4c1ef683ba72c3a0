"""The JSON report, as CONTRACT.md defines it, with a few added keys."""
from __future__ import annotations

import json
from typing import Any

from monitor._types import StoredMatch, StoredNearMiss
from monitor.report._safe import iso
from monitor.report.cluster import outlet_key
from monitor.report.digest import Coverage, Digest, StoryDigest, clamp_score, passage_of


def render_json(digest: Digest) -> str:
    document = {
        "generated_at": iso(digest.generated_at),
        "since": iso(digest.since),
        "until": iso(digest.until),
        "stories": [_story(s) for s in digest.stories],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def _story(s: StoryDigest) -> dict[str, Any]:
    f = s.figures
    story: dict[str, Any] = {
        "id": s.story.id,
        "title": s.story.title,
        "reference_url": s.story.reference_url,
        "figures": {
            "matches": f.matches, "outlets": f.outlets, "texts": f.texts, "clusters": f.clusters,
            "languages": list(f.languages), "first": iso(f.first), "latest": iso(f.latest),
        },
        # Buckets with coverage only; the unit says how long each is.
        "timeline": {"unit": s.timeline.unit,
                     "counts": {iso(start): n for start, n in s.timeline.buckets if n}},
        "matches": [_match(m, s.cluster_of.get(m.canonical_url)) for m in s.matches],
        "clusters": [_cluster(c) for c in s.coverage if c.cluster_id is not None],
    }
    if s.near_misses is not None:
        story["near_misses"] = [_near_miss(n) for n in s.near_misses]
    return story


def _match(m: StoredMatch, cluster: str | None) -> dict[str, Any]:
    return {
        "url": m.url,
        "title": m.title,
        "outlet": m.outlet,
        "via": m.feed_url,
        "published": iso(m.published),
        "score": round(clamp_score(m.score), 3),
        "evidence": list(m.evidence),
        "cluster": cluster,
        "canonical_url": m.canonical_url,
        "first_seen": iso(m.fetched_at),
        "lang": m.lang,
        "best_passage": passage_of(m),
    }


def _cluster(c: Coverage) -> dict[str, Any]:
    return {
        "id": c.cluster_id,
        "first": c.first.url,
        "shown": c.lead.url,
        "size": len(c.copies),
        "outlets": list(dict.fromkeys(outlet_key(m) for m in c.copies)),
    }


def _near_miss(n: StoredNearMiss) -> dict[str, Any]:
    return {
        "url": n.url,
        "canonical_url": n.canonical_url,
        "title": n.title,
        "outlet": n.outlet,
        "published": iso(n.published),
        "first_seen": iso(n.fetched_at),
        "score": round(clamp_score(n.score), 3),
        "logit": round(n.logit, 3),
        "evidence": list(n.evidence),
        "model_version": n.model_version,
        "decided_at": iso(n.decided_at),
    }
