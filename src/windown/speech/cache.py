"""The content-addressed clip cache: one file per (engine, engine version, voice, rate, text)."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from windown import atomic

# Bump when clip processing changes (trim, level, fades): old entries are then simply not found.
PROCESS_VERSION = 2


def cache_dir() -> Path:
    """Where clips and beds are cached: $WINDOWN_CACHE_DIR, else the user's cache folder."""
    override = os.environ.get("WINDOWN_CACHE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "windown"


def clip_key(engine: str, engine_version: str, voice: str, rate_wpm: int, text: str) -> str:
    blob = json.dumps([PROCESS_VERSION, engine, engine_version, voice, rate_wpm, text], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()



def read(path: Path) -> np.ndarray | None:
    """A cached clip, or None when absent or unreadable (a corrupt entry is removed and re-made)."""
    try:
        clip = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError):
        path.unlink(missing_ok=True)
        return None
    if clip.dtype != np.float32 or clip.ndim != 1 or not len(clip) or not np.isfinite(clip).all():
        path.unlink(missing_ok=True)
        return None
    return clip


def read_words(clip_path: Path) -> list[tuple[float, float, str]] | None:
    """Word timings stored beside a clip (engines that report them), or None."""
    try:
        return [tuple(w) for w in json.loads(clip_path.with_suffix(".words.json").read_text(encoding="utf-8"))]
    except (OSError, ValueError, TypeError):
        return None


def write_words(clip_path: Path, words: list[tuple[float, float, str]]) -> None:
    """Written before the clip itself, so a clip in the cache always has its words beside it."""
    clip_path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(clip_path.with_suffix(".words.json"), json.dumps(words).encode("utf-8"))


def write(path: Path, clip: np.ndarray) -> None:
    """Atomic, so concurrent builds sharing the cache never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.save(buffer, clip, allow_pickle=False)
    atomic.write_bytes(path, buffer.getvalue())


ENERGY_STEP_FRAMES = 441  # 10 ms at 44.1 kHz


def energy_path(clip_path: Path) -> Path:
    """`energies/ENGINE/KEY.npy` beside `clips/ENGINE/KEY.npy`: the clips folder holds clips only."""
    return clip_path.parents[2] / "energies" / clip_path.parent.name / clip_path.name


def read_energy(clip_path: Path) -> np.ndarray | None:
    """A clip's K-weighted energy in 10 ms steps (see `write_energy`), or None when absent or unreadable."""
    try:
        energy = np.load(energy_path(clip_path), allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return energy if energy.dtype == np.float64 and energy.ndim == 1 else None


def write_energy(clip_path: Path, energy: np.ndarray) -> None:
    """Written before the clip itself: a warm build then predicts its loudness from these small files
    instead of K-weighting every clip again (that took about a second before the first block)."""
    path = energy_path(clip_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.save(buffer, energy.astype(np.float64), allow_pickle=False)
    atomic.write_bytes(path, buffer.getvalue())
