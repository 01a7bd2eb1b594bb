"""The journal file: one SQLite database of sessions (what each build contained) and entries (pain, sleep,
per-stretch feedback), private to its owner.

Why it is built this way:
- A journal is health data: the file is made with mode 0600 in a 0700 folder, and nothing of it goes
  anywhere else (not into MP3 tags or sidecars).
- Nothing is lost: every write is one transaction; a file that is not a windown journal, or is damaged,
  is reported and never written to; a copy is kept before any schema migration.
- A build and a `windown log` may run at once: WAL mode, and a generous busy timeout, so neither blocks
  the other for long and both land.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import sqlite3
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from windown.errors import UserError

APPLICATION_ID = 0x57444A4E  # "WDJN" in the SQLite header: this file is a windown journal
SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 30_000  # a build's write and an entry's write wait for each other this long at most
SQLITE_MAGIC = b"SQLite format 3\x00"

# Forward migrations: MIGRATIONS[v] takes a journal from version v - 1 to v. Never edit a released step;
# add the next one.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,               -- ISO 8601 local time with its UTC offset
            routine TEXT NOT NULL,          -- the routine file or preset name as given
            title TEXT NOT NULL,
            guided_ms INTEGER NOT NULL,     -- up to the end of the closing words
            engine TEXT NOT NULL,
            voice TEXT NOT NULL,
            output TEXT NOT NULL
        )""",
        """CREATE TABLE session_stretches (
            session_id INTEGER NOT NULL REFERENCES sessions(id),
            position INTEGER NOT NULL,      -- order in the track, from 0
            stretch TEXT NOT NULL,          -- stretch id as built (e.g. cobra-easier)
            hold_ms INTEGER,                -- NULL for flows and reps paced by the breath
            PRIMARY KEY (session_id, position)
        )""",
        """CREATE TABLE entries (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            session_id INTEGER REFERENCES sessions(id),  -- the session this entry follows
            pain INTEGER CHECK (pain BETWEEN 0 AND 10),
            sleep INTEGER CHECK (sleep BETWEEN 1 AND 5),
            fell_asleep_min INTEGER CHECK (fell_asleep_min >= 0),
            woke INTEGER CHECK (woke >= 0),
            pain_waking INTEGER CHECK (pain_waking BETWEEN 0 AND 10),
            note TEXT
        )""",
        """CREATE TABLE feedback (
            entry_id INTEGER NOT NULL REFERENCES entries(id),
            stretch TEXT NOT NULL,
            verdict TEXT NOT NULL CHECK (verdict IN ('hurt', 'helped', 'skipped')),
            PRIMARY KEY (entry_id, stretch, verdict)
        )""",
    ),
    2: (  # `windown journal forgive`, and where a session was built (cli, batch, web)
        """CREATE TABLE forgiven (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            stretch TEXT NOT NULL
        )""",
        "ALTER TABLE sessions ADD COLUMN source TEXT NOT NULL DEFAULT 'cli'",
    ),
}


class JournalError(UserError):
    """The journal file cannot be used as it is (foreign, damaged, read-only, from a newer windown)."""


@dataclass(frozen=True)
class SessionStretch:
    stretch: str
    hold_ms: int | None = None


@dataclass(frozen=True)
class Session:
    """What one build contained."""

    at: str
    routine: str
    title: str
    stretches: tuple[SessionStretch, ...]
    guided_ms: int
    engine: str
    voice: str
    output: str
    source: str = "cli"
    id: int | None = None


@dataclass(frozen=True)
class Entry:
    """One `windown log`: an evening's pain and per-stretch feedback, or a morning's sleep, or both."""

    at: str
    session_id: int | None = None
    pain: int | None = None
    hurt: tuple[str, ...] = ()
    helped: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    note: str | None = None
    sleep: int | None = None
    fell_asleep_min: int | None = None
    woke: int | None = None
    pain_waking: int | None = None
    id: int | None = None


@dataclass(frozen=True)
class Forgiven:
    at: str
    stretch: str
    id: int | None = None


@dataclass
class Contents:
    """Every row of a journal, oldest first."""

    sessions: list[Session] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    forgiven: list[Forgiven] = field(default_factory=list)


def now() -> str:
    """The time stamp every row carries: local time with its offset, to the second."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def default_path(explicit: str | os.PathLike | None = None) -> Path:
    """`--journal FILE`, else $WINDOWN_JOURNAL, else $XDG_DATA_HOME/windown/journal.sqlite."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("WINDOWN_JOURNAL"):
        return Path(os.environ["WINDOWN_JOURNAL"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "windown" / "journal.sqlite"


def _fail(path: Path, problem: str, hint: str) -> JournalError:
    return JournalError(problem, hint, path=path)


def _check_file(path: Path, write: bool) -> None:
    """Refuse anything that is not (yet) a windown journal before SQLite touches it."""
    if path.is_dir():
        raise _fail(path, "the journal path is a folder", "Give a file name, e.g. --journal journal.sqlite")
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except PermissionError:
        raise _fail(path, "cannot read the journal (permission denied)", "Fix its permissions (chmod 600)") from None
    if head and head != SQLITE_MAGIC:
        raise _fail(path, "is not a windown journal (not an SQLite file); it was left untouched",
                    "Choose another file with --journal, or move this one away")
    # the owner's write bit is honoured even for root, who may write anyway: a file made read-only stays so
    owner_may_write = bool(path.stat().st_mode & stat.S_IWUSR)
    if write and not (owner_may_write and os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)):
        raise _fail(path, "the journal is read-only, so nothing was written",
                    "Make it writable (chmod 600, and its folder writable), or choose another with --journal")


def _create(path: Path) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
    except FileExistsError:
        pass  # another process made it a moment ago; opening it below waits for its set-up
    except OSError as exc:
        raise _fail(path, f"cannot create the journal ({exc.strerror})",
                    "Choose another place with --journal or $WINDOWN_JOURNAL") from None


class Journal:
    """An open journal. Use `open_journal`; close it (or use `with`) when done."""

    def __init__(self, path: Path, con: sqlite3.Connection):
        self.path = path
        self.con = con

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it lands, or none of it."""
        try:
            self.con.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _fail(self.path, f"cannot write to the journal ({exc}); nothing was written",
                        "Try again in a moment, or check the file's permissions and free space") from None
        try:
            yield self.con
            self.con.execute("COMMIT")
        except sqlite3.Error as exc:
            self.con.execute("ROLLBACK")
            raise _fail(self.path, f"cannot write to the journal ({exc}); nothing was written",
                        "Check free space and the file's permissions; earlier entries are intact") from None
        except BaseException:
            if self.con.in_transaction:
                self.con.execute("ROLLBACK")
            raise

    # -- writing ------------------------------------------------------------------------------------

    def add_session(self, session: Session) -> int:
        with self._writing() as con:
            return _insert_session(con, session)

    def add_entry(self, entry: Entry) -> int:
        with self._writing() as con:
            return _insert_entry(con, entry)

    def forgive(self, stretch: str, at: str | None = None) -> None:
        with self._writing() as con:
            con.execute("INSERT INTO forgiven (at, stretch) VALUES (?, ?)", (at or now(), stretch))

    def add_all(self, contents: Contents) -> tuple[int, int]:
        """Add every row not already here (in one transaction); return (added, already there).
        Sessions keep their links: an entry's session_id refers to a session in `contents`."""
        have = self.read()
        seen_sessions = {_session_key(s): s.id for s in have.sessions}
        seen_entries = {_entry_key(e) for e in have.entries}
        seen_forgiven = {(f.at, f.stretch) for f in have.forgiven}
        added = already = 0
        with self._writing() as con:
            new_ids: dict[int, int] = {}
            for s in contents.sessions:
                key = _session_key(s)
                if key in seen_sessions:
                    new_ids[s.id] = seen_sessions[key]
                    already += 1
                    continue
                new_ids[s.id] = seen_sessions[key] = _insert_session(con, s)
                added += 1
            for e in contents.entries:
                e = _replace_session(e, new_ids.get(e.session_id) if e.session_id is not None else None)
                if _entry_key(e) in seen_entries:
                    already += 1
                    continue
                seen_entries.add(_entry_key(e))
                _insert_entry(con, e)
                added += 1
            for f in contents.forgiven:
                if (f.at, f.stretch) in seen_forgiven:
                    already += 1
                    continue
                seen_forgiven.add((f.at, f.stretch))
                con.execute("INSERT INTO forgiven (at, stretch) VALUES (?, ?)", (f.at, f.stretch))
                added += 1
        return added, already

    # -- reading ------------------------------------------------------------------------------------

    def read(self) -> Contents:
        try:
            return self._read()
        except sqlite3.DatabaseError as exc:
            raise _fail(self.path, f"the journal is damaged ({exc}); it was left untouched",
                        "Restore a backup, or choose another file with --journal") from None

    def _read(self) -> Contents:
        con = self.con
        holds: dict[int, list[SessionStretch]] = {}
        for sid, stretch, hold_ms in con.execute(
                "SELECT session_id, stretch, hold_ms FROM session_stretches ORDER BY session_id, position"):
            holds.setdefault(sid, []).append(SessionStretch(stretch, hold_ms))
        sessions = [Session(at, routine, title, tuple(holds.get(sid, ())), guided_ms, engine, voice, output, source,
                            sid)
                    for sid, at, routine, title, guided_ms, engine, voice, output, source in con.execute(
                        "SELECT id, at, routine, title, guided_ms, engine, voice, output, source FROM sessions "
                        "ORDER BY id")]
        marks: dict[int, dict[str, list[str]]] = {}
        for eid, stretch, verdict in con.execute("SELECT entry_id, stretch, verdict FROM feedback ORDER BY rowid"):
            marks.setdefault(eid, {}).setdefault(verdict, []).append(stretch)
        entries = []
        for row in con.execute("SELECT id, at, session_id, pain, sleep, fell_asleep_min, woke, pain_waking, note "
                               "FROM entries ORDER BY id"):
            eid, at, sid, pain, sleep, fell, woke, waking, note = row
            m = marks.get(eid, {})
            entries.append(Entry(at, sid, pain, tuple(m.get("hurt", ())), tuple(m.get("helped", ())),
                                 tuple(m.get("skipped", ())), note, sleep, fell, woke, waking, eid))
        forgiven = [Forgiven(at, stretch, fid) for fid, at, stretch in
                    con.execute("SELECT id, at, stretch FROM forgiven ORDER BY id")]
        return Contents(sessions, entries, forgiven)

    def last_session(self, before: str | None = None) -> Session | None:
        """The latest session (at or before `before`), which an entry made now follows."""
        sessions = self.read().sessions
        if before is not None:
            sessions = [s for s in sessions if _instant(s.at) <= _instant(before)]
        return max(sessions, key=lambda s: (_instant(s.at), s.id), default=None)


def _instant(at: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(at)


def _session_key(s: Session) -> tuple:
    return (s.at, s.routine, s.output, s.stretches)


def _entry_key(e: Entry) -> tuple:
    return (e.at, e.session_id, e.pain, e.hurt, e.helped, e.skipped, e.note, e.sleep, e.fell_asleep_min, e.woke,
            e.pain_waking)


def _replace_session(e: Entry, session_id: int | None) -> Entry:
    return dataclasses.replace(e, session_id=session_id, id=None)


def _insert_session(con: sqlite3.Connection, s: Session) -> int:
    cur = con.execute("INSERT INTO sessions (at, routine, title, guided_ms, engine, voice, output, source) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      (s.at, s.routine, s.title, s.guided_ms, s.engine, s.voice, s.output, s.source))
    sid = cur.lastrowid
    con.executemany("INSERT INTO session_stretches (session_id, position, stretch, hold_ms) VALUES (?, ?, ?, ?)",
                    [(sid, i, x.stretch, x.hold_ms) for i, x in enumerate(s.stretches)])
    return sid


def _insert_entry(con: sqlite3.Connection, e: Entry) -> int:
    cur = con.execute("INSERT INTO entries (at, session_id, pain, sleep, fell_asleep_min, woke, pain_waking, note) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      (e.at, e.session_id, e.pain, e.sleep, e.fell_asleep_min, e.woke, e.pain_waking, e.note))
    eid = cur.lastrowid
    rows = [(eid, stretch, verdict) for verdict, ids in (("hurt", e.hurt), ("helped", e.helped),
                                                         ("skipped", e.skipped)) for stretch in dict.fromkeys(ids)]
    con.executemany("INSERT INTO feedback (entry_id, stretch, verdict) VALUES (?, ?, ?)", rows)
    return eid


def backup_path(path: Path, version: int) -> Path:
    return path.with_name(f"{path.name}.v{version}-backup")


def open_journal(path: str | os.PathLike, *, write: bool = True) -> Journal | None:
    """Open (with `write`, create) the journal at `path`, migrating an older schema forward first.

    Without `write`, a journal that does not exist yet gives None. Raises JournalError, never overwrites.
    """
    path = Path(path)
    try:
        exists = path.exists()
    except OSError as exc:
        raise _fail(path, f"cannot reach the journal ({exc.strerror})",
                    "Fix its folder's permissions, or choose another file with --journal") from None
    if not exists:
        if not write:
            return None
        _create(path)
    _check_file(path, write)
    try:
        con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    except sqlite3.Error as exc:
        raise _fail(path, f"cannot open the journal ({exc})", "Check the path and its permissions") from None
    try:
        con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _prepare(con, path, write)
    except JournalError:
        con.close()
        raise
    except sqlite3.DatabaseError as exc:
        con.close()
        raise _fail(path, f"the journal is damaged or not a windown journal ({exc}); it was left untouched",
                    "Restore a backup, or choose another file with --journal") from None
    return Journal(path, con)


def _tables(con: sqlite3.Connection) -> list[str]:
    return [name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]


def _prepare(con: sqlite3.Connection, path: Path, write: bool) -> None:
    """Check the file is ours (or new), then set up or migrate it; all under one write lock."""
    app_id = con.execute("PRAGMA application_id").fetchone()[0]
    version = con.execute("PRAGMA user_version").fetchone()[0]
    if app_id == APPLICATION_ID and version == SCHEMA_VERSION:
        if write:
            _quick_check(con, path)
        return
    if app_id not in (0, APPLICATION_ID) or (app_id == 0 and _tables(con)):
        raise _fail(path, "is an SQLite file of another program, not a windown journal; it was left untouched",
                    "Choose another file with --journal, or move this one away")
    if version > SCHEMA_VERSION:
        raise _fail(path, f"the journal was written by a newer windown (schema {version}; this one reads "
                    f"up to {SCHEMA_VERSION})", "Upgrade windown (pip install -U windown)")
    if not write:
        _check_file(path, True)  # an older schema must be migrated, which writes; say so if it cannot
    if app_id == APPLICATION_ID:
        _quick_check(con, path)
        _keep_copy(con, backup_path(path, version))
    con.execute("BEGIN IMMEDIATE")
    try:
        # read again under the lock: another process may have set it up or migrated it meanwhile
        app_id = con.execute("PRAGMA application_id").fetchone()[0]
        version = con.execute("PRAGMA user_version").fetchone()[0] if app_id == APPLICATION_ID else 0
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[step]:
                con.execute(statement)
        con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("PRAGMA journal_mode = WAL")  # persistent: set once, kept in the file


def _keep_copy(con: sqlite3.Connection, backup: Path) -> None:
    """A whole copy of the journal before it is migrated: written aside, then linked into place, so a
    copy that exists is complete; the first copy is the one worth keeping."""
    if backup.exists():
        return
    temp = backup.with_name(f".{backup.name}.{os.getpid()}.part")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    try:
        target = sqlite3.connect(temp)
        try:
            con.backup(target)
        finally:
            target.close()
        try:
            os.link(temp, backup)
        except FileExistsError:
            pass  # another process kept its copy a moment ago
    except OSError as exc:
        raise _fail(backup, f"cannot keep a copy of the journal before upgrading it ({exc.strerror}); nothing "
                    "was changed", "Free some space, or make the journal's folder writable") from None
    finally:
        temp.unlink(missing_ok=True)


def _quick_check(con: sqlite3.Connection, path: Path) -> None:
    result = con.execute("PRAGMA quick_check").fetchone()[0]
    if result != "ok":
        raise _fail(path, f"the journal is damaged ({result}); it was left untouched",
                    "Restore a backup (journal.sqlite.v*-backup), or choose another file with --journal")


def create_at_version(path: str | os.PathLike, version: int) -> sqlite3.Connection:
    """A journal at an older schema version (for migration tests and for reading old files back)."""
    path = Path(path)
    _create(path)
    con = sqlite3.connect(path, isolation_level=None)
    for step in range(1, version + 1):
        for statement in MIGRATIONS[step]:
            con.execute(statement)
    con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    con.execute(f"PRAGMA user_version = {version}")
    return con
