"""The podcast feed, read back by a real feed parser (feedparser), and its chapters checked against the
Podcast Index JSON chapters format and against the MP3's own ID3 chapters (read by ffprobe)."""

from __future__ import annotations

import json
import re
import shutil
import urllib.parse
from pathlib import Path

import feedparser
import pytest

from conftest import run_cli
from web_support import built, client, shelf  # noqa: F401
from windown import export, feed, shelf as shelf_mod
from windown.web.app import create_app

PODCAST_NS = "https://podcastindex.org/namespace/1.0"


@pytest.fixture
def feed_shelf(shelf) -> Path:
    """The shelf with a second copy of the track whose name needs percent-encoding, and no sidecars."""
    shutil.copy2(shelf / "tiny.mp3", shelf / "two words.mp3")
    return shelf


def check_podcast_index_chapters(doc: dict) -> None:
    """The Podcast Index JSON chapters format, version 1.2: the required keys and their types and order."""
    assert doc["version"] == "1.2.0"
    chapters = doc["chapters"]
    assert isinstance(chapters, list) and chapters
    previous = -1.0
    for chapter in chapters:
        assert set(chapter) <= {"startTime", "endTime", "title", "img", "url", "toc", "location"}
        assert isinstance(chapter["startTime"], (int, float)) and chapter["startTime"] >= 0
        assert chapter["startTime"] > previous  # in order, none repeated
        previous = chapter["startTime"]
        assert isinstance(chapter["title"], str) and chapter["title"]
        if "endTime" in chapter:
            assert chapter["endTime"] > chapter["startTime"]


def test_the_served_feed_is_read_by_feedparser_with_enclosures_chapters_and_transcripts(feed_shelf):
    with client(create_app(feed_shelf)) as web:
        response = web.get("/feed.xml")
        assert response.headers["content-type"] == "application/rss+xml; charset=utf-8"
        parsed = feedparser.parse(response.content)
        assert not parsed.bozo, parsed.get("bozo_exception")
        assert parsed.version == "rss20"
        assert parsed.feed.title == feed.FEED_TITLE
        assert "<itunes:explicit>false</itunes:explicit>" in response.text  # Apple's current spelling
        assert PODCAST_NS in parsed.namespaces.values()
        by_title = {e.title: e for e in parsed.entries}
        assert set(by_title) == {"Two small stretches", "two words"}

        entry = by_title["Two small stretches"]
        track = shelf_mod.track(feed_shelf, "tiny")
        enclosure = entry.enclosures[0]
        assert enclosure.href == "http://127.0.0.1/files/tiny.mp3"
        assert int(enclosure.length) == (feed_shelf / "tiny.mp3").stat().st_size
        assert enclosure.type == "audio/mpeg"
        assert int(entry.itunes_duration) == round(track.duration_s)
        assert entry.id.startswith("windown-tiny-")
        assert entry.published_parsed is not None
        # feedparser keeps unknown namespaced elements' attributes on the entry
        assert entry.podcast_chapters["url"] == "http://127.0.0.1/files/tiny.chapters.json"
        assert entry.podcast_chapters["type"] == "application/json+chapters"
        transcripts = re.findall(r'<podcast:transcript url="([^"]+)" type="([^"]+)" language="en" rel="captions" />',
                                 response.text)
        assert transcripts == [("http://127.0.0.1/files/tiny.vtt", "text/vtt"),
                               ("http://127.0.0.1/files/tiny.srt", "application/x-subrip")]

        # every URL in the feed answers with what it says it is
        mp3 = web.get(urllib.parse.urlsplit(enclosure.href).path)
        assert mp3.status_code == 200 and len(mp3.content) == int(enclosure.length)
        chapters = web.get(urllib.parse.urlsplit(entry.podcast_chapters["url"]).path)
        assert chapters.headers["content-type"] == "application/json+chapters"
        check_podcast_index_chapters(chapters.json())
        vtt = web.get(urllib.parse.urlsplit(transcripts[0][0]).path)
        assert vtt.headers["content-type"].startswith("text/vtt") and vtt.text.startswith("WEBVTT")
        srt = web.get(urllib.parse.urlsplit(transcripts[1][0]).path)
        assert srt.headers["content-type"].startswith("application/x-subrip") and srt.text.startswith("1\n")

        bare = by_title["two words"]  # no cue sheet: no chapters or transcript, still playable
        assert bare.enclosures[0].href == "http://127.0.0.1/files/two%20words.mp3"
        assert "podcast_chapters" not in bare
        assert response.text.count("<podcast:transcript") == 2  # the bare track has none
        assert web.get("/files/two%20words.mp3").status_code == 200


def test_the_json_chapters_match_the_mp3_s_own_chapters(feed_shelf):
    track = shelf_mod.track(feed_shelf, "tiny")
    doc = feed.chapters_json(track)
    check_podcast_index_chapters(doc)
    id3 = export.probe(feed_shelf / "tiny.mp3")["chapters"]  # what podcast apps that read ID3 see
    assert [c["title"] for c in doc["chapters"]] == [title for title, _, _ in id3]
    for chapter, (_, start_s, end_s) in zip(doc["chapters"], id3):
        assert chapter["startTime"] == pytest.approx(start_s, abs=0.001)
        assert chapter["endTime"] == pytest.approx(end_s, abs=0.001)
    assert doc["chapters"][0]["startTime"] == 0


def test_windown_feed_writes_the_same_feed_and_chapter_files_for_static_hosting(feed_shelf):
    result = run_cli("feed", str(feed_shelf), "--base-url", "https://example.org/bedtime/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(feed_shelf / "tiny.chapters.json"), str(feed_shelf / "feed.xml")]
    parsed = feedparser.parse((feed_shelf / "feed.xml").read_bytes())
    assert not parsed.bozo
    entry = next(e for e in parsed.entries if e.title == "Two small stretches")
    assert entry.enclosures[0].href == "https://example.org/bedtime/tiny.mp3"
    assert entry.podcast_chapters["url"] == "https://example.org/bedtime/tiny.chapters.json"
    assert 'url="https://example.org/bedtime/tiny.vtt" type="text/vtt"' in (feed_shelf / "feed.xml").read_text()
    written = json.loads((feed_shelf / "tiny.chapters.json").read_text())
    assert written == feed.chapters_json(shelf_mod.track(feed_shelf, "tiny"))
    assert not list(feed_shelf.glob(".*"))  # written atomically: no temporary file is left


def test_windown_feed_errors_are_one_line(tmp_path):
    result = run_cli("feed", str(tmp_path / "missing"))
    assert (result.returncode, result.stderr) == (2, f"{tmp_path / 'missing'}: no such folder. Give the shelf folder "
                                                     f"the tracks were built into\n")
    result = run_cli("feed", str(tmp_path), "--base-url", "ftp://example.org")
    assert result.returncode == 2
    assert result.stderr == "--base-url: 'ftp://example.org' is not an http(s) URL. Give the address the folder " \
                            "is served from, e.g. https://example.org/shelf\n"
    assert not list(tmp_path.iterdir())


def test_an_empty_shelf_is_an_empty_feed(tmp_path):
    result = run_cli("feed", str(tmp_path))
    assert result.returncode == 0
    parsed = feedparser.parse((tmp_path / "feed.xml").read_bytes())
    assert not parsed.bozo and parsed.entries == []
    assert f"<link>{tmp_path.resolve().as_uri()}</link>" in (tmp_path / "feed.xml").read_text()
