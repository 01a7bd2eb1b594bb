"""The shelf as a podcast feed, so a phone's podcast app can fetch tonight's track.

RSS 2.0 with Apple's iTunes tags and the Podcasting 2.0 namespace: each track is an item with an
enclosure (URL, length in bytes, type), `<podcast:chapters>` pointing at Podcast Index JSON chapters
(apps that cannot read ID3 chapters read these) and `<podcast:transcript>` pointing at the WebVTT and SRT transcripts.
`windown serve` serves it at /feed.xml; `windown feed DIR` writes the same files for static hosting.
"""

from __future__ import annotations

import email.utils
import json
import os
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, Iterable

from windown import atomic, shelf, source
from windown.errors import UserError

ITUNES = "http://www.itunes.com/dtds/podcast-1.0.dtd"
PODCAST = "https://podcastindex.org/namespace/1.0"
ATOM = "http://www.w3.org/2005/Atom"
CHAPTERS_TYPE = "application/json+chapters"  # the Podcast Index name for its JSON chapters format
CHAPTERS_VERSION = "1.2.0"
FEED_TITLE = "windown: bedtime stretches"
FEED_DESCRIPTION = "Calm, voice-guided bedtime stretching tracks made with windown."

ET.register_namespace("itunes", ITUNES)
ET.register_namespace("podcast", PODCAST)
ET.register_namespace("atom", ATOM)


def chapters_json(track: shelf.Track) -> dict:
    """The Podcast Index JSON chapters (version 1.2) of a track, from its cue sheet."""
    chapters = []
    for chapter in track.chapters:
        entry = {"startTime": round(float(chapter.get("start_s", 0)), 3), "title": str(chapter.get("title", ""))}
        if isinstance(chapter.get("end_s"), (int, float)):
            entry["endTime"] = round(float(chapter["end_s"]), 3)
        chapters.append(entry)
    return {"version": CHAPTERS_VERSION, "title": track.title, "podcastName": FEED_TITLE, "chapters": chapters}


def describe(track: shelf.Track, with_length: bool = True) -> str:
    """One line about how a track was made: its length and the settings a listener chose."""
    s = track.settings
    parts = []
    if with_length and track.duration_s is not None:
        parts.append(clock(track.duration_s))
    for keys, label in ((("pace",), "pace"), (("instruction",), "instruction"), (("sound", "ambient"), "bed"),
                        (("engine",), "voice")):
        value = next((s[k] for k in keys if s.get(k)), None)  # "ambient" in cue sheets made before "sound"
        if value:
            parts.append(f"{label} {value}")
    if isinstance(s.get("tail_s"), (int, float)):
        parts.append(f"tail {source.format_duration(round(s['tail_s'] * 1000))}")
    if s.get("avoid"):
        parts.append("avoiding " + ", ".join(map(str, s["avoid"])))
    if s.get("exclude"):
        parts.append("without " + ", ".join(map(str, s["exclude"])))
    return "; ".join(parts)


def clock(seconds: float) -> str:
    """h:mm:ss or m:ss, as podcast apps and people write a length."""
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def rss(tracks: Iterable[shelf.Track], *, feed_url: str, link: str, file_url: Callable[[str], str]) -> bytes:
    """The feed as UTF-8 XML. `file_url(name)` gives the absolute URL of a file in the shelf."""
    root = ET.Element("rss", {"version": "2.0"})
    channel = ET.SubElement(root, "channel")
    _text(channel, "title", FEED_TITLE)
    _text(channel, "link", link)
    _text(channel, "description", FEED_DESCRIPTION)
    _text(channel, "language", "en")
    _text(channel, "generator", "windown")
    ET.SubElement(channel, f"{{{ATOM}}}link", {"href": feed_url, "rel": "self", "type": "application/rss+xml"})
    _text(channel, f"{{{ITUNES}}}author", "windown")
    _text(channel, f"{{{ITUNES}}}summary", FEED_DESCRIPTION)
    _text(channel, f"{{{ITUNES}}}explicit", "false")
    _text(channel, f"{{{ITUNES}}}type", "episodic")
    _text(channel, f"{{{ITUNES}}}block", "Yes")  # a private shelf: keep it out of podcast directories
    ET.SubElement(channel, f"{{{ITUNES}}}category", {"text": "Health & Fitness"})
    _text(channel, f"{{{PODCAST}}}locked", "yes")
    for track in tracks:
        item = ET.SubElement(channel, "item")
        _text(item, "title", track.title)
        _text(item, "description", describe(track) or track.title)
        _text(item, "guid", f"windown-{track.stem}-{int(track.modified.timestamp())}", isPermaLink="false")
        _text(item, "pubDate", email.utils.format_datetime(track.modified))
        ET.SubElement(item, "enclosure", {"url": file_url(f"{track.stem}.mp3"), "length": str(track.size_bytes),
                                          "type": "audio/mpeg"})
        if track.duration_s is not None:
            _text(item, f"{{{ITUNES}}}duration", str(int(round(track.duration_s))))
        _text(item, f"{{{ITUNES}}}explicit", "false")
        _text(item, f"{{{ITUNES}}}episodeType", "full")
        if track.chapters:
            ET.SubElement(item, f"{{{PODCAST}}}chapters", {"url": file_url(f"{track.stem}.chapters.json"),
                                                          "type": CHAPTERS_TYPE})
        # WebVTT is the namespace's recommended format (Apple reads it); AntennaPod reads SRT
        for suffix, media_type in ((".vtt", "text/vtt"), (".srt", "application/x-subrip")):
            if track.sidecar(suffix).is_file():
                ET.SubElement(item, f"{{{PODCAST}}}transcript", {"url": file_url(f"{track.stem}{suffix}"),
                                                                "type": media_type, "language": "en",
                                                                "rel": "captions"})
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _text(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    element.text = text
    return element


def file_url_under(base_url: str) -> Callable[[str], str]:
    """URLs of shelf files below a base URL, each name percent-encoded."""
    base = base_url.rstrip("/") + "/"
    return lambda name: base + urllib.parse.quote(name)


def write_static(folder: str | os.PathLike, base_url: str | None = None) -> list[Path]:
    """Write `feed.xml` and each track's `NAME.chapters.json` into the shelf, atomically; return them.

    `base_url` is where the folder will be served from; without it the feed points at the folder
    itself (file:// URLs), which is enough to check it but not for a phone.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError("no such folder", "Give the shelf folder the tracks were built into", path=folder)
    if base_url is None:
        base_url = folder.resolve().as_uri()
    elif urllib.parse.urlsplit(base_url).scheme not in ("http", "https", "file"):
        raise UserError(f"--base-url: {base_url!r} is not an http(s) URL",
                        "Give the address the folder is served from, e.g. https://example.org/shelf")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError("the folder is not writable", "Fix its permissions, or copy the shelf elsewhere",
                        path=folder)
    tracks = shelf.tracks(folder)
    file_url = file_url_under(base_url)
    written = []
    for track in tracks:
        if track.chapters:
            path = track.sidecar(".chapters.json")
            atomic.write_text(path, json.dumps(chapters_json(track), indent=2, ensure_ascii=False) + "\n")
            written.append(path)
    feed_path = folder / "feed.xml"
    atomic.write_bytes(feed_path, rss(tracks, feed_url=file_url("feed.xml"), link=base_url, file_url=file_url))
    written.append(feed_path)
    return written
