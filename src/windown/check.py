"""Check stage (`windown validate`): what a build would refuse, found without making any audio.

A build can stop at every stage: the routine file (load), the profile, the journal and a length the
routine cannot reach (personalise), the speech engine and its voice, where the ambient file is, and
words that do not fit their hold (place). `check` runs each of those stages as the build does. It
makes no audio, so three failures are left to the build: an ambient file ffmpeg cannot decode, an
engine that cannot speak a phrase, and encoding and writing the MP3.

Fitting words into holds needs their spoken length. A cue already in the speech cache (from an
earlier `script` or `build` with the same engine, voice and rate) is judged on its real length, as
the build judges it. Any other cue is judged on an estimate from its words and the speaking rate:
if even the fastest engine could not say it in time, it is an error on its line; if a slow engine
might not, it is a warning telling how to check with real speech.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from windown import ambient, compose, journal, personalise, routine, speech, timeline
from windown.errors import RoutineWarning

SAMPLE_RATE = speech.SAMPLE_RATE
# Spoken length against words * 60 s / rate, measured on 25 library cues at 100 to 300 wpm:
# espeak-ng, pyttsx3 and festival 0.70 to 1.40 (mean 0.84 to 0.99), piper about 0.95.
FLOOR_RATIO = 0.6     # below every engine: words that overrun at this speed surely overrun in the build
TYPICAL_RATIO = 1.0   # for measuring the guided length when a `length` is fitted, and sizing a fix
GENEROUS_RATIO = 1.4  # the slowest seen: words that overrun only at this speed may overrun (a warning)


@dataclass
class Checked:
    routine: routine.Routine  # as personalised: what the build would make
    changes: list[str]
    warnings: list[RoutineWarning] = field(default_factory=list)
    estimated: int = 0  # cues whose length was estimated (not in the speech cache)


def estimate_frames(text: str, rate_wpm: int, ratio: float) -> int:
    return int(len(text.split()) * 60 * SAMPLE_RATE / rate_wpm * ratio)


def check(source: str | routine.Routine, profile: personalise.Profile | None = None,
          journal_path: str | None = None, use_journal: bool = True, cache_dir: Path | None = None) -> Checked:
    """Every stage of a build up to placing, with cached clip lengths where they exist; raises the error
    the build would raise (same line), or returns what it found, warnings included."""
    r = source if isinstance(source, routine.Routine) else routine.load(source)
    profile = profile or personalise.Profile()
    chosen = personalise.apply_settings(r, profile)
    sound = chosen.ambient
    if sound.sound not in ambient.BED_NAMES:
        with ambient.reported_at(sound.origin):
            ambient.find_file(sound.sound, r.path)
    engine = speech.get_engine(chosen.voice.engine)
    engine.check()
    voice = speech.resolve_voice(engine, chosen.voice.voice)
    verdicts = journal.verdicts_at(journal_path) if use_journal and chosen.journal else []

    cached_frames: dict[tuple[str, int], int] = {}  # each phrase looked up in the cache once, not once a try
    not_cached: set[tuple[str, int]] = set()

    def lengths(script: compose.Script, ratio: float) -> tuple[dict, set]:
        keys = list(dict.fromkeys((s.text, s.rate_wpm) for s in script.says()))
        new = [key for key in keys if key not in cached_frames and key not in not_cached]
        if new:
            clips, missing = speech.cached(new, engine, voice, cache_dir)
            cached_frames.update({key: len(clip) for key, clip in clips.items()})
            not_cached.update(missing)
        frames = {key: cached_frames[key] if key in cached_frames else estimate_frames(key[0], key[1], ratio)
                  for key in keys}
        return frames, {key for key in keys if key in not_cached}

    def measure(candidate: routine.Routine) -> int:
        script = compose.compose(candidate)
        frames, missing = lengths(script, TYPICAL_RATIO)
        tl = timeline.place(script, frames, SAMPLE_RATE, ambient.chime_frames(), estimated=missing)
        return int(tl.ms(tl.end_frame))

    personal, changes = personalise.personalise(r, profile, measure, verdicts)
    script = compose.compose(personal, changes)
    frames, missing = lengths(script, GENEROUS_RATIO)
    tl = timeline.place(script, frames, SAMPLE_RATE, ambient.chime_frames(), estimated=missing)
    warnings = list(r.warnings)  # the routine's own; validate prints them with these
    for misfit in tl.unsure:
        say = misfit.say
        floor = timeline.Misfit(say, estimate_frames(say.text, say.rate_wpm, FLOOR_RATIO), misfit.fit_ms, misfit.hold)
        slow_s = misfit.length_frames / SAMPLE_RATE
        likely_s = estimate_frames(say.text, say.rate_wpm, TYPICAL_RATIO) / SAMPLE_RATE  # what a fix is sized for
        if floor.length_frames > timeline.to_samples(misfit.fit_ms, SAMPLE_RATE):
            raise floor.error(script.path, SAMPLE_RATE, likely_s=likely_s)
        warnings.append(RoutineWarning(
            f"the words \"{say.text}\" may not fit the {misfit.fit_ms / 1000:.1f}s inside {misfit.hold.label} "
            f"(a slow voice takes about {slow_s:.1f}s; they are not spoken yet)",
            f"Run `windown script` to check with the real voice, or {misfit.fix(likely_s)[0].lower()}"
            f"{misfit.fix(likely_s)[1:]}", path=script.path, line=say.line or misfit.hold.line))
    return Checked(personal, changes, warnings, len(missing))
