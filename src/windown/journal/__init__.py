"""The journal: every build records a session, `windown log` adds entries, and personalise reads its verdicts.

Library functions for every surface (CLI, batch, the web page): `record_session`, `add_entry`, `verdicts_at`.
Storage is in `store`, looking back in `report`, CSV in `csvfile`, the plot in `plot`.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from pathlib import Path

from windown.errors import UserError, closest
from windown.journal import report
from windown.journal.store import (Contents, Entry, Journal, JournalError, Session, SessionStretch, default_path,
                                   now, open_journal)

__all__ = ["Contents", "Entry", "Journal", "JournalError", "Session", "SessionStretch", "default_path", "now",
           "open_journal", "session_of", "record_session", "verdicts_at", "check_ids", "add_entry", "report",
           "SCALES", "score", "stretch_ids", "entry_from"]

SCALES = {  # option: (low, high, what the numbers mean, an example)
    "--pain": (0, 10, "0 no pain to 10 the worst imaginable", 3),  # the numeric rating scale
    "--sleep": (1, 5, "1 very poor, 2 poor, 3 fair, 4 good, 5 very good", 4),  # the Consensus Sleep Diary's
    "--fell-asleep": (0, 24 * 60, "minutes it took to fall asleep", 20),
    "--woke": (0, 100, "times you woke in the night", 1),
    "--pain-waking": (0, 10, "0 no pain to 10 the worst imaginable", 3),
}
MAX_NOTE_CHARS = 2000


def score(option: str, value: str | None) -> int | None:
    """A whole number on its scale (None when not given), or one clear line saying what belongs there."""
    if value is None or str(value).strip() == "":
        return None
    low, high, meaning, example = SCALES[option]
    try:
        number = int(str(value).strip())
    except ValueError:
        raise UserError(f"{option}: '{value}' is not a number", f"Give a whole number from {low} to {high} "
                        f"({meaning}), e.g. {option} {example}") from None
    if not low <= number <= high:
        raise UserError(f"{option}: {number} is outside {low} to {high}", f"Use {meaning}")
    return number


def stretch_ids(value: str | None) -> tuple[str, ...]:
    """Comma-separated stretch ids, each once."""
    return tuple(dict.fromkeys(x.strip() for x in (value or "").split(",") if x.strip()))


def entry_from(answers: dict[str, str | None]) -> Entry:
    """An entry from `windown log`'s answers as typed (option names without dashes), every value checked."""
    note = (answers.get("note") or "").strip() or None
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise UserError(f"--note: the note is longer than {MAX_NOTE_CHARS} characters",
                        "Keep it short, or write it in parts")
    return Entry(now(), pain=score("--pain", answers.get("pain")), hurt=stretch_ids(answers.get("hurt")),
                 helped=stretch_ids(answers.get("helped")), skipped=stretch_ids(answers.get("skipped")), note=note,
                 sleep=score("--sleep", answers.get("sleep")),
                 fell_asleep_min=score("--fell-asleep", answers.get("fell_asleep")),
                 woke=score("--woke", answers.get("woke")), pain_waking=score("--pain-waking",
                                                                              answers.get("pain_waking")))


def session_of(result, routine: str, source_name: str = "cli") -> Session:
    """What a finished build contained (`result` is its pipeline.Result; `routine` the name it was asked for)."""
    from windown.routine import StretchStep

    stretches = []
    for step in result.routine.steps:
        if isinstance(step, StretchStep):
            st = step.stretch
            hold = step.hold_ms or (st.hold_ms.default if st.hold_ms else None)
            stretches.append(SessionStretch(st.id, hold if st.kind not in ("flow", "reps") else None))
    return Session(now(), routine, result.routine.title, tuple(stretches), int(result.guided_ms), result.engine,
                   result.voice, str(Path(result.mp3).resolve()), source_name)


def record_session(path: str | os.PathLike | None, session: Session) -> int:
    """Add one session to the journal at `path` (None: the default journal); returns its id."""
    with open_journal(default_path(path)) as journal:
        return journal.add_session(session)


def verdicts_at(path: str | os.PathLike | None, today: datetime.date | None = None) -> list:
    """The journal's verdicts for tomorrow's track; none when there is no journal yet."""
    journal = open_journal(default_path(path), write=False)
    if journal is None:
        return []
    with journal:
        return report.verdicts(journal.read(), today or report.night_of(now()))


def check_ids(flag: str, ids: tuple[str, ...], last: Session | None) -> None:
    """Stretch ids given to --hurt/--helped/--skipped must be among the last session's (or, before any
    session, the library's); the closest one is suggested."""
    from windown import library

    if last is not None:
        known = [x.stretch for x in last.stretches]
        known += [report.root_id(x) for x in known if report.root_id(x) not in known]
        where = f"in your last session ({last.title}, {last.at[:16].replace('T', ' ')}: " \
                f"{', '.join(x.stretch for x in last.stretches)})"
    else:
        known = library.all_ids()
        where = "in the stretch library (no session recorded yet)"
    for x in ids:
        if x not in known:
            hint = closest(x, known)
            raise UserError(f"{flag}: '{x}' is not a stretch {where}",
                            hint or "Give stretch ids separated by commas, e.g. --hurt cobra,bridge")


def add_entry(path: str | os.PathLike | None, entry: Entry) -> int:
    """Check the feedback ids against the session the entry follows, then add it; returns its id.
    A bad id writes nothing (not even a new, empty journal)."""
    path = default_path(path)
    if not path.exists():
        for flag, ids in (("--hurt", entry.hurt), ("--helped", entry.helped), ("--skipped", entry.skipped)):
            check_ids(flag, ids, None)
    with open_journal(path) as journal:
        last = journal.last_session(entry.at)
        for flag, ids in (("--hurt", entry.hurt), ("--helped", entry.helped), ("--skipped", entry.skipped)):
            check_ids(flag, ids, last)
        return journal.add_entry(dataclasses.replace(entry, session_id=last.id if last else None))
