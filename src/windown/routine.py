"""Load stage: routine YAML -> `Routine`, validated, every problem reported as `file:line: problem. Fix`.

A routine is content (title, steps) plus settings; settings.read reads the settings part, as it does
for profiles and batch jobs.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from windown import library, settings, source
from windown.errors import RoutineError, closest, kind_of, shown
from windown.library import Stretch
from windown.settings import Breathing, Settings
from windown.source import Fields, Map, Seq

STEP_KINDS = ("stretch", "say", "breathe", "pause", "chime")
MAX_STEPS = 200
MAX_SAY_CHARS = 400
MAX_TRACK_MS = settings.MAX_TRACK_MS


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
    set_keys: frozenset[str] = field(default_factory=frozenset)  # setting keys the file named ("tail", "voice.rate")

    @property
    def name(self) -> str:
        """A file-safe name for outputs: the file's stem."""
        return Path(self.path).stem


def load(path: str | os.PathLike) -> Routine:
    """Load a routine file, or a preset when `path` names one (`bedtime-lower-back`)."""
    name = os.fspath(path)
    resolved = str(resolve(name))
    if not os.path.exists(resolved) and os.sep not in name and not name.endswith((".yaml", ".yml")):
        hint = closest(name, library.preset_names() + _routine_files_here())
        raise RoutineError(f"no routine file or preset named '{name}'",
                           (hint + " " if hint else "") + "Run `windown presets` to list the presets")
    return parse(source.load(resolved), resolved)


def _routine_files_here() -> list[str]:
    """The YAML files in the current folder: a name without its `.yaml` may have meant one of them."""
    try:
        return sorted(p.name for p in Path.cwd().glob("*.y*ml") if p.suffix in (".yaml", ".yml"))[:500]
    except OSError:
        return []


def resolve(name: str) -> Path:
    """The file a routine name refers to (a path, or a preset's package file)."""
    if not os.path.exists(name) and library.preset_path(name) is not None:
        return library.preset_path(name)
    return Path(name)


def parse(doc: Any, path: str) -> Routine:
    if doc is None:
        raise RoutineError("the routine is empty", "Start from `windown init routine.yaml`", path=path, line=1)
    if not isinstance(doc, Map):
        raise RoutineError(f"a routine must be a mapping with 'title' and 'steps', not {kind_of(doc)}",
                           "Start from `windown init routine.yaml`", path=path, line=getattr(doc, "line", 1))
    f = Fields(doc, path, "the routine")
    title = f.get("title", source.text(120))
    steps_raw = f.get("steps", lambda v, ff, k: v)
    chosen, found = settings.read(f, Settings())
    f.finish()  # first, so that a misspelt 'title' or 'steps' is named as such
    if title is None:
        raise f.error(None, "the routine needs a 'title'", "Add e.g. `title: Bedtime stretches`")
    if steps_raw is None:
        raise f.error(None, "the routine needs 'steps'", "Add a list of steps; see `windown init`")
    if not isinstance(steps_raw, Seq):
        raise f.error("steps", f"'steps' must be a list, not {kind_of(steps_raw)}",
                      "Write each step on its own line starting with '- '")
    if not steps_raw:
        raise f.error("steps", "the routine has no steps", "Add at least one step, e.g. `- stretch: knee-to-chest`")
    if len(steps_raw) > MAX_STEPS:
        raise f.error("steps", f"the routine has {len(steps_raw)} steps (the limit is {MAX_STEPS})",
                      "Split it into several routines")
    steps = tuple(read_step(item, path, line) for item, line in zip(steps_raw, steps_raw.item_lines))
    total_ms = sum(_rough_ms(step, chosen.breathing) for step in steps)
    if total_ms > MAX_TRACK_MS:
        hours = f"{total_ms / 3_600_000:.1f}".removesuffix(".0")
        raise f.error("steps", f"the routine would run for about {hours} hours; the limit is "
                      f"{MAX_TRACK_MS // 3_600_000} hours",
                      "Shorten the holds and pauses, or split it into several routines")
    return Routine(title=title, path=path, steps=steps, settings=chosen, set_keys=frozenset(found))


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


def _unknown_stretch(stretch_id: Any, path: str, line: int) -> RoutineError:
    hint = closest(str(stretch_id), library.all_ids())
    return RoutineError(f"unknown stretch {shown(stretch_id)}",
                        (hint + " " if hint else "") + "Run `windown stretches` to list them",
                        path=path, line=line)


def read_step(item: Any, path: str, line: int) -> Step:
    if isinstance(item, str) and item in ("chime",):
        return ChimeStep(line=line)
    if not isinstance(item, Map) or not item:
        raise RoutineError(f"a step must be a mapping such as `- stretch: knee-to-chest`, not "
                           f"{kind_of(item)}", "Start each step with one of: " + ", ".join(STEP_KINDS),
                           path=path, line=line)
    kinds = [k for k in item if k in STEP_KINDS]
    if not kinds:
        first = next(iter(item))
        hint = closest(first, STEP_KINDS) or "Start each step with one of: " + ", ".join(STEP_KINDS)
        raise RoutineError(f"unknown step {shown(first)}", hint, path=path, line=item.key_lines[first])
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
        # an optional pattern for this step alone, written beside `breathe:`, read like `breathing:`
        pattern = settings.read_breathing(f, Breathing())
        f.finish()
        return BreatheStep(cycles=cycles, line=line, breathing=pattern)
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
                           f"{kind_of(raw)}", "Write e.g. `- stretch: knee-to-chest`",
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
