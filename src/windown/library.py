"""The built-in stretch library, phrase pools and presets (package data), and the stretch entry format.

Inline custom stretches in a routine use exactly the same format, so both go through `read_stretch`.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from windown import source
from windown.errors import RoutineError, kind_of
from windown.source import Fields, Map, Seq

POSITIONS = ("supine", "prone", "kneeling", "all-fours", "seated", "wall")
KINDS = ("hold", "flow", "reps", "rest")
SIDES = ("both", "none")
# Tags a person may need to avoid: positions, loads and movements.
TAGS = ("supine", "prone", "kneeling", "all-fours", "seated", "floor", "wall", "back-extension",
        "forward-bend", "twist", "wrist-load", "hip-lift", "legs-raised", "knee-flexion")
MAX_CUE_CHARS = 400


@dataclass(frozen=True)
class Range:
    """A default with the safe range a personalisation may scale it within."""

    default: int
    min: int
    max: int

    def clamp(self, value: float) -> int:
        return int(min(self.max, max(self.min, round(value))))


@dataclass(frozen=True)
class Stretch:
    id: str
    name: str
    position: str
    in_bed: bool
    kind: str
    sides: str
    hold_ms: Range | None
    reps: Range
    rounds: Range | None
    rest_ms: int
    settle_ms: int
    tags: tuple[str, ...]
    props: tuple[str, ...]
    optional: bool
    setup: tuple[str, ...]
    brief: tuple[str, ...]
    start: tuple[str, ...]
    cues: tuple[str, ...]
    inhale: tuple[str, ...]
    exhale: tuple[str, ...]
    release: tuple[str, ...]
    switch: tuple[str, ...]
    easier: "Stretch | None" = None
    path: str = ""
    line: int = 0
    about: str = ""
    # (key, index, file, line) of each sentence of its words (`inhale`, `cues`, ...), so a cue that does
    # not fit is reported on its own line; not part of equality (two stretches saying the same are equal)
    word_lines: tuple[tuple[str, int, str, int], ...] = dataclasses.field(default=(), compare=False)

    def line_of(self, key: str, index: int, path: str) -> int | None:
        """The line in file `path` of sentence `index` of `key`, or None when it was not written there."""
        for k, i, file, line in self.word_lines:
            if k == key and i == index and file == path:
                return line
        return None

    @property
    def default_length_ms(self) -> int:
        """A rough length used for listings; the timeline gives the exact one."""
        sides = 2 if self.sides == "both" else 1
        if self.kind in ("flow", "reps"):
            count = (self.rounds or self.reps).default
            return self.settle_ms + count * 10_000 + 15_000
        hold = self.hold_ms.default if self.hold_ms else 0
        return self.settle_ms * sides + (hold + self.rest_ms) * self.reps.default * sides + 15_000


def _range(unit: str):
    """Reads `{default, min, max}` or a single value (min = max = default)."""
    def read(value: Any, f: Fields, key: str) -> Range:
        one = source.duration() if unit == "ms" else source.whole(1, 200)
        if isinstance(value, Map):
            inner = Fields(value, f.path, f"'{key}'")
            default = inner.get("default", lambda v, ff, k: one(v, ff, k))
            low = inner.get("min", lambda v, ff, k: one(v, ff, k), default)
            high = inner.get("max", lambda v, ff, k: one(v, ff, k), default)
            inner.finish()
            if default is None:
                raise f.error(key, f"'{key}' needs a default", "Write e.g. {default: 30s, min: 20s, max: 45s}")
            if not low <= default <= high:
                raise f.error(key, f"'{key}' default must lie between min and max",
                              "Write e.g. {default: 30s, min: 20s, max: 45s}")
            return Range(default, low, high)
        v = one(value, f, key)
        return Range(v, v, v)
    return read


STRETCH_KEYS_HELP = "See `windown schema` for the stretch format"
STRETCH_KEYS = ("id", "name", "about", "position", "in_bed", "kind", "sides", "hold", "reps", "rounds", "rest",
                "settle", "tags", "props", "optional", "setup", "brief", "start", "cues", "inhale", "exhale",
                "release", "switch", "easier")


def read_stretch(mapping: Any, path: str, *, base: Stretch | None = None, line: int = 0) -> Stretch:
    """One stretch entry (library or inline); with `base`, only the keys given override it."""
    if not isinstance(mapping, Map):
        raise RoutineError(f"a stretch must be a mapping, not {kind_of(mapping)}", STRETCH_KEYS_HELP,
                           path=path, line=line)
    f = Fields(mapping, path, "a stretch")
    f.expect(STRETCH_KEYS)
    b = base
    words = source.texts(MAX_CUE_CHARS)

    def pick(key, reader, fallback):
        return f.get(key, reader, fallback)

    sid = pick("id", source.text(60), b.id if b else None)
    if sid is None:
        raise f.error(None, "a stretch needs an 'id'", "Add e.g. `id: my-stretch`")
    name = pick("name", source.text(80), b.name if b else None)
    if name is None:
        raise f.error(None, f"stretch '{sid}' needs a 'name' to speak", "Add e.g. `name: knee to chest`")
    kind = pick("kind", source.choice(KINDS), b.kind if b else "hold")
    hold = pick("hold", _range("ms"), b.hold_ms if b else None)
    if kind in ("hold", "rest") and hold is None:
        raise f.error(None, f"stretch '{sid}' of kind '{kind}' needs a 'hold'", "Add e.g. `hold: 30s`")
    rounds = pick("rounds", _range("count"), b.rounds if b else None)
    if kind == "flow" and rounds is None:
        raise f.error(None, f"stretch '{sid}' of kind 'flow' needs 'rounds'", "Add e.g. `rounds: 6`")
    inhale = tuple(pick("inhale", words, list(b.inhale) if b else []))
    exhale = tuple(pick("exhale", words, list(b.exhale) if b else []))
    if kind in ("flow", "reps") and not (inhale and exhale):
        raise f.error(None, f"stretch '{sid}' of kind '{kind}' needs 'inhale' and 'exhale' words",
                      "Add e.g. `inhale: Breathe in and arch.` and `exhale: Breathe out and round.`")
    setup = tuple(pick("setup", words, list(b.setup) if b else []))
    if not setup:
        raise f.error(None, f"stretch '{sid}' needs 'setup' words", "Add a sentence or two on getting into position")
    easier_raw = f.get("easier", lambda v, ff, k: v)
    word_keys = ("setup", "brief", "start", "cues", "inhale", "exhale", "release", "switch")
    given = tuple(entry for key in word_keys if key in mapping for entry in sentence_lines(mapping, key, path))
    inherited = tuple(entry for entry in (b.word_lines if b else ()) if entry[0] not in mapping)
    result = Stretch(
        id=sid,
        name=name,
        position=pick("position", source.choice(POSITIONS), b.position if b else "supine"),
        in_bed=pick("in_bed", source.flag, b.in_bed if b else False),
        kind=kind,
        sides=pick("sides", source.choice(SIDES), b.sides if b else "none"),
        hold_ms=hold,
        reps=pick("reps", _range("count"), b.reps if b else Range(1, 1, 1)),
        rounds=rounds,
        rest_ms=pick("rest", source.duration(0), b.rest_ms if b else 5000),
        settle_ms=pick("settle", source.duration(0), b.settle_ms if b else 5000),
        tags=tuple(pick("tags", source.tags(TAGS), list(b.tags) if b else [])),
        props=tuple(pick("props", source.texts(40), list(b.props) if b else [])),
        optional=pick("optional", source.flag, b.optional if b else False),
        setup=setup,
        brief=tuple(pick("brief", words, list(b.brief) if b else [])) or setup[:1],
        start=tuple(pick("start", words, list(b.start) if b else [])),
        cues=tuple(pick("cues", words, list(b.cues) if b else [])),
        inhale=inhale,
        exhale=exhale,
        release=tuple(pick("release", words, list(b.release) if b else [])),
        switch=tuple(pick("switch", words, list(b.switch) if b else [])),
        about=pick("about", source.text(400), b.about if b else ""),
        path=path,
        line=mapping.line,
        word_lines=inherited + given,
    )
    f.finish()
    if easier_raw is not None:
        if not isinstance(easier_raw, Map):
            raise f.error("easier", "'easier' must be a mapping of the keys that change",
                          "Write e.g. `easier: {name: ..., setup: ...}`")
        if "id" not in easier_raw:
            easier_raw["id"] = f"{sid}-easier"
            easier_raw.value_lines["id"] = easier_raw.line
        if "easier" in easier_raw:
            raise RoutineError("an easier variation cannot have its own 'easier'", "Remove the inner 'easier'",
                               path=path, line=easier_raw.key_lines["easier"])
        easier = read_stretch(easier_raw, path, base=dataclasses.replace(result, easier=None), line=easier_raw.line)
        result = dataclasses.replace(result, easier=easier)
    return result


def sentence_lines(mapping: Map, key: str, path: str) -> list[tuple[str, int, str, int]]:
    """(key, index, file, line) for each sentence of a words key: one line, or one per list item."""
    value = mapping[key]
    if isinstance(value, Seq):
        return [(key, i, path, line) for i, line in enumerate(value.item_lines)]
    return [(key, 0, path, mapping.value_lines.get(key, mapping.line))]


def _data(name: str) -> Path:
    return Path(str(resources.files("windown") / "data" / name))


@functools.cache
def stretches() -> dict[str, Stretch]:
    """The ten built-in stretches by id (their easier variations are reached through `.easier`)."""
    path = _data("stretches.yaml")
    doc = source.load(path)
    if not isinstance(doc, Map) or not isinstance(doc.get("stretches"), Seq):
        raise RoutineError("the stretch library must hold a 'stretches' list", "", path=path, line=1)
    out: dict[str, Stretch] = {}
    for item, line in zip(doc["stretches"], doc["stretches"].item_lines):
        stretch = read_stretch(item, str(path), line=line)
        if stretch.id in out:
            raise RoutineError(f"duplicate stretch id '{stretch.id}'", "Give each stretch its own id",
                               path=path, line=line)
        out[stretch.id] = stretch
    return out


def all_ids() -> list[str]:
    """Library ids including the easier variations, for hints."""
    ids = []
    for s in stretches().values():
        ids.append(s.id)
        if s.easier:
            ids.append(s.easier.id)
    return ids


def find(stretch_id: str) -> Stretch | None:
    for s in stretches().values():
        if s.id == stretch_id:
            return s
        if s.easier and s.easier.id == stretch_id:
            return s.easier
    return None


@functools.cache
def phrases() -> dict[str, tuple[str, ...]]:
    """Pools of equivalent phrases the composer draws from (seeded), by purpose."""
    path = _data("phrases.yaml")
    doc = source.load(path)
    if not isinstance(doc, Map):
        raise RoutineError("the phrase pools must be a mapping", "", path=path, line=1)
    out = {}
    for key, value in doc.items():
        f = Fields(doc, str(path), "phrases")
        out[key] = tuple(source.texts(MAX_CUE_CHARS)(value, f, key))
    return out


PRESET_DIR = "presets"


def preset_names() -> list[str]:
    folder = _data(PRESET_DIR)
    return sorted(p.stem for p in folder.glob("*.yaml"))


def preset_path(name: str) -> Path | None:
    """The package file of a preset; only bare names (no folders, no suffix) can be presets."""
    if not name or "/" in name or "\\" in name or name.startswith(".") or name.endswith((".yaml", ".yml")):
        return None
    path = _data(PRESET_DIR) / f"{name}.yaml"
    return path if path.is_file() else None

