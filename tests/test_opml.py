from __future__ import annotations

import pytest

from monitor.exceptions import ParseError
from monitor.opml import read_opml, write_opml

_NESTED = b"""<?xml version="1.0" encoding="utf-8"?>
<opml version="2.0">
  <head><title>My subscriptions</title></head>
  <body>
    <outline text="News">
      <outline type="rss" text="Harbour Times" title="Harbour Times &amp; Gazette" xmlUrl="https://harbour-times.example/rss"/>
      <outline text="World">
        <outline type="rss" text="Northern Light" xmlUrl="https://northern-light.example/world/atom.xml"/>
      </outline>
    </outline>
    <outline type="rss" xmlurl="http://valley-post.example/feed.rdf"/>
    <outline type="rss" text="again" xmlUrl="https://harbour-times.example/rss"/>
    <outline type="rss" text="local file" xmlUrl="file:///etc/passwd"/>
    <outline type="link" text="Not a feed" url="https://example.com/"/>
  </body>
</opml>
"""


def test_read_nested_outlines() -> None:
    assert read_opml(_NESTED) == [
        ("https://harbour-times.example/rss", "Harbour Times & Gazette"),
        ("https://northern-light.example/world/atom.xml", "Northern Light"),
        ("http://valley-post.example/feed.rdf", None),
    ]


def test_round_trip() -> None:
    feeds = [("https://a.example/rss", "A & B <news>"), ("https://b.example/atom.xml", None)]
    data = write_opml(feeds, title="monitor feeds")
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert b'<opml version="2.0">' in data and b"<title>monitor feeds</title>" in data
    assert read_opml(data) == feeds


def test_write_drops_characters_xml_cannot_carry() -> None:
    data = write_opml([("https://a.example/rss", "bell\x07 title")], title="t\x00")
    assert read_opml(data) == [("https://a.example/rss", "bell title")]


@pytest.mark.parametrize(("data", "message"), [
    (b"", "XML"),
    (b"<opml><body><outline", "well-formed"),
    (b"<html><body></body></html>", "not <opml>"),
    (b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
     b'<opml version="2.0"><body><outline title="&b;" xmlUrl="https://a.example/"/></body></opml>', "entities"),
    (b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
     b'<opml version="2.0"><body><outline title="&x;" xmlUrl="https://a.example/"/></body></opml>', "entities"),
])
def test_bad_files_raise_parse_error(data: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message) as caught:
        read_opml(data, source="subs.opml")
    assert str(caught.value).startswith("subs.opml: ")
