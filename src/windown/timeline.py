"""Place stage: `Script` + real clip lengths -> `Timeline`, the absolute sample of every clip and chapter.

Integer samples throughout, so the same inputs always give the same positions. A cue that does not
fit its slot is an error naming the routine line, never a silently stretched hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from windown.compose import Chapter, Chime, Gap, Hold, Say, Script
from windown.errors import RoutineError

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


@dataclass
class Timeline:
    sample_rate: int
    events: list[Event] = field(default_factory=list)
    chapters: list[Span] = field(default_factory=list)  # the last one ends at `end` (the tail is added later)
    holds: list[Span] = field(default_factory=list)
    end_frame: int = 0  # the end of the guided part

    @property
    def speech_end_frame(self) -> int:
        return max((e.stop_frame for e in self.events if e.kind == "speech"), default=0)

    def ms(self, samples: int) -> float:
        return samples * 1000 / self.sample_rate


def to_samples(ms: int, sample_rate: int) -> int:
    return ms * sample_rate // 1000


def place(script: Script, clip_frames: dict[tuple[str, int], int], sample_rate: int, chime_frames: int) -> Timeline:
    """Walk the script with a cursor (in frames); speech advances it by the clip's real length."""
    tl = Timeline(sample_rate)
    cursor_frame = 0
    chapter_starts: list[tuple[str, int, int, str | None]] = []

    def current_chapter() -> str:
        return chapter_starts[-1][0] if chapter_starts else ""

    def speech_event(say: Say, start_frame: int) -> Event:
        return Event(start_frame, clip_frames[(say.text, say.rate_wpm)], "speech", say.text, say.rate_wpm,
                     current_chapter(), say.line)

    for item in script.items:
        if isinstance(item, Chapter):
            chapter_starts.append((item.title, cursor_frame, item.line, item.stretch))
        elif isinstance(item, Say):
            event = speech_event(item, cursor_frame)
            tl.events.append(event)
            cursor_frame = event.stop_frame
        elif isinstance(item, Gap):
            cursor_frame += to_samples(item.gap_ms, sample_rate)
        elif isinstance(item, Chime):
            tl.events.append(Event(cursor_frame, chime_frames, "chime", chapter=current_chapter(),
                                   line=item.line, gain_db=item.gain_db))
        elif isinstance(item, Hold):
            hold_frames = to_samples(item.hold_ms, sample_rate)
            tl.holds.append(Span(cursor_frame, cursor_frame + hold_frames, item.label, item.line))
            for inner in item.inner:
                start_frame = cursor_frame + to_samples(inner.offset_ms, sample_rate)
                if isinstance(inner.item, Chime):
                    tl.events.append(Event(start_frame, chime_frames, "chime", chapter=current_chapter(),
                                           line=inner.item.line, gain_db=inner.item.gain_db))
                    continue
                event = speech_event(inner.item, start_frame)
                slot_frames = to_samples(inner.slot_ms - SLOT_GUARD_MS, sample_rate)
                if event.length_frames > slot_frames or event.stop_frame > cursor_frame + hold_frames:
                    raise RoutineError(
                        f"the words \"{inner.item.text}\" take {event.length_frames / sample_rate:.1f}s but fit only "
                        f"{max(0, inner.slot_ms - SLOT_GUARD_MS) / 1000:.1f}s inside {item.label}",
                        "Lengthen the hold or the breath phase, slow the breathing pattern, or use fewer words",
                        path=script.path, line=inner.item.line or item.line)
                tl.events.append(event)
            cursor_frame += hold_frames
    tl.end_frame = cursor_frame
    for i, (title, start_frame, line, stretch) in enumerate(chapter_starts):
        stop_frame = chapter_starts[i + 1][1] if i + 1 < len(chapter_starts) else cursor_frame
        if stop_frame > start_frame or i + 1 == len(chapter_starts):
            tl.chapters.append(Span(start_frame, stop_frame, title, line, stretch))
    tl.events.sort(key=lambda e: e.start_frame)
    return tl
