"""Load stage: routine YAML -> `Routine`, validated, every problem reported as `file:line: problem. Fix`.

A routine is content (title, steps) plus settings. Profiles carry the same settings (see personalise.py),
so `read_settings` serves both.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from windown import library, source
from windown.errors import RoutineError
from windown.library import Stretch
from windown.source import Fields, Map, Seq

ENGINES = ("piper", "pyttsx3", "espeak-ng", "festival")
PACES = ("slow", "medium", "brisk")
INSTRUCTION = ("full", "brief", "minimal")
ORDERS = ("auto", "as-written")
STEP_KINDS = ("stretch", "say", "breathe", "pause", "chime")
MAX_STEPS = 200
MAX_SAY_CHARS = 400
MAX_TRACK_MS = 3 * 3_600_000


@dataclass(frozen=True)
class Voice:
    engine: str = "piper"
    voice: str | None = None
    rate_wpm: int = 140


@dataclass(frozen=True)
class Breathing:
    inhale_ms: int = 4000
    exhale_ms: int = 6000
    hold_in_ms: int = 0
    hold_out_ms: int = 0

    @property
    def cycle_ms(self) -> int:
        return self.inhale_ms + self.hold_in_ms + self.exhale_ms + self.hold_out_ms


@dataclass(frozen=True)
class Ambient:
    sound: str = "brown-noise"  # a built-in bed name, "none", or a file path (resolved against the routine)
    level_db: float = -20.0  # the bed's level relative to the voice
    # the file and line that chose `sound`, so a missing or broken sound file is reported there;
    # None when it came from a command-line flag or a default
    origin: tuple[str, int] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Settings:
    """Everything personal about a track; routine files, profiles and CLI flags all set these."""

    voice: Voice = Voice()
    breathing: Breathing = Breathing()
    ambient: Ambient = Ambient()
    pace: str = "medium"
    instruction: str = "full"
    bedtime: bool = False
    tail_ms: int = 60_000
    order: str = "as-written"
    safety: bool = True
    length_ms: int | None = None
    avoid: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    in_bed_only: bool = False
    name: str | None = None
    seed: int | None = None
    transition_ms: int = 6000


@dataclass(frozen=True)
class StretchStep:
    stretch: Stretch
    line: int
    hold_ms: int | None = None
    sides: str | None = None
    reps: int | None = None
    rounds: int | None = None
    settle_ms: int | None = None
    rest_ms: int | None = None
    kind = "stretch"


@dataclass(frozen=True)
class SayStep:
    texts: tuple[str, ...]
    line: int
    kind = "say"


@dataclass(frozen=True)
class BreatheStep:
    cycles: int
    line: int
    breathing: Breathing | None = None
    kind = "breathe"


@dataclass(frozen=True)
class PauseStep:
    pause_ms: int
    line: int
    kind = "pause"


@dataclass(frozen=True)
class ChimeStep:
    line: int
    kind = "chime"


Step = StretchStep | SayStep | BreatheStep | PauseStep | ChimeStep


@dataclass(frozen=True)
class Routine:
    title: str
    path: str
    steps: tuple[Step, ...]
    settings: Settings = Settings()
    set_keys: frozenset[str] = field(default_factory=frozenset)  # settings the file named explicitly

    @property
    def name(self) -> str:
        """A file-safe name for outputs: the file's stem."""
        return Path(self.path).stem


SETTING_KEYS = ("voice", "breathing", "ambient", "pace", "instruction", "bedtime", "tail", "order", "safety",
                "length", "avoid", "exclude", "in_bed_only", "name", "seed", "transition")


def load(path: str | os.PathLike) -> Routine:
    """Load a routine file, or a preset when `path` names one (`bedtime-lower-back`)."""
    name = os.fspath(path)
    resolved = str(resolve(name))
    if not os.path.exists(resolved) and os.sep not in name and not name.endswith((".yaml", ".yml")):
        hint = source.closest(name, library.preset_names())
        raise RoutineError(f"no routine file or preset named '{name}'",
                           (hint + " " if hint else "") + "Run `windown presets` to list the presets")
    return parse(source.load(resolved), resolved)


def resolve(name: str) -> Path:
    """The file a routine name refers to (a path, or a preset's package file)."""
    if not os.path.exists(name) and library.preset_path(name) is not None:
        return library.preset_path(name)
    return Path(name)


def parse(doc: Any, path: str) -> Routine:
    if doc is None:
        raise RoutineError("the routine is empty", "Start from `windown init routine.yaml`", path=path, line=1)
    if not isinstance(doc, Map):
        raise RoutineError(f"a routine must be a mapping with 'title' and 'steps', not {source.kind_of(doc)}",
                           "Start from `windown init routine.yaml`", path=path, line=getattr(doc, "line", 1))
    f = Fields(doc, path, "the routine")
    title = f.get("title", source.text(120))
    steps_raw = f.get("steps", lambda v, ff, k: v)
    settings, set_keys = read_settings(f, Settings())
    f.finish()  # first, so that a misspelt 'title' or 'steps' is named as such
    if title is None:
        raise f.error(None, "the routine needs a 'title'", "Add e.g. `title: Bedtime stretches`")
    if steps_raw is None:
        raise f.error(None, "the routine needs 'steps'", "Add a list of steps; see `windown init`")
    if not isinstance(steps_raw, Seq):
        raise f.error("steps", f"'steps' must be a list, not {source.kind_of(steps_raw)}",
                      "Write each step on its own line starting with '- '")
    if not steps_raw:
        raise f.error("steps", "the routine has no steps", "Add at least one step, e.g. `- stretch: knee-to-chest`")
    if len(steps_raw) > MAX_STEPS:
        raise f.error("steps", f"the routine has {len(steps_raw)} steps (the limit is {MAX_STEPS})",
                      "Split it into several routines")
    steps = tuple(read_step(item, path, line) for item, line in zip(steps_raw, steps_raw.item_lines))
    total_ms = sum(_rough_ms(step, settings.breathing) for step in steps)
    if total_ms > MAX_TRACK_MS:
        hours = f"{total_ms / 3_600_000:.1f}".removesuffix(".0")
        raise f.error("steps", f"the routine would run for about {hours} hours; the limit is "
                      f"{MAX_TRACK_MS // 3_600_000} hours",
                      "Shorten the holds and pauses, or split it into several routines")
    return Routine(title=title, path=path, steps=steps, settings=settings, set_keys=frozenset(set_keys))


def _rough_ms(step: Step, breathing: Breathing) -> int:
    """The time a step's holds, breaths and pauses take as written (talk, settling and pace not counted)."""
    if isinstance(step, PauseStep):
        return step.pause_ms
    if isinstance(step, BreatheStep):
        return step.cycles * (step.breathing or breathing).cycle_ms
    if not isinstance(step, StretchStep):
        return 0
    st = step.stretch
    if st.kind in ("flow", "reps"):
        return (step.rounds or step.reps or (st.rounds or st.reps).default) * breathing.cycle_ms
    sides = 2 if (step.sides or st.sides) == "both" else 1
    return (step.hold_ms or st.hold_ms.default) * (step.reps or st.reps.default) * sides


def read_settings(f: Fields, base: Settings) -> tuple[Settings, set[str]]:
    """The settings keys of a routine or profile mapping, applied over `base`."""
    changes: dict[str, Any] = {}
    voice = f.get("voice", _voice)
    if voice:
        changes["voice"] = dataclasses.replace(base.voice, **voice)
    breathing = f.get("breathing", _breathing)
    if breathing:
        changes["breathing"] = dataclasses.replace(base.breathing, **breathing)
    ambient = f.get("ambient", _ambient)
    if ambient:
        changes["ambient"] = dataclasses.replace(base.ambient, **ambient)
    simple = {
        "pace": ("pace", source.choice(PACES)),
        "instruction": ("instruction", source.choice(INSTRUCTION)),
        "bedtime": ("bedtime", source.flag),
        "tail": ("tail_ms", source.duration(0, 2 * 3_600_000)),
        "order": ("order", source.choice(ORDERS)),
        "safety": ("safety", source.flag),
        "length": ("length_ms", source.duration(60_000, MAX_TRACK_MS)),
        "avoid": ("avoid", lambda v, ff, k: tuple(source.tags(library.TAGS)(v, ff, k))),
        "exclude": ("exclude", _stretch_ids),
        "in_bed_only": ("in_bed_only", source.flag),
        "name": ("name", source.text(40)),
        "seed": ("seed", source.whole(0, 2**31 - 1)),
        "transition": ("transition_ms", source.duration(0, 120_000)),
    }
    for key, (attr, reader) in simple.items():
        value = f.get(key, reader)
        if value is not None:
            changes[attr] = value
    # Ambient file paths are relative to the file that names them.
    if ambient and "sound" in ambient:
        sound = changes["ambient"].sound
        if _looks_like_path(sound):
            sound = _relative_to(f.path, sound)
        changes["ambient"] = dataclasses.replace(changes["ambient"], sound=sound, origin=(f.path, f.line("ambient")))
    return dataclasses.replace(base, **changes), set(f.seen) & set(SETTING_KEYS)


def _looks_like_path(sound: str) -> bool:
    from windown import ambient  # the bed names live with the beds

    return sound not in ambient.BED_NAMES


def _relative_to(routine_path: str, sound: str) -> str:
    candidate = Path(os.path.expanduser(sound))
    if candidate.is_absolute():
        return str(candidate)
    return str(Path(routine_path).resolve().parent / candidate)


def _sub(value: Any, f: Fields, key: str) -> Fields:
    if not isinstance(value, Map):
        raise f.error(key, f"'{key}' must be a mapping, not {source.kind_of(value)}",
                      f"Indent its keys under '{key}:'; see `windown init`")
    return Fields(value, f.path, f"'{key}'")


def _voice(value: Any, f: Fields, key: str) -> dict:
    if isinstance(value, str) and value in ENGINES:  # `voice: espeak-ng` meant the engine
        raise f.error(key, f"'{key}' must be a mapping, not {source.kind_of(value)}",
                      f"Write `{key}: {{engine: {value}}}`")
    g = _sub(value, f, key)
    out = {}
    engine = g.get("engine", source.choice(ENGINES))
    if engine:
        out["engine"] = engine
    voice = g.get("voice", source.text(80))
    if voice:
        out["voice"] = voice
    rate = g.get("rate", source.whole(80, 300))
    if rate:
        out["rate_wpm"] = rate
    g.finish()
    return out


def _breathing(value: Any, f: Fields, key: str) -> dict:
    g = _sub(value, f, key)
    out = {}
    for name, attr, low in (("inhale", "inhale_ms", 1), ("exhale", "exhale_ms", 1),
                            ("hold_in", "hold_in_ms", 0), ("hold_out", "hold_out_ms", 0)):
        ms = g.get(name, source.duration(low, 30_000))
        if ms is not None:
            if name in ("inhale", "exhale") and ms < 1500:
                raise g.error(name, f"'{name}' of {source.format_duration(ms)} is too short to follow",
                              "Use at least 1.5s; a calm breath is about 4s in and 6s out")
            out[attr] = ms
    g.finish()
    return out


def _ambient(value: Any, f: Fields, key: str) -> dict:
    if isinstance(value, str):  # `ambient: rain` is short for `ambient: {sound: rain}`
        return {"sound": source.text(1000)(value, f, key)}
    g = _sub(value, f, key)
    out = {}
    sound = g.get("sound", source.text(1000))
    if sound:
        out["sound"] = sound
    level = g.get("level", source.number(-60, 0, "dB"))
    if level is not None:
        out["level_db"] = level
    g.finish()
    return out


def _stretch_ids(value: Any, f: Fields, key: str) -> tuple[str, ...]:
    return tuple(source.tags(library.all_ids())(value, f, key))


def _unknown_stretch(stretch_id: Any, path: str, line: int) -> RoutineError:
    hint = source.closest(str(stretch_id), library.all_ids())
    return RoutineError(f"unknown stretch {source.shown(stretch_id)}",
                        (hint + " " if hint else "") + "Run `windown stretches` to list them",
                        path=path, line=line)


def read_step(item: Any, path: str, line: int) -> Step:
    if isinstance(item, str) and item in ("chime",):
        return ChimeStep(line=line)
    if not isinstance(item, Map) or not item:
        raise RoutineError(f"a step must be a mapping such as `- stretch: knee-to-chest`, not "
                           f"{source.kind_of(item)}", "Start each step with one of: " + ", ".join(STEP_KINDS),
                           path=path, line=line)
    kinds = [k for k in item if k in STEP_KINDS]
    if not kinds:
        first = next(iter(item))
        hint = source.closest(first, STEP_KINDS) or "Start each step with one of: " + ", ".join(STEP_KINDS)
        raise RoutineError(f"unknown step {source.shown(first)}", hint, path=path, line=item.key_lines[first])
    if len(kinds) > 1:
        raise RoutineError(f"one step names both '{kinds[0]}' and '{kinds[1]}'",
                           "Put each on its own line starting with '- '", path=path,
                           line=item.key_lines[kinds[1]])
    kind = kinds[0]
    f = Fields(item, path, f"a '{kind}' step")
    if kind == "say":
        said = f.get("say", source.texts(MAX_SAY_CHARS))
        f.finish()
        return SayStep(texts=tuple(said), line=line)
    if kind == "pause":
        ms = f.get("pause", source.duration(1, 30 * 60_000))
        f.finish()
        return PauseStep(pause_ms=ms, line=line)
    if kind == "chime":
        f.get("chime", _chime_value)
        f.finish()
        return ChimeStep(line=line)
    if kind == "breathe":
        cycles = f.get("breathe", source.whole(1, 100))
        pattern = {}  # an optional pattern for this step alone, written beside `breathe:`
        for name, attr, low in (("inhale", "inhale_ms", 1), ("exhale", "exhale_ms", 1),
                                ("hold_in", "hold_in_ms", 0), ("hold_out", "hold_out_ms", 0)):
            ms = f.get(name, source.duration(low, 30_000))
            if ms is not None:
                pattern[attr] = ms
        f.finish()
        return BreatheStep(cycles=cycles, line=line,
                           breathing=dataclasses.replace(Breathing(), **pattern) if pattern else None)
    # stretch
    raw = item["stretch"]
    f.known.append("stretch")
    if isinstance(raw, Map):
        stretch = library.read_stretch(raw, path, line=raw.line)
    elif isinstance(raw, str):
        stretch = library.find(raw)
        if stretch is None:
            raise _unknown_stretch(raw, path, item.value_lines["stretch"])
    else:
        raise RoutineError(f"'stretch' must name a stretch id or hold an inline stretch, not "
                           f"{source.kind_of(raw)}", "Write e.g. `- stretch: knee-to-chest`",
                           path=path, line=item.value_lines["stretch"])
    overrides = {}
    words = {}
    for key, reader in (("setup", source.texts(library.MAX_CUE_CHARS)), ("cues", source.texts(library.MAX_CUE_CHARS)),
                        ("release", source.texts(library.MAX_CUE_CHARS)), ("name", source.text(80))):
        value = f.get(key, reader)
        if value is not None:
            words[key] = tuple(value) if isinstance(value, list) else value
    if words:
        stretch = dataclasses.replace(stretch, **words)
    hold = f.get("hold", source.duration(1, 60 * 60_000))
    if hold is not None and stretch.kind in ("flow", "reps"):
        raise f.error("hold", f"'{stretch.id}' is a {stretch.kind} paced by the breath, so it has no hold",
                      "Set 'rounds' or 'reps' instead, or change the breathing pattern")
    overrides["hold_ms"] = hold
    overrides["sides"] = f.get("sides", source.choice(library.SIDES))
    if overrides["sides"] == "both" and stretch.kind in ("flow", "reps"):
        raise f.error("sides", f"'{stretch.id}' is a {stretch.kind} paced by the breath, so it has no sides",
                      "Remove 'sides', or use a stretch of kind hold")
    overrides["reps"] = f.get("reps", source.whole(1, 100))
    rounds = f.get("rounds", source.whole(1, 100))
    if rounds is not None and stretch.kind != "flow":
        raise f.error("rounds", f"'{stretch.id}' is a {stretch.kind}, so it has no rounds",
                      "Use 'reps' to repeat it" if stretch.kind != "rest" else "Use 'hold' to set its length")
    overrides["rounds"] = rounds
    overrides["settle_ms"] = f.get("settle", source.duration(0, 120_000))
    overrides["rest_ms"] = f.get("rest", source.duration(0, 120_000))
    f.finish()
    return StretchStep(stretch=stretch, line=line, **overrides)


def _chime_value(value: Any, f: Fields, key: str) -> None:
    if value not in (None, True):
        raise f.error(key, f"'chime' takes no value (got {value!r})", "Write `- chime` on its own")
    return None


STARTER = """\
# A windown routine: what you will hear, in order. Build it with
#     windown build {name}
# Check it with `windown validate {name}`; list the stretches with `windown stretches`.
# Durations are written 30s, 1m30s, 5m or as a number of seconds.
#
# Completion in your editor (yaml-language-server): run `windown schema > windown.schema.json`
# beside this file, then delete the first "#" of the next line.
## yaml-language-server: $schema=windown.schema.json

title: My bedtime stretches

# The voice: engine piper (the default, a neural voice), pyttsx3, espeak-ng or festival;
# rate in words per minute.
voice: {{engine: piper, rate: 140}}

# The breath pace for breathing steps and flowing stretches.
breathing: {{inhale: 4s, exhale: 6s}}

# The bed under the voice: brown-noise, pink-noise, rain, ocean, drone, none, or a sound file.
ambient: {{sound: brown-noise, level: -20}}

# Bedtime mode: no "pose 3 of 8" and no spoken countdowns; soft chimes instead.
bedtime: true

# How long the bed plays on after the last words, to fall asleep to.
tail: 10m

# More settings (remove the "# " to use one):
# pace: slow              # slow, medium or brisk: scales holds, settling and transitions
# instruction: brief      # full, brief or minimal: how much talk you hear
# length: 15m             # fit the guided part to this length
# avoid: [kneeling, prone]  # leave out (or ease) stretches with these tags
# in_bed_only: true       # only stretches done lying in bed
# order: auto             # group stretches by position

steps:
  - say: Welcome. Lie down comfortably, and let the day go.
  - breathe: 3
  - stretch: knee-to-chest
    hold: 30s
  - stretch: pelvic-tilts
  - pause: 5s
  - stretch: supine-twist
  - chime
  # A stretch of your own, written inline:
  # - stretch:
  #     id: overhead-reach
  #     name: overhead reach
  #     position: supine
  #     in_bed: true
  #     hold: 20s
  #     setup: Lie on your back and reach both arms over your head.
  #     release: Slowly bring your arms back down.
"""


DURATION_PATTERN = (r"^ *(?=[^ ])([0-9]+(\.[0-9]+)?|([0-9]+(\.[0-9]+)?[hH])? *([0-9]+(\.[0-9]+)?[mM](?![sS]))? *"
                    r"([0-9]+(\.[0-9]+)?[sS])? *([0-9]+[mM][sS])?) *$")


def schema() -> dict:
    """A JSON Schema (draft 2020-12) of the routine format, for editors' completion and checking."""
    from windown import ambient

    ref = {name: {"$ref": f"#/$defs/{name}"} for name in ("duration", "text", "texts", "durationRange",
                                                           "countRange", "stretch", "step")}

    def obj(properties: dict, required: tuple = (), description: str = "") -> dict:
        out = {"type": "object", "properties": properties, "additionalProperties": False}
        if required:
            out["required"] = list(required)
        if description:
            out["description"] = description
        return out

    def whole(low: int, high: int, description: str = "") -> dict:
        return {"type": "integer", "minimum": low, "maximum": high, **({"description": description} if description
                                                                        else {})}

    def listed(names: list[str], description: str) -> dict:
        return {"description": description, "anyOf": [{"type": "array", "items": {"enum": list(names)}},
                                                      {"type": "string", "description": "comma-separated"}]}

    flag = {"type": "boolean"}
    level = {"description": "dB relative to the voice, -60 to 0",
             "anyOf": [{"type": "number", "minimum": -60, "maximum": 0},
                       {"type": "string", "pattern": r"^ *-?[0-9]+(\.[0-9]+)? *([dD][bB])? *$"}]}
    sound = {"description": "a built-in bed or a sound file (relative to the routine)",
             "anyOf": [{"enum": list(ambient.BED_NAMES)}, {"type": "string", "minLength": 1}]}
    breath = {k: ref["duration"] for k in ("inhale", "exhale", "hold_in", "hold_out")}
    stretch_words = {k: ref["texts"] for k in ("setup", "brief", "start", "cues", "inhale", "exhale", "release",
                                               "switch")}
    stretch_props = {
        "id": {"type": "string", "minLength": 1, "maxLength": 60},
        "name": {"type": "string", "minLength": 1, "maxLength": 80, "description": "spoken"},
        "position": {"enum": list(library.POSITIONS)},
        "in_bed": flag,
        "kind": {"enum": list(library.KINDS)},
        "sides": {"enum": list(library.SIDES)},
        "hold": ref["durationRange"],
        "reps": ref["countRange"],
        "rounds": ref["countRange"],
        "rest": ref["duration"],
        "settle": ref["duration"],
        "tags": {"type": "array", "items": {"enum": list(library.TAGS)}},
        "props": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string", "maxLength": 40}}]},
        "optional": flag,
        "about": {"type": "string", "maxLength": 400},
        **stretch_words,
    }
    steps = [
        {"const": "chime", "description": "a soft chime"},
        obj({"say": ref["texts"]}, ("say",), "words to speak"),
        obj({"pause": ref["duration"]}, ("pause",), "silence (the bed plays on)"),
        obj({"chime": {"enum": [None, True]}}, ("chime",), "a soft chime"),
        obj({"breathe": whole(1, 100, "breath cycles"), **breath}, ("breathe",), "paced breathing"),
        obj({"stretch": {"anyOf": [{"enum": library.all_ids()}, ref["stretch"]],
                         "description": "a library stretch id (`windown stretches`) or an inline stretch"},
             "hold": ref["duration"], "sides": {"enum": list(library.SIDES)}, "reps": whole(1, 100),
             "rounds": whole(1, 100), "settle": ref["duration"], "rest": ref["duration"],
             "setup": ref["texts"], "cues": ref["texts"], "release": ref["texts"],
             "name": {"type": "string", "minLength": 1, "maxLength": 80}}, ("stretch",), "a stretch"),
    ]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "windown routine",
        "description": "A bedtime stretching routine for windown (`windown init` writes a starter).",
        **obj({
            "title": {"type": "string", "minLength": 1, "maxLength": 120},
            "voice": obj({"engine": {"enum": list(ENGINES)}, "voice": {"type": "string", "maxLength": 80},
                          "rate": whole(80, 300, "words per minute")}),
            "breathing": obj(breath),
            "ambient": {"anyOf": [sound, obj({"sound": sound, "level": level})]},
            "pace": {"enum": list(PACES)},
            "instruction": {"enum": list(INSTRUCTION)},
            "bedtime": flag,
            "tail": ref["duration"],
            "order": {"enum": list(ORDERS)},
            "safety": flag,
            "length": ref["duration"],
            "avoid": listed(list(library.TAGS), "tags of stretches to leave out or ease"),
            "exclude": listed(library.all_ids(), "stretch ids to leave out"),
            "in_bed_only": flag,
            "name": {"type": "string", "minLength": 1, "maxLength": 40, "description": "for a short greeting"},
            "seed": whole(0, 2**31 - 1, "phrasing seed"),
            "transition": ref["duration"],
            "steps": {"type": "array", "minItems": 1, "maxItems": MAX_STEPS, "items": ref["step"]},
        }, ("title", "steps")),
        "$defs": {
            "duration": {"description": "30s, 1m30s, 5m, 250ms, or a number of seconds",
                         "anyOf": [{"type": "number", "minimum": 0},
                                   {"type": "string", "pattern": DURATION_PATTERN}]},
            "text": {"type": "string", "minLength": 1, "maxLength": MAX_SAY_CHARS},
            "texts": {"anyOf": [ref["text"], {"type": "array", "minItems": 1, "items": ref["text"]}]},
            "durationRange": {"anyOf": [ref["duration"], obj({"default": ref["duration"], "min": ref["duration"],
                                                              "max": ref["duration"]}, ("default",))]},
            "countRange": {"anyOf": [whole(1, 200), obj({"default": whole(1, 200), "min": whole(1, 200),
                                                         "max": whole(1, 200)}, ("default",))]},
            "stretch": {**obj({**stretch_props, "easier": obj(stretch_props, (), "an easier variation: "
                                                                           "the keys that change")},
                              ("id", "name", "setup"), "an inline stretch, in the library's format")},
            "step": {"anyOf": steps},
        },
    }
