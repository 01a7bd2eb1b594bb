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
from windown.errors import RoutineError, RoutineWarning, closest, kind_of, shown
from windown.library import Range, Stretch
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
    # legal but unlikely values (a 1h hold on a twist), said by validate, script and build, never refused
    warnings: tuple[RoutineWarning, ...] = field(default=(), compare=False)

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
    warnings: list[RoutineWarning] = []
    steps = tuple(read_step(item, path, line, warnings) for item, line in zip(steps_raw, steps_raw.item_lines))
    if not any(isinstance(step, StretchStep) for step in steps):
        warnings.append(RoutineWarning("the routine has no stretch, only words, breaths or pauses",
                                       "Add one, e.g. `- stretch: knee-to-chest`; a track without stretches is "
                                       "fine if that is what you meant", path=path,
                                       line=doc.key_lines.get("steps", doc.line)))
    total_ms = sum(_rough_ms(step, chosen.breathing) for step in steps)
    if total_ms > MAX_TRACK_MS:
        hours = f"{total_ms / 3_600_000:.1f}".removesuffix(".0")
        raise f.error("steps", f"the routine would run for about {hours} hours; the limit is "
                      f"{MAX_TRACK_MS // 3_600_000} hours",
                      "Shorten the holds and pauses, or split it into several routines")
    return Routine(title=title, path=path, steps=steps, settings=chosen, set_keys=frozenset(found),
                   warnings=tuple(warnings))


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


def read_step(item: Any, path: str, line: int, warnings: list[RoutineWarning] | None = None) -> Step:
    """One step; legal but unlikely values are added to `warnings`."""
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
    written: dict[str, int] = {}  # hold/reps/rounds the routine itself wrote, with their lines (for warnings)
    if isinstance(raw, Map):
        stretch = library.read_stretch(raw, path, line=raw.line)
        written = {key: raw.value_lines[key] for key in ("hold", "reps", "rounds") if key in raw}
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
        lines = tuple(entry for key in words for entry in library.sentence_lines(item, key, path))
        kept = tuple(entry for entry in stretch.word_lines if entry[0] not in words)
        stretch = dataclasses.replace(stretch, **words, word_lines=kept + lines)
    hold = f.get("hold", source.duration(1, 60 * 60_000))
    count_key = "rounds" if stretch.kind == "flow" else "reps"
    if hold is not None and stretch.kind in ("flow", "reps"):
        raise f.error("hold", f"'{stretch.id}' moves with the breath (kind: {stretch.kind}), so it has no hold",
                      f"Set '{count_key}' to make it longer or shorter, or slow the breathing pattern")
    overrides["hold_ms"] = hold
    overrides["sides"] = f.get("sides", source.choice(library.SIDES))
    if overrides["sides"] == "both" and stretch.kind in ("flow", "reps"):
        raise f.error("sides", f"'{stretch.id}' moves with the breath (kind: {stretch.kind}), so it has no sides",
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
    step = StretchStep(stretch=stretch, line=line, **overrides)
    written.update({key: f.line(key) for key in ("hold", "reps", "rounds") if key in item})
    if warnings is not None:
        warnings.extend(unlikely(step, written, path))
    return step


# Warnings: values a routine may legally hold but which are unlikely for someone easing a sore back at
# bedtime, so most likely a slip of the units or a typo. The library's ranges are what it considers
# safe and what personalisation scales within (pace, length fitting); past twice the top of a range
# (a 1h hold on a twist whose range ends at 45s, 50 reps of a stretch done at most 3 times) or under
# half its bottom (a 2.5s hold where 20s is the least) is far outside anything the library would
# choose. An inline stretch has only the value its author wrote, so it is held to the widest range
# of the whole library (holds of 10s to 10m, up to 15 reps, up to 10 rounds).
FAR_ABOVE = 2.0
FAR_BELOW = 0.5


def _widest(attr: str) -> Range:
    ranges = [getattr(s, attr) for top in library.stretches().values() for s in (top, top.easier)
              if s is not None and getattr(s, attr) is not None]
    return Range(0, min(r.min for r in ranges), max(r.max for r in ranges))


def unlikely(step: StretchStep, written: dict[str, int], path: str) -> list[RoutineWarning]:
    """Warnings for the hold, reps and rounds a stretch step wrote (`written`: key -> line) far outside
    the stretch's safe range."""
    st = step.stretch
    inline = st.path == path
    out = []

    def reference(attr: str) -> Range | None:
        return _widest(attr) if inline else getattr(st, attr)

    hold_line = written.get("hold")
    safe = reference("hold_ms")
    if hold_line and safe is not None and st.kind in ("hold", "rest"):
        hold_ms = step.hold_ms or st.hold_ms.default
        span = f"{source.format_duration(safe.min)} to {source.format_duration(safe.max)}"
        where = "the library's holds" if inline else f"the safe range of {st.name}"
        if hold_ms > FAR_ABOVE * safe.max:
            out.append(RoutineWarning(f"a {source.format_duration(hold_ms)} hold is far longer than {where} "
                                      f"({span})", f"Check the units (30s is thirty seconds, 30m half an hour), "
                                      f"or hold it for at most {source.format_duration(safe.max)}",
                                      path=path, line=hold_line))
        elif hold_ms < FAR_BELOW * safe.min:
            out.append(RoutineWarning(f"a {source.format_duration(hold_ms)} hold is too short to ease into "
                                      f"({where}: {span})", f"Hold it for at least {source.format_duration(safe.min)}",
                                      path=path, line=hold_line))
    for key in ("reps", "rounds"):
        line = written.get(key)
        if not line:
            continue
        count = getattr(step, key) or (st.rounds if key == "rounds" else st.reps).default
        safe = reference("rounds" if st.kind == "flow" and st.rounds else "reps")
        if safe is not None and count > FAR_ABOVE * safe.max:
            where = "the library's stretches" if inline else f"the safe range of {st.name}"
            out.append(RoutineWarning(f"{count} {key} is far more than {where} ({safe.min} to {safe.max})",
                                      f"Do it at most {safe.max} times; a few slow repetitions ease a back more "
                                      "than many", path=path, line=line))
    return out


def _chime_value(value: Any, f: Fields, key: str) -> None:
    if value not in (None, True):
        raise f.error(key, f"'chime' takes no value (got {value!r})", "Write `- chime` on its own")
    return None
