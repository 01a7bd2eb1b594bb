"""Speech stage: texts -> trimmed, level-matched mono clips at the render rate, cached by content.

Engines plug in through the small `Engine` protocol and are chosen by name. Every clip is verified
before use; a phrase an engine cannot speak is a clear error naming the phrase and its routine line.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

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
    wanted: dict[tuple[str, int], Request] = {}
    for r in requests:
        wanted.setdefault((r.text, r.rate_wpm), r)
    out, missing = cached(list(wanted), engine, voice, cache_dir)
    out.synthesised = len(missing)
    if on_synth:
        on_synth(len(missing))
    if not missing:
        return out
    keys = list(missing)
    with tempfile.TemporaryDirectory(prefix="windown-speech-") as tmp:
        results = engine.synthesize(keys, voice, Path(tmp))
        failed = [i for i, r in enumerate(results) if isinstance(r, Exception)]
        if failed:  # one more try in a fresh call: pyttsx3's Linux driver drops a file now and then
            retry_dir = Path(tmp) / "retry"
            retry_dir.mkdir()
            retried = engine.synthesize([keys[i] for i in failed], voice, retry_dir)
            for i, result in zip(failed, retried):
                results[i] = result
        for key, result in zip(keys, results):
            req = wanted[key]
            if isinstance(result, Exception):
                raise BuildError(f"the {engine.name} engine could not speak \"{_short(req.text)}\" ({result})",
                                 "Check the words on that line, or try another engine with --engine",
                                 path=routine_path, line=req.line)
            try:
                clip, start_s = clips.process_with_start(result, SAMPLE_RATE)
            except clips.UnreadableClip as exc:
                raise BuildError(f"the {engine.name} engine wrote unreadable audio for \"{_short(req.text)}\" "
                                 f"({exc})", "Try another voice or engine with --voice or --engine",
                                 path=routine_path, line=req.line) from None
            if clip is None:
                raise BuildError(f"the {engine.name} engine produced silence for \"{_short(req.text)}\"",
                                 "Check the words on that line, or try another engine with --engine",
                                 path=routine_path, line=req.line)
            words = _words_in_clip(result, start_s, len(clip) / SAMPLE_RATE)
            if words is not None:
                clip_cache.write_words(missing[key], words)
                out.words[key] = words
            clip_cache.write(missing[key], clip)
            out[key] = clip
    return out


def cached(keys: list[tuple[str, int]], engine: Engine, voice: str, cache_dir: Path | None = None
           ) -> tuple[Clips, dict[tuple[str, int], Path]]:
    """The clips already in the cache for (text, rate) `keys`, and where each missing one would go.

    Nothing is synthesised, so `windown validate` can judge fits with real lengths where they exist."""
    root = (cache_dir or clip_cache.cache_dir()) / "clips"
    version = engine.cache_id(voice) if hasattr(engine, "cache_id") else engine.version()
    out = Clips(engine.name, voice)
    missing: dict[tuple[str, int], Path] = {}
    for key in keys:
        path = root / engine.name / (clip_cache.clip_key(engine.name, version, voice, key[1], key[0]) + ".npy")
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
