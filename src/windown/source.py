"""Reading YAML sources (routines, profiles, presets, the stretch library) with a line for every value.

Every value a user wrote keeps the line it came from, so any later stage can say `file:line: problem`.
Loading is safe (no Python tags), bounded (file size, node count, depth) and never asserts.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from windown.errors import RoutineError

MAX_FILE_BYTES = 256 * 1024
MAX_NODES = 20_000  # also stops "billion laughs" alias bombs, counted after expansion
MAX_DEPTH = 30


class Map(dict):
    """A YAML mapping that remembers its own line and the line of each key."""

    def __init__(self, line: int):
        super().__init__()
        self.line = line
        self.key_lines: dict[str, int] = {}
        self.value_lines: dict[str, int] = {}


class Seq(list):
    """A YAML sequence that remembers its own line and the line of each item."""

    def __init__(self, line: int):
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []


def load(path: str | os.PathLike, text: str | bytes | None = None, *, max_bytes: int = MAX_FILE_BYTES) -> Any:
    """Parse one YAML document into plain values, `Map`s and `Seq`s; errors name the file and line."""
    name = os.fspath(path)
    if text is None:
        try:
            size = os.path.getsize(name)
        except FileNotFoundError:
            raise RoutineError("no such file", "Check the path, or run `windown presets` to list the presets",
                               path=name) from None
        except OSError as exc:
            raise RoutineError(f"cannot read the file ({exc.strerror})", "Check the path and its permissions",
                               path=name) from None
        if os.path.isdir(name):
            raise RoutineError("is a folder, not a routine file", "Name a .yaml file", path=name)
        if size > max_bytes:
            raise RoutineError(f"the file is too large ({size} bytes; the limit is {max_bytes})",
                               "A routine is a short text file; check that this is the right file", path=name)
        try:
            raw = Path(name).read_bytes()
        except OSError as exc:
            raise RoutineError(f"cannot read the file ({exc.strerror})", "Check the path and its permissions",
                               path=name) from None
    else:
        raw = text.encode("utf-8") if isinstance(text, str) else text
        if len(raw) > max_bytes:
            raise RoutineError(f"the file is too large ({len(raw)} bytes; the limit is {max_bytes})",
                               "A routine is a short text file; check that this is the right file", path=name)
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise RoutineError("the file holds binary data, not text",
                           "A routine is a UTF-8 YAML text file", path=name, line=line)
    try:
        decoded = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RoutineError("the file is not valid UTF-8 text",
                           "Save it as UTF-8 in your editor", path=name, line=line) from None
    try:
        node = yaml.compose(decoded, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = (exc.problem or exc.context or "malformed YAML").strip()
        raise RoutineError(f"malformed YAML: {problem}",
                           "Check the indentation and quoting on this line and the one before",
                           path=name, line=line) from None
    except yaml.YAMLError as exc:
        raise RoutineError(f"malformed YAML: {exc}", "Check the file's syntax", path=name) from None
    if node is None:
        return None
    return _Builder(name).build(node, 0)


class _Builder:
    """Turns composed YAML nodes into values, counting nodes so aliases cannot blow up."""

    def __init__(self, path: str):
        self.path = path
        self.count = 0
        self.constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, depth: int) -> Any:
        self.count += 1
        line = node.start_mark.line + 1
        if self.count > MAX_NODES:
            raise RoutineError(f"the document expands to more than {MAX_NODES} values",
                               "Remove repeated YAML aliases (*name); a routine needs far fewer values",
                               path=self.path, line=line)
        if depth > MAX_DEPTH:
            raise RoutineError(f"values are nested more than {MAX_DEPTH} levels deep",
                               "Flatten the structure; see `windown init` for the routine layout",
                               path=self.path, line=line)
        if isinstance(node, yaml.MappingNode):
            out = Map(line)
            self.constructor.flatten_mapping(node)
            for key_node, value_node in node.value:
                key = self.build(key_node, depth + 1)
                if not isinstance(key, str):
                    key = str(key)
                out[key] = self.build(value_node, depth + 1)
                out.key_lines[key] = key_node.start_mark.line + 1
                out.value_lines[key] = value_node.start_mark.line + 1
            return out
        if isinstance(node, yaml.SequenceNode):
            out_seq = Seq(line)
            for item in node.value:
                out_seq.append(self.build(item, depth + 1))
                out_seq.item_lines.append(item.start_mark.line + 1)
            return out_seq
        try:
            return self.constructor.construct_object(node)
        except yaml.constructor.ConstructorError as exc:
            raise RoutineError(f"unsupported value: {exc.problem}", "Write plain text, numbers or durations",
                               path=self.path, line=line) from None
        except ValueError as exc:
            raise RoutineError(f"unreadable value: {exc}", "Write plain text, numbers or durations",
                               path=self.path, line=line) from None


def closest(word: str, choices: Iterable[str]) -> str:
    """A 'Did you mean ...?' hint, or an empty string when nothing is close."""
    found = difflib.get_close_matches(str(word), list(choices), n=3, cutoff=0.6)
    if not found:
        return ""
    return "Did you mean " + " or ".join(repr(f) for f in found) + "?"


_DURATION = re.compile(r"^(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m(?!s))?(?:(?P<s>\d+(?:\.\d+)?)s)?"
                       r"(?:(?P<ms>\d+)ms)?$")

DURATION_HINT = "Write a duration such as 30s, 1m30s, 5m or a number of seconds"


def parse_duration_ms(value: Any) -> int | None:
    """`30s`, `1m30s`, `5m`, `1h`, `250ms` or plain seconds -> whole milliseconds; None if unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        return round(value * 1000)
    if not isinstance(value, str):
        return None
    text = value.strip().lower().replace(" ", "")
    if text.startswith("-"):
        inner = parse_duration_ms(text[1:])
        return None if inner is None else -inner
    try:
        return round(float(text) * 1000)
    except ValueError:
        pass
    match = _DURATION.match(text)
    if not match or not text:
        return None
    parts = match.groupdict()
    total = 0.0
    for unit, scale in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if parts[unit] is not None:
            total += float(parts[unit]) * scale
    return round(total)


def format_duration(ms: int) -> str:
    """Milliseconds as the shortest duration text a person would write (1m30s)."""
    seconds, rest = divmod(int(ms), 1000)
    minutes, seconds = divmod(seconds, 60)
    text = (f"{minutes}m" if minutes else "") + (f"{seconds}s" if seconds or not minutes else "")
    return text if not rest else f"{ms / 1000:g}s"


class Fields:
    """Reads the keys of one mapping, each with its line; `finish()` rejects keys nobody asked for."""

    def __init__(self, mapping: Map, path: str, what: str):
        self.map = mapping
        self.path = path
        self.what = what
        self.seen: set[str] = set()
        self.known: list[str] = []

    def line(self, key: str | None = None) -> int:
        if key is not None and key in self.map.value_lines:
            return self.map.value_lines[key]
        return self.map.line

    def error(self, key: str | None, problem: str, hint: str = "") -> RoutineError:
        return RoutineError(problem, hint, path=self.path, line=self.line(key))

    def has(self, key: str) -> bool:
        return key in self.map

    def get(self, key: str, read: Callable[[Any, "Fields", str], Any], default: Any = None) -> Any:
        self.known.append(key)
        if key not in self.map:
            return default
        self.seen.add(key)
        return read(self.map[key], self, key)

    def finish(self) -> None:
        for key in self.map:
            if key not in self.known:
                hint = closest(key, self.known) or "Known keys: " + ", ".join(self.known)
                raise RoutineError(f"unknown key '{key}' in {self.what}", hint,
                                   path=self.path, line=self.map.key_lines.get(key, self.map.line))


# Value readers: each takes (value, fields, key) and returns the checked value or raises with the line.

def text(max_chars: int = 400) -> Callable[[Any, Fields, str], str]:
    def read(value: Any, f: Fields, key: str) -> str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise f.error(key, f"'{key}' must be text, not {kind_of(value)}", "Write it as a quoted sentence")
        value = " ".join(value.split())
        if not value:
            raise f.error(key, f"'{key}' is empty", "Write some words, or remove the key")
        if len(value) > max_chars:
            raise f.error(key, f"'{key}' is too long to speak as one cue ({len(value)} characters; "
                          f"the limit is {max_chars})", "Split it into shorter sentences")
        return value
    return read


def texts(max_chars: int = 400) -> Callable[[Any, Fields, str], list[str]]:
    """One sentence or a list of them."""
    one = text(max_chars)

    def read(value: Any, f: Fields, key: str) -> list[str]:
        if isinstance(value, list):
            if not value:
                raise f.error(key, f"'{key}' is an empty list", "Write at least one sentence, or remove the key")
            out = []
            for i, item in enumerate(value):
                line = value.item_lines[i] if isinstance(value, Seq) else f.line(key)
                try:
                    out.append(one(item, f, key))
                except RoutineError as exc:
                    exc.line = line
                    raise RoutineError(exc.problem, exc.hint, path=exc.path, line=line) from None
            return out
        return [one(value, f, key)]
    return read


def duration(min_ms: int = 1, max_ms: int = 3 * 3_600_000) -> Callable[[Any, Fields, str], int]:
    def read(value: Any, f: Fields, key: str) -> int:
        ms = parse_duration_ms(value)
        if ms is None:
            raise f.error(key, f"'{key}' is not a duration: {value!r}", DURATION_HINT)
        if ms <= 0 and min_ms > 0:
            raise f.error(key, f"'{key}' must be longer than zero (got {value!r})", DURATION_HINT)
        if ms < min_ms:
            raise f.error(key, f"'{key}' cannot be negative (got {value!r})", DURATION_HINT)
        if ms > max_ms:
            raise f.error(key, f"'{key}' is far too long ({format_duration(ms)}; the limit is "
                          f"{format_duration(max_ms)})", "Check the units: 30s is thirty seconds, 30m is half an hour")
        return ms
    return read


def whole(min_value: int = 1, max_value: int = 1000) -> Callable[[Any, Fields, str], int]:
    def read(value: Any, f: Fields, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise f.error(key, f"'{key}' must be a whole number, not {value!r}",
                              f"Write a number from {min_value} to {max_value}")
        if not min_value <= value <= max_value:
            raise f.error(key, f"'{key}' must be from {min_value} to {max_value} (got {value})",
                          f"Write a number from {min_value} to {max_value}")
        return value
    return read


def number(min_value: float, max_value: float, unit: str = "") -> Callable[[Any, Fields, str], float]:
    def read(value: Any, f: Fields, key: str) -> float:
        if isinstance(value, str):
            stripped = value.strip().lower().removesuffix(unit.lower()).strip() if unit else value
            try:
                value = float(stripped)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise f.error(key, f"'{key}' must be a number, not {value!r}",
                          f"Write a number from {min_value:g} to {max_value:g}{(' ' + unit) if unit else ''}")
        if not min_value <= value <= max_value:
            raise f.error(key, f"'{key}' must be from {min_value:g} to {max_value:g}{(' ' + unit) if unit else ''} "
                          f"(got {value:g})", "Choose a value inside that range")
        return float(value)
    return read


def choice(options: Iterable[str]) -> Callable[[Any, Fields, str], str]:
    options = list(options)

    def read(value: Any, f: Fields, key: str) -> str:
        if not isinstance(value, str) or value not in options:
            hint = (closest(value, options) + " " if isinstance(value, str) else "") + \
                "Choose one of: " + ", ".join(options)
            raise f.error(key, f"'{key}' cannot be {value!r}", hint.strip())
        return value
    return read


def flag(value: Any, f: Fields, key: str) -> bool:
    if not isinstance(value, bool):
        raise f.error(key, f"'{key}' must be true or false, not {value!r}", "Write true or false")
    return value


def tags(known: Iterable[str]) -> Callable[[Any, Fields, str], list[str]]:
    """A list of words from a known set, given as a YAML list or a comma-separated string."""
    known = list(known)

    def read(value: Any, f: Fields, key: str) -> list[str]:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list):
            raise f.error(key, f"'{key}' must be a list, not {kind_of(value)}", "Write a list such as [kneeling, prone]")
        out = []
        for item in items:
            word = str(item).strip()
            if word not in known:
                hint = closest(word, known) or "Choose from: " + ", ".join(known)
                raise f.error(key, f"'{key}' has an unknown entry '{word}'", hint)
            out.append(word)
        return out
    return read


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
    return repr(value)
