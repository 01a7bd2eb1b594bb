"""The shelf: a folder of finished tracks, each an MP3 with its sidecars, listed newest first, gathered in
an M3U playlist, and deleted whole. (`windown batch` writes tracks onto it: `batch.results`.)

A track is `NAME.mp3` plus whatever of its sidecars exist (`NAME.vtt`, `.srt`, `.lrc`, the `.json` cue
sheet, a batch's `.fingerprint`, the feed's `.chapters.json`). Builds write every file atomically
through hidden temporary names that start with '.', so any visible `*.mp3` is complete: the listing
never shows, and the web never serves, a file that is still being written.
"""

from __future__ import annotations

import datetime
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from windown import atomic
from windown.errors import BuildError, UserError

SIDECAR_SUFFIXES = (".vtt", ".srt", ".lrc", ".json", ".fingerprint", ".chapters.json")
PLAYLIST_NAME = "playlist.m3u"
MAX_SHEET_BYTES = 8 * 1024 * 1024  # a 3-hour cue sheet with word timings is far smaller


@dataclass(frozen=True)
class Track:
    """One finished track and what its cue sheet says about it (empty when the sheet is missing)."""

    stem: str
    mp3: Path
    size_bytes: int
    modified: datetime.datetime  # when the MP3 was finished (UTC)
    sheet: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def title(self) -> str:
        return str(self.sheet.get("title") or self.stem)

    @property
    def duration_s(self) -> float | None:
        value = self.sheet.get("duration_s")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def settings(self) -> dict:
        value = self.sheet.get("settings")
        return value if isinstance(value, dict) else {}

    @property
    def chapters(self) -> list[dict]:
        return [c for c in self.sheet.get("chapters") or [] if isinstance(c, dict)]

    @property
    def cues(self) -> list[dict]:
        return [c for c in self.sheet.get("cues") or [] if isinstance(c, dict)]

    def sidecar(self, suffix: str) -> Path:
        return self.mp3.with_name(self.stem + suffix)


def valid_stem(stem: str) -> bool:
    """A track name that names a file in the shelf and nothing else (no folders, no hidden files)."""
    return bool(stem) and not stem.startswith(".") and "/" not in stem and "\\" not in stem and "\x00" not in stem \
        and len(stem) <= 200


def tracks(folder: str | os.PathLike) -> list[Track]:
    """Every finished track in the folder, newest first."""
    folder = Path(folder)
    found = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    for entry in entries:
        if entry.name.startswith(".") or not entry.name.endswith(".mp3"):
            continue
        track = _track(folder, entry.name[: -len(".mp3")], entry)
        if track is not None:
            found.append(track)
    found.sort(key=lambda t: (t.modified, t.stem), reverse=True)
    return found


def track(folder: str | os.PathLike, stem: str) -> Track | None:
    """The track called `stem`, or None when there is none (or the name could leave the folder)."""
    if not valid_stem(stem):
        return None
    return _track(Path(folder), stem, None)


def _track(folder: Path, stem: str, entry: os.DirEntry | None) -> Track | None:
    mp3 = folder / f"{stem}.mp3"
    try:
        stat = entry.stat() if entry is not None else mp3.stat()
    except FileNotFoundError:
        return None
    if not _is_plain_file(mp3):
        return None
    modified = datetime.datetime.fromtimestamp(stat.st_mtime, datetime.timezone.utc)
    return Track(stem, mp3, stat.st_size, modified, _sheet(folder / f"{stem}.json"))


def _is_plain_file(path: Path) -> bool:
    """A regular file that really lives in the folder (a symlink could point anywhere)."""
    return path.is_file() and not path.is_symlink()


_sheets: dict[Path, tuple[tuple[int, int], dict]] = {}
_sheets_lock = threading.Lock()


def _sheet(path: Path) -> dict:
    """The cue sheet, parsed once per version of the file (pages list the shelf on every request)."""
    try:
        stat = path.stat()
    except OSError:
        return {}
    key = (stat.st_mtime_ns, stat.st_size)
    with _sheets_lock:
        cached = _sheets.get(path)
        if cached and cached[0] == key:
            return cached[1]
    if stat.st_size > MAX_SHEET_BYTES or not _is_plain_file(path):
        return {}
    try:
        sheet = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(sheet, dict):
        return {}
    with _sheets_lock:
        if len(_sheets) > 2000:
            _sheets.clear()
        _sheets[path] = (key, sheet)
    return sheet


def files_of(folder: str | os.PathLike, stem: str) -> list[Path]:
    """The track's own files: its MP3 and the sidecars that exist, nothing else."""
    if not valid_stem(stem):
        return []
    folder = Path(folder)
    candidates = [folder / f"{stem}.mp3"] + [folder / f"{stem}{suffix}" for suffix in SIDECAR_SUFFIXES]
    return [p for p in candidates if p.is_file() or p.is_symlink()]


def delete(folder: str | os.PathLike, stem: str) -> list[Path]:
    """Remove a track's MP3 and sidecars; other tracks and files stay. Returns what was removed."""
    if track(folder, stem) is None:
        raise UserError(f"there is no track '{stem}' on the shelf", "Reload the shelf to see what is there")
    removed = []
    # sidecars first, the MP3 last: a track is listed while its MP3 exists, so it never shows half-deleted
    for path in sorted(files_of(folder, stem), key=lambda p: p.suffix == ".mp3"):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed


def track_info(mp3: Path) -> tuple[str | None, float | None]:
    """The title and length in seconds from a track's cue sheet; (None, None) when it has none."""
    sheet = _sheet(Path(mp3).with_suffix(".json"))
    try:
        return str(sheet["title"]), float(sheet["duration_s"])
    except (ValueError, KeyError, TypeError):
        return None, None


def write_playlist(folder: str | os.PathLike, target: str | os.PathLike | None = None) -> Path:
    """An extended M3U of every track on the shelf (each MP3 with its .json cue sheet), by file name.

    Paths are relative to the playlist; it is written atomically, and only when it changes.
    """
    folder = Path(folder)
    target = Path(target) if target is not None else folder / PLAYLIST_NAME
    lines = ["#EXTM3U"]
    for mp3 in sorted(folder.glob("*.mp3")):
        if mp3.name.startswith("."):
            continue
        title, duration = track_info(mp3)
        if title is None:
            continue
        lines.append(f"#EXTINF:{round(duration)},{' '.join(title.split())}")
        lines.append(Path(os.path.relpath(mp3, target.parent if str(target.parent) else ".")).as_posix())
    text = "\n".join(lines) + "\n"
    try:
        if target.read_text("utf-8") == text:
            return target
    except (OSError, ValueError):
        pass
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(target, text)
    except OSError as exc:
        raise BuildError(f"cannot write the playlist ({exc.strerror or exc})", "Choose another place with --playlist",
                         path=target) from None
    return target
