"""The whole pipeline, stage by stage: load -> personalise -> compose -> speak -> place -> render -> export."""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from windown import ambient, compose, export, journal, loudness, personalise, routine, settings, speech, timeline
from windown.render import Mix, Renderer, tail_frames

SAMPLE_RATE = speech.SAMPLE_RATE


@dataclass
class Plan:
    """Everything decided before any audio is rendered (what `windown script` shows)."""

    routine: routine.Routine
    script: compose.Script
    timeline: timeline.Timeline
    clips: speech.Clips  # with the engine and voice that spoke them, and word timings where it gives them
    changes: list[str] = field(default_factory=list)


@dataclass
class Result:
    routine: routine.Routine  # as personalised: what the track contains, for the journal
    changes: list[str]
    mp3: Path
    sidecars: list[Path]
    duration_s: float
    speech_end_s: float
    size_bytes: int
    loudness_lufs: float | None  # measured from the rendered mix; None when the build was asked not to
    peak_db: float | None
    synthesised: int
    guided_ms: int  # up to the end of the closing words (what the journal records)
    engine: str
    voice: str


@dataclass(frozen=True)
class JournalUse:
    """How a build uses the journal: read its verdicts, and whether the caller will record the night."""

    path: str | os.PathLike | None = None  # None: $WINDOWN_JOURNAL or the default file
    record: bool = True


def prepare(source: str | routine.Routine, profile: personalise.Profile | None = None,
            journal_use: JournalUse | None = None) -> tuple[routine.Routine, list[str]]:
    """Load and personalise: the routine as this person will hear it, plus what changed and why.

    `source` is a routine file or preset name, or a routine a batch worker was sent already loaded.
    With `journal_use`, the journal's verdicts shape the track (unless the settings say `journal:
    false`, when it is not even read). A target length is fitted against real timelines: each try
    is composed, spoken and placed (`guided_ms_measure`), so the length holds in the MP3.
    """
    r = source if isinstance(source, routine.Routine) else routine.load(source)
    profile = profile or personalise.Profile()
    verdicts: list[personalise.Verdict] = []
    if journal_use is not None and personalise.apply_settings(r, profile).journal:
        path = journal.default_path(journal_use.path)
        if journal_use.record:  # a foreign or read-only journal is reported before minutes of work, not after
            journal.open_journal(path).close()
        verdicts = journal.verdicts_at(path)
    return personalise.personalise(r, profile, guided_ms_measure(), verdicts)


def guided_ms_measure(cache_dir: Path | None = None) -> Callable[[routine.Routine], int]:
    """The length of a routine's guided part (up to the end of the closing words), from its placed
    timeline, for the many tries of one length fit: each phrase's clip is read from the cache (or
    spoken) once, on the first try that says it, not again on every try."""
    frames: dict[tuple[str, int], int] = {}

    def guided_ms(r: routine.Routine) -> int:
        script = compose.compose(r)
        new = [s for s in script.says() if (s.text, s.rate_wpm) not in frames]
        if new:  # speech.speak asks for each (text, rate) once, naming its first line if it fails
            frames.update({key: len(clip) for key, clip in speak_says(new, r, cache_dir).items()})
        tl = timeline.place(script, frames, SAMPLE_RATE, ambient.chime_frames())
        return int(tl.ms(tl.end_frame))

    return guided_ms


def plan(r: routine.Routine, changes: list[str] | None = None, *, cache_dir: Path | None = None,
         on_synth: Callable[[int], None] | None = None) -> Plan:
    """Compose, speak and place: the exact timed script with real clip lengths. `on_synth(n)` hears how many
    phrases are not in the speech cache, before they are spoken."""
    script = compose.compose(r, changes)
    clips = speak(script, r, cache_dir, on_synth)
    tl = timeline.place(script, {k: len(v) for k, v in clips.items()}, SAMPLE_RATE, ambient.chime_frames())
    return Plan(r, script, tl, clips, list(changes or []))


def speak(script: compose.Script, r: routine.Routine, cache_dir: Path | None = None,
          on_synth: Callable[[int], None] | None = None) -> speech.Clips:
    """Every cue of the script as a clip, from the cache or the routine's engine and voice."""
    return speak_says(script.says(), r, cache_dir, on_synth)


def speak_says(says: list[compose.Say], r: routine.Routine, cache_dir: Path | None = None,
               on_synth: Callable[[int], None] | None = None) -> speech.Clips:
    """These cues as clips, from the cache or the routine's engine and voice."""
    engine, voice = engine_and_voice(r)
    requests = [speech.Request(s.text, s.rate_wpm, s.line) for s in says]
    return speech.speak(requests, engine, voice, routine_path=r.path, cache_dir=cache_dir, on_synth=on_synth)


def engine_and_voice(r: routine.Routine) -> tuple[speech.Engine, str]:
    """The routine's speech engine, checked, and the voice id it resolves the routine's voice to."""
    engine = speech.get_engine(r.settings.voice.engine)
    engine.check()
    return engine, speech.resolve_voice(engine, r.settings.voice.voice)


def mix_for(r: routine.Routine, loudness_lufs: float = settings.default("loudness")) -> Mix:
    s = r.settings
    return Mix(loudness_lufs=loudness_lufs, ambient_level_db=s.ambient.level_db, tail_ms=s.tail_ms)


def default_output(r: routine.Routine) -> Path:
    return Path("output") / f"{safe_name(r.name)}.mp3"


def safe_name(name: str) -> str:
    """A file name that cannot leave its folder, whatever a routine or batch file calls itself."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip(".-")
    return cleaned[:100] or "track"


def build(source: str | routine.Routine, out: str | os.PathLike | None = None, *, profile: personalise.Profile | None = None,
          journal_use: JournalUse | None = None, loudness_lufs: float = settings.default("loudness"),
          encoding: export.Encoding = export.Encoding.choose(), cache_dir: Path | None = None,
          on_progress: Callable[[str, int, int], None] | None = None, measure: bool = True,
          split: bool = True) -> Result:
    """Build one MP3 and its sidecars, stage by stage. Nothing is written unless every stage succeeds.

    `measure` meters the mix as it streams (BS.1770 loudness and sample peak, for the summary line).
    It costs about a tenth of a build's CPU; batch jobs, which report no loudness, turn it off.
    `split` lets a cold build's rest of the track (the sleep tail, mostly), once its length is known,
    go to two encoders at once (export.Split); batch jobs, which already keep every core busy, turn it
    off. A warm build knows its length from the start and keeps one encoder: it runs at the encoder's
    own pace already, and the half after a join is encoded without LAME's bit reservoir, about 12%
    more bytes for it (measured on bedtime-lower-back).
    The caller records the night in the journal (`journal.session_of(result)`), where the track lands.
    `out` is a file (`.mp3` added when it has no extension) or a folder for `<name>.mp3` (export.output_file).
    """
    progress = on_progress or (lambda stage, done, total: None)
    out_file = export.output_file(out) if out is not None else None  # a bad name is said before any work
    r, changes = prepare(source, profile, journal_use)                                       # load, personalise
    out = out_file or (Path(out) / f"{safe_name(r.name)}.mp3" if out is not None else default_output(r))
    export.check_output(out)  # a bad output place, a missing encoder or sound file: said before minutes of work
    bed = ambient.load_bed(r.settings.ambient.sound, routine_file=r.path, sample_rate=SAMPLE_RATE,
                           origin=r.settings.ambient.origin)
    progress("speech", 0, 1)
    script = compose.compose(r, changes)                                                     # compose
    mix = mix_for(r, loudness_lufs)
    meter = loudness.Meter(SAMPLE_RATE, 2) if measure else None
    with supply(script, r, cache_dir, lambda done, total: progress("speech", done, total)) as clips:  # speak
        renderer = renderer_for(script, clips, bed, mix)                                     # place, render
        halves = export.Split(lambda: renderer.total_frames,
                              lambda start, stop: renderer.blocks(start_frame=start, stop_frame=stop, releases=False))
        written = export.write_track(renderer.blocks(), out, title=r.title, timeline=renderer.timeline,  # export
                                     total_frames=lambda: renderer.total_frames, words=clips.words,
                                     settings=settings_summary(r, clips, mix), encoding=encoding,
                                     split=halves if split and renderer.placer is not None else None, meter=meter,
                                     on_progress=lambda done: progress("render", done, renderer.progress_total(done)))
        clips.finish()  # every clip was used, so all are made: now they go into the cache
    tl = renderer.timeline
    return Result(r, changes, written.mp3, written.sidecars, written.duration_s, tl.speech_end_frame / SAMPLE_RATE,
                  written.size_bytes, meter.integrated_lufs() if meter else None, meter.peak_db if meter else None,
                  clips.synthesised, int(tl.ms(tl.end_frame)), clips.engine, clips.voice)


def cue_sheet(p: Plan) -> dict:
    """The cue sheet `build` would write for this plan (at the default loudness), unrendered."""
    mix = mix_for(p.routine)
    tl = p.timeline
    return export.track_sheet(tl, tl.end_frame + tail_frames(mix, tl.sample_rate), title=p.routine.title,
                              words=p.clips.words, settings=settings_summary(p.routine, p.clips, mix))


def supply(script: compose.Script, r: routine.Routine, cache_dir: Path | None,
           on_clip: Callable[[int, int], None] | None = None) -> speech.Supply:
    """The build's clips as they are made: cached ones at once, missing ones in script order (see render)."""
    engine, voice = engine_and_voice(r)
    requests = [speech.Request(s.text, s.rate_wpm, s.line) for s in script.says()]
    return speech.Supply(requests, engine, voice, routine_path=r.path, cache_dir=cache_dir, streaming=True,
                         on_clip=on_clip)


def renderer_for(script: compose.Script, clips: speech.Supply, bed: ambient.Bed | None, mix: Mix) -> Renderer:
    """With every clip at hand, the timeline is placed whole and the master gain comes from the clips.
    Otherwise (a cold build with piper) the renderer places cues as their clips arrive, so ffmpeg encodes
    the first minutes while later phrases are still spoken; the master gain, which must be fixed before the first
    block, is predicted from an estimated timeline (each missing clip's length from its words and rate,
    its energy at the level every clip is levelled to: see speech.Supply.estimated_energy). So a cold
    build's gain can differ from a warm rebuild's by a tenth of a LU or so (measured on the presets)."""
    chime_frames = ambient.chime_frames()
    if not clips.streams:  # an engine that gives every clip at once (espeak-ng, pyttsx3, festival): quick anyway
        clips.finish()
    if clips.complete:
        tl = timeline.place(script, {k: len(v) for k, v in clips.items()}, SAMPLE_RATE, chime_frames)
        return Renderer(tl, clips, bed, mix, speech_energy=clips.energy)
    lengths = {key: clips.estimated_frames(key) for key in clips.wanted}  # real ones where made
    estimate = timeline.place(script, lengths, SAMPLE_RATE, chime_frames, check_slots=False)
    predicted = Renderer(estimate, clips, bed, mix, speech_energy=clips.estimated_energy)
    placer = timeline.Placer(script, clips.frames, SAMPLE_RATE, chime_frames)
    uses = collections.Counter((say.text, say.rate_wpm) for say in script.says())
    return Renderer(placer.timeline, clips, bed, mix, placer=placer, before_gain_lufs=predicted.before_gain_lufs,
                    estimated_total_frames=predicted.total_frames, release=clips.release, uses=uses)


def settings_summary(r: routine.Routine, clips: speech.Clips, mix: Mix) -> dict:
    """The cue sheet's `settings`: every setting from the table (the tail and engine among them), the voice
    the engine resolved (the table's is None for "its default"), and the mix's loudness."""
    out = settings.summary(r.settings)
    out.update(voice=clips.voice, loudness_lufs=mix.loudness_lufs, sample_rate=SAMPLE_RATE)
    return out
