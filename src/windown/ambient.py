"""The ambient stage: the bed that plays under the voice, and the singing-bowl chime.

Built-in beds are synthesised as exactly periodic loops (FFT-shaped noise is circular; every LFO and
partial makes a whole number of cycles per loop; events wrap modulo the loop), so tiling them has no
seam. A user's own recording is decoded with ffmpeg and looped with an equal-power crossfade.
Every bed is normalised to BED_LUFS so the mixer can set its level relative to the voice.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import math
import os
import shutil
import subprocess
import wave
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from windown import atomic
from windown.errors import MissingToolError, UserError, closest
from windown.loudness import Meter
from windown.speech.cache import cache_dir

SAMPLE_RATE = 44100
BED_NAMES = ("brown-noise", "pink-noise", "rain", "ocean", "drone", "none")
BED_LUFS = -20.0
CHIME_LUFS = -24.0
BED_VERSION = 1  # bump when a recipe changes, so stale cached beds are not reused
LOOP_SECONDS = 60
USER_MAX_SECONDS = 300  # longer recordings are cut here: a 5 min loop is 106 MB of float32
CHIME_FUNDAMENTAL_HZ = 240.0
CHIME_SECONDS = 10.0

_DESCRIPTIONS = {
    "brown-noise": "deep, soft rumble, like a distant waterfall (the default)",
    "pink-noise": "even, gentle hiss; brighter than brown noise",
    "rain": "steady soft rain with a few quiet drops",
    "ocean": "slow waves rolling in and washing back, about every 10 s",
    "drone": "a warm, low chord that breathes slowly",
    "none": "no bed: the voice and chimes only",
}
SOUNDS_FOLDER = "sounds"  # a user's own sound files, found by name: beside the routine, then in the current folder
# The one rule for a user's sound file, in every message that cannot find one (and in the README).
SOUND_RULE = ("A path in a routine, profile or batch file is relative to that file, one on the command line to the "
              "current folder; a name alone is also looked up in sounds/ beside that file or the routine file, "
              "then in ./sounds/")
_PREVIEW_FORMATS = {".mp3": "mp3", ".ogg": "ogg", ".flac": "flac", ".opus": "opus"}


@dataclass(frozen=True)
class Bed:
    """A seamless stereo loop (frames, 2) float32 at sample_rate."""

    loop: np.ndarray
    name: str
    sample_rate: int = SAMPLE_RATE

    def block(self, start: int, stop: int) -> np.ndarray:
        """Frames start..stop of the endlessly repeated loop, without building the whole track."""
        if stop < start:
            raise ValueError(f"block stop {stop} is before start {start}")
        loop_frames = len(self.loop)
        out = np.empty((stop - start, 2), dtype=np.float32)
        pos, at = 0, start % loop_frames
        while pos < len(out):
            take = min(loop_frames - at, len(out) - pos)
            out[pos:pos + take] = self.loop[at:at + take]
            pos += take
            at = 0
        return out


def describe() -> list[tuple[str, str]]:
    """(name, one-line description) of every built-in bed, for `windown sounds`."""
    return [(name, _DESCRIPTIONS[name]) for name in BED_NAMES]


def load_bed(sound: str, *, routine_file: str | os.PathLike | None = None, sample_rate: int = SAMPLE_RATE,
             origin: tuple[str, int] | None = None) -> Bed | None:
    """'none' -> None; a built-in name -> a cached synthesised bed; anything else -> a user's file
    (`find_file`: a name alone is also looked up in sounds/ beside `routine_file`, then in ./sounds/).

    `origin` (routine file, line) is where the sound was chosen: a file problem is reported there."""
    if sound == "none":
        return None
    if sound in _SYNTHS:
        return Bed(_built_in_loop(sound, sample_rate), sound, sample_rate)
    with reported_at(origin):
        path = find_file(sound, routine_file)
        return Bed(_user_loop(path, sound, sample_rate), sound, sample_rate)


@contextlib.contextmanager
def reported_at(origin: tuple[str, int] | None) -> Iterator[None]:
    """Re-word a sound file's error as `routine:line: problem: file`, when a routine line chose the file."""
    try:
        yield
    except UserError as exc:
        if origin is None or exc.path is None:
            raise
        raise UserError(f"{exc.problem}: {exc.path}", exc.hint, path=origin[0], line=origin[1]) from None


def preview(sound: str, out_path: Path, seconds: float = 20.0) -> None:
    """Write a short sample of a bed, faded in and out over 1 s; the format follows the suffix."""
    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix != ".wav" and suffix not in _PREVIEW_FORMATS:
        raise UserError(f"cannot write a preview as '{out_path.suffix}'",
                        "Name the file .wav, .mp3, .ogg, .flac or .opus", path=out_path)
    bed = load_bed(sound)
    if bed is None:
        raise UserError("'none' is silence, so there is nothing to preview",
                        f"Name a bed: {', '.join(BED_NAMES[:-1])}, or a sound file")
    frames = round(seconds * bed.sample_rate)
    samples = bed.block(0, frames)
    fade_frames = min(bed.sample_rate, frames // 2)
    ramp = _raised_cosine(fade_frames)[:, None]
    samples[:fade_frames] *= ramp
    samples[frames - fade_frames:] *= ramp[::-1]
    with atomic.replacing(out_path) as temp:
        if suffix == ".wav":
            _write_wav(temp, samples, bed.sample_rate)
        else:
            _encode(temp, samples, bed.sample_rate, _PREVIEW_FORMATS[suffix], out_path)


@functools.cache  # read-only and deterministic: made once per process, however often it is asked for
def chime_frames(sample_rate: int = SAMPLE_RATE) -> int:
    """How long a chime rings, in frames (the timeline places it without synthesising it)."""
    return round(CHIME_SECONDS * sample_rate)


@functools.cache  # read-only (below): a cold build's two renderers and a batch worker's jobs share one strike
def chime(sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """One soft singing-bowl strike, (frames, 2) float32, decaying to exact silence; deterministic.

    Partials follow the ring modes of a bowl (1 : 2.83 : 5.42 : 8.77); each is a doublet a fraction of a
    hertz apart, which is what makes a real bowl beat gently. A 10 ms raised-cosine attack avoids a click.
    """
    frames = chime_frames(sample_rate)
    ratios = (1.0, 2.83, 5.42, 8.77)
    amplitudes = (1.0, 0.45, 0.22, 0.1)  # a soft mallet: upper partials quiet
    t60_s = (10.0, 6.0, 3.5, 2.2)
    split_hz = (0.6, 0.9, 1.3, 1.8)
    out = np.empty((frames, 2), dtype=np.float32)
    for a in range(0, frames, 1 << 16):  # in pieces: whole-length float64 temporaries cost 50 MB of peak memory
        t_s = np.arange(a, min(frames, a + (1 << 16))) / sample_rate
        piece = np.zeros((len(t_s), 2))
        for ratio, amplitude, t60, split in zip(ratios, amplitudes, t60_s, split_hz):
            decay = amplitude * np.exp(-math.log(1000.0) * t_s / t60)  # -60 dB after t60
            freq_hz = CHIME_FUNDAMENTAL_HZ * ratio
            low = np.sin(2 * np.pi * (freq_hz - split / 2) * t_s) * decay
            high = np.sin(2 * np.pi * (freq_hz + split / 2) * t_s) * decay
            # Each half of the doublet sits a little to one side, so the beating moves gently in space.
            piece[:, 0] += 0.55 * low + 0.45 * high
            piece[:, 1] += 0.45 * low + 0.55 * high
        out[a:a + len(t_s)] = piece
    attack = _raised_cosine(round(0.010 * sample_rate))
    out[:len(attack)] *= attack[:, None]
    release = _raised_cosine(round(2.5 * sample_rate))[::-1]  # reaches exactly 0 on the last sample
    out[frames - len(release):] *= release[:, None]
    strike = _normalised(out, sample_rate, CHIME_LUFS)
    strike.flags.writeable = False  # shared by every caller through the cache
    return strike


# --- built-in beds -------------------------------------------------------------------------------

def _built_in_loop(name: str, sample_rate: int) -> np.ndarray:
    """A synthesised loop, from the disk cache when a good copy is there (synthesis takes ~0.5-1 s)."""
    loop_frames = LOOP_SECONDS * sample_rate
    path = cache_dir() / "beds" / f"{name}-{sample_rate}hz-v{BED_VERSION}.npy"
    try:
        loop = np.load(path, allow_pickle=False)
        if loop.dtype == np.float32 and loop.shape == (loop_frames, 2) and np.isfinite(loop).all():
            return loop
    except (OSError, ValueError, EOFError):
        pass  # missing or corrupt: make it again
    rng = np.random.default_rng(zlib.crc32(name.encode()))  # a fixed seed per bed, stable across runs
    loop = _normalised(_SYNTHS[name](rng, loop_frames, sample_rate), sample_rate, BED_LUFS)
    _give_back_freed_memory()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.replacing(path) as temp, open(temp, "wb") as handle:
            np.save(handle, loop)
    except OSError:
        pass  # an unwritable cache only costs time
    return loop


def _give_back_freed_memory() -> None:
    """Hand the synthesis's freed temporaries back to the system. glibc keeps them in its heap otherwise:
    28 MB measured after brown noise, held by the build process for the rest of a first build, while
    piper's workers run beside it (all processes must stay under 600 MB). A no-op without glibc."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _brown_noise(rng: np.random.Generator, frames: int, sample_rate: int) -> np.ndarray:
    return _noise(rng, frames, sample_rate, slope_db_per_oct=-6.0, highpass_hz=28.0, lowpass_hz=3000.0)


def _pink_noise(rng: np.random.Generator, frames: int, sample_rate: int) -> np.ndarray:
    return _noise(rng, frames, sample_rate, slope_db_per_oct=-3.0, highpass_hz=28.0, lowpass_hz=8000.0)


def _rain(rng: np.random.Generator, frames: int, sample_rate: int) -> np.ndarray:
    """Soft hiss with a slight flutter, a low patter underneath, and sparse quiet drops."""
    hiss = _noise(rng, frames, sample_rate, slope_db_per_oct=-3.0, highpass_hz=300.0, lowpass_hz=5000.0,
                  lowpass_order=2, correlation=0.2)
    patter = _noise(rng, frames, sample_rate, slope_db_per_oct=-6.0, highpass_hz=60.0, lowpass_hz=800.0,
                    correlation=0.5)
    flutter = 1.0 + 0.08 * _cycles(frames, 7, rng.uniform(0, 2 * np.pi)) \
        + 0.05 * _cycles(frames, 17, rng.uniform(0, 2 * np.pi))
    out = hiss * flutter[:, None] + 0.5 * patter
    out += _drops(rng, frames, sample_rate, drops_per_s=6.0)
    return out


def _drops(rng: np.random.Generator, frames: int, sample_rate: int, drops_per_s: float) -> np.ndarray:
    """Bubble-like drops: short sines rising in pitch with a soft attack, wrapped modulo the loop."""
    count = round(drops_per_s * frames / sample_rate)
    max_frames = round(0.2 * sample_rate)
    buffer = np.zeros((frames + max_frames, 2), dtype=np.float32)
    attack = _raised_cosine(round(0.004 * sample_rate))
    for _ in range(count):
        start = int(rng.integers(frames))
        tau_s = rng.uniform(0.012, 0.030)
        length = min(max_frames, round(6 * tau_s * sample_rate))
        t_s = np.arange(length) / sample_rate
        start_hz = math.exp(rng.uniform(math.log(700.0), math.log(1800.0)))
        rise = rng.uniform(0.3, 0.8)  # the pitch climbs by this fraction over the drop
        freq_hz = start_hz * (1 + rise * t_s / t_s[-1])
        phase = 2 * np.pi * np.cumsum(freq_hz) / sample_rate
        envelope = np.exp(-t_s / tau_s)
        envelope[:len(attack)] *= attack
        gain = 10 ** (rng.uniform(-14.0, -2.0) / 20)
        pan = rng.uniform(0.15, 0.85) * np.pi / 2
        drop = np.sin(phase) * envelope * gain
        buffer[start:start + length, 0] += drop * math.cos(pan)
        buffer[start:start + length, 1] += drop * math.sin(pan)
    buffer[:max_frames] += buffer[frames:]  # whatever ran past the end continues at the start
    return buffer[:frames]


def _ocean(rng: np.random.Generator, frames: int, sample_rate: int) -> np.ndarray:
    """A low wash under slow swells (six per loop, 8-13 s each); the hiss rises only at the crest."""
    swells = 6
    envelope = np.zeros(frames, dtype=np.float32)
    spacing = frames // swells
    for i in range(swells):
        length = round(rng.uniform(8.0, 13.0) * sample_rate)
        start = i * spacing + round(rng.uniform(-1.5, 1.5) * sample_rate)
        u = np.arange(length) / length
        bump = np.sin(np.pi * u ** 1.36) ** 2  # rises over 60 %, falls faster, smooth at both ends
        envelope[(start + np.arange(length)) % frames] += rng.uniform(0.6, 1.0) * bump
    envelope = 0.25 + envelope
    envelope /= envelope.max()
    rumble = _noise(rng, frames, sample_rate, slope_db_per_oct=-6.0, highpass_hz=35.0, lowpass_hz=2500.0,
                    lowpass_order=2, correlation=0.6)
    wash = _noise(rng, frames, sample_rate, slope_db_per_oct=-3.0, highpass_hz=300.0, lowpass_hz=6000.0,
                  lowpass_order=2, correlation=0.2)
    rumble *= (0.35 + 0.65 * envelope)[:, None] * _slow_pan(frames, 1, rng.uniform(0, 2 * np.pi))
    wash *= (0.5 * envelope ** 3)[:, None] * _slow_pan(frames, 2, rng.uniform(0, 2 * np.pi))
    return rumble + wash


def _drone(rng: np.random.Generator, frames: int, sample_rate: int) -> np.ndarray:
    """Soft sine partials 1 : 1.5 : 2 : 3 over 98 Hz, right channel 0.15 Hz sharp so it beats slowly."""
    root_hz = 98.0
    loop_s = frames / sample_rate
    partials = ((1.0, 1.0, 3), (1.5, 0.55, 2), (2.0, 0.4, 5), (3.0, 0.18, 4))  # ratio, amplitude, LFO cycles
    out = np.zeros((frames, 2), dtype=np.float32)
    for ratio, amplitude, lfo_cycles in partials:
        lfo = 1.0 + 0.35 * _cycles(frames, lfo_cycles, rng.uniform(0, 2 * np.pi))
        for channel, detune_hz in enumerate((0.0, 0.15)):
            cycles = round((root_hz * ratio + detune_hz) * loop_s)  # whole cycles per loop: no seam
            out[:, channel] += amplitude * lfo * _cycles(frames, cycles, rng.uniform(0, 2 * np.pi))
    breath = 1.0 + 0.15 * _cycles(frames, 1, rng.uniform(0, 2 * np.pi))
    return out * breath[:, None]


_SYNTHS = {
    "brown-noise": _brown_noise,
    "pink-noise": _pink_noise,
    "rain": _rain,
    "ocean": _ocean,
    "drone": _drone,
}


def _noise(rng: np.random.Generator, frames: int, sample_rate: int, *, slope_db_per_oct: float,
           highpass_hz: float, lowpass_hz: float, lowpass_order: int = 1,
           correlation: float = 0.3) -> np.ndarray:
    """Stereo noise at unit RMS, shaped in the frequency domain so it is exactly periodic in `frames`.

    The spectral slope sets the colour; the 2nd-order high-pass removes subsonic rumble (which would
    also measure as silence in LUFS); L and R share `correlation` of their power, for width.
    """
    # float32 throughout: whole-loop float64 temporaries used to double the first build's peak memory
    f_hz = np.fft.rfftfreq(frames, 1 / sample_rate).astype(np.float32)
    f_hz[0] = f_hz[1]
    bins = len(f_hz)
    gain = (f_hz / np.float32(1000.0)) ** np.float32(slope_db_per_oct / (20 * math.log10(2)))
    highpass = np.square(f_hz / np.float32(highpass_hz))
    gain *= highpass / np.sqrt(1 + np.square(highpass))
    del highpass
    gain /= np.sqrt(1 + (f_hz / np.float32(lowpass_hz)) ** (2 * lowpass_order))
    gain[0] = 0.0
    del f_hz

    def spectrum() -> np.ndarray:  # complex Gaussian: random phase, Rayleigh magnitude
        return rng.standard_normal(2 * bins, dtype=np.float32).view(np.complex64)

    shared = spectrum() * np.float32(math.sqrt(correlation))
    own = np.float32(math.sqrt(1 - correlation))
    spectra = np.empty((2, bins), dtype=np.complex64)
    for channel in spectra:
        channel[:] = spectrum()
        channel *= own
        channel += shared
        channel *= gain
    del shared
    x = np.fft.irfft(spectra, n=frames, axis=1).T  # float32 in, float32 out (numpy >= 2)
    del spectra
    x /= np.sqrt(np.mean(np.square(x), dtype=np.float64)).astype(np.float32)
    return x


def _cycles(frames: int, cycles: int, phase: float) -> np.ndarray:
    """float32 sin() making exactly `cycles` whole turns over `frames`; the phase is reduced in integers
    so the last sample leads into the first exactly."""
    turns = (np.arange(frames, dtype=np.int64) * cycles) % frames
    return np.sin((turns * (2 * np.pi / frames) + phase).astype(np.float32))


def _slow_pan(frames: int, cycles: int, phase: float) -> np.ndarray:
    """(frames, 2) equal-power gains that drift a little either side of centre."""
    angle = (0.5 + 0.12 * _cycles(frames, cycles, phase)) * np.float32(np.pi / 2)
    return np.float32(np.sqrt(2)) * np.stack([np.cos(angle), np.sin(angle)], axis=1)


# --- a user's own file ---------------------------------------------------------------------------

def named_in_file(sound: str, file_path: str | os.PathLike | None) -> str:
    """A sound file named in a routine, profile or batch file, as the build will look for it: a path is
    joined to that file's folder; a name alone found beside the file or in sounds/ there becomes that
    file's path; a name found in neither stays a name (`find_file` looks for it in the shared folders)."""
    given = Path(os.path.expanduser(sound))
    if given.is_absolute() or file_path is None:
        return str(given)
    base = Path(file_path).resolve().parent
    if not _is_a_name(sound):
        return str(base / given)
    found = (base / given) if (base / given).is_file() else _in_folder(base / SOUNDS_FOLDER, sound)
    return str(found) if found is not None else sound


def sound_folders(routine_file: str | os.PathLike | None = None) -> list[Path]:
    """Where a sound's name alone is looked for: sounds/ beside the routine file, then ./sounds/."""
    folders = [Path(routine_file).resolve().parent / SOUNDS_FOLDER] if routine_file else []
    folders.append(Path.cwd() / SOUNDS_FOLDER)
    return list(dict.fromkeys(folders))


def user_sounds(routine_file: str | os.PathLike | None = None) -> list[Path]:
    """The files in the sound folders (`sound_folders`), for `windown sounds` and for suggestions."""
    found: list[Path] = []
    for folder in sound_folders(routine_file):
        try:
            found += sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        except OSError:
            continue  # no such folder, or not readable: nothing to list there
    return found


def find_file(sound: str, routine_file: str | os.PathLike | None = None) -> Path:
    """The user's sound file: the path as given (absolute, or relative to the current folder; a routine's
    own paths were made absolute by `named_in_file`), else a name alone in `sound_folders`."""
    path = Path(sound).expanduser()
    if sound and path.is_dir():
        raise UserError("this ambient sound is a folder, not a file", "Name one audio file in it", path=sound)
    if path.is_file():
        return path
    if sound and _is_a_name(sound):
        for folder in sound_folders(routine_file):
            found = _in_folder(folder, sound)
            if found is not None:
                return found
    known = list(BED_NAMES) + [p.name if Path(sound).suffix else p.stem for p in user_sounds(routine_file)]
    hint = closest(Path(sound).name, dict.fromkeys(known))
    raise UserError("ambient file not found", (hint + " " if hint else "") + SOUND_RULE +
                    f". Built-in beds: {', '.join(BED_NAMES)}", path=sound)


def _is_a_name(sound: str) -> bool:
    """`waves` or `waves.ogg`, with no folder in it."""
    return bool(sound) and "/" not in sound and os.sep not in sound and not sound.startswith("~")


def _in_folder(folder: Path, name: str) -> Path | None:
    """`folder/name`, or for a name without an extension the first `folder/name.*`; None if neither is there."""
    exact = folder / name
    if exact.is_file():
        return exact
    if not Path(name).suffix:
        try:
            matches = sorted(p for p in folder.glob(f"{glob.escape(name)}.*") if p.is_file())
        except OSError:
            matches = []
        if matches:
            return matches[0]
    return None


def _user_loop(path: Path, sound: str, sample_rate: int) -> np.ndarray:
    samples = _decode(path, sound, sample_rate)
    if len(samples) < sample_rate:
        raise UserError("ambient file is shorter than 1 second",
                        "Use a recording of at least a few seconds; it is looped under the whole track", path=sound)
    if not _loudness_lufs(samples, sample_rate) > -70.0:
        raise UserError("ambient file is silent", "Use a recording with sound in it, or a built-in bed", path=sound)
    loop = _crossfade_loop(samples, fade_frames=min(round(1.5 * sample_rate), len(samples) // 4))
    return _normalised(loop, sample_rate, BED_LUFS)


def _decode(path: Path, sound: str, sample_rate: int) -> np.ndarray:
    """Any format ffmpeg reads -> (frames, 2) float32 at sample_rate, at most USER_MAX_SECONDS long."""
    ffmpeg = _ffmpeg()
    command = [ffmpeg, "-nostdin", "-v", "error", "-i", f"file:{path.resolve()}", "-t", str(USER_MAX_SECONDS),
               "-vn", "-f", "f32le", "-ac", "2", "-ar", str(sample_rate), "-"]
    result = subprocess.run(command, capture_output=True)
    if result.returncode != 0 or not result.stdout:
        raise UserError("not an audio file ffmpeg can read",
                        "Check that it plays in a media player, or convert it to .wav or .flac", path=sound)
    return np.frombuffer(result.stdout, dtype="<f4").reshape(-1, 2).copy()  # a writable array


def _crossfade_loop(samples: np.ndarray, fade_frames: int) -> np.ndarray:
    """Loop non-periodic material: the last `fade_frames` fade out (cos) over the first fading in (sin).

    The loop ends just before the fade's tail section starts, so its last frame runs straight on into
    its first; equal power keeps the loudness level through the fade on uncorrelated material.
    """
    keep = len(samples) - fade_frames
    loop = samples[:keep].astype(np.float64)
    angle = (np.arange(fade_frames) / fade_frames * np.pi / 2)[:, None]
    loop[:fade_frames] = samples[:fade_frames] * np.sin(angle) + samples[keep:] * np.cos(angle)
    return loop


# --- shared helpers ------------------------------------------------------------------------------

def _normalised(samples: np.ndarray, sample_rate: int, target_lufs: float) -> np.ndarray:
    """Scale to the target integrated loudness, but never let a peak reach full scale.

    Measured twice: BS.1770's absolute gate (-70 LUFS) lets more of a decaying tail count once the
    level changes, so one pass can land a few tenths of a dB off for the chime.
    """
    gain = 10 ** ((target_lufs - _loudness_lufs(samples, sample_rate)) / 20)
    gain *= 10 ** ((target_lufs - _loudness_lufs(samples * gain, sample_rate)) / 20)
    peak = float(np.max(np.abs(samples))) * gain
    if peak > 0.99:  # only a very spiky recording gets here: quieter beats clipped
        gain *= 0.99 / peak
    return (samples * gain).astype(np.float32)


def _loudness_lufs(samples: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness metered in 10 s blocks, so a 60 s loop is not copied to float64 whole."""
    meter = Meter(sample_rate, samples.shape[1])
    block_frames = 10 * sample_rate
    for start in range(0, len(samples), block_frames):
        meter.add(samples[start:start + block_frames])
    return meter.integrated_lufs()


def _raised_cosine(frames: int) -> np.ndarray:
    """A 0 -> 1 ramp of `frames` samples with zero slope at both ends (no click)."""
    return 0.5 - 0.5 * np.cos(np.pi * np.arange(frames) / max(frames - 1, 1))


def _ffmpeg() -> str:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise MissingToolError("ffmpeg is not installed", "Run ./scripts/setup, or install the Debian package ffmpeg")
    return ffmpeg


def _write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())


def _encode(path: Path, samples: np.ndarray, sample_rate: int, container: str, shown_path: Path) -> None:
    command = [_ffmpeg(), "-nostdin", "-v", "error", "-y", "-f", "f32le", "-ar", str(sample_rate), "-ac", "2",
               "-i", "-", "-f", container, f"file:{path}"]
    result = subprocess.run(command, input=samples.astype("<f4").tobytes(), capture_output=True)
    if result.returncode != 0:
        reason = result.stderr.decode(errors="replace").strip().splitlines()
        raise UserError("ffmpeg could not write the preview", reason[-1] if reason else "", path=shown_path)
