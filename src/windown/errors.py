"""The one family of errors a user may see; cli.py turns each into a single line and an exit code.

Anything else that escapes is a bug in windown: `report_bug` saves its traceback to a file and gives
the one line to print instead (exit code 3), so a bug never looks like a bad input or a failed build.
"""

from __future__ import annotations

import datetime
import difflib
import os
import platform
import sys
import traceback
from pathlib import Path
from typing import Any, Iterable

BUG_EXIT_CODE = 3


class UserError(Exception):
    """Something the user can fix: bad input, a missing tool, a bad option. Exit code 2."""

    exit_code = 2

    def __init__(self, problem: str, hint: str = "", *, path: str | os.PathLike | None = None,
                 line: int | None = None):
        self.problem = problem
        self.hint = hint
        self.path = os.fspath(path) if path is not None else None
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.line}: " if self.line else f"{self.path}: "
        text = where + self.problem
        if self.hint:
            text += ". " + self.hint
        return text


class RoutineError(UserError):
    """A routine, profile, preset or batch file says something windown cannot use."""


class MissingToolError(UserError):
    """A program windown needs (ffmpeg, espeak-ng, festival) is not installed."""


class BuildError(UserError):
    """The input was fine but the build failed (speech engine fault, full disk). Exit code 1."""

    exit_code = 1


class RoutineWarning:
    """Something legal but unlikely for this audience (a one-hour hold on a twist): said, never refused.

    Printed as `file:line: warning: what looks wrong. What to do`, on stderr; the exit code is unchanged.
    """

    def __init__(self, problem: str, hint: str, *, path: str | os.PathLike | None, line: int | None):
        self.problem = problem
        self.hint = hint
        self.path = os.fspath(path) if path is not None else None
        self.line = line

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}: " if self.path is not None and self.line else \
            (f"{self.path}: " if self.path is not None else "")
        return f"{where}warning: {self.problem}. {self.hint}"

    def __repr__(self) -> str:
        return f"RoutineWarning({str(self)!r})"


class Interrupted(BaseException):
    """SIGTERM arrived; raised like KeyboardInterrupt so every `finally` cleans up."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signum)


class JobsHitABug(BuildError):
    """Some of a batch's jobs hit a bug in windown (each one's line says where its traceback is). Exit code 3."""

    exit_code = BUG_EXIT_CODE


def short_error(exc: BaseException) -> str:
    """`TypeError: the first line of its message`, at most about 200 characters."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def report_bug(exc: BaseException, *, context: str = "") -> str:
    """Save the traceback of an unexpected exception and return the one line that tells the user.

    `context` (say, which batch job it was) goes into the file above the traceback.
    """
    return bug_line(short_error(exc), save_traceback("".join(traceback.format_exception(exc)), context=context))


def bug_line(summary: str, saved: Path | str | None) -> str:
    """`windown hit a bug: TypeError: .... The full traceback is in FILE; please report it.`"""
    summary = summary.rstrip(". ")
    if saved is None:
        return (f"windown hit a bug: {summary}. Its traceback could not be saved; "
                "please report it with the command you ran.")
    return f"windown hit a bug: {summary}. The full traceback is in {saved}; please report it."


def bugs_dir() -> Path:
    """Saved tracebacks live with the speech cache: $WINDOWN_CACHE_DIR/bugs, else ~/.cache/windown/bugs."""
    from windown.speech.cache import cache_dir

    return cache_dir() / "bugs"


def save_traceback(text: str, *, context: str = "") -> Path | None:
    """Write a bug report (versions, the command, `context`, the traceback) to a new file; None if it cannot."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        from windown import __version__, atomic
    except Exception:  # the bug path itself must never fail
        return None
    header = (f"windown {__version__}, Python {platform.python_version()} on {platform.platform()}\n"
              f"command: {' '.join(sys.argv)}\n" + (f"{context}\n" if context else "") + "\n")
    try:
        folder = bugs_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"bug-{stamp}-{os.getpid()}-{os.urandom(3).hex()}.txt"
        atomic.write_text(path, header + text)
    except Exception:  # a read-only disk, or a broken cache module: the line says it was not saved
        return None
    return path


# --- how messages name what they are about -----------------------------------------------------

def closest(word: str, choices: Iterable[str]) -> str:
    """A 'Did you mean ...?' hint, or an empty string when nothing is close."""
    found = close_matches(word, choices)
    if not found:
        return ""
    return "Did you mean " + " or ".join(repr(f) for f in found) + "?"


def close_matches(word: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """Up to `n` choices like `word`: near spellings first, then those it begins (`bedtime` ->
    `bedtime-lower-back`; a beginning of at least 3 characters)."""
    word, choices = str(word), list(choices)
    found = difflib.get_close_matches(word, choices, n=n, cutoff=cutoff)
    if len(word) >= 3:
        found += [c for c in choices if c.startswith(word) and c != word]
    return list(dict.fromkeys(found))[:n]


def closest_file(path: str | os.PathLike) -> str:
    """'Did you mean ...?' for a file that is not there, from the files beside it (`my.yml` -> `my.yaml`)."""
    folder, name = os.path.split(os.fspath(path))
    try:
        with os.scandir(folder or ".") as entries:
            names = [e.name for _, e in zip(range(2000), entries) if e.is_file() and not e.name.startswith(".")]
    except OSError:
        return ""
    found = close_matches(name, names, cutoff=0.75)  # file names share suffixes: only a near spelling
    if not found:
        return ""
    return "Did you mean " + " or ".join(repr(os.path.join(folder, f)) for f in found) + "?"


def kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "nothing"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, datetime.date):
        return f"the date {value.isoformat()}"
    return _short(repr(value))


def shown(value: Any) -> str:
    """A value quoted in a message: text and numbers as written, other values by their kind; one short line."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return _short(repr(value))
    return kind_of(value)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
