"""Compose stage: `Routine` -> `Script`, the words in order and the timing rules between them.

Timing rules (design.md): a hold lasts exactly its stated time, from the end of the cue that starts it
to the start of the cue that ends it; cues inside a hold sit at offsets with a slot they must fit in
and never lengthen it; breath-phase cues start exactly at their phase boundary.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from windown import library
from windown.library import Stretch
from windown.routine import (Breathing, BreatheStep, ChimeStep, PauseStep, Routine, SayStep, Settings,
                             StretchStep)

LEAD_IN_MS = 4000  # the bed fades in before the first word
SENTENCE_GAP_MS = 700  # between consecutive sentences, so nothing sounds rushed
SECTION_GAP_MS = 1500  # after an introduction, before what follows
CHIME_MS = 4000  # time a chime step takes before the next item (its ring carries on underneath)
END_ZONE_MS = 10_000  # "ten more seconds" (or a soft chime in bedtime mode) this long before a hold ends
CUE_MARGIN_MS = 1500  # no cue may still be speaking this close to the end of its hold
SIDES = ("right", "left")
LYING = ("supine", "prone", "wall")  # positions the closing words can say "stay lying down" after


@dataclass(frozen=True)
class Say:
    text: str
    line: int
    rate_wpm: int = 0  # filled in at the end of composing (bedtime mode slows towards the end)


@dataclass(frozen=True)
class Gap:
    gap_ms: int
    line: int = 0
    pause: bool = False  # a `pause:` step's own silence, which takes the place of the usual gaps before it


@dataclass(frozen=True)
class Chime:
    line: int = 0
    gain_db: float = 0.0


@dataclass(frozen=True)
class Inner:
    """A cue inside a hold: starts `offset_ms` after the hold starts and must end within `slot_ms`."""

    offset_ms: int
    slot_ms: int
    item: Say | Chime


@dataclass(frozen=True)
class Hold:
    hold_ms: int
    line: int
    label: str
    inner: tuple[Inner, ...] = ()
    phase: str = ""  # a breath phase's setting ("inhale", "hold_in", "exhale", "hold_out"); "" for a stretch's hold


@dataclass(frozen=True)
class Chapter:
    title: str
    line: int = 0
    stretch: str | None = None  # the stretch id, for chapters that are one stretch (journal feedback names it)


Item = Say | Gap | Chime | Hold | Chapter


@dataclass
class Script:
    title: str
    path: str
    settings: Settings
    items: list[Item] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)  # what personalisation did, for `windown script`

    def says(self) -> list[Say]:
        """Every spoken cue, including those inside holds, in order."""
        out = []
        for item in self.items:
            if isinstance(item, Say):
                out.append(item)
            elif isinstance(item, Hold):
                out.extend(i.item for i in item.inner if isinstance(i.item, Say))
        return out


def estimate_ms(text: str, rate_wpm: int) -> int:
    """A generous guess at how long words take to say; the timeline checks the real length."""
    words = max(1, len(text.split()))
    return int(words * 60_000 / rate_wpm * 1.2) + 400


class Composer:
    def __init__(self, routine: Routine, changes: list[str] | None = None):
        self.routine = routine
        self.s = routine.settings
        self.rng = random.Random(self.s.seed if self.s.seed is not None else 0)
        self.last: dict[str, str] = {}
        self.phrases = library.phrases()
        self.script = Script(routine.title, routine.path, routine.settings, changes=list(changes or []))
        self.stretch_total = sum(isinstance(s, StretchStep) for s in routine.steps)
        self.stretch_n = 0

    # -- words -------------------------------------------------------------------------------------

    def pick(self, options: tuple[str, ...] | list[str], key: str, **fill: str) -> str:
        """One of equivalent phrasings, seeded, never the same as the last time this pool was used."""
        choices = [o for o in options if o != self.last.get(key)] or list(options)
        text = self.rng.choice(choices)
        self.last[key] = text
        return text.format(**fill) if fill else text

    def phrase(self, key: str, **fill: str) -> str:
        return self.pick(self.phrases[key], key, **fill)

    # -- items -------------------------------------------------------------------------------------

    def add(self, item: Item) -> None:
        self.script.items.append(item)

    def say(self, texts: str | list[str] | tuple[str, ...], line: int, gap_after_ms: int = SENTENCE_GAP_MS) -> None:
        for text in [texts] if isinstance(texts, str) else texts:
            self.add(Say(text, line))
            self.add(Gap(gap_after_ms, line))

    def pause(self, step: PauseStep) -> None:
        """`pause: 7s` means 7 s of silence between the words before and after it, so it replaces the
        usual gaps (between lines, after a section or a stretch) rather than adding to them."""
        items = self.script.items
        while items and isinstance(items[-1], Gap) and not items[-1].pause:
            items.pop()
        self.add(Gap(step.pause_ms, step.line, pause=True))

    def compose(self) -> Script:
        s = self.s
        self.add(Chapter("Welcome"))
        self.add(Gap(LEAD_IN_MS))
        if s.name:
            self.say(self.phrase("greeting", name=s.name), 0)
        self.say(self.phrase("welcome"), 0)
        if s.safety:
            self.say(self.phrase("safety"), 0)
        self.add(Gap(SECTION_GAP_MS))
        for step in self.routine.steps:
            if isinstance(step, StretchStep):
                self.stretch(step)
            elif isinstance(step, SayStep):
                self.say(list(step.texts), step.line)
            elif isinstance(step, PauseStep):
                self.pause(step)
            elif isinstance(step, ChimeStep):
                self.add(Chime(step.line))
                self.add(Gap(CHIME_MS, step.line))
            elif isinstance(step, BreatheStep):
                self.breathe(step)
        self.add(Chapter("Sleep"))
        if not self.ends_lying_down():
            self.say(self.phrase("lie_down"), 0, SECTION_GAP_MS * 3)
        self.say(self.phrase("closing"), 0, gap_after_ms=0)
        self.set_rates()
        return self.script

    def ends_lying_down(self) -> bool:
        """True when the last stretch leaves the listener lying down (or there are no stretches)."""
        stretches = [s for s in self.routine.steps if isinstance(s, StretchStep)]
        return not stretches or stretches[-1].stretch.position in LYING

    def set_rates(self) -> None:
        """Every cue gets its rate; in bedtime mode the voice eases about 10% slower over the second half."""
        base = self.s.voice.rate_wpm
        says = self.script.says()
        rates = {}
        for k, say in enumerate(says):
            rate = base
            if self.s.bedtime and len(says) > 1:
                progress = k / (len(says) - 1)
                slow = 0.10 * max(0.0, (progress - 0.5) / 0.5)
                rate = int(round(base * (1 - slow) / 5) * 5)  # steps of 5 wpm keep the cache small
            rates[id(say)] = rate

        def with_rate(item):
            if isinstance(item, Say):
                return Say(item.text, item.line, rates[id(item)])
            if isinstance(item, Hold):
                inner = tuple(Inner(i.offset_ms, i.slot_ms, with_rate(i.item)) for i in item.inner)
                return Hold(item.hold_ms, item.line, item.label, inner, item.phase)
            return item

        self.script.items = [with_rate(item) for item in self.script.items]

    # -- breathing ---------------------------------------------------------------------------------

    def breathe(self, step: BreatheStep) -> None:
        pattern = step.breathing or self.s.breathing
        self.add(Chapter("Breathing", step.line))
        if self.s.instruction != "minimal":
            self.say(self.phrase("breathe_intro"), step.line, SECTION_GAP_MS)
        for cycle in range(step.cycles):
            full = cycle < 2
            self.phases(pattern, step.line, "paced breathing",
                        self.phrase("breathe_in" if full else "breathe_in_short"),
                        self.phrase("breathe_out" if full else "breathe_out_short"))
        self.add(Gap(SECTION_GAP_MS, step.line))

    def phases(self, pattern: Breathing, line: int, label: str, inhale: str | None, exhale: str | None,
               words_lines: tuple[int, int] | None = None) -> None:
        """One breath cycle: each phase is a hold of exactly its length, its cue at the boundary.

        `words_lines` are the routine lines the inhale and exhale words were written on (inline words)."""
        in_line, out_line = words_lines or (line, line)
        for phase_ms, words, name, key, said_at in (
                (pattern.inhale_ms, inhale, "inhale", "inhale", in_line),
                (pattern.hold_in_ms, self.phrase("hold_in") if inhale else None, "held breath", "hold_in", line),
                (pattern.exhale_ms, exhale, "exhale", "exhale", out_line),
                (pattern.hold_out_ms, self.phrase("hold_out") if exhale else None, "rest", "hold_out", line)):
            if phase_ms <= 0:
                continue
            inner = (Inner(0, phase_ms, Say(words, said_at)),) if words else ()
            self.add(Hold(phase_ms, line, f"the {name} of {label}", inner, phase=key))

    def words_line(self, st: Stretch, key: str, text: str, line: int) -> int:
        """The routine line `text` (one of the stretch's `key` words) was written on, else the step's line."""
        options = getattr(st, key)
        found = st.line_of(key, options.index(text), self.routine.path) if text in options else None
        return found or line

    # -- stretches ---------------------------------------------------------------------------------

    def stretch(self, step: StretchStep) -> None:
        st = step.stretch
        self.stretch_n += 1
        title = st.name[:1].upper() + st.name[1:]
        self.add(Chapter(title, step.line, st.id))
        if not self.s.bedtime:
            intro = self.phrase("progress", n=number_words(self.stretch_n), total=number_words(self.stretch_total),
                                name=st.name)
        elif self.stretch_n == 1:
            intro = self.phrase("first", name=st.name)
        else:
            intro = self.phrase("next", name=st.name)
        sides = (step.sides or st.sides) == "both"
        side_list = SIDES if sides else (None,)
        self.say(intro, step.line)
        self.setup_words(st, step, side_list[0])
        settle_ms = step.settle_ms if step.settle_ms is not None else st.settle_ms
        self.add(Gap(settle_ms, step.line))
        if st.kind in ("flow", "reps"):
            self.flow(st, step)
        else:
            self.holds(st, step, side_list, settle_ms)
        self.add(Gap(self.s.transition_ms, step.line))

    def setup_words(self, st: Stretch, step: StretchStep, side: str | None) -> None:
        fill = {"side": side or "", "other": _other(side)}
        if self.s.instruction == "full":
            self.say([t.format(**fill) for t in st.setup], step.line)
        elif self.s.instruction == "brief":
            self.say(st.brief[0].format(**fill), step.line)
        elif side:
            self.say(self.phrase("first_side", side=side), step.line)

    def holds(self, st: Stretch, step: StretchStep, side_list: tuple, settle_ms: int) -> None:
        hold_ms = step.hold_ms or st.hold_ms.default
        reps = step.reps or st.reps.default
        rest_ms = step.rest_ms if step.rest_ms is not None else st.rest_ms
        turns = [(rep, side) for rep in range(reps) for side in side_list]
        for n, (rep, side) in enumerate(turns):
            if n:
                self.add(Gap(rest_ms, step.line))
                if side != turns[n - 1][1]:
                    words = self.pick(st.switch, f"switch:{st.id}", side=side) if st.switch \
                        else self.phrase("switch", side=side)
                else:
                    words = self.phrase("again")
                self.say(words, step.line)
                self.add(Gap(settle_ms, step.line))
            start = self.pick(st.start, f"start:{st.id}") if st.start else self.phrase("hold_start")
            self.say(start, step.line, gap_after_ms=0)
            label = f"the hold of {st.name}" + (f" ({side} side)" if side else "")
            self.add(Hold(hold_ms, step.line, label, self.hold_cues(st, hold_ms, step.line, n)))
            release = self.pick(st.release, f"release:{st.id}") if st.release else self.phrase("release")
            self.say(release, step.line)

    def hold_cues(self, st: Stretch, hold_ms: int, line: int, turn: int) -> tuple[Inner, ...]:
        """Calm cues spread over the hold at exhale boundaries, each only where it surely fits."""
        rate = self.s.voice.rate_wpm
        breath = self.s.breathing
        end_ms = hold_ms - CUE_MARGIN_MS
        end_item: Inner | None = None
        if hold_ms >= 2 * END_ZONE_MS:
            end_at = hold_ms - END_ZONE_MS
            if self.s.bedtime:
                end_item = Inner(end_at, END_ZONE_MS - CUE_MARGIN_MS, Chime(line, gain_db=-6.0))
            else:
                end_item = Inner(end_at, END_ZONE_MS - CUE_MARGIN_MS, Say(self.phrase("ten_more"), line))
            end_ms = end_at
        amount = {"full": len(st.cues), "brief": 1 if turn == 0 else 0, "minimal": 0}[self.s.instruction]
        wanted = self.rng.sample(list(st.cues), min(amount, len(st.cues)))  # no cue twice in one hold
        if self.s.instruction == "full" and not self.s.bedtime and hold_ms >= 60_000:
            wanted.insert(len(wanted) // 2, self.phrase("halfway"))
        first_ms = breath.inhale_ms + breath.hold_in_ms  # the first exhale boundary
        inner: list[Inner] = []
        if wanted and end_ms > first_ms:
            spacing = max(breath.cycle_ms, (end_ms - first_ms) // len(wanted))
            at = first_ms
            for text in wanted:
                boundary = first_ms + -(-(at - first_ms) // breath.cycle_ms) * breath.cycle_ms
                if boundary + estimate_ms(text, rate) * 1.3 + 500 > end_ms:
                    break
                inner.append(Inner(boundary, 0, Say(text, self.words_line(st, "cues", text, line))))
                at = boundary + max(spacing, estimate_ms(text, rate) + 1000)
        # each cue's slot runs to the next cue (or the end zone); the timeline checks the real length
        slots = []
        for i, cue in enumerate(inner):
            next_at = inner[i + 1].offset_ms if i + 1 < len(inner) else end_ms
            slots.append(Inner(cue.offset_ms, next_at - cue.offset_ms, cue.item))
        if end_item:
            slots.append(end_item)
        return tuple(slots)

    def flow(self, st: Stretch, step: StretchStep) -> None:
        count = step.rounds or step.reps or (st.rounds or st.reps).default
        if self.s.instruction == "full":
            self.say(self.phrase("flow_start"), step.line, SECTION_GAP_MS)
        for n in range(count):
            if n < 2:
                inhale, exhale = st.inhale[0], st.exhale[0]
            else:
                inhale = self.pick(st.inhale[1:] or st.inhale, f"inhale:{st.id}")
                exhale = self.pick(st.exhale[1:] or st.exhale, f"exhale:{st.id}")
            self.phases(self.s.breathing, step.line, st.name, inhale, exhale,
                        (self.words_line(st, "inhale", inhale, step.line),
                         self.words_line(st, "exhale", exhale, step.line)))
        release = self.pick(st.release, f"release:{st.id}") if st.release else self.phrase("release")
        self.say(release, step.line)


_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """Numbers are spoken from words, not digits, so every engine says them the same way."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else "-" + _ONES[n % 10])
    return str(n)


def _other(side: str | None) -> str:
    return {"right": "left", "left": "right"}.get(side or "", "")


def compose(routine: Routine, changes: list[str] | None = None) -> Script:
    return Composer(routine, changes).compose()
