"""Place stage: `Script` + real clip lengths -> `Timeline`, the absolute sample of every clip and chapter.

Integer samples throughout, so the same inputs always give the same positions. A cue that does not
fit its slot is an error naming the routine line, never a silently stretched hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from windown.compose import Chapter, Chime, Gap, Hold, Say, Script
from windown.errors import RoutineError
from windown.settings import BREATH_MAX_MS

SLOT_GUARD_MS = 100  # a cue inside a hold must finish at least this long before its slot ends


@dataclass(frozen=True)
class Event:
    start_frame: int
    length_frames: int
    kind: str  # "speech" or "chime"
    text: str = ""
    rate_wpm: int = 0
    chapter: str = ""
    line: int = 0
    gain_db: float = 0.0  # chimes only: a softer strike inside a hold

    @property
    def stop_frame(self) -> int:
        return self.start_frame + self.length_frames


@dataclass(frozen=True)
class Span:
    start_frame: int
    stop_frame: int
    label: str
    line: int = 0
    stretch: str | None = None  # chapters only: the stretch id


@dataclass(frozen=True)
class Misfit:
    """A cue inside a hold that overruns its slot: what `place` refuses."""

    say: Say
    length_frames: int
    fit_ms: int  # the time it has
    hold: Hold

    def error(self, path: str, sample_rate: int, *, likely_s: float | None = None) -> RoutineError:
        """The one line a build prints; `likely_s` when the length is a floor, not a clip's (the fix is
        sized for the likely length)."""
        took_s = self.length_frames / sample_rate
        return RoutineError(f"the words \"{self.say.text}\" take {'at least ' if likely_s else ''}{took_s:.1f}s but "
                            f"fit only {self.fit_ms / 1000:.1f}s inside {self.hold.label}",
                            self.fix(likely_s or took_s), path=path, line=self.say.line or self.hold.line)

    def fix(self, took_s: float) -> str:
        """A fix that exists for this kind of slot: a breath phase is lengthened under `breathing:`."""
        if not self.hold.phase:
            return "Lengthen the hold, or use fewer words"
        needed_ms = -(-int((took_s * 1000 + SLOT_GUARD_MS) * 1.1) // 500) * 500  # a little room, in half seconds
        if needed_ms > BREATH_MAX_MS:
            return f"Use fewer words: a breath phase lasts at most {BREATH_MAX_MS // 1000}s"
        return (f"Slow the breathing (e.g. `breathing: {{{self.hold.phase}: {needed_ms / 1000:g}s}}`), "
                "or use fewer words")


@dataclass
class Timeline:
    sample_rate: int
    events: list[Event] = field(default_factory=list)
    chapters: list[Span] = field(default_factory=list)  # the last one ends at `end` (the tail is added later)
    holds: list[Span] = field(default_factory=list)
    pauses: list[Span] = field(default_factory=list)  # the silence of each `pause:` step
    end_frame: int = 0  # the end of the guided part
    unsure: list[Misfit] = field(default_factory=list)  # cues of estimated length that may not fit (see `place`)

    @property
    def speech_end_frame(self) -> int:
        return max((e.stop_frame for e in self.events if e.kind == "speech"), default=0)

    def ms(self, samples: int) -> float:
        return samples * 1000 / self.sample_rate


def to_samples(ms: int, sample_rate: int) -> int:
    return ms * sample_rate // 1000


def place(script: Script, clip_frames: dict[tuple[str, int], int], sample_rate: int, chime_frames: int, *,
          check_slots: bool = True, estimated: frozenset[tuple[str, int]] | set[tuple[str, int]] = frozenset()
          ) -> Timeline:
    """Walk the script with a cursor (in frames); speech advances it by the clip's real length.

    A cue inside a hold that overruns its slot is an error; for the cues in `estimated` (lengths guessed
    without speaking, by `windown validate`) it is noted in `unsure` instead, for the caller to judge.

    `check_slots=False` places estimated lengths (the mix's loudness before a cold build's clips exist):
    an estimate that overflows its slot is not the routine's fault."""
    return Placer(script, clip_frames.__getitem__, sample_rate, chime_frames, check_slots=check_slots,
                  estimated=estimated).finish()


class Placer:
    """The place stage a little at a time: `place_until(frame)` walks the script only as far as the
    renderer needs, asking `clip_frames` for each clip's length as it reaches it. A cold build's
    renderer places cues as their clips arrive, so each cue's start (which depends on every length
    before it) is known before it is mixed. `timeline` grows as it goes; `finish()` completes it."""

    def __init__(self, script: Script, clip_frames: Callable[[tuple[str, int]], int], sample_rate: int,
                 chime_frames: int, *, check_slots: bool = True,
                 estimated: frozenset[tuple[str, int]] | set[tuple[str, int]] = frozenset()):
        self.script = script
        self.estimated = estimated
        self.clip_frames = clip_frames
        self.chime_frames = chime_frames
        self.check_slots = check_slots
        self.timeline = Timeline(sample_rate)
        self.cursor_frame = 0  # every item not yet placed starts at or after this frame
        self.done = False
        self._items = iter(script.items)
        self._chapter_starts: list[tuple[str, int, int, str | None]] = []

    def place_until(self, frame: int) -> None:
        """Place items until the cursor passes `frame` (or the script ends)."""
        while not self.done and self.cursor_frame <= frame:
            item = next(self._items, None)
            if item is None:
                self._close()
            else:
                self._place(item)

    def finish(self) -> Timeline:
        self.place_until(float("inf"))  # type: ignore[arg-type]
        return self.timeline

    def _chapter(self) -> str:
        return self._chapter_starts[-1][0] if self._chapter_starts else ""

    def _speech_event(self, say: Say, start_frame: int) -> Event:
        return Event(start_frame, self.clip_frames((say.text, say.rate_wpm)), "speech", say.text, say.rate_wpm,
                     self._chapter(), say.line)

    def _place(self, item) -> None:
        tl, sample_rate = self.timeline, self.timeline.sample_rate
        if isinstance(item, Chapter):
            self._chapter_starts.append((item.title, self.cursor_frame, item.line, item.stretch))
        elif isinstance(item, Say):
            event = self._speech_event(item, self.cursor_frame)
            tl.events.append(event)
            self.cursor_frame = event.stop_frame
        elif isinstance(item, Gap):
            if item.pause:
                tl.pauses.append(Span(self.cursor_frame, self.cursor_frame + to_samples(item.gap_ms, sample_rate),
                                      "pause", item.line))
            self.cursor_frame += to_samples(item.gap_ms, sample_rate)
        elif isinstance(item, Chime):
            tl.events.append(Event(self.cursor_frame, self.chime_frames, "chime", chapter=self._chapter(),
                                   line=item.line, gain_db=item.gain_db))
        elif isinstance(item, Hold):
            cursor_frame = self.cursor_frame
            hold_frames = to_samples(item.hold_ms, sample_rate)
            tl.holds.append(Span(cursor_frame, cursor_frame + hold_frames, item.label, item.line))
            for inner in item.inner:
                start_frame = cursor_frame + to_samples(inner.offset_ms, sample_rate)
                if isinstance(inner.item, Chime):
                    tl.events.append(Event(start_frame, self.chime_frames, "chime", chapter=self._chapter(),
                                           line=inner.item.line, gain_db=inner.item.gain_db))
                    continue
                event = self._speech_event(inner.item, start_frame)
                slot_frames = to_samples(inner.slot_ms - SLOT_GUARD_MS, sample_rate)
                too_long = event.length_frames > slot_frames or event.stop_frame > cursor_frame + hold_frames
                if too_long and self.check_slots:
                    fit_ms = max(0, min(inner.slot_ms - SLOT_GUARD_MS, item.hold_ms - inner.offset_ms))
                    misfit = Misfit(inner.item, event.length_frames, fit_ms, item)
                    if (inner.item.text, inner.item.rate_wpm) not in self.estimated:
                        raise misfit.error(self.script.path, sample_rate)
                    tl.unsure.append(misfit)
                tl.events.append(event)
            self.cursor_frame = cursor_frame + hold_frames

    def _close(self) -> None:
        tl, starts = self.timeline, self._chapter_starts
        tl.end_frame = self.cursor_frame
        for i, (title, start_frame, line, stretch) in enumerate(starts):
            stop_frame = starts[i + 1][1] if i + 1 < len(starts) else self.cursor_frame
            if stop_frame > start_frame or i + 1 == len(starts):
                tl.chapters.append(Span(start_frame, stop_frame, title, line, stretch))
        tl.events.sort(key=lambda e: e.start_frame)
        self.done = True
