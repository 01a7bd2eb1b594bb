"""The journal as CSV: every session, entry and forgiveness, one row each, to keep, read in a spreadsheet,
or move to another machine. Reading back what was written gives the same rows, so a round trip is exact.

Sessions are numbered 1, 2, ... in the file and entries name the session they follow by that number, so
the file does not depend on the database's own row ids.
"""

from __future__ import annotations

import csv
import datetime
import io
import os
from pathlib import Path

from windown.errors import UserError
from windown.journal.store import Contents, Entry, Forgiven, Session, SessionStretch

COLUMNS = ("record", "id", "at", "session", "routine", "title", "stretches", "guided_ms", "engine", "voice",
           "output", "source", "pain", "hurt", "helped", "skipped", "note", "sleep", "fell_asleep_min", "woke",
           "pain_waking")
RANGES = {"pain": (0, 10), "sleep": (1, 5), "pain_waking": (0, 10), "fell_asleep_min": (0, 24 * 60),
          "woke": (0, 100), "guided_ms": (0, 24 * 3_600_000)}
MAX_BYTES = 50 * 1024 * 1024


def _ids(values: tuple[str, ...]) -> str:
    return ";".join(values)


# A text cell a spreadsheet would run as a formula (=, +, -, @, tab, CR) is written after a "'", as
# spreadsheets themselves do; so is one that starts with "'", so reading back removes exactly one.
FORMULA_STARTS = tuple("=+-@\t\r'")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return str(value)


def _uncell(value: str) -> str:
    """A cell as written by _cell, back to its text."""
    return value[1:] if value[:1] == "'" and value[1:].startswith(FORMULA_STARTS) else value


def dumps(contents: Contents) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    number = {s.id: n for n, s in enumerate(contents.sessions, start=1)}
    for n, s in enumerate(contents.sessions, start=1):
        stretches = ";".join(x.stretch + (f":{x.hold_ms}" if x.hold_ms is not None else "") for x in s.stretches)
        row = {"record": "session", "id": n, "at": s.at, "routine": s.routine, "title": s.title,
               "stretches": stretches, "guided_ms": s.guided_ms, "engine": s.engine, "voice": s.voice,
               "output": s.output, "source": s.source}
        writer.writerow([_cell(row.get(c)) for c in COLUMNS])
    for n, e in enumerate(contents.entries, start=1):
        row = {"record": "entry", "id": n, "at": e.at, "session": number.get(e.session_id), "pain": e.pain,
               "hurt": _ids(e.hurt), "helped": _ids(e.helped), "skipped": _ids(e.skipped), "note": e.note,
               "sleep": e.sleep, "fell_asleep_min": e.fell_asleep_min, "woke": e.woke, "pain_waking": e.pain_waking}
        writer.writerow([_cell(row.get(c)) for c in COLUMNS])
    for n, f in enumerate(contents.forgiven, start=1):
        row = {"record": "forgiven", "id": n, "at": f.at, "stretches": f.stretch}
        writer.writerow([_cell(row.get(c)) for c in COLUMNS])
    return out.getvalue()


class _Row:
    def __init__(self, path: str, line: int, cells: dict[str, str]):
        self.path, self.line, self.cells = path, line, cells

    def error(self, problem: str, hint: str) -> UserError:
        return UserError(problem, hint, path=self.path, line=self.line)

    def text(self, name: str, required: bool = False) -> str | None:
        value = _uncell(self.cells.get(name) or "")
        if required and not value:
            raise self.error(f"'{name}' is empty", "Every row needs it; export a journal with `windown journal "
                             "--csv` to see the format")
        return value or None

    def whole(self, name: str) -> int | None:
        value = self.cells.get(name) or ""
        if not value:
            return None
        try:
            number = int(value)
        except ValueError:
            raise self.error(f"'{name}' is {value!r}, not a whole number", "Write it in digits, e.g. 3") from None
        low, high = RANGES.get(name, (0, 2**31))
        if not low <= number <= high:
            raise self.error(f"'{name}' is {number}, outside {low} to {high}", f"Use a value from {low} to {high}")
        return number

    def at(self) -> str:
        value = self.text("at", required=True)
        try:
            stamp = datetime.datetime.fromisoformat(value)
        except ValueError:
            raise self.error(f"'at' is {value!r}, not a date and time",
                             "Write e.g. 2026-12-01T22:15:00+00:00") from None
        if stamp.tzinfo is None:
            raise self.error(f"'at' ({value}) has no UTC offset", "Write e.g. 2026-12-01T22:15:00+00:00")
        return value

    def ids(self, name: str) -> tuple[str, ...]:
        value = self.cells.get(name) or ""
        found = tuple(x for x in value.split(";") if x)
        bad = [x for x in found if not x.replace("-", "").replace("_", "").isalnum()]
        if bad:
            raise self.error(f"'{name}' holds {bad[0]!r}, not a stretch id", "Separate stretch ids with ';'")
        return found


def _stretches(row: _Row) -> tuple[SessionStretch, ...]:
    out = []
    for part in (row.cells.get("stretches") or "").split(";"):
        if not part:
            continue
        stretch, _, hold = part.partition(":")
        if not stretch.replace("-", "").replace("_", "").isalnum() or (hold and not hold.isdigit()):
            raise row.error(f"'stretches' holds {part!r}; a hold is whole milliseconds",
                            "Write e.g. cobra:20000;cat-cow")
        out.append(SessionStretch(stretch, int(hold) if hold else None))
    return tuple(out)


def loads(text: str, path: str = "journal.csv") -> Contents:
    """Every row checked before anything is returned: one bad row and nothing is imported."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise UserError(f"is not a windown journal CSV (no '{missing[0]}' column)",
                        "Export one with `windown journal --csv` to see the format", path=path, line=1)
    contents = Contents()
    numbers: dict[int, int] = {}
    pending: list[tuple[_Row, Entry]] = []
    for cells in reader:
        row = _Row(path, reader.line_num, cells)
        kind = row.text("record", required=True)
        if kind == "session":
            number = row.whole("id")
            if number is None or number in numbers:
                raise row.error("a session needs its own number in 'id'", "Number sessions 1, 2, 3, ...")
            numbers[number] = number
            contents.sessions.append(Session(row.at(), row.text("routine", True), row.text("title") or "",
                                             _stretches(row), row.whole("guided_ms") or 0, row.text("engine") or "",
                                             row.text("voice") or "", row.text("output") or "",
                                             row.text("source") or "cli", id=number))
        elif kind == "entry":
            entry = Entry(row.at(), row.whole("session"), row.whole("pain"), row.ids("hurt"), row.ids("helped"),
                          row.ids("skipped"), row.text("note"), row.whole("sleep"), row.whole("fell_asleep_min"),
                          row.whole("woke"), row.whole("pain_waking"))
            pending.append((row, entry))
        elif kind == "forgiven":
            stretch = row.ids("stretches")
            if len(stretch) != 1:
                raise row.error("a 'forgiven' row names one stretch in 'stretches'", "Write e.g. cobra")
            contents.forgiven.append(Forgiven(row.at(), stretch[0]))
        else:
            raise row.error(f"unknown record {kind!r}", "Use session, entry or forgiven")
    for row, entry in pending:
        if entry.session_id is not None and entry.session_id not in numbers:
            raise row.error(f"the entry follows session {entry.session_id}, which is not in the file",
                            "Keep the session rows with their entries, or empty 'session'")
        contents.entries.append(entry)
    return contents


def read(path: str | os.PathLike) -> Contents:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise UserError(f"the file is larger than {MAX_BYTES // 1024 // 1024} MB", "Import a windown journal CSV",
                            path=path)
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise UserError("no such file", "Check the path", path=path) from None
    except UnicodeDecodeError:
        raise UserError("is not UTF-8 text", "Export a windown journal with `windown journal --csv`",
                        path=path) from None
    except IsADirectoryError:
        raise UserError("is a folder", "Name a .csv file", path=path) from None
    except OSError as exc:
        raise UserError(f"cannot read the file ({exc.strerror})", "Check the path and its permissions",
                        path=path) from None
    return loads(text, str(path))
