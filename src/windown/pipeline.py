"""The whole pipeline, stage by stage: load -> personalise -> compose -> speak -> place -> render -> export."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from windown import ambient, compose, export, loudness, personalise, routine, settings, speech, timeline
from windown.errors import UserError
from windown.render import Mix, Renderer

SAMPLE_RATE = speech.SAMPLE_RATE


@dataclass
class Plan:
    """Everything decided before any audio is rendered."""

    routine: routine.Routine
    script: compose.Script
    timeline: timeline.Timeline
    clips: dict[tuple[str, int], np.ndarray]
    engine: str
    voice: str
    synthesised: int = 0


@dataclass
class Result:
    mp3: Path
    sidecars: list[Path]
    duration_s: float
    speech_end_s: float
    size_bytes: int
    loudness_lufs: float | None  # measured from the rendered mix; None when the build was asked not to
    peak_db: float | None
    synthesised: int
    changes: list[str] = field(default_factory=list)
    guided_ms: int = 0  # up to the end of the closing words (what the journal records)
    engine: str = ""
    voice: str = ""


def prepare(name: str, profile: personalise.Profile | None = None, verdicts: list[personalise.Verdict] | None = None
            ) -> tuple[routine.Routine, list[str]]:
    """Load and personalise: the routine as this person will hear it, plus what changed and why.

    A target length is fitted against the real timeline (real clip lengths), so it holds in the MP3.
    `verdicts` come from the journal (journal.verdicts_at); none without one.
    """
    return personalise.personalise(routine.load(name), profile or personalise.Profile(), guided_ms, verdicts or ())


def guided_ms(r: routine.Routine) -> int:
    """The length of the guided part (up to the end of the closing words), from the placed timeline."""
    p = plan(r)
    return int(p.timeline.ms(p.timeline.end))


def plan(r: routine.Routine, changes: list[str] | None = None, *, cache_dir: Path | None = None,
         on_synth: Callable[[int], None] | None = None) -> Plan:
    """Compose, speak and place: the exact timed script with real clip lengths."""
    script = compose.compose(r, changes)
    engine = speech.get_engine(r.settings.voice.engine)
    engine.check()
    voice = speech.resolve_voice(engine, r.settings.voice.voice)
    requests = [speech.Request(s.text, s.rate_wpm, s.line) for s in script.says()]
    synthesised = []
    clips = speech.speak(requests, engine, voice, routine_path=r.path, cache_dir=cache_dir,
                         on_synth=lambda n: (synthesised.append(n), on_synth and on_synth(n)))
    chime_frames = len(ambient.chime(SAMPLE_RATE))
    tl = timeline.place(script, {k: len(v) for k, v in clips.items()}, SAMPLE_RATE, chime_frames)
    return Plan(r, script, tl, clips, engine.name, voice, sum(synthesised))


def mix_for(r: routine.Routine, loudness_lufs: float = -18.0) -> Mix:
    s = r.settings
    return Mix(loudness_lufs=loudness_lufs, ambient_level_db=s.ambient.level_db, tail_ms=s.tail_ms)


def default_output(r: routine.Routine) -> Path:
    return Path("output") / f"{safe_name(r.name)}.mp3"


def safe_name(name: str) -> str:
    """A file name that cannot leave its folder, whatever a routine or batch file calls itself."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip(".-")
    return cleaned[:100] or "track"


def build(r: routine.Routine, out: Path, *, changes: list[str] | None = None, loudness_lufs: float = -18.0,
          encoding: export.Encoding = export.Encoding.choose(), cache_dir: Path | None = None,
          on_progress: Callable[[str, int, int], None] | None = None, measure: bool = True) -> Result:
    """Build one MP3 and its sidecars. Nothing is written unless every stage succeeds.

    `measure` meters the mix as it streams (BS.1770 loudness and sample peak, for the summary line).
    It costs about a tenth of a build's CPU; batch jobs, which report no loudness, turn it off.
    """
    out = Path(out)
    check_output(out)
    export.ffmpeg_path()  # a missing encoder is reported before minutes of work, not after
    bed = ambient.load_bed(r.settings.ambient.sound, sample_rate=SAMPLE_RATE, origin=r.settings.ambient.origin)
    if on_progress:
        on_progress("speech", 0, 1)
    p = plan(r, changes, cache_dir=cache_dir)
    mix = mix_for(r, loudness_lufs)
    renderer = Renderer(p.timeline, p.clips, bed, mix)
    meter = loudness.Meter(SAMPLE_RATE, 2) if measure else None

    def metered():
        for block in renderer.blocks(lambda done, total: on_progress and on_progress("render", done, total)):
            if meter is not None:
                meter.add(block)
            yield block

    total_ms = renderer.total_frames * 1000 // SAMPLE_RATE
    chapters = chapter_list(p.timeline, total_ms)
    tags = {"title": r.title, "artist": "windown", "album": "windown", "genre": "Meditation",
            "date": str(datetime.date.today().year), "comment": "Made with windown"}
    size = export.encode_mp3(metered(), out, sample_rate=SAMPLE_RATE, tags=tags, chapters=chapters,
                             encoding=encoding)
    sheet = export.cue_sheet(title=r.title, duration_s=total_ms / 1000, speech_end_s=p.timeline.speech_end / SAMPLE_RATE,
                             cues=cue_list(p.timeline), chapters=chapters, settings=settings_summary(p, mix))
    sidecars = export.write_sidecars(out, sheet)
    lufs, peak_db = (meter.integrated_lufs(), meter.peak_db) if meter is not None else (None, None)
    return Result(out, sidecars, total_ms / 1000, p.timeline.speech_end / SAMPLE_RATE, size,
                  lufs, peak_db, p.synthesised, list(changes or []), int(p.timeline.ms(p.timeline.end)), p.engine,
                  p.voice)


def check_output(out: Path) -> None:
    folder = out.parent if str(out.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the output folder ({exc.strerror})",
                        "Choose another place with -o", path=folder) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError("the output folder is not writable", "Choose another place with -o, or fix its permissions",
                        path=folder)
    if out.is_dir():
        raise UserError("the output path is a folder", "Give a file name ending in .mp3", path=out)


def chapter_list(tl: timeline.Timeline, total_ms: int) -> list[export.Chapter]:
    out = []
    for i, span in enumerate(tl.chapters):
        end_ms = total_ms if i == len(tl.chapters) - 1 else int(tl.ms(span.stop))
        out.append(export.Chapter(span.label, int(tl.ms(span.start)), end_ms, span.stretch))
    return out


def cue_list(tl: timeline.Timeline) -> list[dict]:
    return [{"start_ms": int(round(tl.ms(e.start))), "end_ms": int(round(tl.ms(e.stop))), "text": e.text,
             "chapter": e.chapter or None} for e in tl.events if e.kind == "speech"]


def settings_summary(p: Plan, mix: Mix) -> dict:
    """The cue sheet's `settings`: every setting from the table, the voice the engine resolved, and the mix."""
    out = settings.summary(p.routine.settings)
    out.update(engine=p.engine, voice=p.voice, tail_s=mix.tail_ms / 1000, loudness_lufs=mix.loudness_lufs,
               sample_rate=SAMPLE_RATE)
    return out
