"""The one family of errors a user may see; cli.py turns each into a single line and an exit code."""

from __future__ import annotations

import os


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


class Interrupted(BaseException):
    """SIGTERM arrived; raised like KeyboardInterrupt so every `finally` cleans up."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signum)
