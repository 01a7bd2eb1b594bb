"""The espeak-ng engine: one `espeak-ng -w` subprocess per phrase, a thread per core; fast and deterministic."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

from windown.errors import MissingToolError
from windown.speech import run_parallel

DEFAULT_VOICE = "en-us+f3"
PITCH = 40  # a little lower than espeak's 50: calmer


class EspeakEngine:
    name = "espeak-ng"

    def check(self) -> None:
        program()

    def version(self) -> str:
        return _version()

    def default_voice(self) -> str:
        return DEFAULT_VOICE

    def voices(self) -> list[tuple[str, str]]:
        return list_voices()

    def synthesize(self, phrases: list[tuple[str, int]], voice: str, out_dir: Path):
        exe = program()

        def one(i: int) -> Path:
            text, rate_wpm = phrases[i]
            path = out_dir / f"espeak-{i}.wav"
            subprocess.run([exe, "-v", voice, "-s", str(rate_wpm), "-p", str(PITCH), "-w", str(path), "--",
                            text], check=True, capture_output=True, timeout=120)
            return path

        return run_parallel(one, len(phrases))


def program() -> str:
    exe = shutil.which("espeak-ng")
    if not exe:
        raise MissingToolError("espeak-ng is not installed",
                               "Run ./scripts/setup, or install the Debian package espeak-ng")
    return exe


@functools.cache
def _version() -> str:
    out = subprocess.run([program(), "--version"], capture_output=True, text=True, check=False).stdout
    return out.split("Data at")[0].strip()


def version_or_none() -> str:
    """espeak-ng's version for cache keys, or 'none' when only the library is installed."""
    return _version() if shutil.which("espeak-ng") else "none"


@functools.cache
def list_voices() -> list[tuple[str, str]]:
    """Languages (`en-us`) plus every variant on the default voice (`en-us+f3`)."""
    exe = program()
    out = []
    for line in subprocess.run([exe, "--voices"], capture_output=True, text=True, check=True).stdout.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 4:
            out.append((parts[1], parts[3].replace("_", " ")))
    for line in subprocess.run([exe, "--voices=variant"], capture_output=True, text=True,
                               check=True).stdout.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 4:
            variant = parts[4].split("/")[-1] if len(parts) > 4 else parts[3]
            out.append((f"en-us+{variant}", f"English (America), variant {parts[3]}"))
    return out
