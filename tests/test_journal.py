"""The journal (issue 11): a real SQLite file, real processes and the real CLI.

A simulated month (fixed seed) is written through the library as `windown build` and `windown log` would,
then read back as nights, a per-stretch table, verdicts and the changes they make to a track.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
import pty
import random
import select
import shutil
import sqlite3
import stat
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from conftest import run_cli, write
from windown import journal, personalise, routine
from windown.journal import csvfile, report, store
from windown.personalise import Verdict
from windown.routine import StretchStep

LAST_NIGHT = datetime.date(2026, 11, 30)
OFFSET = "+01:00"
NO_SESSION = {5, 11, 17, 23, 29}  # nights (0-29) without a build
RARE = {3, 10, 16}  # the only nights with legs-up-the-wall: too few to compare
MARKS = {  # night -> (hurt, helped)
    2: (("sphinx",), ()),
    3: (("pelvic-tilts",), ()),
    4: (("childs-pose",), ()),
    7: (("childs-pose",), ()),
    12: ((), ("childs-pose",)),
    19: (("cobra",), ()),
    21: (("sphinx",), ()),
    22: (("cobra",), ()),
    24: (("supine-twist",), ()),
    25: (("supine-twist",), ()),
    26: (("bridge",), ()),
}
SKIPPED_NIGHT = 8  # knee-to-chest is built that night but marked skipped
FORGIVEN = ("supine-twist", "2026-11-28T12:00:00+01:00")


def stamp(day: datetime.date, hour: int, minute: int) -> str:
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}:00{OFFSET}"


@dataclass
class Month:
    """What the simulation wrote, kept by the test itself to derive the expected table."""

    done: dict[str, set[int]] = field(default_factory=dict)  # stretch -> nights done (not skipped)
    waking_pain: dict[int, int] = field(default_factory=dict)
    sleep: dict[int, int] = field(default_factory=dict)
    hurt: dict[str, int] = field(default_factory=dict)
    helped: dict[str, int] = field(default_factory=dict)
    sessions: int = 0
    entries: int = 0


def simulate_month(path: Path, last_night: datetime.date = LAST_NIGHT, seed: int = 20261130) -> Month:
    rng = random.Random(seed)
    month = Month()
    first = last_night - datetime.timedelta(days=29)
    for n in range(30):
        day = first + datetime.timedelta(days=n)
        knee = False
        if n not in NO_SESSION:
            knee = rng.random() < 0.5
            names = ["cat-cow"] + (["knee-to-chest"] if knee or n == SKIPPED_NIGHT else [])
            names += [x for x in MARKS.get(n, ((), ()))[0] + MARKS.get(n, ((), ()))[1] if x not in names]
            names += ["legs-up-the-wall"] if n in RARE else []
            holds = [journal.SessionStretch(x, 30_000 if x != "cat-cow" else None) for x in names]
            journal.record_session(path, journal.Session(stamp(day, 21, 45), "bedtime-lower-back", "Bedtime",
                                                         tuple(holds), 14 * 60_000, "espeak-ng", "en-us",
                                                         f"/tracks/{n}.mp3"))
            month.sessions += 1
            for x in names:
                if not (n == SKIPPED_NIGHT and x == "knee-to-chest"):
                    month.done.setdefault(x, set()).add(n)
            knee = knee and n != SKIPPED_NIGHT
            hurt, helped = MARKS.get(n, ((), ()))
            journal.add_entry(path, journal.Entry(stamp(day, 22, 30), pain=rng.randint(2, 6), hurt=hurt,
                                                  helped=helped,
                                                  skipped=("knee-to-chest",) if n == SKIPPED_NIGHT else (),
                                                  note="stiff, then easier" if n == 1 else None))
            month.entries += 1
            for x in hurt:
                month.hurt[x] = month.hurt.get(x, 0) + 1
            for x in helped:
                month.helped[x] = month.helped.get(x, 0) + 1
        month.waking_pain[n] = 2 if knee else 5  # knee-to-chest nights wake with less pain, by construction
        month.sleep[n] = 4 if knee else 3
        journal.add_entry(path, journal.Entry(stamp(day + datetime.timedelta(days=1), 7, 10),
                                              sleep=month.sleep[n], fell_asleep_min=rng.randint(5, 40),
                                              woke=rng.randint(0, 3), pain_waking=month.waking_pain[n]))
        month.entries += 1
    with journal.open_journal(path) as j:
        forgive_day = datetime.date.fromisoformat(FORGIVEN[1][:10])
        j.forgive(FORGIVEN[0], stamp(forgive_day - (LAST_NIGHT - last_night), 12, 0))
    return month


@pytest.fixture(scope="session")
def month_template(tmp_path_factory) -> tuple[Path, Month]:
    path = tmp_path_factory.mktemp("month") / "journal.sqlite"
    return path, simulate_month(path)


@pytest.fixture
def month_path(month_template, tmp_path) -> tuple[Path, Month]:
    """A private copy of the simulated month (every connection to the template is closed, so it is whole)."""
    template, month = month_template
    path = tmp_path / "journal.sqlite"
    shutil.copy2(template, path)
    return path, month


def contents_of(path: Path) -> journal.Contents:
    with journal.open_journal(path, write=False) as j:
        return j.read()


def mean(values) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


# -- the simulated month ---------------------------------------------------------------------------

def test_a_simulated_month_gives_the_expected_per_stretch_table(month_path):
    path, month = month_path
    contents = contents_of(path)
    assert (len(contents.sessions), len(contents.entries)) == (month.sessions, month.entries)
    rows = {r.stretch: r for r in report.stretch_table(contents)}
    assert set(rows) == set(month.done)
    for x, row in rows.items():
        with_nights = month.done[x]
        without = [n for n in range(30) if n not in with_nights]
        assert row.nights == len(with_nights), x
        assert (row.hurt, row.helped) == (month.hurt.get(x, 0), month.helped.get(x, 0)), x
        assert (row.pain_waking.with_n, row.pain_waking.without_n) == (len(with_nights), len(without)), x
        assert row.pain_waking.with_mean == pytest.approx(mean(month.waking_pain[n] for n in with_nights)), x
        assert row.pain_waking.without_mean == pytest.approx(mean(month.waking_pain[n] for n in without)), x
        assert row.sleep.with_mean == pytest.approx(mean(month.sleep[n] for n in with_nights)), x
        enough = len(with_nights) >= 5 and len(without) >= 5
        assert row.pain_waking.enough == enough, x
        if enough:
            change = row.pain_waking.with_mean - row.pain_waking.without_mean
            base = row.pain_waking.without_mean
            assert row.meaningful == (abs(change) >= 2 or abs(change) / base >= 0.3), x
    knee = rows["knee-to-chest"]
    assert (knee.pain_waking.with_mean, knee.pain_waking.without_mean) == (2.0, 5.0)
    assert knee.meaningful and knee.nights >= 5
    assert not rows["legs-up-the-wall"].pain_waking.enough  # 3 nights
    assert SKIPPED_NIGHT not in month.done["knee-to-chest"]


def test_the_printed_report_shows_14_nights_and_calls_out_only_meaningful_changes(month_path):
    path, _ = month_path
    text = report.text(contents_of(path), LAST_NIGHT)
    lines = text.splitlines()
    assert lines[0].startswith("Last 14 nights")
    nights = [line for line in lines[2:16]]
    assert nights[0].startswith("Tue 17 Nov") and nights[-1].startswith("Mon 30 Nov")
    assert nights[-1].split()[3] == "-"  # night 29 had no session
    legs = next(line for line in lines if line.startswith("legs-up-the-wall"))
    assert "not enough nights yet (3 with, 27 without" in legs
    knee = next(line for line in lines if line.startswith("knee-to-chest "))
    assert "meaningful: 3.0 points less pain on nights with it" in knee
    assert "cobra: left out (hurt on 20 and 23 Nov)" in text


def test_the_month_gives_the_expected_verdicts(month_path):
    path, _ = month_path
    found = report.verdicts(contents_of(path), LAST_NIGHT)
    d = lambda day: datetime.date(2026, 11, day)  # noqa: E731
    assert found == [
        Verdict("bridge", "ease", (d(27),)),  # hurt once, 3 nights ago
        Verdict("childs-pose", "prefer", (d(13),)),  # hurt twice, then marked as helping
        Verdict("cobra", "leave-out", (d(20), d(23))),  # twice within 14 days
        Verdict("sphinx", "ease", (d(22),)),  # twice, but 19 days apart: only the recent one counts
    ]  # pelvic-tilts: hurt 27 nights ago, no longer counts; supine-twist: forgiven


def test_the_verdicts_change_the_track_and_each_change_says_why(month_path):
    path, _ = month_path
    verdicts = report.verdicts(contents_of(path), LAST_NIGHT)
    r = routine.parse(routine.source.load("r.yaml", "title: T\nsteps:\n  - stretch: cobra\n  - stretch: bridge\n"
                                          "  - stretch: sphinx\n  - stretch: childs-pose\n  - stretch: supine-twist\n"),
                      "r.yaml")
    out, changes = personalise.personalise(r, personalise.Profile(), verdicts=verdicts)
    assert [s.stretch.id for s in out.steps] == ["bridge-easier", "sphinx-easier", "childs-pose", "supine-twist"]
    assert changes == [
        "cobra left out: marked as hurting on 20 and 23 Nov; `windown journal forgive cobra` brings it back",
        "swapped bridge for low bridge: marked as hurting on 27 Nov",
        "swapped sphinx for sphinx with a pillow: marked as hurting on 22 Nov",
    ]
    same, none = personalise.personalise(r, personalise.Profile(flags={"journal": False}), verdicts=verdicts)
    assert [s.stretch.id for s in same.steps] == ["cobra", "bridge", "sphinx", "childs-pose", "supine-twist"]
    assert none == []


def test_forgiving_and_marking_helped_bring_a_stretch_back(month_path):
    path, _ = month_path
    with journal.open_journal(path) as j:
        j.forgive("cobra", stamp(LAST_NIGHT, 20, 0))
    assert "cobra" not in {v.stretch for v in report.verdicts(contents_of(path), LAST_NIGHT)}
    with journal.open_journal(path) as j:  # a new hurt after forgiving counts afresh: once is an ease
        j.add_entry(journal.Entry(stamp(LAST_NIGHT, 23, 0), hurt=("cobra-easier",)))
    assert Verdict("cobra", "ease", (LAST_NIGHT,)) in report.verdicts(contents_of(path), LAST_NIGHT)


def test_a_stretch_without_an_easier_variation_is_kept_to_the_short_end_of_its_range():
    r = routine.parse(routine.source.load("r.yaml", """title: T
steps:
  - stretch:
      id: reach
      name: overhead reach
      position: supine
      setup: Reach up.
      hold: {default: 40s, min: 25s, max: 60s}
    hold: 50s
"""), "r.yaml")
    verdict = Verdict("reach", "ease", (datetime.date(2026, 12, 1),))
    out, changes = personalise.personalise(r, personalise.Profile(flags={"pace": "slow"}), verdicts=[verdict])
    step = out.steps[0]
    assert (step.stretch.id, step.stretch.hold_ms.default) == ("reach", 25_000)  # pace slow cannot lengthen it
    assert changes[0] == "overhead reach kept to 25s, the short end of its safe range: marked as hurting on 1 Dec"


def test_a_stretch_marked_helping_is_the_last_to_be_cut():
    r = routine.parse(routine.source.load("r.yaml", "title: T\nsteps:\n  - stretch: knee-to-chest\n"
                                          "  - stretch: bridge\n  - stretch: seated-forward-bend\n"), "r.yaml")

    def measure(candidate):  # a minute per stretch, whatever its holds: only cutting changes the length
        return 60_000 * sum(isinstance(s, StretchStep) for s in candidate.steps)

    plain, _ = personalise.personalise(r, personalise.Profile(flags={"length": 120_000}), measure)
    assert [s.stretch.id for s in plain.steps] == ["knee-to-chest", "seated-forward-bend"]  # bridge cut first
    helped = Verdict("bridge", "prefer", (datetime.date(2026, 11, 28),))
    kept, changes = personalise.personalise(r, personalise.Profile(flags={"length": 120_000}), measure,
                                            [helped])
    assert [s.stretch.id for s in kept.steps] == ["knee-to-chest", "bridge"]
    assert "bridge kept while cutting to length: marked as helping on 28 Nov" in changes


# -- storage -----------------------------------------------------------------------------------------

def test_a_new_journal_is_private_in_wal_mode(tmp_path):
    path = tmp_path / "data" / "windown" / "journal.sqlite"
    journal.add_entry(path, journal.Entry(journal.now(), pain=3))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA application_id").fetchone()[0] == store.APPLICATION_ID
    assert con.execute("SELECT pain FROM entries").fetchall() == [(3,)]


def test_the_default_path_follows_xdg_data_home_and_windown_journal(tmp_path, monkeypatch):
    assert journal.default_path() == tmp_path / "data" / "windown" / "journal.sqlite"
    monkeypatch.setenv("WINDOWN_JOURNAL", str(tmp_path / "mine.sqlite"))
    assert journal.default_path() == tmp_path / "mine.sqlite"
    assert journal.default_path(tmp_path / "given.sqlite") == tmp_path / "given.sqlite"


def test_migrating_an_older_schema_keeps_every_row_and_a_copy(tmp_path):
    path = tmp_path / "journal.sqlite"
    con = store.create_at_version(path, 1)
    sessions = [(i, f"2026-11-{i:02d}T21:30:00+01:00", "bedtime-lower-back", "Bedtime", 600_000 + i, "espeak-ng",
                 "en-us", f"/t/{i}.mp3") for i in range(1, 21)]
    con.executemany("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?)", sessions)
    holds = [(i, p, x, 30_000 if p else None) for i in range(1, 21) for p, x in enumerate(("cat-cow", "cobra"))]
    con.executemany("INSERT INTO session_stretches VALUES (?, ?, ?, ?)", holds)
    entries = [(i, f"2026-11-{i:02d}T22:30:00+01:00", i, i % 11, None, None, None, None, f"note {i}")
               for i in range(1, 21)]
    con.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", entries)
    con.executemany("INSERT INTO feedback VALUES (?, ?, ?)", [(i, "cobra", "hurt") for i in (3, 9)])
    con.close()
    before = path.read_bytes()

    contents = contents_of(path)  # opening it migrates it

    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
    assert [(s.id, s.at, s.routine, s.title, s.guided_ms, s.engine, s.voice, s.output) for s in contents.sessions] \
        == sessions
    assert all(s.source == "cli" for s in contents.sessions)
    assert [(s.id, p, x.stretch, x.hold_ms) for s in contents.sessions for p, x in enumerate(s.stretches)] == holds
    assert [(e.id, e.at, e.session_id, e.pain, e.note) for e in contents.entries] == \
        [(e[0], e[1], e[2], e[3], e[8]) for e in entries]
    assert [e.id for e in contents.entries if e.hurt == ("cobra",)] == [3, 9]
    backup = store.backup_path(path, 1)
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    old = sqlite3.connect(backup)
    assert old.execute("PRAGMA user_version").fetchone()[0] == 1
    assert old.execute("SELECT count(*) FROM sessions").fetchone()[0] == 20
    assert before  # the original bytes were a real v1 file
    with journal.open_journal(path) as j:  # and the migrated journal takes new rows
        j.forgive("cobra")
    assert contents_of(path).forgiven[0].stretch == "cobra"


HOLD_LOCK = """
import sys, time
from pathlib import Path
from windown import journal
from windown.journal import store
path, ready, go = sys.argv[1:]
with journal.open_journal(path) as j:
    j.con.execute("BEGIN IMMEDIATE")
    store._insert_session(j.con, journal.Session(journal.now(), "bedtime-lower-back", "Bedtime",
                          (journal.SessionStretch("cobra", 20000),), 600000, "espeak-ng", "en-us", "/t/a.mp3"))
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.05)
    j.con.execute("COMMIT")
"""


def test_a_build_and_an_entry_written_at_once_both_land(tmp_path):
    """One process holds the write lock mid-session while `windown log` writes: the entry waits, then lands."""
    path, ready, go = tmp_path / "journal.sqlite", tmp_path / "ready", tmp_path / "go"
    journal.add_entry(path, journal.Entry(journal.now(), pain=1))  # the journal exists, in WAL mode
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path), str(ready), str(go)])
    try:
        for _ in range(1200):
            if ready.exists() or holder.poll() is not None:
                break
            subprocess.run(["sleep", "0.05"])
        assert ready.exists()
        logger = subprocess.Popen([sys.executable, "-m", "windown", "log", "--pain", "4", "--journal", str(path)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        reads = sqlite3.connect(path).execute("SELECT count(*) FROM entries").fetchone()[0]  # readers never block
        assert reads >= 1
        subprocess.run(["sleep", "1"])  # give the logger time to reach the lock (it passes either way)
        go.touch()
        out, err = logger.communicate(timeout=120)
        assert logger.returncode == 0, err
        assert holder.wait(timeout=60) == 0
    finally:
        go.touch()
        holder.wait(timeout=60)
    contents = contents_of(path)
    assert [s.stretches for s in contents.sessions] == [(journal.SessionStretch("cobra", 20000),)]
    assert [e.pain for e in contents.entries] == [1, 4]


# -- CSV ---------------------------------------------------------------------------------------------

def test_the_csv_round_trip_is_exact(month_path, tmp_path):
    path, _ = month_path
    with journal.open_journal(path) as j:  # awkward text survives too
        j.add_entry(journal.Entry(stamp(LAST_NIGHT, 23, 5), note='a "quoted", comma\nand a new line — ünïcode'))
    exported = run_cli("journal", "--csv", "--journal", str(path))
    assert exported.returncode == 0, exported.stderr
    csv_file = write(tmp_path / "journal.csv", exported.stdout)
    other = tmp_path / "other.sqlite"
    imported = run_cli("journal", "import", str(csv_file), "--journal", str(other))
    assert imported.returncode == 0, imported.stderr
    rows = len(exported.stdout.strip().split("\n")) - 2  # less the header and the note's inner line
    assert imported.stdout == f"{csv_file}: {rows} rows added, 0 already in the journal\n"
    again = run_cli("journal", "--csv", "--journal", str(other))
    assert again.stdout == exported.stdout
    strip = lambda c: ([replace(s, id=None) for s in c.sessions], [replace(e, id=None, session_id=None)  # noqa
                                                                   for e in c.entries])
    assert strip(contents_of(other)) == strip(contents_of(path))
    twice = run_cli("journal", "import", str(csv_file), "--journal", str(other))
    assert twice.stdout == f"{csv_file}: 0 rows added, {rows} already in the journal\n"


def test_csv_text_a_spreadsheet_would_run_is_quoted_and_comes_back_exact(tmp_path):
    path = tmp_path / "j.sqlite"
    notes = ["=HYPERLINK(\"http://x\")", "+1 better", "-ish", "@home", "'=already quoted", "'plain", "fine"]
    with journal.open_journal(path) as j:
        for n, note in enumerate(notes):
            j.add_entry(journal.Entry(stamp(LAST_NIGHT, 21, n), note=note))
    exported = run_cli("journal", "--csv", "--journal", str(path))
    assert exported.returncode == 0, exported.stderr
    written = [row["note"] for row in csv.DictReader(io.StringIO(exported.stdout)) if row["record"] == "entry"]
    assert written == ["'=HYPERLINK(\"http://x\")", "'+1 better", "'-ish", "'@home", "''=already quoted", "''plain",
                       "fine"]
    csv_file = write(tmp_path / "journal.csv", exported.stdout)
    other = tmp_path / "other.sqlite"
    assert run_cli("journal", "import", str(csv_file), "--journal", str(other)).returncode == 0
    assert [e.note for e in contents_of(other).entries] == notes


def test_a_bad_csv_row_imports_nothing(month_path, tmp_path):
    path, _ = month_path
    text = csvfile.dumps(contents_of(path)).splitlines()
    header = text[0].split(",")
    bad = next(i for i, line in enumerate(text) if line.startswith("entry,") and line.split(",")[12])
    cells = text[bad].split(",")
    cells[header.index("pain")] = "eleven"
    text[bad] = ",".join(cells)
    csv_file = write(tmp_path / "bad.csv", "\n".join(text) + "\n")
    other = tmp_path / "other.sqlite"
    result = run_cli("journal", "import", str(csv_file), "--journal", str(other))
    assert result.returncode == 2
    assert result.stderr == f"{csv_file}:{bad + 1}: 'pain' is 'eleven', not a whole number. Write it in digits, e.g. 3\n"
    assert not other.exists()


# -- the plot ----------------------------------------------------------------------------------------

def test_the_plot_is_a_valid_png_of_the_stated_size(month_path, tmp_path):
    path, _ = month_path
    out = tmp_path / "journal.png"
    result = run_cli("journal", "--plot", str(out), "--journal", str(path), env={"DISPLAY": "", "MPLBACKEND": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{out}\n"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (900, 550)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_the_plot_can_be_svg(month_path, tmp_path):
    path, _ = month_path
    out = tmp_path / "journal.svg"
    result = run_cli("journal", "--plot", str(out), "--journal", str(path))
    assert result.returncode == 0, result.stderr
    root = ET.parse(out).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert (root.get("width"), root.get("height")) == ("648pt", "396pt")  # 9 x 5.5 inches


# -- the CLI -----------------------------------------------------------------------------------------

def test_log_records_an_entry_after_the_last_session(month_path):
    path, _ = month_path
    result = run_cli("log", "--pain", "3", "--hurt", "cat-cow", "--note", "ok", "--journal", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("logged ") and result.stdout.endswith(": pain 3; hurt cat-cow; note\n")
    last = contents_of(path).entries[-1]
    assert (last.pain, last.hurt, last.note) == (3, ("cat-cow",), "ok")
    assert last.session_id == contents_of(path).sessions[-1].id


REPLIES = {"How did you sleep": "4", "minutes did it take": "20", "times did you wake": "1", "pain on waking": "2",
           "Back pain now": "3", "Did any stretch hurt": "cat-cow", "Did any stretch help": "", "skip any": "",
           "A note": "calm evening"}


def converse(args: list[str], first_reply: str) -> tuple[str, int]:
    """Run windown on a pseudo-terminal and answer each question it asks (the first one with `first_reply`
    before the right answer); return what the terminal showed and the exit code."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "windown", *args], stdin=follower, stdout=follower,
                            stderr=follower)
    os.close(follower)
    shown, pending, asked = "", "", 0
    while True:
        ready, _, _ = select.select([leader], [], [], 120)
        if not ready:
            proc.kill()
            break
        try:
            chunk = os.read(leader, 4096).decode(errors="replace")
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
        pending += chunk
        if pending.endswith(": "):
            question = pending.splitlines()[-1]
            reply = next((v for k, v in REPLIES.items() if k in question), None)
            assert reply is not None, question
            if asked == 0:
                reply = first_reply
            asked += 1
            os.write(leader, (reply + "\n").encode())
            pending = ""
    os.close(leader)
    return shown, proc.wait(timeout=60)


@pytest.mark.parametrize("ask", ["morning", "evening", None])
def test_log_on_a_terminal_asks_and_asks_again_after_a_bad_answer(month_path, ask):
    path, month = month_path
    shown, code = converse(["log", "--journal", str(path)] + (["--ask", ask] if ask else []), "eleven")
    assert code == 0, shown
    assert "is not a number" in shown  # the bad first answer is explained, then the question comes again
    entry = contents_of(path).entries[-1]
    assert len(contents_of(path).entries) == month.entries + 1
    morning = "How did you sleep" in shown
    assert morning == (ask == "morning") or ask is None
    if morning:
        assert (entry.sleep, entry.fell_asleep_min, entry.woke, entry.pain_waking) == (4, 20, 1, 2)
        assert entry.pain is None and entry.note is None
    else:
        assert (entry.pain, entry.hurt, entry.helped, entry.note) == (3, ("cat-cow",), (), "calm evening")
        assert "cat-cow" in shown  # the question lists last session's stretches
        assert entry.sleep is None


def test_script_lists_the_journal_changes_and_chapters_carry_stretch_ids(tmp_path):
    path = tmp_path / "journal.sqlite"
    last = report.night_of(journal.now()) - datetime.timedelta(days=1)
    simulate_month(path, last)
    r = write(tmp_path / "r.yaml", "title: T\nvoice: {engine: espeak-ng}\nsafety: false\nsteps:\n"
              "  - stretch: cobra\n  - stretch: bridge\n  - stretch: knee-to-chest\n")
    result = run_cli("script", str(r), "--json", "--journal", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    cobra = [last - datetime.timedelta(days=29 - n) for n in (19, 22)]
    when = (f"{cobra[0].day} and {cobra[1].day} {cobra[1]:%b}" if cobra[0].month == cobra[1].month
            else f"{cobra[0].day} {cobra[0]:%b} and {cobra[1].day} {cobra[1]:%b}")
    assert f"cobra left out: marked as hurting on {when}; `windown journal forgive cobra` brings it back" \
        in data["changes"]
    assert [c.get("stretch") for c in data["chapters"]] == [None, "bridge-easier", "knee-to-chest", None]
    plain = json.loads(run_cli("script", str(r), "--json", "--journal", str(path), "--no-journal",
                               cwd=tmp_path).stdout)
    assert plain["changes"] == [] and [c.get("stretch") for c in plain["chapters"]][1:4] == \
        ["cobra", "bridge", "knee-to-chest"]
    profile = write(tmp_path / "profile.yaml", "journal: false\n")
    off = json.loads(run_cli("script", str(r), "--json", "--journal", str(path), "--profile", str(profile),
                             cwd=tmp_path).stdout)
    assert off["changes"] == []
    foreign = write(tmp_path / "notes.txt", "not a journal\n")  # with journal: false it is not even read
    assert run_cli("script", str(r), "--journal", str(foreign), "--profile", str(profile), cwd=tmp_path).returncode == 0
    assert run_cli("script", str(r), "--journal", str(foreign), cwd=tmp_path).returncode == 2
    forgive = run_cli("journal", "forgive", "cobra", "--journal", str(path))
    assert forgive.returncode == 0 and forgive.stdout == "cobra forgiven: the next track has it again as written\n"
    back = json.loads(run_cli("script", str(r), "--json", "--journal", str(path), cwd=tmp_path).stdout)
    assert [c.get("stretch") for c in back["chapters"]][1] == "cobra"


def test_the_report_command_reads_the_journal(month_path):
    path, _ = month_path
    result = run_cli("journal", "--journal", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Last 14 nights")
    assert "knee-to-chest" in result.stdout


def test_an_empty_journal_says_how_to_start(tmp_path):
    result = run_cli("journal")
    assert result.returncode == 0
    assert result.stdout.startswith("The journal is empty.")
    assert not (tmp_path / "data" / "windown" / "journal.sqlite").exists()  # looking creates nothing


# -- bad input: one line, exit 2, nothing written -----------------------------------------------------

def assert_refused(args: list[str], message: str, path: Path | None = None) -> None:
    before = path.read_bytes() if path is not None and path.exists() else None
    result = run_cli(*args)
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [message]
    assert result.returncode == 2 and result.stdout == ""
    if path is not None:
        assert (path.read_bytes() if path.exists() else None) == before


@pytest.mark.parametrize("args, message", [
    (["--pain", "11"], "--pain: 11 is outside 0 to 10. Use 0 no pain to 10 the worst imaginable"),
    (["--pain", "-1"], "--pain: -1 is outside 0 to 10. Use 0 no pain to 10 the worst imaginable"),
    (["--sleep", "0"], "--sleep: 0 is outside 1 to 5. Use 1 very poor, 2 poor, 3 fair, 4 good, 5 very good"),
    (["--sleep", "6"], "--sleep: 6 is outside 1 to 5. Use 1 very poor, 2 poor, 3 fair, 4 good, 5 very good"),
    (["--pain", "three"], "--pain: 'three' is not a number. Give a whole number from 0 to 10 (0 no pain to 10 the "
                          "worst imaginable), e.g. --pain 3"),
    (["--fell-asleep", "ten"], "--fell-asleep: 'ten' is not a number. Give a whole number from 0 to 1440 (minutes "
                               "it took to fall asleep), e.g. --fell-asleep 20"),
    (["--woke", "1.5"], "--woke: '1.5' is not a number. Give a whole number from 0 to 100 (times you woke in the "
                        "night), e.g. --woke 1"),
    (["--pain-waking", "12"], "--pain-waking: 12 is outside 0 to 10. Use 0 no pain to 10 the worst imaginable"),
    (["--pain", "3", "--sleep", "0"], "--sleep: 0 is outside 1 to 5. Use 1 very poor, 2 poor, 3 fair, 4 good, "
                                      "5 very good"),
    ([], "nothing to log. Give e.g. --pain 3 in the evening or --sleep 4 in the morning; on a terminal, "
         "`windown log` asks"),
])
def test_bad_log_values_write_nothing(month_path, args, message):
    path, month = month_path
    assert_refused(["log", *args, "--journal", str(path)], message, path)
    assert len(contents_of(path).entries) == month.entries


def test_an_unknown_stretch_id_is_checked_against_the_last_session(month_path):
    path, _ = month_path
    last = contents_of(path).sessions[-1]
    listed = ", ".join(x.stretch for x in last.stretches)
    assert_refused(["log", "--hurt", "cat-cwo", "--journal", str(path)],
                   f"--hurt: 'cat-cwo' is not a stretch in your last session (Bedtime, {last.at[:16].replace('T', ' ')}"
                   f": {listed}). Did you mean 'cat-cow'?", path)
    assert_refused(["log", "--pain", "2", "--helped", "cobra", "--journal", str(path)],
                   f"--helped: 'cobra' is not a stretch in your last session (Bedtime, "
                   f"{last.at[:16].replace('T', ' ')}: {listed}). Give stretch ids separated by commas, e.g. "
                   f"--hurt cobra,bridge", path)


def test_an_unknown_stretch_id_before_any_session_creates_no_journal(tmp_path):
    path = tmp_path / "new.sqlite"
    assert_refused(["log", "--skipped", "cobre", "--journal", str(path)],
                   "--skipped: 'cobre' is not a stretch in the stretch library (no session recorded yet). "
                   "Did you mean 'cobra'?", path)
    assert not path.exists()


def test_a_read_only_journal_is_refused(month_path):
    path, _ = month_path
    os.chmod(path, 0o400)
    try:
        assert_refused(["log", "--pain", "3", "--journal", str(path)],
                       f"{path}: the journal is read-only, so nothing was written. Make it writable (chmod 600, and "
                       f"its folder writable), or choose another with --journal", path)
        assert run_cli("journal", "--journal", str(path)).returncode == 0  # reading it is fine
    finally:
        os.chmod(path, 0o600)


def test_a_foreign_file_is_never_overwritten(tmp_path):
    text = write(tmp_path / "notes.txt", "my own notes\n" * 100)
    assert_refused(["log", "--pain", "3", "--journal", str(text)],
                   f"{text}: is not a windown journal (not an SQLite file); it was left untouched. Choose another "
                   f"file with --journal, or move this one away", text)
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    con.execute("INSERT INTO photos (name) VALUES ('cat.jpg')")
    con.commit()
    con.close()
    for args in (["log", "--pain", "3"], ["journal"], ["journal", "forgive", "cobra"]):
        assert_refused([*args, "--journal", str(other)],
                       f"{other}: is an SQLite file of another program, not a windown journal; it was left "
                       f"untouched. Choose another file with --journal, or move this one away", other)


def test_a_damaged_journal_is_reported_and_left_alone(month_path):
    path, _ = month_path
    sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    data = bytearray(path.read_bytes())
    page = 4096
    data[page * 2:page * 4] = bytes(range(256)) * (page * 2 // 256)  # garble two pages of tables
    path.write_bytes(bytes(data))
    before = path.read_bytes()
    result = run_cli("log", "--pain", "3", "--journal", str(path))
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert "damaged" in result.stderr and "Traceback" not in result.stderr
    assert path.read_bytes() == before


def test_a_journal_from_a_newer_windown_is_refused(tmp_path):
    path = tmp_path / "journal.sqlite"
    store.create_at_version(path, store.SCHEMA_VERSION).execute("PRAGMA user_version = 99")
    assert_refused(["log", "--pain", "3", "--journal", str(path)],
                   f"{path}: the journal was written by a newer windown (schema 99; this one reads up to "
                   f"{store.SCHEMA_VERSION}). Upgrade windown (pip install -U windown)", path)


def test_a_bad_plot_name_and_an_unknown_forgive_are_one_line(month_path, tmp_path):
    path, _ = month_path
    assert_refused(["journal", "--plot", str(tmp_path / "j.gif"), "--journal", str(path)],
                   "--plot: 'j.gif' must end in .png or .svg. Write e.g. --plot journal.png")
    assert_refused(["journal", "forgive", "cobar", "--journal", str(path)],
                   "'cobar' is not held back by the journal, so there is nothing to forgive. Did you mean 'cobra'?",
                   path)


# -- real builds ------------------------------------------------------------------------------------

ROUTINE = "title: Short\nvoice: {engine: espeak-ng}\ntail: 5s\nsafety: false\nsteps:\n" \
          "  - stretch: cobra\n    hold: 20s\n  - stretch: cat-cow\n    rounds: 2\n"


@pytest.mark.slow
def test_a_build_records_its_session_and_nothing_of_the_journal_leaves_it(tmp_path):
    r = write(tmp_path / "short.yaml", ROUTINE)
    path = tmp_path / "data" / "windown" / "journal.sqlite"
    run_cli("log", "--note", "SECRET-NOTE-4417", "--pain", "6", "--journal", str(path))
    built = run_cli("build", str(r), "-o", "out/short.mp3", cwd=tmp_path)  # the default journal
    assert built.returncode == 0, built.stderr
    sessions = contents_of(path).sessions
    assert len(sessions) == 1
    s = sessions[0]
    sheet = json.loads((tmp_path / "out" / "short.json").read_text())
    assert (s.routine, s.title, s.engine, s.source) == (str(r), "Short", "espeak-ng", "cli")
    assert s.stretches == (journal.SessionStretch("cobra", 20_000), journal.SessionStretch("cat-cow", None))
    assert s.voice == sheet["settings"]["voice"]
    assert s.output == str((tmp_path / "out" / "short.mp3").resolve())
    assert abs(s.guided_ms - sheet["speech_end_s"] * 1000) < 2000
    assert [c.get("stretch") for c in sheet["chapters"]] == [None, "cobra", "cat-cow", None]
    for f in (tmp_path / "out").iterdir():
        assert b"SECRET-NOTE" not in f.read_bytes() and b"journal" not in f.read_bytes().lower(), f

    again = run_cli("build", str(r), "-o", "out/short.mp3", "--no-journal", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(contents_of(path).sessions) == 1

    log = run_cli("log", "--hurt", "cobra", "--journal", str(path))
    assert log.returncode == 0, log.stderr
    eased = run_cli("build", str(r), "-o", "out/short.mp3", cwd=tmp_path)
    assert eased.returncode == 0, eased.stderr
    night = report.night_of(journal.now())
    assert eased.stdout.splitlines()[1] == \
        f"  * swapped cobra for low cobra: marked as hurting on {night.day} {night:%b}"
    assert contents_of(path).sessions[-1].stretches[0].stretch == "cobra-easier"


@pytest.mark.slow
def test_batch_records_a_session_per_built_track(tmp_path):
    r = write(tmp_path / "short.yaml", ROUTINE)
    path = tmp_path / "j.sqlite"
    result = run_cli("batch", str(r), "-o", "shelf", "--journal", str(path), "-j", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sessions = contents_of(path).sessions
    assert [(s.routine, s.source, s.output) for s in sessions] == \
        [(str(r), "batch", str((tmp_path / "shelf" / "short.mp3").resolve()))]
    assert [x.stretch for x in sessions[0].stretches] == ["cobra", "cat-cow"]
    skipped = run_cli("batch", str(r), "-o", "shelf", "--journal", str(path), cwd=tmp_path)
    assert skipped.returncode == 0 and len(contents_of(path).sessions) == 1  # nothing built, nothing recorded


@pytest.mark.slow
def test_a_real_build_and_log_at_once_both_land(tmp_path):
    r = write(tmp_path / "short.yaml", ROUTINE)
    path = tmp_path / "j.sqlite"
    run_cli("log", "--pain", "2", "--journal", str(path))
    env = {**os.environ}
    build = subprocess.Popen([sys.executable, "-m", "windown", "build", str(r), "-o", "t.mp3", "--journal", str(path)],
                             cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    logs = [run_cli("log", "--sleep", str(1 + i % 5), "--journal", str(path)) for i in range(5)]
    out, err = build.communicate(timeout=600)
    assert build.returncode == 0, err
    assert all(x.returncode == 0 for x in logs), [x.stderr for x in logs]
    contents = contents_of(path)
    assert len(contents.sessions) == 1 and len(contents.entries) == 6


def test_a_damaged_journal_is_one_line_for_reading_commands_too(month_path, tmp_path):
    path, _ = month_path
    sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    data = bytearray(path.read_bytes())
    data[4096 * 2:4096 * 4] = bytes(range(256)) * 32
    path.write_bytes(bytes(data))
    r = write(tmp_path / "r.yaml", "title: T\nsteps:\n  - stretch: cobra\n")
    for args in (["journal"], ["journal", "--csv"], ["script", str(r)]):
        result = run_cli(*args, "--journal", str(path))
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, (args, result.stderr)
        assert "damaged" in result.stderr and "Traceback" not in result.stderr


def test_lengthening_never_adds_back_a_stretch_the_journal_left_out():
    r = routine.parse(routine.source.load("r.yaml", "title: T\nsteps:\n  - stretch: cobra\n"
                                          "  - stretch: knee-to-chest\n"), "r.yaml")

    def measure(candidate):  # a minute per stretch: reaching 5 minutes needs four more from the library
        return 60_000 * sum(isinstance(s, StretchStep) for s in candidate.steps)

    left_out = Verdict("cobra", "leave-out", (datetime.date(2026, 11, 20), datetime.date(2026, 11, 23)))
    longer, changes = personalise.personalise(r, personalise.Profile(flags={"length": 5 * 60_000}), measure,
                                              [left_out])
    ids = [s.stretch.id for s in longer.steps]
    assert len(ids) == 5 and "knee-to-chest" in ids
    assert not any(x.startswith("cobra") for x in ids), ids
    plain, _ = personalise.personalise(r, personalise.Profile(flags={"length": 5 * 60_000}), measure)
    assert "cobra" in [s.stretch.id for s in plain.steps]


def test_lengthening_never_adds_a_stretch_the_journal_marked_as_hurting_once():
    """Hurt once eases a stretch the person chose; one they did not choose is simply not added."""
    r = routine.parse(routine.source.load("r.yaml", "title: T\nsteps:\n  - stretch: knee-to-chest\n"), "r.yaml")

    def measure(candidate):  # a minute per stretch: reaching 3 minutes needs two more from the library
        return 60_000 * sum(isinstance(s, StretchStep) for s in candidate.steps)

    profile = personalise.Profile(flags={"length": 3 * 60_000})
    plain, _ = personalise.personalise(r, profile, measure)
    added = [s.stretch.id for s in plain.steps][1:]
    assert len(added) == 2, added
    hurt = Verdict(added[0].removesuffix("-easier"), "ease", (datetime.date(2026, 11, 23),))
    longer, _ = personalise.personalise(r, profile, measure, [hurt])
    ids = [s.stretch.id for s in longer.steps]
    assert len(ids) == 3 and not any(x.startswith(hurt.stretch) for x in ids), ids

