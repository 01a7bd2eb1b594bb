"""Speech stage: texts -> trimmed, level-matched mono clips at the render rate, cached by content.

Engines plug in through the small `Engine` protocol and are chosen by name. Every clip is verified
before use; a phrase an engine cannot speak is a clear error naming the phrase and its routine line.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from windown.errors import BuildError, UserError, closest
from windown.speech import cache as clip_cache
from windown.speech import clips

SAMPLE_RATE = 44100


class Engine(Protocol):
    """A speech engine. Two optional methods: `resolve(voice)` for engines whose voices are files
    (checks the file, returns the id), and `cache_id(voice)`, used in cache keys in place of
    `version()` (piper: its version, a hash of the voice file and its synthesis settings). An engine
    that knows when each word is said writes `<wav>.words.json` ([start_s, end_s, word] in its file)
    beside each WAV; `speak` moves the times onto the trimmed clip and caches them."""

    name: str

    def check(self) -> None:
        """Raise MissingToolError when the engine's program or voice is not installed."""

    def version(self) -> str:
        """Part of every cache key, so an engine upgrade re-synthesises."""

    def voices(self) -> list[tuple[str, str]]:
        """(voice id, description) pairs."""

    def default_voice(self) -> str: ...

    def synthesize(self, phrases: list[tuple[str, int]], voice: str, out_dir: Path) -> list[Path | Exception]:
        """One WAV per (text, rate in words per minute), or the exception for that phrase, in order.

        All of a build's phrases come in one call, whatever their rates, so an engine that starts
        workers starts them once; it may work in parallel."""


def get_engine(name: str) -> Engine:
    engines = _engines()
    if name not in engines:
        hint = closest(name, engines) or "Choose one of: " + ", ".join(engines)
        raise UserError(f"unknown speech engine '{name}'", hint)
    return engines[name]()


def _engines() -> dict[str, Callable[[], Engine]]:
    from windown.speech import espeak, festival, piper, pyttsx3_engine

    return {
        "piper": piper.PiperEngine,
        "pyttsx3": pyttsx3_engine.Pyttsx3Engine,
        "espeak-ng": espeak.EspeakEngine,
        "festival": festival.FestivalEngine,
    }


@dataclass(frozen=True)
class Request:
    text: str
    rate_wpm: int
    line: int | None = None  # the routine line the words came from, for error messages


def resolve_voice(engine: Engine, voice: str | None) -> str:
    """The engine's voice id for `voice`, named as `windown voices` lists it and the cue sheet writes it,
    or a UserError listing what the engine has (or naming the engine whose voice it is).

    Each engine has one naming: piper `en_US-joe-medium` (or an .onnx path), pyttsx3 `gmw/en-us+f3`,
    espeak-ng `en-us+f3`, festival `cmu_us_slt_arctic_hts`. Where variants are listed (`LANG+VARIANT`),
    a listed variant also goes on any listed language. An engine whose voices are files (piper)
    resolves them itself, checking the file."""
    try:
        return _resolve(engine, voice)
    except UserError as exc:
        owner = _engine_with_voice(voice, engine.name) if voice else None
        if owner is None:
            raise
        raise UserError(f"the {engine.name} engine has no voice '{voice}'",
                        f"'{voice}' is a voice of the {owner} engine: choose that engine with --engine {owner} "
                        f"(in a routine, `engine: {owner}` under `voice:`)") from exc


def _resolve(engine: Engine, voice: str | None) -> str:
    if hasattr(engine, "resolve"):
        return engine.resolve(voice)
    if voice is None or voice == engine.default_voice():
        return engine.default_voice()
    ids = [v for v, _ in engine.voices()]
    base, _, variant = voice.partition("+")
    if voice in ids or (base in ids and "+" not in base and
                        (not variant or any(i.endswith("+" + variant) for i in ids))):
        return voice
    hint = closest(voice, ids)
    raise UserError(f"the {engine.name} engine has no voice '{voice}'",
                    (hint + " " if hint else "") + f"Run `windown voices --engine {engine.name}` to list them")


def _engine_with_voice(voice: str, besides: str) -> str | None:
    """The installed engine other than `besides` that has this voice, for the error that names it."""
    for name, make in _engines().items():
        if name == besides:
            continue
        try:
            engine = make()
            engine.check()
            _resolve(engine, voice)
        except UserError:
            continue
        return name
    return None


class Clips(dict):
    """(text, rate) -> float32 clip, plus `words`: (text, rate) -> [(start_s, end_s, word)] within the
    clip, for engines that report word timings (piper); and what made them, for the cue sheet."""

    def __init__(self, engine: str = "", voice: str = ""):
        super().__init__()
        self.words: dict[tuple[str, int], list[tuple[float, float, str]]] = {}
        self.engine = engine
        self.voice = voice
        self.synthesised = 0  # phrases that were not in the cache


def speak(requests: list[Request], engine: Engine, voice: str, *, routine_path: str | None = None,
          cache_dir: Path | None = None,
          on_synth: Callable[[int], None] | None = None) -> Clips:
    """Clips for every (text, rate): from the cache, else synthesised in parallel and cached.

    Returns float32 mono arrays at SAMPLE_RATE. `on_synth(n)` reports how many phrases needed synthesis.
    An engine may offer `cache_id(voice)` (e.g. a hash of the voice file) in place of its version.
    """
    with Supply(requests, engine, voice, routine_path=routine_path, cache_dir=cache_dir) as supply:
        if on_synth:
            on_synth(supply.synthesised)
        supply.finish()
    return supply


class Supply(Clips):
    """The clips of one build as they become ready: cached ones at once, missing ones as the engine
    finishes them. `clip(key)` waits for one; `finish()` waits for the rest and caches them all.

    An engine that can (`stream(phrases, voice, out_dir, script_order=...)`, piper) yields (index, WAV
    or exception) as each phrase is done, and each clip is trimmed and levelled as it arrives, not after
    the last one. `streaming` asks it for script order, so a cold build's renderer can start on the
    first cues while later ones are still being spoken. Nothing goes into the cache until every clip is made, so an
    interrupted build leaves no clips of its own behind. Use as a context manager: leaving it stops the
    engine's workers and removes their files.
    """

    def __init__(self, requests: list[Request], engine: Engine, voice: str, *, routine_path: str | None = None,
                 cache_dir: Path | None = None, streaming: bool = False,
                 on_clip: Callable[[int, int], None] | None = None):
        super().__init__(engine.name, voice)
        self.energies: dict[tuple[str, int], np.ndarray] = {}  # K-weighted energy in 10 ms steps, from the cache
        self.speaker = engine  # `engine` (the name, from Clips) goes in the cue sheet and journal
        self.routine_path = routine_path
        self.streaming = streaming
        self.on_clip = on_clip or (lambda done, total: None)
        self.wanted: dict[tuple[str, int], Request] = {}
        for r in requests:  # script order: the order a renderer needs them in
            self.wanted.setdefault((r.text, r.rate_wpm), r)
        self.missing: dict[tuple[str, int], Path] = {}
        for key, path in cache_paths(list(self.wanted), engine, voice, cache_dir).items():
            clip = clip_cache.read(path)
            if clip is None:
                self.missing[key] = path
            else:
                self[key] = clip
                words = clip_cache.read_words(path)
                if words is not None:
                    self.words[key] = words
                energy = clip_cache.read_energy(path)
                if energy is not None and len(energy) == -(-(len(clip) + _fir_frames()) // ENERGY_STEP):
                    self.energies[key] = energy
        self.synthesised = len(self.missing)
        self._keys = list(self.missing)
        self._made = 0
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._results = None
        self._staged: dict[tuple[str, int], Path] = {}  # made clips kept on disk until they are cached
        self._caching: threading.Thread | None = None
        self._caching_error: BaseException | None = None

    @property
    def complete(self) -> bool:
        return self._made == len(self._keys)

    @property
    def streams(self) -> bool:
        """Whether clips arrive one by one in script order (piper); other engines give them all at once."""
        return self.streaming and hasattr(self.speaker, "stream")

    def __enter__(self) -> "Supply":
        if self._keys:
            self._tmp = tempfile.TemporaryDirectory(prefix="windown-speech-")
            out_dir = Path(self._tmp.name)
            if hasattr(self.speaker, "stream"):  # each clip as it is done, in script order when streaming
                self._results = self.speaker.stream(self._keys, self.voice, out_dir, script_order=self.streaming)
            else:
                self._results = enumerate(self.speaker.synthesize(self._keys, self.voice, out_dir))
        return self

    def __exit__(self, *exc) -> None:
        try:
            if hasattr(self._results, "close"):
                self._results.close()  # a generator's close stops the engine's workers
        finally:
            self._results = None
            if self._caching is not None:  # its clips are read from the scratch folder removed below
                self._caching.join()
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None

    def clip(self, key: tuple[str, int]) -> np.ndarray:
        """The clip for (text, rate), waiting for the engine to finish it if need be."""
        while key not in self and key not in self._staged:
            self._take_next()
        return self[key]

    def release(self, key: tuple[str, int]) -> None:
        """Let go of a made clip the renderer has finished with (it is read back from the scratch folder
        if asked for again, and cached from there), so a cold build holds only the clips it still needs
        while piper's workers run beside it."""
        if key in self._staged:
            self.pop(key, None)

    def __missing__(self, key: tuple[str, int]) -> np.ndarray:
        if key in self._staged:
            return np.load(self._staged[key], allow_pickle=False)
        raise KeyError(key)

    def frames(self, key: tuple[str, int]) -> int:
        return len(self.clip(key))

    def finish(self) -> None:
        """Wait for every missing clip, then for all of them to be in the cache."""
        while not self.complete:
            self._take_next()
        if self._caching is None:
            self._cache_made()
        else:
            self._caching.join()
            if self._caching_error is not None:
                raise self._caching_error
        self.missing = {}

    def _cache_in_background(self) -> None:
        """Every clip is made: cache them on a thread while the renderer goes on (a cold build's
        sleep tail is still being encoded), instead of after the last block; finish() waits for it."""
        def cache() -> None:
            try:
                self._cache_made()
            except BaseException as exc:  # said by finish(), in the build's own thread
                self._caching_error = exc

        self._caching = threading.Thread(target=cache, name="windown-clip-cache", daemon=True)
        self._caching.start()

    def _cache_made(self) -> None:
        for key, path in self.missing.items():
            clip = self[key]
            if key not in self.energies:  # the same steps a warm build reads back, so both predict alike
                self.energies[key] = stepped_energy(clip)
            if key in self.words:
                clip_cache.write_words(path, self.words[key])
            clip_cache.write_energy(path, self.energies[key])
            clip_cache.write(path, clip)

    def estimated_frames(self, key: tuple[str, int]) -> int:
        """A clip's length before it exists (its real length once it does), from its words and rate."""
        if key in self:
            return len(self[key])
        return round(sum(speech_s for speech_s, _ in estimated_sentences(*key)) * SAMPLE_RATE)

    def energy(self, key: tuple[str, int]) -> np.ndarray:
        """K-weighted energy per frame (both channels) of a clip, for the renderer's loudness prediction:
        from the cached 10 ms steps (each step's energy spread evenly over it) when there are some."""
        stepped = self.energies.get(key)
        if stepped is None:
            return 2 * _k_weighted(self[key]) ** 2
        return np.repeat(2 * stepped / ENERGY_STEP, ENERGY_STEP)

    def estimated_energy(self, key: tuple[str, int]) -> np.ndarray:
        """K-weighted energy per frame (both channels) of a clip: the real clip's where it exists, else a
        stand-in: every sentence at the level clips are levelled to (clips.VOICE_LUFS), the pauses between
        them silent. Used to fix a cold build's loudness before its clips are made."""
        if key in self:
            return self.energy(key)
        power = 2 * 10 ** ((clips.VOICE_LUFS + STAND_IN_OFFSET_DB + 0.691) / 10)
        parts = []
        for speech_s, pause_s in estimated_sentences(*key):
            parts += [np.full(round(speech_s * SAMPLE_RATE), power), np.zeros(round(pause_s * SAMPLE_RATE))]
        return np.concatenate(parts)

    def _take_next(self) -> None:
        if self._results is None:
            raise RuntimeError("a Supply is used outside its `with` block")
        try:
            i, result = next(self._results)
        except StopIteration:
            raise RuntimeError(f"the {self.speaker.name} engine stopped before every phrase was spoken") from None
        key = self._keys[i]
        if isinstance(result, Exception):  # one more try, in a fresh call: pyttsx3's Linux driver drops a file
            retry_dir = Path(self._tmp.name) / f"retry-{i}"
            retry_dir.mkdir()
            result = self.speaker.synthesize([key], self.voice, retry_dir)[0]
        self._accept(key, result, i)
        self._made += 1
        self.on_clip(self._made, len(self._keys))
        if self.complete and hasattr(self._results, "close"):
            self._results.close()  # every phrase is spoken: the workers go now, not when the track is done
            self._cache_in_background()

    def _accept(self, key: tuple[str, int], result: Path | Exception, i: int) -> None:
        req, name = self.wanted[key], self.speaker.name
        if isinstance(result, Exception):
            raise BuildError(f"the {name} engine could not speak \"{_short(req.text)}\" ({result})",
                             "Check the words on that line, or try another engine with --engine",
                             path=self.routine_path, line=req.line)
        try:
            clip, start_s = clips.process_with_start(result, SAMPLE_RATE)
        except clips.UnreadableClip as exc:
            raise BuildError(f"the {name} engine wrote unreadable audio for \"{_short(req.text)}\" "
                             f"({exc})", "Try another voice or engine with --voice or --engine",
                             path=self.routine_path, line=req.line) from None
        if clip is None:
            raise BuildError(f"the {name} engine produced silence for \"{_short(req.text)}\"",
                             "Check the words on that line, or try another engine with --engine",
                             path=self.routine_path, line=req.line)
        words = _words_in_clip(result, start_s, len(clip) / SAMPLE_RATE)
        if words is not None:
            self.words[key] = words
        self[key] = clip
        if self.streams:
            self._staged[key] = Path(self._tmp.name) / f"clip-{i}.npy"
            np.save(self._staged[key], clip, allow_pickle=False)
            self.energies[key] = stepped_energy(clip)


ENERGY_STEP = clip_cache.ENERGY_STEP_FRAMES


def _k_weighted(clip: np.ndarray) -> np.ndarray:
    from windown import loudness

    return loudness.k_filter(clip, SAMPLE_RATE).astype(np.float64)


def _fir_frames() -> int:
    from windown import loudness

    return len(loudness.k_impulse(SAMPLE_RATE)) - 1


def stepped_energy(clip: np.ndarray) -> np.ndarray:
    """A clip's K-weighted energy (one channel) summed over 10 ms steps, its filter's ringing included."""
    squares = _k_weighted(clip) ** 2
    padded = np.zeros(-(-len(squares) // ENERGY_STEP) * ENERGY_STEP)
    padded[:len(squares)] = squares
    return padded.reshape(-1, ENERGY_STEP).sum(axis=1)


SENTENCE_PAUSE_S = 0.45  # roughly what the engines leave between sentences (piper: exactly this)
# Clips run a little longer than their words at the rate (the edges kept around the words, comma
# pauses): with this, the estimated speech of the four presets came within 2 to 4% of the real clips'.
SENTENCE_EXTRA_S = 0.2
# A real clip levelled to VOICE_LUFS dips between words; a constant stand-in does not, so a mix of
# stand-ins measured 0.17 to 0.32 LU louder than the same mix of the real clips (the four presets,
# piper's bundled voice). Set lower by about that, the cold build's predicted gain lands within 0.1 LU.
STAND_IN_OFFSET_DB = -0.25


def estimated_sentences(text: str, rate_wpm: int) -> list[tuple[float, float]]:
    """(seconds of speech, seconds of pause after it) for each sentence of a phrase not yet spoken,
    from its words and rate: the engines are held to their rate (piper within 8%)."""
    parts = [p for p in re.split(r"(?<=[.!?])\s+", text.strip()) if p] or [text]
    out = [(max(0.3, len(p.split()) * 60 / rate_wpm + SENTENCE_EXTRA_S), SENTENCE_PAUSE_S) for p in parts]
    out[-1] = (out[-1][0], 0.0)
    return out


def cache_paths(keys: list[tuple[str, int]], engine: Engine, voice: str, cache_dir: Path | None = None
                ) -> dict[tuple[str, int], Path]:
    """Where the clip for each (text, rate) is cached. An engine may offer `cache_id(voice)` (e.g. a
    hash of the voice file) in place of its version, so another voice file re-synthesises."""
    root = (cache_dir or clip_cache.cache_dir()) / "clips" / engine.name
    version = engine.cache_id(voice) if hasattr(engine, "cache_id") else engine.version()
    return {key: root / (clip_cache.clip_key(engine.name, version, voice, key[1], key[0]) + ".npy") for key in keys}


def cached(keys: list[tuple[str, int]], engine: Engine, voice: str, cache_dir: Path | None = None
           ) -> tuple[Clips, dict[tuple[str, int], Path]]:
    """The clips already in the cache for (text, rate) `keys`, and where each missing one would go.

    Nothing is synthesised, so `windown validate` can judge fits with real lengths where they exist."""
    out = Clips(engine.name, voice)
    missing: dict[tuple[str, int], Path] = {}
    for key, path in cache_paths(keys, engine, voice, cache_dir).items():
        clip = clip_cache.read(path)
        if clip is None:
            missing[key] = path
        else:
            out[key] = clip
            words = clip_cache.read_words(path)
            if words is not None:
                out.words[key] = words
    return out, missing


def _words_in_clip(wav: Path, start_s: float, length_s: float) -> list[tuple[float, float, str]] | None:
    """The engine's word timings (seconds in its WAV, in `<wav>.words.json`) moved to the trimmed clip."""
    try:
        raw = json.loads(Path(wav).with_suffix(".words.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    cap_s = int(length_s * 1000) / 1000  # whole ms, never past the clip's last sample
    return [(min(cap_s, round(max(0.0, a - start_s), 3)), min(cap_s, round(max(0.0, b - start_s), 3)), str(w))
            for a, b, w in raw]


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def default_workers() -> int:
    """Synthesis workers: one per core, or $WINDOWN_SPEECH_WORKERS (batch sets it so that parallel
    jobs share the cores rather than each taking all of them)."""
    override = os.environ.get("WINDOWN_SPEECH_WORKERS", "")
    if override.isdigit() and int(override) > 0:
        return int(override)
    return max(1, os.cpu_count() or 1)


def run_parallel(func: Callable[[int], Path], count: int) -> list[Path | Exception]:
    """Run func(i) for i in range(count) on a thread pool; each result or its exception, in order."""
    results: list[Path | Exception] = [RuntimeError("not run")] * count
    with concurrent.futures.ThreadPoolExecutor(default_workers()) as pool:
        futures = {pool.submit(func, i): i for i in range(count)}
        for future in concurrent.futures.as_completed(futures):
            i = futures[future]
            try:
                results[i] = future.result()
            except Exception as exc:  # reported per phrase by speak()
                results[i] = exc
    return results
