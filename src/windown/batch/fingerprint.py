"""Fingerprints: whether a track on the shelf was built from exactly a job's inputs.

A job's fingerprint is a sha256 over everything that decides the track: the routine file's bytes, the
stretch library and phrase pools, the profile file's bytes, the overrides, the encoding settings, the
engine with its version and the voice, a user's ambient file's bytes and the windown version. It is
stored in a `<name>.fingerprint` sidecar (JSON: the digest, the inputs it was made from, and the MP3's
size) beside the MP3, written last, after the MP3 and its other sidecars (`shelf.write_track`). A job
is skipped when its MP3 and sidecars exist, the digest matches and the MP3 still has the recorded
size; `stale_reason` says which input changed when it is not. An unset `seed` is not an input: such a
track takes its phrasing from the day it was built, and a new day does not make it stale.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from windown import __version__, ambient, personalise, routine
from windown.batch.jobs import Job
from windown.errors import UserError

FINGERPRINT_SUFFIX = ".fingerprint"
FINGERPRINT_FORMAT = 1  # bump when the fingerprint's recipe changes: every track is then rebuilt once
SIDECARS = (".vtt", ".srt", ".lrc", ".json")


@dataclass
class Prepared:
    """A job with its routine and profile loaded, and the inputs that decide its track."""

    routine: routine.Routine
    profile: personalise.Profile
    inputs: dict[str, Any]
    ambient_file: Path | None

    @property
    def fingerprint(self) -> str:
        return digest(self.inputs)


def digest(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode("utf-8")).hexdigest()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


@functools.cache
def _library_sha() -> str:
    """The stretch library and phrase pools: routines name their stretches and phrases from them."""
    from importlib import resources

    data = resources.files("windown") / "data"
    return _sha(b"".join((data / name).read_bytes() for name in ("stretches.yaml", "phrases.yaml")))


@functools.cache
def engine_version(name: str, voice: str | None = None) -> str:
    """Cheap: the program's version for espeak-ng and festival; the package version for pyttsx3
    (asking pyttsx3 itself starts a driver process and takes seconds); for piper, its clip cache id
    (version, voice file hash, settings), so a changed voice file rebuilds the track."""
    if name == "piper":
        from windown import speech

        engine = speech.get_engine(name)
        try:
            return engine.cache_id(speech.resolve_voice(engine, voice))
        except UserError as exc:  # the build reports it, with its hint
            return f"piper ({exc})"
    if name == "pyttsx3":
        from importlib import metadata

        try:
            return "pyttsx3 " + metadata.version("pyttsx3")
        except metadata.PackageNotFoundError:
            return "pyttsx3 (not installed)"
    from windown import speech

    return speech.get_engine(name).version()


def prepare(job: Job) -> Prepared:
    """Load the routine and profile (milliseconds) and gather the inputs that decide the track."""
    r = routine.load(job.routine)
    profile = personalise.load_profile(job.profile, dict(job.overrides))
    settings = personalise.apply_settings(r, profile)
    sound = settings.ambient.sound
    ambient_file = None
    if sound not in ambient.BED_NAMES:
        try:
            ambient_file = ambient.find_file(sound, r.path).resolve()
        except UserError:
            ambient_file = None  # the build reports it, with its hint
    inputs = {
        "format": FINGERPRINT_FORMAT,
        "windown": __version__,
        "routine": _sha(routine.resolve(job.routine).read_bytes()),
        "library": _library_sha(),
        "profile": _sha(Path(profile.path).read_bytes()) if profile.path else None,
        "overrides": json.loads(json.dumps(job.overrides, sort_keys=True, default=str)),
        "encoding": [job.loudness_lufs, job.bitrate_kbps, job.quality, job.mono],
        "engine": settings.voice.engine,
        "engine_version": engine_version(settings.voice.engine, settings.voice.voice),
        "voice": settings.voice.voice,
        "ambient": _file_sha(ambient_file) if ambient_file else None,
    }
    return Prepared(r, profile, inputs, ambient_file)


def fingerprint(job: Job) -> str:
    """The sha256 of the job's inputs; equal fingerprints mean an identical track."""
    return prepare(job).fingerprint


def fingerprint_path(mp3: Path) -> Path:
    return Path(mp3).with_suffix(FINGERPRINT_SUFFIX)


def stale_reason(job: Job, prepared: Prepared) -> str | None:
    """None when the track on disk was built from these exact inputs; else why it must be built."""
    out = job.output
    if not out.is_file():
        return "new"
    if not all(out.with_suffix(s).is_file() for s in SIDECARS):
        return "a sidecar is missing"
    try:
        recorded = json.loads(fingerprint_path(out).read_text("utf-8"))
    except FileNotFoundError:
        return "no fingerprint (built outside a batch)"
    except (OSError, ValueError):
        return "unreadable fingerprint"
    if not isinstance(recorded, dict) or recorded.get("fingerprint") != prepared.fingerprint:
        old = recorded.get("inputs", {}) if isinstance(recorded, dict) else {}
        changed = [k for k, v in prepared.inputs.items() if not isinstance(old, dict) or old.get(k) != v]
        return "changed: " + ", ".join(changed or ["fingerprint"])
    if recorded.get("mp3_bytes") != out.stat().st_size:
        return "the MP3 was replaced since its fingerprint was written"
    return None
