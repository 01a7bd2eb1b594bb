"""Personalise stage: `Routine` + profile + flags -> the routine this person will hear, and why it changed.

Order of precedence: the routine's own settings, then the profile file, then command-line flags.
Every change is reported in plain words (shown by `windown script`).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from windown import library, source
from windown.errors import RoutineError, UserError
from windown.library import Stretch
from windown.routine import Routine, Settings, StretchStep, read_settings
from windown.source import Fields, Map

PACE_FACTOR = {"slow": 1.25, "medium": 1.0, "brisk": 0.8}
# Positions in the order that keeps changes few: up from sitting, down to the floor, onto the back.
POSITION_ORDER = {"seated": 0, "all-fours": 1, "kneeling": 2, "prone": 3, "supine": 4, "wall": 5}
LENGTH_TOLERANCE = 0.03


@dataclass(frozen=True)
class Profile:
    """A person's settings: a profile file (applied over the routine), then flag overrides."""

    path: str | None = None
    doc: Map | None = None
    flags: dict[str, Any] = field(default_factory=dict)  # Settings field -> value; "voice.rate_wpm" style for parts


def default_profile_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "windown" / "profile.yaml"


def load_profile(path: str | os.PathLike | None, flags: dict[str, Any] | None = None) -> Profile:
    """`--profile FILE`, else the default file when it exists, else no profile; flags always apply."""
    explicit = path is not None
    path = Path(path) if explicit else default_profile_path()
    if not explicit and not path.is_file():
        return Profile(flags=dict(flags or {}))
    doc = source.load(path)
    if doc is None:
        return Profile(str(path), None, dict(flags or {}))
    if not isinstance(doc, Map):
        raise RoutineError(f"a profile must be a mapping of settings, not {source.kind_of(doc)}",
                           "See the profile example in the README", path=path, line=getattr(doc, "line", 1))
    check = Fields(doc, str(path), "the profile")  # validate now, so errors carry the profile's lines
    read_settings(check, Settings())
    check.finish()
    return Profile(str(path), doc, dict(flags or {}))


def apply_settings(r: Routine, profile: Profile) -> Settings:
    s = r.settings
    if profile.doc is not None:
        s, _ = read_settings(Fields(profile.doc, profile.path or "profile", "the profile"), s)
    for key, value in profile.flags.items():
        if value is None:
            continue
        part, _, attr = key.partition(".")
        if attr:
            s = dataclasses.replace(s, **{part: dataclasses.replace(getattr(s, part), **{attr: value})})
        else:
            s = dataclasses.replace(s, **{key: value})
    if s.seed is None:  # tonight's phrasing differs from last night's, and stays put all evening
        s = dataclasses.replace(s, seed=int(datetime.date.today().strftime("%Y%m%d")))
    return s


def personalise(r: Routine, profile: Profile, measure: Callable[[Routine], int] | None = None
                ) -> tuple[Routine, list[str]]:
    """Apply settings, limitations, pace, order and (given `measure`) the target length."""
    settings = apply_settings(r, profile)
    r = dataclasses.replace(r, settings=settings)
    changes: list[str] = []
    r = limit(r, changes)
    r = pace(r, changes)
    if settings.order == "auto":
        r = order(r, changes)
    if settings.length_ms is not None and measure is not None:
        r = fit_length(r, settings.length_ms, measure, changes)
    return r, changes


def _root_id(stretch: Stretch) -> str:
    return stretch.id.removesuffix("-easier")


def limit(r: Routine, changes: list[str]) -> Routine:
    """Exclusions, in-bed only and avoided tags: swap for the easier variation where it is free, else drop."""
    s = r.settings
    avoid = set(s.avoid)
    steps = []
    for step in r.steps:
        if not isinstance(step, StretchStep):
            steps.append(step)
            continue
        st = step.stretch
        if st.id in s.exclude or _root_id(st) in s.exclude:
            changes.append(f"dropped {st.name}: excluded by your settings")
            continue
        problems = sorted(avoid & set(st.tags))
        if s.in_bed_only and not st.in_bed:
            problems.append("not done in bed")
        if problems:
            easier = st.easier or (library.find(_root_id(st)) if st.id.endswith("-easier") else None)
            if easier is not None and easier.id != st.id and not (avoid & set(easier.tags)) and \
                    (easier.in_bed or not s.in_bed_only):
                changes.append(f"swapped {st.name} for {easier.name}: avoids {', '.join(problems)}")
                steps.append(dataclasses.replace(step, stretch=easier))
            else:
                changes.append(f"dropped {st.name}: {', '.join(problems)}")
            continue
        steps.append(step)
    if not any(isinstance(step, StretchStep) for step in steps) and any(isinstance(x, StretchStep) for x in r.steps):
        raise UserError("no stretch is left after your limitations", "Avoid fewer tags or exclude fewer stretches")
    return dataclasses.replace(r, steps=tuple(steps))


def _scaled(value: int, factor: float, rng: library.Range | None) -> int:
    scaled = value * factor
    return rng.clamp(scaled) if rng is not None else int(round(scaled))


def pace(r: Routine, changes: list[str]) -> Routine:
    """Slow or brisk pace scales holds within each stretch's safe range, and settle, rest and transitions."""
    factor = PACE_FACTOR[r.settings.pace]
    if factor == 1.0:
        return r
    steps = []
    for step in r.steps:
        if isinstance(step, StretchStep):
            st = step.stretch
            hold = step.hold_ms or (st.hold_ms.default if st.hold_ms else None)
            steps.append(dataclasses.replace(
                step,
                hold_ms=_scaled(hold, factor, st.hold_ms) if hold else None,
                settle_ms=int((step.settle_ms if step.settle_ms is not None else st.settle_ms) * factor),
                rest_ms=int((step.rest_ms if step.rest_ms is not None else st.rest_ms) * factor)))
        else:
            steps.append(step)
    settings = dataclasses.replace(r.settings, transition_ms=int(r.settings.transition_ms * factor))
    changes.append(f"{r.settings.pace} pace: holds, settling and transitions x{factor:g} "
                   "(holds kept within each stretch's safe range)")
    return dataclasses.replace(r, steps=tuple(steps), settings=settings)


def _rank(step: StretchStep) -> tuple[int, int]:
    st = step.stretch
    return (1 if st.kind == "rest" else 0, POSITION_ORDER.get(st.position, 4))


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


def _scale_routine(r: Routine, x: float, counts_too: bool) -> Routine:
    steps = []
    for step in r.steps:
        if isinstance(step, StretchStep):
            st = step.stretch
            hold = _at(st.hold_ms, x, step.hold_ms or (st.hold_ms.default if st.hold_ms else None))
            reps, rounds = step.reps, step.rounds
            if counts_too:
                reps = _at(st.reps, x, step.reps or st.reps.default)
                if st.kind == "flow":
                    rounds = _at(st.rounds, x, step.rounds or st.rounds.default)
            steps.append(dataclasses.replace(step, hold_ms=hold if st.hold_ms else None, reps=reps, rounds=rounds))
        else:
            steps.append(step)
    return dataclasses.replace(r, steps=tuple(steps))


def fit_length(r: Routine, target_ms: int, measure: Callable[[Routine], int], changes: list[str]) -> Routine:
    """Scale holds, reps and rounds within their safe ranges (dropping or adding optional stretches)
    until the guided part is within 3% of the target; otherwise say why and what is possible."""
    low, high = target_ms * (1 - LENGTH_TOLERANCE), target_ms * (1 + LENGTH_TOLERANCE)
    candidates = [r]
    optional = [s for s in r.steps if isinstance(s, StretchStep) and s.stretch.optional]
    shorter = r
    for step in optional:  # drop optional stretches one at a time, for targets below the range
        shorter = dataclasses.replace(shorter, steps=tuple(x for x in shorter.steps if x is not step))
        if any(isinstance(x, StretchStep) for x in shorter.steps):
            candidates.append(shorter)
    best = None
    for candidate in candidates:
        for counts_too in (True, False):
            lo_x, hi_x = -1.0, 1.0
            shortest = measure(_scale_routine(candidate, -1.0, counts_too))
            longest = measure(_scale_routine(candidate, 1.0, counts_too))
            if best is None or abs(longest - target_ms) < abs(best[0] - target_ms):
                best = (longest, candidate)
            if shortest > high:
                break  # even the shortest is too long: try dropping an optional stretch
            if longest < low:
                break
            for _ in range(24):
                mid = (lo_x + hi_x) / 2
                length = measure(_scale_routine(candidate, mid, counts_too))
                if low <= length <= high:
                    dropped = [s.stretch.name for s in r.steps if isinstance(s, StretchStep) and s not in candidate.steps]
                    changes.append(f"fitted to {source.format_duration(target_ms)}: guided part "
                                   f"{source.format_duration(length)}; holds, reps and rounds scaled within their "
                                   f"safe ranges" + (f"; dropped {', '.join(dropped)}" if dropped else ""))
                    return _scale_routine(candidate, mid, counts_too)
                if length < low:
                    lo_x = mid
                else:
                    hi_x = mid
    shortest = measure(_scale_routine(candidates[-1], -1.0, True))
    longest = measure(_scale_routine(r, 1.0, True))
    raise UserError(f"cannot fit this routine into {source.format_duration(target_ms)}: its guided part can be "
                    f"from {source.format_duration(shortest)} to {source.format_duration(longest)}",
                    "Choose a length in that range, or add or remove stretches")
