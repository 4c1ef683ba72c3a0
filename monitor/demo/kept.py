"""What `monitor demo --keep DIR` leaves: a configuration that works on the kept database, and
the commands to try next."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

CONFIG_NAME = "monitor.toml"
DATABASE_NAME = "demo.db"
STORY = "trump-kim-summit-2018"


def write_config(folder: Path, feed_urls: Sequence[str], site_url: str) -> Path:
    """DIR/monitor.toml: the kept database, the demo's story enabled, its feeds listed (live only
    while `monitor demo` serves them)."""
    feeds = "".join(f"\n[[feeds]]\nurl = {json.dumps(url)}\n" for url in feed_urls)
    text = f"""# Written by `monitor demo --keep`: the demo's database, story and feeds.
# `monitor --config {folder / CONFIG_NAME} report` shows what the demo stored.

[database]
url = "sqlite:///{DATABASE_NAME}"    # relative to this file's folder

[fetch]
# The demo's site is served on 127.0.0.1, which the SSRF guard refuses unless this is true.
# Set it back to false before adding feeds from the internet.
allow_private_addresses = true

[[stories]]
id = "{STORY}"
enabled = true

# The demo's feeds, on the small news site `monitor demo` served at {site_url}.
# That site lived only while the demo ran: a `run` now finds them unreachable (each failure is
# recorded, nothing stored is lost). Replace them with real feeds, or remove them.
{feeds}"""
    path = folder / CONFIG_NAME
    path.write_text(text, encoding="utf-8")
    return path


def next_steps(config: Path) -> str:
    """The commands to try on the kept demo, for a person reading the terminal."""
    c = f"monitor --config {config}"
    return (f"demo: kept in {config.parent}: the database {DATABASE_NAME}, the site, and the configuration "
            f"{CONFIG_NAME}. Next:\n"
            f"  {c} report                    the digest again\n"
            f"  {c} report --format html --output digest.html\n"
            f"  {c} stories show {STORY}\n"
            f"  {c} serve                     the read API; open http://127.0.0.1:8080/\n"
            f"  {c} feeds add URL             a real feed, then `run --once`")
