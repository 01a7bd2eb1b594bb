"""Personalise stage: `Routine` + profile + flags -> the routine this person will hear, and why it changed.

Order of precedence: the routine's own settings, then the profile file, then command-line flags.
Every change is reported in plain words (shown by `windown script`), the journal's among them.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from windown import library, settings, source
from windown.errors import RoutineError, UserError, kind_of
from windown.library import Stretch
from windown.routine import BreatheStep, Routine, Step, StretchStep
from windown.settings import Settings
from windown.source import Fields, Map

PACE_FACTOR = {"slow": 1.25, "medium": 1.0, "brisk": 0.8}
# Positions in the order that keeps changes few: up from sitting, down to the floor, onto the back.
POSITION_ORDER = {"seated": 0, "all-fours": 1, "kneeling": 2, "prone": 3, "supine": 4, "wall": 5}
LENGTH_TOLERANCE = 0.03
LENGTH_AIM = 0.01  # the search aims this close, and settles for LENGTH_TOLERANCE when the steps are coarse
BEDTIME_TAIL_MS = 10 * 60_000  # bedtime mode's sleep tail, unless the routine, profile or a flag sets one
LYING = ("supine", "prone", "wall")  # positions a track may end in, ready for sleep
SETTLE_MAX_FACTOR = 1.5  # lengthening may let each stretch settle up to this much longer
BREATHS_MAX_FACTOR = 2  # and give each `breathe:` step up to this many times its breaths
HELD = ("hold", "rest")  # kinds whose every rep is a whole hold


@dataclass(frozen=True)
class Verdict:
    """What the journal says about one stretch (by its root id: `cobra` covers `cobra-easier` too).

    action: "ease" (marked as hurting once: the easier variation, else the short end of its safe range),
    "leave-out" (marked as hurting twice within 14 days), "prefer" (marked as helping: cut last).
    `dates` are the marks that led to it, for the reason shown with the change.
    """

    stretch: str
    action: str
    dates: tuple[datetime.date, ...]


@dataclass(frozen=True)
class Profile:
    """A person's settings: a profile file (applied over the routine), then flag overrides."""

    path: str | None = None
    doc: Map | None = None
    flags: dict[str, Any] = field(default_factory=dict)  # checked values by setting key ("tail", "voice.rate")


def default_profile_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "windown" / "profile.yaml"


def load_profile(path: str | os.PathLike | None, flags: dict[str, Any] | None = None) -> Profile:
    """`--profile FILE`, else the default file when it exists, else no profile; flags always apply."""
    explicit = path is not None
    path = Path(path) if explicit else default_profile_path()
    if not explicit and not os.path.isfile(path):  # isfile never raises, even where we may not look
        return Profile(flags=dict(flags or {}))
    doc = source.load(path)
    if doc is None:
        return Profile(str(path), None, dict(flags or {}))
    if not isinstance(doc, Map):
        raise RoutineError(f"a profile must be a mapping of settings, not {kind_of(doc)}",
                           "See the profile example in the README", path=path, line=getattr(doc, "line", 1))
    check = Fields(doc, str(path), "the profile")  # validate now, so errors carry the profile's lines
    settings.read(check, Settings(), where="profile")
    check.finish()
    return Profile(str(path), doc, dict(flags or {}))


def apply_settings(r: Routine, profile: Profile) -> Settings:
    s = r.settings
    set_keys = set(r.set_keys)
    if profile.doc is not None:
        s, found = settings.read(Fields(profile.doc, profile.path or "profile", "the profile"), s, where="profile")
        set_keys |= set(found)
    s = settings.apply(s, profile.flags)
    set_keys |= {k for k, v in profile.flags.items() if v is not None}
    if s.bedtime and "tail" not in set_keys:
        s = dataclasses.replace(s, tail_ms=BEDTIME_TAIL_MS)
    if s.seed is None:  # tonight's phrasing differs from last night's, and stays put all evening
        s = dataclasses.replace(s, seed=int(datetime.date.today().strftime("%Y%m%d")))
    return s


def personalise(r: Routine, profile: Profile, measure: Callable[[Routine], int] | None = None,
                verdicts: tuple[Verdict, ...] | list[Verdict] = ()) -> tuple[Routine, list[str]]:
    """Apply settings, limitations, the journal's verdicts (unless `journal: false`), pace, order and
    (given `measure`) the target length."""
    settings = apply_settings(r, profile)
    r = dataclasses.replace(r, settings=settings)
    changes: list[str] = []
    r = limit(r, changes)
    verdicts = tuple(verdicts) if settings.journal else ()
    r = adapt(r, verdicts, changes)
    r = pace(r, changes)
    if settings.order == "auto":
        r = order(r, changes)
    if settings.length_ms is not None and measure is not None:
        preferred = {v.stretch: v for v in verdicts if v.action == "prefer"}
        # never added to lengthen a track: a stretch left out, or one that hurt once (chosen, it is eased;
        # not chosen, there is no reason to bring it in)
        not_added = frozenset(v.stretch for v in verdicts if v.action in ("leave-out", "ease"))
        r = fit_length(r, settings.length_ms, measure, changes, preferred, not_added)
    return r, changes


def format_dates(dates: tuple[datetime.date, ...] | list[datetime.date]) -> str:
    """"1 and 3 Dec", "28 Nov, 1 and 3 Dec": how a person says a few dates."""
    months: list[tuple[str, list[str]]] = []
    for d in sorted(set(dates)):
        month = d.strftime("%b")
        if not months or months[-1][0] != month:
            months.append((month, []))
        months[-1][1].append(str(d.day))
    words = [f"{day} {month}" if i == len(days) - 1 else day
             for month, days in months for i, day in enumerate(days)]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _low_end(st: Stretch) -> Stretch:
    """The stretch pinned to the short end of its safe ranges, so pace and length fitting keep it there."""
    def pinned(rng: library.Range | None) -> library.Range | None:
        return library.Range(rng.min, rng.min, rng.min) if rng is not None else None

    return dataclasses.replace(st, hold_ms=pinned(st.hold_ms), reps=pinned(st.reps), rounds=pinned(st.rounds))


def _low_end_words(st: Stretch) -> str:
    if st.kind in ("flow", "reps"):
        count = st.rounds if st.kind == "flow" and st.rounds else st.reps
        return f"{count.min} {'rounds' if st.kind == 'flow' else 'reps'}"
    return source.format_duration(st.hold_ms.min) if st.hold_ms else "its shortest"


def adapt(r: Routine, verdicts: tuple[Verdict, ...], changes: list[str]) -> Routine:
    """The journal's verdicts: a stretch that hurt once gets its easier variation (or, with none, the short
    end of its safe range); one that hurt twice within 14 days is left out. Each change says why and when."""
    by_id = {v.stretch: v for v in verdicts if v.action in ("ease", "leave-out")}
    if not by_id:
        return r
    steps = []
    for step in r.steps:
        verdict = by_id.get(_root_id(step.stretch)) if isinstance(step, StretchStep) else None
        if verdict is None:
            steps.append(step)
            continue
        st = step.stretch
        when = format_dates(verdict.dates)
        if verdict.action == "leave-out":
            changes.append(f"{st.name} left out: marked as hurting on {when}; "
                           f"`windown journal forgive {_root_id(st)}` brings it back")
            continue
        if st.easier is not None and not _problems(st.easier, r.settings):
            changes.append(f"swapped {st.name} for {st.easier.name}: marked as hurting on {when}")
            steps.append(dataclasses.replace(step, stretch=st.easier, hold_ms=None, reps=None, rounds=None))
            continue
        low = _low_end(st)
        changes.append(f"{st.name} kept to {_low_end_words(st)}, the short end of its safe range: "
                       f"marked as hurting on {when}")
        steps.append(dataclasses.replace(step, stretch=low, hold_ms=None, reps=None, rounds=None))
    if not any(isinstance(step, StretchStep) for step in steps):
        raise UserError("every stretch in this routine is left out because your journal marks it as hurting",
                        "Run `windown journal forgive ID` for one of them, or build with --no-journal")
    return dataclasses.replace(r, steps=tuple(steps))


def _root_id(stretch: Stretch) -> str:
    return stretch.id.removesuffix("-easier")


def _problems(st: Stretch, s: Settings) -> list[str]:
    if st.id in s.exclude or _root_id(st) in s.exclude:
        return ["excluded by your settings"]
    problems = sorted(set(s.avoid) & set(st.tags))
    if s.in_bed_only and not st.in_bed:
        problems.append("not done in bed")
    return problems


def allowed(st: Stretch, s: Settings) -> tuple[Stretch | None, list[str]]:
    """`st` itself when nothing stands against it, else its easier variation when that is free, else None;
    with the problems that made it change. An easier variation is never swapped back for the harder one."""
    problems = _problems(st, s)
    if not problems:
        return st, []
    if st.easier is not None and not _problems(st.easier, s):
        return st.easier, problems
    return None, problems


def limit(r: Routine, changes: list[str]) -> Routine:
    """Exclusions, in-bed only and avoided tags: swap for the easier variation where it is free, else drop."""
    steps = []
    for step in r.steps:
        if not isinstance(step, StretchStep):
            steps.append(step)
            continue
        st = step.stretch
        chosen, problems = allowed(st, r.settings)
        if chosen is st:
            steps.append(step)
        elif chosen is not None:
            changes.append(f"swapped {st.name} for {chosen.name}: avoids {', '.join(problems)}")
            steps.append(dataclasses.replace(step, stretch=chosen))
        else:
            changes.append(f"dropped {st.name}: {', '.join(problems)}")
    if not any(isinstance(step, StretchStep) for step in steps) and any(isinstance(x, StretchStep) for x in r.steps):
        raise UserError("no stretch is left after your limitations", "Avoid fewer tags or exclude fewer stretches")
    return dataclasses.replace(r, steps=tuple(steps))


def _scaled(value: int, factor: float, rng: library.Range | None) -> int:
    scaled = value * factor
    return rng.clamp(scaled) if rng is not None else int(round(scaled))


def _paced(step: StretchStep, factor: float) -> StretchStep:
    if factor == 1.0:
        return step
    st = step.stretch
    hold = step.hold_ms or (st.hold_ms.default if st.hold_ms else None)
    return dataclasses.replace(
        step,
        hold_ms=_scaled(hold, factor, st.hold_ms) if hold else None,
        settle_ms=int((step.settle_ms if step.settle_ms is not None else st.settle_ms) * factor),
        rest_ms=int((step.rest_ms if step.rest_ms is not None else st.rest_ms) * factor))


def pace(r: Routine, changes: list[str]) -> Routine:
    """Slow or brisk pace scales holds within each stretch's safe range, and settle, rest and transitions."""
    factor = PACE_FACTOR[r.settings.pace]
    if factor == 1.0:
        return r
    steps = [_paced(step, factor) if isinstance(step, StretchStep) else step for step in r.steps]
    settings = dataclasses.replace(r.settings, transition_ms=int(r.settings.transition_ms * factor))
    changes.append(f"{r.settings.pace} pace: holds, settling and transitions x{factor:g} "
                   "(holds kept within each stretch's safe range)")
    return dataclasses.replace(r, steps=tuple(steps), settings=settings)


def _rank(step: StretchStep) -> tuple[int, int]:
    st = step.stretch
    return (1 if st.kind == "rest" and st.position in LYING else 0, POSITION_ORDER.get(st.position, 4))


def order(r: Routine, changes: list[str]) -> Routine:
    """Group stretches by position so there are few changes, and end resting, lying down."""
    slots = [i for i, step in enumerate(r.steps) if isinstance(step, StretchStep)]
    stretches = [r.steps[i] for i in slots]
    ordered = sorted(stretches, key=_rank)  # stable: the routine's order within a position is kept
    if ordered == stretches:
        return r
    steps = list(r.steps)
    for i, step in zip(slots, ordered):
        steps[i] = step
    changes.append("reordered to keep position changes few: " + ", ".join(s.stretch.name for s in ordered))
    return dataclasses.replace(r, steps=tuple(steps))


def _at(rng: library.Range | None, x: float, base: int | None) -> int | None:
    """The value at knob x in [-1, 1]: -1 the safe minimum, 0 the current value, 1 the safe maximum."""
    if rng is None or base is None:
        return base
    base = min(max(base, rng.min), rng.max)
    return int(round(base + x * ((base - rng.min) if x < 0 else (rng.max - base))))


def _knob(step: Step, x: float, extras: bool) -> Step:
    """`step` at knob x in [-1, 1] (-1 the safe minimum, 0 as it is, 1 the safe maximum): holds, reps paced by
    the breath and flow rounds. With `extras` (lengthening) and x above 0, settling is slower and `breathe:`
    steps have more breaths too. Reps of held stretches move one at a time instead (`_rep_levels`)."""
    if isinstance(step, BreatheStep):
        if not extras or x <= 0:
            return step
        return dataclasses.replace(step, cycles=step.cycles + int(round(x * step.cycles * (BREATHS_MAX_FACTOR - 1))))
    if not isinstance(step, StretchStep):
        return step
    st = step.stretch
    hold = _at(st.hold_ms, x, step.hold_ms or (st.hold_ms.default if st.hold_ms else None))
    reps, rounds, settle_ms = step.reps, step.rounds, step.settle_ms
    if st.kind == "reps":
        reps = _at(st.reps, x, step.reps or st.reps.default)
    if st.kind == "flow" and st.rounds is not None:
        rounds = _at(st.rounds, x, step.rounds or st.rounds.default)
    if extras and x > 0:
        base_ms = step.settle_ms if step.settle_ms is not None else st.settle_ms
        settle_ms = int(round(base_ms * (1 + x * (SETTLE_MAX_FACTOR - 1))))
    return dataclasses.replace(step, hold_ms=hold if st.hold_ms else None, reps=reps, rounds=rounds,
                               settle_ms=settle_ms)


def _held_reps(step: Step) -> int | None:
    """The reps of a held stretch (a whole hold each, per side), kept within its safe range; else None."""
    if not isinstance(step, StretchStep) or step.stretch.kind not in HELD:
        return None
    rng = step.stretch.reps
    return min(max(step.reps or rng.default, rng.min), rng.max)


def _rep_levels(steps: tuple[Step, ...], movable: tuple[bool, ...], up: bool) -> list[tuple[Step, ...]]:
    """`steps`, then with one rep more (`up`) or fewer of one movable held stretch at a time, in turn, until
    each is at the end of its safe range. A rep of a held stretch is too big a step for one knob."""
    current = [dataclasses.replace(s, reps=_held_reps(s)) if m and _held_reps(s) is not None else s
               for s, m in zip(steps, movable)]
    levels = [tuple(current)]
    moved = True
    while moved:
        moved = False
        for i, step in enumerate(current):
            reps = _held_reps(step) if movable[i] else None
            if reps is None:
                continue
            rng = step.stretch.reps
            if rng.min <= reps + (1 if up else -1) <= rng.max:
                current[i] = dataclasses.replace(step, reps=reps + (1 if up else -1))
                levels.append(tuple(current))
                moved = True
    return levels


def _additions(r: Routine, left_out: frozenset[str] = frozenset()) -> list[StretchStep]:
    """Library stretches that suit this routine, for a length its own cannot reach: ones it lacks, that its
    settings allow and the journal did not leave out, in a position the routine already uses (the easier
    variation when that is the one that matches), and a back extension only when the routine has one. The
    optional ones first, each paced like the rest and starting at its fewest reps."""
    own = [s.stretch for s in r.steps if isinstance(s, StretchStep)]
    present = {_root_id(st) for st in own} | left_out
    positions = {st.position for st in own}
    extends = any("back-extension" in st.tags for st in own)
    out = []
    for st in sorted(library.stretches().values(), key=lambda x: not x.optional):
        if st.id in present:
            continue
        for variant in (st, st.easier):
            if variant is None or _problems(variant, r.settings) or variant.position not in positions:
                continue
            if "back-extension" in variant.tags and not extends:
                continue
            step = _paced(StretchStep(variant, line=0), PACE_FACTOR[r.settings.pace])
            out.append(dataclasses.replace(step, reps=variant.reps.min) if variant.kind in HELD else step)
            break
    return out


def _place(steps: list[Step], step: StretchStep) -> int:
    """Where an added stretch keeps the flow, so nobody sits up between lying stretches: a rest lying down
    goes last when the track does not already end with one; any other goes beside the last stretch in its
    position, and before the final stretch when that is the one, so the ending stays."""
    at = [i for i, s in enumerate(steps) if isinstance(s, StretchStep)]
    final = steps[at[-1]].stretch
    if _rank(step)[0] and not (final.kind == "rest" and final.position in LYING):
        return at[-1] + 1
    anchor = max(i for i in at if steps[i].stretch.position == step.stretch.position)
    if anchor != at[-1]:
        return anchor + 1
    return at[-2] + 1 if len(at) > 1 else at[-1]


def _whole_s(ms: float, up: bool) -> int:
    return int(-(-ms // 1000) if up else ms // 1000) * 1000


def fit_length(r: Routine, target_ms: int, measure: Callable[[Routine], int], changes: list[str],
               preferred: dict[str, Verdict] | None = None, left_out: frozenset[str] = frozenset()) -> Routine:
    """Fit the guided part within 3% of the target, or say why not and what is possible.

    Longer: first what the routine already has (holds, reps and rounds up within their safe ranges, slower
    settling, more paced breaths); a stretch it has is never dropped to lengthen it. Only then, unless
    `add_stretches` is false, library stretches that suit it (`_additions`), one at a time, placed to keep
    the flow (`_place`). Shorter: holds, reps and rounds down within their safe ranges, then optional
    stretches left out one at a time (the journal's `preferred` ones last)."""
    preferred = preferred or {}
    low, high = target_ms * (1 - LENGTH_TOLERANCE), target_ms * (1 + LENGTH_TOLERANCE)
    lengths: dict[Routine, int] = {}
    adding = r.settings.add_stretches

    def length_of(candidate: Routine) -> int:
        if candidate not in lengths:
            lengths[candidate] = measure(candidate)
        return lengths[candidate]

    def with_steps(steps) -> Routine:
        return dataclasses.replace(r, steps=tuple(steps))

    def search(make: Callable[[float], Routine], lo_x: float, hi_x: float) -> tuple[str, tuple[Routine, int] | None]:
        """("long"|"short", None) when even the end of [lo_x, hi_x] misses; else ("fit", the closest) or
        ("gap", None) when the length steps over the 3% window."""
        if length_of(make(lo_x)) > high:
            return "long", None
        if length_of(make(hi_x)) < low:
            return "short", None
        best = None
        for _ in range(24):
            mid = (lo_x + hi_x) / 2
            candidate = make(mid)
            length = length_of(candidate)
            if low <= length <= high and (best is None or abs(length - target_ms) < abs(best[1] - target_ms)):
                best = candidate, length
            if abs(length - target_ms) <= target_ms * LENGTH_AIM:
                break
            if length < target_ms:
                lo_x = mid
            else:
                hi_x = mid
        return ("fit", best) if best else ("gap", None)

    own_moves = tuple(isinstance(s, StretchStep) for s in r.steps)
    own_top = _rep_levels(r.steps, own_moves, up=True)[-1]

    def mixed(steps: tuple[Step, ...], roles: tuple[str, ...], x: float, z: float) -> Routine:
        """The routine's own steps at knob x, the stretch being added at knob z, earlier additions as fixed."""
        out = [_knob(s, x, True) if role == "own" else _knob(s, z, False) if role == "new" else s
               for s, role in zip(steps, roles)]
        return _ordered(with_steps(out))

    def lengthen() -> tuple[Routine, int] | None:
        for k, steps in enumerate(_rep_levels(r.steps, own_moves, up=True)):
            status, found = search(lambda x: with_steps(_knob(s, x, True) for s in steps), -1.0 if k else 0.0, 1.0)
            if found:
                return found
            if status == "long":
                break
        if not adding:
            return None
        steps, roles = list(own_top), ["own"] * len(own_top)
        for extra in _additions(r, left_out):
            at = _place(steps, extra)
            tried_roles = tuple(roles[:at] + ["new"] + roles[at:])
            levels = _rep_levels(tuple(steps[:at] + [extra] + steps[at:]), tuple(x == "new" for x in tried_roles),
                                 up=True)
            for k, level in enumerate(levels):
                status, found = search(lambda z: mixed(level, tried_roles, 1.0, z), -1.0, 1.0)
                if found:
                    return found
                if status == "long":
                    if k == 0:  # even at its shortest it overshoots: bring the routine's own back a little
                        status, found = search(lambda x: mixed(level, tried_roles, x, -1.0), -1.0, 1.0)
                        if found:
                            return found
                    break
            else:  # too short even at its longest: keep it there and add the next
                steps = [_knob(s, 1.0, False) if role == "new" else s for s, role in zip(levels[-1], tried_roles)]
                roles = ["added" if role == "new" else role for role in tried_roles]
        return None

    def shorten(candidates: list[Routine]) -> tuple[Routine, int] | None:
        for candidate in candidates:
            moves = tuple(isinstance(s, StretchStep) for s in candidate.steps)
            for steps in _rep_levels(candidate.steps, moves, up=False):
                status, found = search(
                    lambda x: dataclasses.replace(candidate, steps=tuple(_knob(s, x, False) for s in steps)), -1.0, 1.0)
                if found:
                    return found
                if status == "short":
                    break
        return None

    shorter = [r]  # leave out optional stretches one at a time, for targets below the range; helping ones last
    optional = [s for s in r.steps if isinstance(s, StretchStep) and s.stretch.optional]
    for step in sorted(optional, key=lambda s: _root_id(s.stretch) in preferred):
        candidate = dataclasses.replace(shorter[-1], steps=tuple(x for x in shorter[-1].steps if x is not step))
        if any(isinstance(x, StretchStep) for x in candidate.steps):
            shorter.append(candidate)
    longer = length_of(r) < target_ms
    found = lengthen() if longer else shorten(shorter)
    if found is not None:
        fitted, length = found
        changes.append(_fitted_words(r, fitted, target_ms, length, longer))
        now = [s.stretch.name for s in fitted.steps if isinstance(s, StretchStep)]
        if any(s.stretch.name not in now for s in optional):
            for step in optional:
                verdict = preferred.get(_root_id(step.stretch))
                if verdict is not None and step.stretch.name in now:
                    changes.append(f"{step.stretch.name} kept while cutting to length: marked as helping on "
                                   f"{format_dates(verdict.dates)}")
        return fitted
    bottom = shorter[-1]
    bottom_steps = _rep_levels(bottom.steps, tuple(isinstance(s, StretchStep) for s in bottom.steps), up=False)[-1]
    shortest = length_of(with_steps(_knob(s, -1.0, False) for s in bottom_steps))
    steps, roles = list(own_top), ["own"] * len(own_top)
    for extra in _additions(r, left_out) if adding else []:
        at = _place(steps, extra)
        top = _rep_levels((extra,), (True,), up=True)[-1][0]
        steps, roles = steps[:at] + [_knob(top, 1.0, False)] + steps[at:], roles[:at] + ["added"] + roles[at:]
    longest = length_of(mixed(tuple(steps), tuple(roles), 1.0, 0.0))
    lo, hi = source.format_duration(_whole_s(shortest, True)), source.format_duration(_whole_s(longest, False))
    target = source.format_duration(target_ms)
    problem = (f"cannot fit this routine into {target}: its guided part can last from {lo} to {hi}, keeping every "
               f"hold, rep and round within its safe range, leaving out optional stretches"
               + (" or adding library ones" if adding else "; adding library ones is turned off (add_stretches: false)"))
    if low <= longest and shortest <= high:
        problem += f", but no combination lands within 3% of {target}"
    raise UserError(problem, f"Choose a length from {lo} to {hi}, or change the routine's stretches")


def _ordered(r: Routine) -> Routine:
    return order(r, []) if r.settings.order == "auto" else r


def _amounts(step: StretchStep) -> tuple[int | None, int, int | None]:
    st = step.stretch
    return (step.hold_ms or (st.hold_ms.default if st.hold_ms else None), step.reps or st.reps.default,
            step.rounds or (st.rounds.default if st.rounds else None))


def _settle_ms(step: StretchStep) -> int:
    return step.settle_ms if step.settle_ms is not None else step.stretch.settle_ms


def _fitted_words(r: Routine, fitted: Routine, target_ms: int, length_ms: int, longer: bool) -> str:
    """What fitting did, in the change list: how the routine's own stretches changed, what was left out or added."""
    def own(x: Routine) -> dict[int, Step]:
        return {s.line: s for s in x.steps if isinstance(s, (StretchStep, BreatheStep)) and s.line}

    before, after = own(r), own(fitted)
    pairs = [(step, after[line]) for line, step in before.items() if line in after]
    how = []
    if longer:
        if any(_amounts(a) != _amounts(b) for a, b in pairs if isinstance(a, StretchStep)):
            how.append("holds, reps and rounds lengthened within their safe ranges")
        if any(_settle_ms(a) != _settle_ms(b) for a, b in pairs if isinstance(a, StretchStep)):
            how.append("slower settling")
        if any(a.cycles != b.cycles for a, b in pairs if isinstance(a, BreatheStep)):
            how.append("more paced breaths")
    else:
        how.append("holds, reps and rounds scaled within their safe ranges")
    names = [s.stretch.name for s in r.steps if isinstance(s, StretchStep)]
    now = [s.stretch.name for s in fitted.steps if isinstance(s, StretchStep)]
    dropped = [n for n in names if n not in now]
    added = [n for n in now if n not in names]
    return (f"fitted to {source.format_duration(target_ms)}: guided part "
            f"{source.format_duration(_whole_s(length_ms, False))}" + "".join(f"; {h}" for h in how)
            + (f"; dropped {', '.join(dropped)}" if dropped else "") + (f"; added {', '.join(added)}" if added else ""))
