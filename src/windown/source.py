"""Reading YAML sources (routines, profiles, presets, the stretch library) with a line for every value.

Every value a user wrote keeps the line it came from, so any later stage can say `file:line: problem`.
Loading is safe (no Python tags), bounded (file size, node count, depth) and never asserts.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from windown.errors import RoutineError, closest, closest_file, kind_of, shown

MAX_FILE_BYTES = 256 * 1024
MAX_NODES = 20_000  # also stops "billion laughs" alias bombs, counted after expansion
MAX_DEPTH = 30
_MERGE = "tag:yaml.org,2002:merge"


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
            hint = closest_file(name)
            raise RoutineError("no such file", (hint + " " if hint else "") +
                               "Check the path, or run `windown presets` to list the presets", path=name) from None
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
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise RoutineError("the file is UTF-16 text, not UTF-8", "Save it as UTF-8 in your editor", path=name, line=1)
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
    except RecursionError:  # PyYAML composes nested values recursively
        raise RoutineError(f"values are nested more than {MAX_DEPTH} levels deep",
                           "Flatten the structure; see `windown init` for the routine layout",
                           path=name, line=_too_deep_line(decoded)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = (exc.problem or exc.context or "malformed YAML").strip()
        hint = "Check the indentation and quoting on this line and the one before"
        context = exc.context_mark if exc.context and exc.problem else None
        if "'\\t'" in problem:
            problem, hint = "a tab where YAML needs spaces", "Indent with spaces, not tabs"
        elif problem == "but found another document":
            problem, hint = "the file holds more than one YAML document (a second '---')", "Keep one routine per file"
        elif context and "quoted scalar" in exc.context and "end of stream" in problem:
            problem, hint, line = "a quote is opened and never closed", "Close the quote", context.line + 1
        elif context and mark and context.line != mark.line:
            problem += f" ({exc.context.strip()} that starts on line {context.line + 1})"
        raise RoutineError(f"malformed YAML: {problem}", hint, path=name, line=line) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow in text
        line = decoded[: exc.position].count("\n") + 1
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or " ")
        raise RoutineError(f"the file holds a control character (U+{code:04X})",
                           "Delete it; a routine is plain text", path=name, line=line) from None
    except yaml.YAMLError as exc:
        raise RoutineError(f"malformed YAML: {str(exc).splitlines()[0]}", "Check the file's syntax",
                           path=name) from None
    if node is None:
        return None
    return _Builder(name).build(node, 0)


def _too_deep_line(decoded: str) -> int | None:
    """The line where nesting first goes deeper than MAX_DEPTH (the parser, unlike the composer, is not recursive)."""
    depth = 0
    try:
        for event in yaml.parse(decoded, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    return event.start_mark.line + 1
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        pass
    return None


class _Builder:
    """Turns composed YAML nodes into values, counting nodes so aliases cannot blow up."""

    def __init__(self, path: str):
        self.path = path
        self.count = 0
        self.constructor = yaml.SafeLoader("")
        self.flat: dict[int, list[tuple[yaml.Node, yaml.Node]]] = {}  # mapping node -> its pairs, merges expanded
        self.sizes: dict[int, int] = {}  # mapping node -> its number of keys once merges are expanded

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
        if node.tag not in self.constructor.yaml_constructors:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise RoutineError(f"unsupported YAML tag {shown(tag)}", "Write plain text, numbers or durations",
                               path=self.path, line=line)
        if isinstance(node, yaml.MappingNode):
            out = Map(line)
            explicit = {id(k) for k, _ in node.value if k.tag != _MERGE}
            written: dict[str, int] = {}  # key -> the key node that wrote it here (merged keys may be overridden)
            for key_node, value_node in self.pairs(node):
                key = self.build(key_node, depth + 1)
                if not isinstance(key, str):
                    key = str(key)
                if id(key_node) in explicit:
                    if written.get(key, id(key_node)) != id(key_node):
                        raise RoutineError(f"the key {shown(key)} is written twice (first on line "
                                           f"{out.key_lines[key]})", "Keep only one of them",
                                           path=self.path, line=key_node.start_mark.line + 1)
                    written[key] = id(key_node)
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
        except Exception as exc:  # PyYAML's constructors fail in many ways on a value that does not fit its tag
            detail = str(exc).splitlines()[0] if isinstance(exc, ValueError) and str(exc) else \
                f"it is not a valid {node.tag.replace('tag:yaml.org,2002:', '!!')}"
            raise RoutineError(f"unreadable value: {detail}", "Write plain text, numbers or durations",
                               path=self.path, line=line) from None

    def merged_size(self, node: yaml.MappingNode) -> int:
        """How many keys `node` holds once its merge keys (<<) are expanded, counted without expanding them."""
        if id(node) in self.sizes:
            return self.sizes[id(node)]
        self.sizes[id(node)] = 0  # a mapping that merges itself adds nothing more
        size = 0
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE:
                size += 1
                continue
            merged = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for sub in merged:
                if not isinstance(sub, yaml.MappingNode):
                    raise RoutineError("a merge key (<<) must name a mapping or a list of mappings",
                                       "Write the keys out in full", path=self.path, line=sub.start_mark.line + 1)
                size += self.merged_size(sub)
            if size > MAX_NODES:
                raise RoutineError(f"the document expands to more than {MAX_NODES} values",
                                   "Remove repeated YAML merges (<<: *name); a routine needs far fewer values",
                                   path=self.path, line=key_node.start_mark.line + 1)
        self.sizes[id(node)] = size
        return size


    def pairs(self, node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node]]:
        """The mapping's (key, value) nodes with its merge keys (<<) expanded, merged keys first.

        Done here rather than by PyYAML's flatten_mapping, whose results (and so the size limit's
        line) differ between PyYAML releases. Its own keys win over merged ones; among merged
        mappings the first to name a key wins, as the YAML merge key spec says.
        """
        if id(node) in self.flat:
            return self.flat[id(node)]
        self.merged_size(node)  # first, so a merge bomb is stopped before anything is expanded
        self.flat[id(node)] = []  # a mapping that merges itself adds nothing more
        own = []
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:value":  # a bare `=` key is plain text, as in PyYAML
                key_node.tag = "tag:yaml.org,2002:str"
            if key_node.tag != _MERGE:
                own.append((key_node, value_node))
        seen = {_key_identity(k) for k, _ in own}
        merged = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE:
                continue
            for sub in value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]:
                for pair in self.pairs(sub):
                    if _key_identity(pair[0]) not in seen:
                        seen.add(_key_identity(pair[0]))
                        merged.append(pair)
        self.flat[id(node)] = merged + own
        return self.flat[id(node)]


def _key_identity(node: yaml.Node) -> object:
    """Keys that name the same entry: equal scalars with the same tag; any other node only itself."""
    return (node.tag, node.value) if isinstance(node, yaml.ScalarNode) else id(node)


_DURATION = re.compile(r"^(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m(?!s))?(?:(?P<s>\d+(?:\.\d+)?)s)?"
                       r"(?:(?P<ms>\d+)ms)?$")

DURATION_HINT = "Write a duration such as 30s, 1m30s, 5m or a number of seconds"


def parse_duration_ms(value: Any) -> int | None:
    """`30s`, `1m30s`, `5m`, `1h`, `250ms` or plain seconds -> whole milliseconds; None if unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value * 1000):
            return None
        return round(value * 1000)
    if not isinstance(value, str):
        return None
    text = value.strip().lower().replace(" ", "")
    if text.startswith("-"):
        inner = parse_duration_ms(text[1:])
        return None if inner is None else -inner
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return round(seconds * 1000) if math.isfinite(seconds * 1000) else None
    match = _DURATION.match(text)
    if not match or not text:
        return None
    parts = match.groupdict()
    total = 0.0
    for unit, scale in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if parts[unit] is not None:
            total += float(parts[unit]) * scale
    return round(total) if math.isfinite(total) else None


def format_duration(ms: int) -> str:
    """Milliseconds as the shortest duration text a person would write (1m30s, 1h30m)."""
    seconds, rest = divmod(int(ms), 1000)
    if rest:
        return f"{ms / 1000:g}s"
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{seconds}s" if seconds else "")
    return text or "0s"


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

    def expect(self, keys: Iterable[str]) -> None:
        """Reject unknown keys up front, so a misspelt required key is named as a typo, not as missing."""
        self.known.extend(k for k in keys if k not in self.known)
        self.finish()

    def finish(self) -> None:
        for key in self.map:
            if key not in self.known:
                hint = closest(key, self.known) or "Known keys: " + ", ".join(self.known)
                raise RoutineError(f"unknown key {shown(key)} in {self.what}", hint,
                                   path=self.path, line=self.map.key_lines.get(key, self.map.line))


# Value readers: each takes (value, fields, key) and returns the checked value or raises with the line.

def text(max_chars: int = 400, cue_hint: str = "") -> Callable[[Any, Fields, str], str]:
    """One line of text; with `cue_hint` it is spoken as one cue, and a long one is told how to split."""
    def read(value: Any, f: Fields, key: str) -> str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise f.error(key, f"'{key}' must be text, not {kind_of(value)}", "Write it as a quoted sentence")
        value = " ".join(value.split())
        if not value:
            raise f.error(key, f"'{key}' is empty", "Write some words, or remove the key")
        if len(value) > max_chars and cue_hint:
            raise f.error(key, f"'{key}' is too long to speak as one cue ({len(value)} characters; "
                          f"the limit is {max_chars})", cue_hint.format(key=key, max=max_chars))
        if len(value) > max_chars:
            raise f.error(key, f"'{key}' is too long ({len(value)} characters; the limit is {max_chars})",
                          f"Shorten it to {max_chars} characters or fewer")
        return value
    return read


def texts(max_chars: int = 400) -> Callable[[Any, Fields, str], list[str]]:
    """One sentence or a list of them; each is one cue, so a long one is split into list items."""
    one = text(max_chars, "Make it a YAML list of shorter cues: `{key}:` and then one `- ...` line for each, "
                          "each at most {max} characters")
    item = text(max_chars, "Split this item into two or more items of the list, each at most {max} characters")

    def read(value: Any, f: Fields, key: str) -> list[str]:
        if isinstance(value, list):
            if not value:
                raise f.error(key, f"'{key}' is an empty list", "Write at least one sentence, or remove the key")
            out = []
            for i, entry in enumerate(value):
                line = value.item_lines[i] if isinstance(value, Seq) else f.line(key)
                try:
                    out.append(item(entry, f, key))
                except RoutineError as exc:
                    exc.line = line
                    raise RoutineError(exc.problem, exc.hint, path=exc.path, line=line) from None
            return out
        return [one(value, f, key)]
    return read


def duration(min_ms: int = 1, max_ms: int = 3 * 3_600_000, min_hint: str = "") -> Callable[[Any, Fields, str], int]:
    """A duration from `min_ms` to `max_ms`; `min_hint` says why a floor above 1 ms is there."""
    def read(value: Any, f: Fields, key: str) -> int:
        ms = parse_duration_ms(value)
        if ms is None:
            raise f.error(key, f"'{key}' is not a duration: {shown(value)}", DURATION_HINT)
        if ms <= 0 and min_ms > 0:
            raise f.error(key, f"'{key}' must be longer than zero (got {shown(value)})", DURATION_HINT)
        if ms < 0:
            raise f.error(key, f"'{key}' cannot be negative (got {shown(value)})", DURATION_HINT)
        if ms < min_ms:
            raise f.error(key, f"'{key}' of {format_duration(ms)} is too short (the least is "
                          f"{format_duration(min_ms)})", min_hint or DURATION_HINT)
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
                raise f.error(key, f"'{key}' must be a whole number, not {shown(value)}",
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
            raise f.error(key, f"'{key}' must be a number, not {shown(value)}",
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
            raise f.error(key, f"'{key}' cannot be {shown(value)}", hint.strip())
        return value
    return read


def flag(value: Any, f: Fields, key: str) -> bool:
    if not isinstance(value, bool):
        raise f.error(key, f"'{key}' must be true or false, not {shown(value)}", "Write true or false")
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
                raise f.error(key, f"'{key}' has an unknown entry {shown(word)}", hint)
            out.append(word)
        return out
    return read
