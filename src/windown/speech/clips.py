"""Engine WAV -> a clip the timeline can trust: trimmed to real speech, resampled once, faded, levelled.

pydub does the audio I/O (decode, resample, silence detection); numpy does the final float work.
"""

from __future__ import annotations

from pathlib import Path

import warnings

import numpy as np

with warnings.catch_warnings():  # pydub warns at import when ffmpeg is missing; we report that ourselves
    warnings.simplefilter("ignore", RuntimeWarning)
    from pydub import AudioSegment
    from pydub.exceptions import CouldntDecodeError
    from pydub.silence import detect_leading_silence

from windown import loudness

VOICE_LUFS = -20.0  # every clip is levelled to this, so the mixer knows the voice loudness exactly
SILENCE_DBFS = -50.0  # what counts as the engine's padding around speech
KEEP_MS = 10  # margin kept around speech so soft consonants are not clipped
FADE_MS = 5  # edge fades: nothing clicks where a clip starts or stops
PEAK_CEILING = 10 ** (-3.0 / 20)  # clips whose peaks would exceed this after levelling are softened


class UnreadableClip(ValueError):
    """The engine's file is not a WAV that pydub can read."""


def process(wav_path: Path, sample_rate: int) -> np.ndarray | None:
    """The trimmed, levelled float32 mono clip, or None when the file holds no speech."""
    return process_with_start(wav_path, sample_rate)[0]


def process_with_start(wav_path: Path, sample_rate: int) -> tuple[np.ndarray | None, float]:
    """The clip as `process` makes it, and where in the engine's file it starts (seconds), so word
    timings the engine gave for its file can be moved onto the trimmed clip.

    The WAV is parsed from bytes, not with `AudioSegment.from_file`: that wraps its WAV reader in a
    bare `except:`, which swallowed a Ctrl-C or SIGTERM arriving mid-read and let the build run on.
    """
    try:
        segment = AudioSegment(data=Path(wav_path).read_bytes())
    except CouldntDecodeError as exc:
        raise UnreadableClip(str(exc)) from None
    if len(segment) == 0 or segment.rms == 0:
        return None, 0.0
    lead_ms = detect_leading_silence(segment, silence_threshold=SILENCE_DBFS, chunk_size=1)
    tail_ms = detect_leading_silence(segment.reverse(), silence_threshold=SILENCE_DBFS, chunk_size=1)
    if lead_ms + tail_ms >= len(segment):
        return None, 0.0
    start = max(0, lead_ms - KEEP_MS)
    stop = min(len(segment), len(segment) - tail_ms + KEEP_MS)
    segment = segment[start:stop].set_channels(1).set_sample_width(2).set_frame_rate(sample_rate)
    samples = np.array(segment.get_array_of_samples(), dtype=np.float32) / 32768.0
    fade = min(len(samples) // 2, sample_rate * FADE_MS // 1000)
    if fade:
        ramp = np.sin(np.linspace(0.0, np.pi / 2, fade, dtype=np.float32)) ** 2
        samples[:fade] *= ramp
        samples[-fade:] *= ramp[::-1]
    return level(samples, sample_rate), start / 1000


def level(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Scale to VOICE_LUFS, then tame any peak above the ceiling with a smooth gain dip."""
    lufs = loudness.integrated_lufs(samples, sample_rate)
    if not np.isfinite(lufs):  # shorter than one gating block: fall back to RMS
        rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
        lufs = 20 * np.log10(max(rms, 1e-9)) - 0.691 + 3.0
    out = samples * np.float32(10 ** ((VOICE_LUFS - lufs) / 20))
    return loudness.soft_limit(out, sample_rate, PEAK_CEILING).astype(np.float32)
