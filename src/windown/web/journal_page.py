"""The Journal page: `windown log`'s evening and morning questions as forms, and `windown journal` as tables
and the trend chart.

Every value goes through the journal library's own checks (`journal.score`, `journal.check_ids`,
`journal.entry_from`, `journal.add_entry`), so the page and `windown log` can never disagree, and an
error appears beside its field in the CLI's words. The tables and the chart come from `journal.report`
and `journal.plot`; nothing here decides what a night or a meaningful change is.

| route | what it is |
|---|---|
| `GET /journal` | the two forms, recent entries, the last 14 nights, the per-stretch table, the chart |
| `POST /journal/evening`, `POST /journal/morning` | check and add one entry, then back to the page |
| `GET /journal/chart.svg` | the trend chart (never cached: it is health data) |

With `--lan` these answer only under the journal's own secret, never the shared one (see `app`).
"""

from __future__ import annotations

import datetime
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from windown import journal, library
from windown.errors import UserError
from windown.journal import report
from windown.web import routes as web

MAX_POST_BYTES = 64 * 1024  # a note is at most journal.MAX_NOTE_CHARS characters
SLEEP_WORDS = ("very poor", "poor", "fair", "good", "very good")  # the CLI's scale, 1 to 5
OFF = "The journal is off for this page (windown serve --no-journal)."


@dataclass(frozen=True)
class Question:
    """One of `windown log`'s options as a form field."""

    name: str  # the form field's name and id, and the key `journal.entry_from` reads
    flag: str  # the CLI option, whose words the errors use
    label: str
    kind: str  # scale (radio buttons) | number (a text box) | stretches (check boxes) | note

    @property
    def low_high(self) -> tuple[int, int]:
        low, high, _, _ = journal.SCALES[self.flag]
        return low, high

    @property
    def help(self) -> str:
        if self.kind == "stretches":
            return "Tick any from your last session; tomorrow's track takes them into account."
        if self.kind == "note":
            return f"A few words to remember, up to {journal.MAX_NOTE_CHARS} characters."
        low, high, meaning, _ = journal.SCALES[self.flag]
        return f"{meaning[:1].upper()}{meaning[1:]}." if self.kind == "scale" else f"{meaning[:1].upper()}" \
            f"{meaning[1:]}, {low} to {high}."

    @property
    def options(self) -> list[tuple[str, str]]:
        """(value, words) for each radio button of a scale."""
        low, high = self.low_high
        if self.flag == "--sleep":
            return [(str(n), f"{n} {SLEEP_WORDS[n - 1]}") for n in range(low, high + 1)]
        return [(str(n), str(n)) for n in range(low, high + 1)]


EVENING = (Question("pain", "--pain", "Back pain now", "scale"),
           Question("hurt", "--hurt", "Stretches that hurt", "stretches"),
           Question("helped", "--helped", "Stretches that helped", "stretches"),
           Question("skipped", "--skipped", "Stretches you skipped", "stretches"),
           Question("note", "--note", "A note", "note"))
MORNING = (Question("sleep", "--sleep", "How you slept", "scale"),
           Question("fell_asleep", "--fell-asleep", "Minutes to fall asleep", "number"),
           Question("woke", "--woke", "Times you woke", "number"),
           Question("pain_waking", "--pain-waking", "Back pain on waking", "scale"))
FORMS = {"evening": EVENING, "morning": MORNING}


def routes() -> list[Route]:
    return [
        Route("/journal", journal_page, methods=["GET"], name="journal"),
        Route("/journal/chart.svg", chart, methods=["GET"], name="chart"),
        Route("/journal/{which}", log_entry, methods=["POST"], name="log"),
    ]


def _path_or_404(request: Request) -> Path:
    path = request.app.state.journal
    if path is None:
        raise HTTPException(404, OFF)
    if not web.journal_open(request):  # mounted only under its own secret; this holds even if that changes
        raise HTTPException(404)
    return path


def _read(path: Path) -> tuple[journal.Contents, journal.Session | None]:
    """Everything in the journal and its last session; an empty journal when there is no file yet.
    Raises JournalError (one line) for a foreign or damaged file, which is only ever read."""
    diary = journal.open_journal(path, write=False)
    if diary is None:
        return journal.Contents(), None
    with diary:
        contents = diary.read()
        return contents, diary.last_session()


def _stretch_choices(last: journal.Session | None) -> list[str]:
    """What the check boxes offer: the last session's stretches, as `windown log` checks them (before any
    session, the library's, which is what the CLI accepts then)."""
    if last is not None:
        return list(dict.fromkeys(x.stretch for x in last.stretches))
    return list(library.stretches())


def _when(at: str) -> str:
    return datetime.datetime.fromisoformat(at).strftime("%a %-d %b, %H:%M")


def _entry_words(e: journal.Entry) -> str:
    """One entry as `windown log` confirms it."""
    parts = [f"{words} {getattr(e, attr)}" for words, attr in
             (("pain", "pain"), ("sleep", "sleep"), ("fell asleep in", "fell_asleep_min"), ("woke", "woke"),
              ("waking pain", "pain_waking")) if getattr(e, attr) is not None]
    parts = [p + (" min" if p.startswith("fell asleep") else "") for p in parts]
    parts += [f"{kind} {', '.join(getattr(e, kind))}" for kind in ("hurt", "helped", "skipped") if getattr(e, kind)]
    return "; ".join(parts) or "a note"


def _number(value: float | None, whole: bool = True) -> str:
    if value is None:
        return "–"
    return str(int(value)) if whole and value == int(value) else f"{value:.1f}"


def _look_back(contents: journal.Contents, today: datetime.date) -> dict[str, Any]:
    """`windown journal`'s report as rows for the page's tables (report's functions, formatted)."""
    by_night = report.nights(contents)
    nights = []
    for n in range(report.WINDOW_DAYS - 1, -1, -1):
        day = today - datetime.timedelta(days=n)
        night = by_night.get(day)
        cells = []
        for name in ("pain", "sleep", "pain_waking"):
            value = getattr(night, name) if night else None
            average = report.rolling(by_night, day, name) if night and value is not None else None
            cells.append((_number(value), _number(average, whole=False) if average is not None else ""))
        nights.append({"label": day.strftime("%a %-d %b"), "stretches": ", ".join(night.stretches) if night else "",
                       "cells": cells, "empty": night is None})
    rows = report.stretch_table(contents)
    return {"nights": nights, "stretch_rows": rows, "verdicts": [report.describe(v)
                                                                 for v in report.verdicts(contents, today)],
            "night_count": len(by_night), "first_night": min(by_night) if by_night else None,
            "last_night": max(by_night) if by_night else None}


def _context(request: Request, values: dict[str, dict[str, Any]], errors: dict[str, dict[str, str]],
             problem: str = "") -> dict[str, Any]:
    contents, last = journal.Contents(), None
    try:
        contents, last = _read(request.app.state.journal)
    except UserError as exc:
        problem = problem or str(exc)
    today = report.night_of(journal.now())
    return {"page": "journal", "forms": FORMS, "values": values, "errors": errors, "problem": problem,
            "choices": _stretch_choices(last), "last": last, "when": _when, "entry_words": _entry_words,
            "recent": list(reversed(contents.entries[-5:])), "enough": report.ENOUGH_NIGHTS,
            "window": report.WINDOW_DAYS, "rolling": report.ROLLING_NIGHTS, "number": _number,
            "meaningful": f"{report.MEANINGFUL_POINTS:g} points or {report.MEANINGFUL_FRACTION:.0%}",
            "logged": request.query_params.get("logged", ""), "broken": bool(problem), **_look_back(contents, today)}


async def journal_page(request: Request) -> Response:
    _path_or_404(request)
    context = await run_in_threadpool(_context, request, {}, {})
    return web.render(request, "journal.html", context)


def check(which: str, values: dict[str, str], last: journal.Session | None) -> tuple[journal.Entry | None,
                                                                                     dict[str, str]]:
    """The entry the form holds, or an error per field in the CLI's words (`windown log`'s own checks)."""
    errors: dict[str, str] = {}
    for q in FORMS[which]:
        try:
            if q.kind in ("scale", "number"):
                journal.score(q.flag, values.get(q.name))
            elif q.kind == "stretches":
                journal.check_ids(q.flag, journal.stretch_ids(values.get(q.name)), last)
            else:
                journal.entry_from({q.name: values.get(q.name)})
        except UserError as exc:
            errors[q.name] = str(exc)
    if errors:
        return None, errors
    entry = journal.entry_from({q.name: values.get(q.name) for q in FORMS[which]})
    if all(getattr(entry, k) in (None, ()) for k in ("pain", "hurt", "helped", "skipped", "note", "sleep",
                                                      "fell_asleep_min", "woke", "pain_waking")):
        return None, {FORMS[which][0].name: "nothing to log. Answer at least one question"}
    return entry, {}


def _add(path: Path, which: str, values: dict[str, str]) -> tuple[dict[str, str], str]:
    """Check and add one entry; (errors per field, a problem with the journal itself)."""
    try:
        _, last = _read(path)
    except UserError as exc:
        return {}, str(exc)
    entry, errors = check(which, values, last)
    if errors:
        return errors, ""
    try:
        journal.add_entry(path, entry)  # checks the ids again, against the session it follows, in one transaction
    except journal.JournalError as exc:
        return {}, str(exc)
    except UserError as exc:  # a session recorded since the form was read: the id is checked against it
        return {FORMS[which][1].name: str(exc)}, ""
    return {}, ""


async def log_entry(request: Request) -> Response:
    path = _path_or_404(request)
    which = request.path_params["which"]
    if which not in FORMS:
        raise HTTPException(404)
    length = request.headers.get("content-length")
    if length is None:
        raise HTTPException(411)
    if not length.isdigit() or int(length) > MAX_POST_BYTES:
        raise HTTPException(413, f"That is more than {MAX_POST_BYTES // 1024} KiB; a note is a few words.")
    web._check_origin(request)
    submitted = await request.form(max_files=0, max_fields=200, max_part_size=MAX_POST_BYTES)
    web._check_csrf(request, submitted.get("csrf"))
    values = {q.name: ",".join(str(v) for v in submitted.getlist(q.name)) if q.kind == "stretches"
              else str(submitted.get(q.name) or "") for q in FORMS[which]}
    errors, problem = await run_in_threadpool(_add, path, which, values)
    if errors or problem:
        context = await run_in_threadpool(_context, request, {which: values}, {which: errors}, problem)
        return web.render(request, "journal.html", context, 400)
    return RedirectResponse(f"{web.base(request)}/journal?logged={urllib.parse.quote(which)}", status_code=303)


_PLOT_LOCK = threading.Lock()  # matplotlib's font cache and text layout are not for two threads at once


_drawn: dict[Path, tuple[str, bytes]] = {}  # per journal: the contents last drawn, and the SVG


def _chart_svg(path: Path) -> bytes:
    """The chart, drawn again only when the journal's rows have changed (drawing takes about a second,
    reading the rows a few milliseconds), so opening the page again costs nothing."""
    from windown.journal import plot

    contents, _ = _read(path)
    drawn_from = repr(contents)
    with _PLOT_LOCK:
        known = _drawn.get(path)
        if known is not None and known[0] == drawn_from:
            return known[1]
        with tempfile.TemporaryDirectory(prefix="windown-chart-") as folder:  # 0700: health data
            svg = plot.write(contents, Path(folder) / "journal.svg").read_bytes()
        _drawn[path] = (drawn_from, svg)
        return svg


async def chart(request: Request) -> Response:
    """The journal's plot, drawn by `journal.plot` (as `windown journal --plot x.svg` draws it)."""
    path = _path_or_404(request)
    try:
        body = await run_in_threadpool(_chart_svg, path)
    except UserError as exc:
        raise HTTPException(409, str(exc)) from None
    return Response(body, media_type="image/svg+xml",
                    headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                             "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})
