"""Looking back: the journal's rows as nights, 7-night rolling averages, what each stretch seems to do, and
the verdicts that adapt tomorrow's track. Plain Python over `store.Contents`, so it is testable without SQLite.

A night runs from noon to noon: a session at 22:00 and a morning entry at 07:00 the next day belong to the
same night, the date of its evening.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from windown.journal.store import Contents
from windown.personalise import Verdict, format_dates

NIGHT_STARTS_AT = datetime.timedelta(hours=12)
WINDOW_DAYS = 14  # hurt marks count within this many days, and the report shows this many nights
ROLLING_NIGHTS = 7
ENOUGH_NIGHTS = 5  # of each (with and without a stretch) before comparing them
MEANINGFUL_POINTS = 2.0  # a change on the 0-10 pain scale this large, or
MEANINGFUL_FRACTION = 0.30  # this fraction of the baseline, is a meaningful change (Ostelo 2008)


def root_id(stretch: str) -> str:
    return stretch.removesuffix("-easier")


def night_of(at: str) -> datetime.date:
    return (datetime.datetime.fromisoformat(at) - NIGHT_STARTS_AT).date()


@dataclass
class Night:
    date: datetime.date
    stretches: list[str] = field(default_factory=list)  # done: in a session that night, not marked skipped
    pain: float | None = None  # evening pain (mean of that night's entries)
    sleep: float | None = None  # 1-5
    pain_waking: float | None = None
    fell_asleep_min: float | None = None
    woke: float | None = None
    sessions: int = 0


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def nights(contents: Contents) -> dict[datetime.date, Night]:
    """Every night with a session or an entry, oldest first."""
    done: dict[datetime.date, list[str]] = {}
    sessions: dict[datetime.date, int] = {}
    for s in contents.sessions:
        day = night_of(s.at)
        sessions[day] = sessions.get(day, 0) + 1
        for x in s.stretches:
            if x.stretch not in done.setdefault(day, []):
                done[day].append(x.stretch)
    values: dict[datetime.date, dict[str, list[float]]] = {}
    skipped: dict[datetime.date, set[str]] = {}
    for e in contents.entries:
        day = night_of(e.at)
        got = values.setdefault(day, {})
        for name in ("pain", "sleep", "pain_waking", "fell_asleep_min", "woke"):
            value = getattr(e, name)
            if value is not None:
                got.setdefault(name, []).append(value)
        skipped.setdefault(day, set()).update(e.skipped)
    out = {}
    for day in sorted(set(done) | set(values)):
        got = values.get(day, {})
        gone = skipped.get(day, set())
        out[day] = Night(day, [x for x in done.get(day, []) if x not in gone and root_id(x) not in gone],
                         *(_mean(got.get(name, [])) for name in ("pain", "sleep", "pain_waking", "fell_asleep_min",
                                                                   "woke")),
                         sessions=sessions.get(day, 0))
    return out


def rolling(by_night: dict[datetime.date, Night], day: datetime.date, name: str,
            nights_back: int = ROLLING_NIGHTS) -> float | None:
    """The mean of `name` over the `nights_back` nights ending with `day` (nights without a value skipped)."""
    window = [getattr(by_night[d], name) for d in by_night if day - datetime.timedelta(days=nights_back) < d <= day]
    return _mean([v for v in window if v is not None])


@dataclass
class Comparison:
    with_mean: float | None
    with_n: int
    without_mean: float | None
    without_n: int

    @property
    def enough(self) -> bool:
        return self.with_n >= ENOUGH_NIGHTS and self.without_n >= ENOUGH_NIGHTS

    @property
    def change(self) -> float | None:
        if self.with_mean is None or self.without_mean is None:
            return None
        return self.with_mean - self.without_mean


def _compare(by_night: dict[datetime.date, Night], stretch: str, name: str) -> Comparison:
    with_, without = [], []
    for night in by_night.values():
        value = getattr(night, name)
        if value is not None:
            (with_ if stretch in night.stretches else without).append(value)
    return Comparison(_mean(with_), len(with_), _mean(without), len(without))


def meaningful_pain(c: Comparison) -> bool:
    """A 2-point or 30% difference on the 0-10 scale, judged only with enough nights of each."""
    if not c.enough or c.change is None:
        return False
    base = c.without_mean or 0.0
    return abs(c.change) >= MEANINGFUL_POINTS or (base > 0 and abs(c.change) / base >= MEANINGFUL_FRACTION)


@dataclass
class StretchRow:
    stretch: str
    nights: int
    hurt: int
    helped: int
    pain_waking: Comparison
    sleep: Comparison

    @property
    def meaningful(self) -> bool:
        return meaningful_pain(self.pain_waking)


def stretch_table(contents: Contents) -> list[StretchRow]:
    """Per stretch ever done: nights done, times marked hurting or helping, and next morning's pain and sleep
    on nights with it against nights without it."""
    by_night = nights(contents)
    hurt: dict[str, int] = {}
    helped: dict[str, int] = {}
    for e in contents.entries:
        for x in e.hurt:
            hurt[x] = hurt.get(x, 0) + 1
        for x in e.helped:
            helped[x] = helped.get(x, 0) + 1
    ids: list[str] = []
    for night in by_night.values():
        ids += [x for x in night.stretches if x not in ids]
    ids += [x for x in list(hurt) + list(helped) if x not in ids]
    return [StretchRow(x, sum(x in n.stretches for n in by_night.values()), hurt.get(x, 0), helped.get(x, 0),
                       _compare(by_night, x, "pain_waking"), _compare(by_night, x, "sleep"))
            for x in sorted(ids)]


def verdicts(contents: Contents, today: datetime.date) -> list[Verdict]:
    """Per stretch (root id): hurt twice within 14 days -> leave out (until forgiven or marked helping);
    hurt once in the last 14 days -> ease; marked helping since its last hurt -> prefer when cutting."""
    marks: dict[str, list[tuple[str, str]]] = {}  # root id -> [(at, kind)]
    for e in contents.entries:
        for kind, ids in (("hurt", e.hurt), ("helped", e.helped)):
            for x in ids:
                marks.setdefault(root_id(x), []).append((e.at, kind))
    for f in contents.forgiven:
        marks.setdefault(root_id(f.stretch), []).append((f.at, "forgiven"))
    out = []
    for stretch, events in sorted(marks.items()):
        events.sort(key=lambda m: datetime.datetime.fromisoformat(m[0]))
        last_reset = max((i for i, (_, kind) in enumerate(events) if kind in ("helped", "forgiven")), default=-1)
        hurts = sorted({night_of(at) for at, kind in events[last_reset + 1:] if kind == "hurt"})  # once a night
        pairs = [(a, b) for a, b in zip(hurts, hurts[1:]) if (b - a).days <= WINDOW_DAYS]
        if pairs:
            a, b = pairs[-1]
            out.append(Verdict(stretch, "leave-out", (a, b)))
        elif hurts and (today - hurts[-1]).days <= WINDOW_DAYS:
            out.append(Verdict(stretch, "ease", (hurts[-1],)))
        elif last_reset >= 0 and events[last_reset][1] == "helped" and not hurts:
            helped = tuple(night_of(at) for at, kind in events if kind == "helped")
            out.append(Verdict(stretch, "prefer", helped[-3:]))
    return out


def describe(verdict: Verdict) -> str:
    """One line for `windown journal`: what tomorrow's track will do with this stretch, and why."""
    when = format_dates(verdict.dates)
    return {"leave-out": f"{verdict.stretch}: left out (hurt on {when}); `windown journal forgive "
                         f"{verdict.stretch}` brings it back",
            "ease": f"{verdict.stretch}: the easier variation (hurt on {when})",
            "prefer": f"{verdict.stretch}: the last to be cut when a length forces cuts (helped on {when})"}[verdict.action]


# --- the printed report -----------------------------------------------------------------------------

def _num(value: float | None, width: int = 4, whole: bool = False) -> str:
    """A night's own value as logged (a whole number, or a mean of a few); averages with one decimal."""
    if value is None:
        return "-".rjust(width)
    text = str(int(value)) if whole and value == int(value) else f"{value:.1f}"
    return text.rjust(width)


def _pair(value: float | None, average: float | None) -> str:
    return f"{_num(value, 2, whole=True)} ({_num(average, 3).strip()})" if value is not None else " -"


def _stretch_list(names: list[str], width: int = 34) -> str:
    """As many names as fit, then how many more."""
    if not names:
        return "-"
    for shown in range(len(names), 0, -1):
        text = ", ".join(names[:shown]) + (f" +{len(names) - shown}" if shown < len(names) else "")
        if len(text) <= width:
            return text
    return f"{len(names)} stretches"


def text(contents: Contents, today: datetime.date) -> str:
    """`windown journal`: the last 14 nights with 7-night averages, the per-stretch table, and the verdicts."""
    by_night = nights(contents)
    lines = []
    if not by_night:
        return ("The journal is empty. Build a track (each build is recorded), then `windown log --pain 3` "
                "in the evening and `windown log --sleep 4` in the morning.\n")
    days = [today - datetime.timedelta(days=n) for n in range(WINDOW_DAYS - 1, -1, -1)]
    lines.append(f"Last {WINDOW_DAYS} nights (pain 0-10, sleep 1-5 very poor to very good; "
                 f"{ROLLING_NIGHTS}-night averages in brackets)")
    lines.append(f"{'night':11s} {'stretches done':34s} {'pain':10s} {'sleep':10s} waking pain")
    for day in days:
        night = by_night.get(day)
        label = f"{day.strftime('%a')} {day.day} {day.strftime('%b')}"
        if night is None:
            lines.append(f"{label:11s} -")
            continue
        cells = [_pair(night.pain, rolling(by_night, day, "pain")),
                 _pair(night.sleep, rolling(by_night, day, "sleep")),
                 _pair(night.pain_waking, rolling(by_night, day, "pain_waking"))]
        lines.append(f"{label:11s} {_stretch_list(night.stretches):34s} {cells[0]:10s} {cells[1]:10s} "
                     f"{cells[2]}".rstrip())
    rows = stretch_table(contents)
    if rows:
        lines.append("")
        lines.append("Per stretch: next morning's waking pain and sleep, nights with it / nights without it "
                     "(counts in brackets)")
        width = max(len("stretch"), *(len(r.stretch) for r in rows))
        lines.append(f"{'stretch':{width}s} nights hurt helped  {'waking pain':25s} sleep")
        for r in rows:
            head = f"{r.stretch:{width}s} {r.nights:6d} {r.hurt:4d} {r.helped:6d}  "
            p, s = r.pain_waking, r.sleep
            if not p.enough and not s.enough:
                lines.append(head + f"not enough nights yet ({p.with_n} with, {p.without_n} without; "
                             f"{ENOUGH_NIGHTS} of each needed)")
                continue
            pain = f"{_num(p.with_mean, 3)} ({p.with_n}) / {_num(p.without_mean, 3)} ({p.without_n})"
            sleep = f"{_num(s.with_mean, 3)} ({s.with_n}) / {_num(s.without_mean, 3)} ({s.without_n})"
            note = ""
            if r.meaningful:
                note = (f"  meaningful: {abs(p.change):.1f} points "
                        f"{'less' if p.change < 0 else 'more'} pain on nights with it")
            lines.append(head + f"{pain:25s} {sleep}{note}")
        lines.append(f"A difference of {MEANINGFUL_POINTS:g} points or {MEANINGFUL_FRACTION:.0%} in pain is called "
                     f"meaningful; smaller ones are shown, not called out.")
    found = verdicts(contents, today)
    if found:
        lines.append("")
        lines.append("Tomorrow's track (unless built with --no-journal):")
        lines += [f"  {describe(v)}" for v in found]
    return "\n".join(lines) + "\n"
