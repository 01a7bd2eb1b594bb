"""The settings table: every personal setting declared once, and everything made from it.

A setting is read from a routine file, a profile, a batch job, a command-line flag or the web form,
and shown by `--help`, `windown schema`, `windown init`'s starter and the cue sheet. Each of those is
made from `SETTINGS`, so a range, a default or a message can never differ between them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from windown import source
from windown.errors import RoutineError, kind_of
from windown.source import Fields, Map

MAX_TRACK_MS = 3 * 3_600_000  # a routine, or a target length, longer than this is a mistake
KINDS = ("choice", "flag", "duration", "whole", "number", "text", "tags", "stretches", "sound")


def _beds() -> tuple[str, ...]:
    from windown import ambient  # the bed names live with the beds

    return ambient.BED_NAMES


def _tags() -> tuple[str, ...]:
    from windown import library

    return library.TAGS


def _stretch_ids() -> tuple[str, ...]:
    from windown import library

    return tuple(library.all_ids())


@dataclass(frozen=True)
class Setting:
    """One setting: how it is written, checked, shown and stored."""

    key: str                 # the YAML key, dotted inside a group: "pace", "voice.rate", "breathing.inhale"
    attr: str                # the `Settings` field it fills, dotted inside a group: "voice.rate_wpm"
    kind: str                # one of KINDS
    default: Any             # in `unit` (durations in ms)
    label: str               # a few words, for forms and the starter
    help: str                # one line, for --help, the schema and the starter
    unit: str = ""           # "ms" for durations, "wpm", "dB"
    low: float | None = None  # inclusive range in `unit`
    high: float | None = None
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()
    flag: str | None = None   # the command-line flag ("--tail"; "--bedtime/--no-bedtime"); None: no flag
    profile: bool = True      # a profile may set it
    batch: bool = True        # a batch job may set it
    private: bool = False     # kept out of the cue sheet (a track may be shared)
    max_chars: int = 0        # for text
    example: str = ""         # a value as a person writes it, for the starter and form placeholders
    low_hint: str = ""        # why a duration's floor is above zero, said when a value falls below it

    @property
    def name(self) -> str:
        """The key's last part: what a message calls it inside its group."""
        return self.key.rpartition(".")[2]

    @property
    def group(self) -> str | None:
        return self.key.partition(".")[0] if "." in self.key else None

    @property
    def options(self) -> tuple[str, ...]:
        return self.choices() if callable(self.choices) else self.choices

    @property
    def param(self) -> str:
        """The Python name of its command-line option."""
        return self.flag.split("/")[0].lstrip("-").replace("-", "_") if self.flag else ""

    def reader(self) -> Callable[[Any, Fields, str], Any]:
        """The value reader: (value, fields, key) -> checked value, or a `file:line` error."""
        k = self.kind
        if k == "choice":
            return lambda v, f, key: source.choice(self.options)(v, f, key)
        if k == "flag":
            return source.flag
        if k == "duration":
            return source.duration(int(self.low or 0), int(self.high), min_hint=self.low_hint)
        if k == "whole":
            return source.whole(int(self.low), int(self.high))
        if k == "number":
            return source.number(self.low, self.high, self.unit)
        if k == "text":
            return source.text(self.max_chars)
        if k in ("tags", "stretches"):
            return lambda v, f, key: tuple(source.tags(self.options)(v, f, key))
        if k == "sound":
            return source.text(1000)
        raise AssertionError(k)

    def parse_flag(self, value: Any) -> Any:
        """A command-line or form value, checked as a file's would be; errors name the flag."""
        label = self.flag.split("/")[0] if self.flag else self.key
        if self.kind == "whole" and isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                pass
        if self.kind == "flag" and isinstance(value, str):
            value = {"true": True, "on": True, "yes": True, "false": False, "off": False, "no": False}.get(
                value.strip().lower(), value)
        holder = Map(0)
        holder[label] = value
        parsed = self.reader()(value, Fields(holder, None, "the options"), label)
        if self.kind == "sound":
            path = Path(parsed).expanduser()
            if parsed not in _beds() and path.exists():  # a flag's file is relative to where it was typed
                parsed = str(path.resolve())
        return parsed

    def to_json(self, value: Any) -> Any:
        """The value as the cue sheet shows it: durations in seconds."""
        if value is None:
            return None
        if self.unit == "ms":
            return value / 1000
        if isinstance(value, tuple):
            return list(value)
        if self.kind == "sound" and value not in _beds():
            return Path(value).name  # never a home folder's path in a shared file
        return value

    def show(self, value: Any) -> str:
        """A value as a person writes it in YAML or a form: `10m`, `true`, `[kneeling, prone]`."""
        if value is None:
            return self.example
        if self.unit == "ms":
            return source.format_duration(value)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, tuple):
            return "[" + ", ".join(value) + "]"
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    def range_text(self) -> str:
        """The allowed values as a person reads them: `1.5s to 30s`, `80 to 300`, `slow|medium|brisk`."""
        if self.kind == "choice":
            return "|".join(self.options)
        if self.high is None:
            return ""
        if self.unit == "ms":
            return f"{self.show(self.low)} to {self.show(self.high)}"
        return f"{self.low:g} to {self.high:g}" if self.kind == "number" else f"{int(self.low)} to {int(self.high)}"

    @property
    def json_key(self) -> str:
        """The cue sheet's name for it: the key's last part with its unit (`tail_s`, `rate_wpm`)."""
        suffix = {"ms": "_s", "wpm": "_wpm", "dB": "_db", "LUFS": "_lufs", "kbps": "_kbps"}.get(self.unit, "")
        return self.name + suffix


CALM_BREATH = "A calm breath is about 4s in and 6s out"

GROUPS = {
    "voice": "the voice that speaks",
    "breathing": "the breath pace for breathing steps and flowing stretches",
    "ambient": "the bed under the voice",
}

ENGINES = ("piper", "pyttsx3", "espeak-ng", "festival")
BREATH_MAX_MS = 30_000

SETTINGS: tuple[Setting, ...] = (
    Setting("voice.engine", "voice.engine", "choice", "piper", "Speech engine",
            "the speech engine: piper is a calm neural voice; pyttsx3, espeak-ng and festival are older",
            choices=ENGINES, flag="--engine"),
    Setting("voice.voice", "voice.voice", "text", None, "Voice",
            "a voice of that engine; `windown voices --engine NAME` lists them", flag="--voice", max_chars=1000),
    Setting("voice.rate", "voice.rate_wpm", "whole", 140, "Speaking rate",
            "speaking rate in words per minute", unit="wpm", low=80, high=300, flag="--rate"),
    Setting("breathing.inhale", "breathing.inhale_ms", "duration", 4000, "Breathe in",
            "how long each breath in lasts", unit="ms", low=1500, high=BREATH_MAX_MS, flag="--inhale",
            low_hint=CALM_BREATH),
    Setting("breathing.exhale", "breathing.exhale_ms", "duration", 6000, "Breathe out",
            "how long each breath out lasts", unit="ms", low=1500, high=BREATH_MAX_MS, flag="--exhale",
            low_hint=CALM_BREATH),
    Setting("breathing.hold_in", "breathing.hold_in_ms", "duration", 0, "Pause after breathing in",
            "a pause at the top of the breath", unit="ms", low=0, high=BREATH_MAX_MS),
    Setting("breathing.hold_out", "breathing.hold_out_ms", "duration", 0, "Pause after breathing out",
            "a pause at the bottom of the breath", unit="ms", low=0, high=BREATH_MAX_MS),
    Setting("ambient.sound", "ambient.sound", "sound", "brown-noise", "Ambient sound",
            "the bed: brown-noise, pink-noise, rain, ocean, drone, none, or a sound file",
            choices=_beds, flag="--ambient"),
    Setting("ambient.level", "ambient.level_db", "number", -20.0, "Ambient level",
            "the bed's level under the voice, in dB", unit="dB", low=-60, high=0, flag="--ambient-level"),
    Setting("pace", "pace", "choice", "medium", "Pace",
            "slow, medium or brisk: scales holds, settling and transitions",
            choices=("slow", "medium", "brisk"), flag="--pace"),
    Setting("instruction", "instruction", "choice", "full", "Instruction",
            "full, brief or minimal: how much talk you hear", choices=("full", "brief", "minimal"),
            flag="--instruction"),
    Setting("bedtime", "bedtime", "flag", False, "Bedtime mode",
            "no progress talk, chimes instead of countdowns, a slower voice towards the end",
            flag="--bedtime/--no-bedtime"),
    Setting("tail", "tail_ms", "duration", 60_000, "Sleep tail",
            "how long the bed plays on after the last words; bedtime mode makes it 10m unless set",
            unit="ms", low=0, high=2 * 3_600_000, flag="--tail"),
    Setting("order", "order", "choice", "as-written", "Order",
            "auto groups stretches by position and ends lying down", choices=("auto", "as-written"),
            flag="--order"),
    Setting("safety", "safety", "flag", True, "Safety introduction",
            "speak the short safety introduction", flag="--safety/--no-safety"),
    Setting("length", "length_ms", "duration", None, "Length",
            "fit the guided part to this length, within 3%", unit="ms", low=60_000, high=MAX_TRACK_MS,
            flag="--length", example="15m", low_hint="Give the guided part's length, e.g. 15m"),
    Setting("add_stretches", "add_stretches", "flag", True, "Add stretches for length",
            "let length fitting add library stretches once the routine's own are at their longest",
            flag="--add-stretches/--no-add-stretches"),
    Setting("avoid", "avoid", "tags", (), "Avoid",
            "tags of stretches to ease or leave out: kneeling, prone, ...", choices=_tags, flag="--avoid",
            example="[kneeling, prone]"),
    Setting("exclude", "exclude", "stretches", (), "Leave out",
            "stretch ids to leave out", choices=_stretch_ids, flag="--exclude", example="[cobra]"),
    Setting("in_bed_only", "in_bed_only", "flag", False, "Only in bed",
            "only stretches done lying in bed", flag="--in-bed/--not-only-in-bed"),
    Setting("name", "name", "text", None, "Your name",
            "your name, for a short greeting", flag="--name", private=True, max_chars=40, example="Sam"),
    Setting("seed", "seed", "whole", None, "Phrasing seed",
            "the same seed gives the same phrasing; unset, it is today's date", low=0, high=2**31 - 1,
            flag="--seed", example="7"),
    Setting("transition", "transition_ms", "duration", 6000, "Transition",
            "the quiet between stretches", unit="ms", low=0, high=120_000),
    # `--journal FILE` and `--no-journal` are options of the commands that build, not this setting's flag
    Setting("journal", "journal", "flag", True, "Use the journal",
            "false builds without your journal: no changes from it, no session recorded", private=True),
)

# How a track is encoded: set by flags and batch jobs, not by routines or profiles.
ENCODING: tuple[Setting, ...] = (
    Setting("loudness", "loudness_lufs", "number", -18.0, "Loudness",
            "integrated loudness target in LUFS; true peak stays at or below -1.5 dBTP", unit="LUFS", low=-30, high=-10,
            flag="--loudness", profile=False),
    Setting("bitrate", "bitrate_kbps", "whole", None, "Bitrate",
            "constant bitrate in kb/s instead of VBR", unit="kbps", low=32, high=320, flag="--bitrate",
            profile=False),
    Setting("quality", "quality", "whole", None, "Quality",
            "VBR quality, 0 best to 9 smallest; 4 (the default) is about 165 kb/s", low=0, high=9, flag="--quality",
            profile=False),
    Setting("mono", "mono", "flag", False, "Mono", "one channel: half the size, the same sound on a phone's speaker",
            flag="--mono", profile=False),
)

BY_KEY = {s.key: s for s in SETTINGS + ENCODING}
TOP_KEYS = tuple(dict.fromkeys(s.group or s.key for s in SETTINGS))  # what a routine or profile may name


def read_encoding(f: Fields) -> dict[str, Any]:
    """A batch job's encoding keys {key: value}; bitrate and quality exclude each other."""
    found = {s.key: f.get(s.key, s.reader()) for s in ENCODING}
    found = {k: v for k, v in found.items() if v is not None}
    check_encoding(found, f)
    return found


def check_encoding(values: dict[str, Any], f: Fields | None = None) -> None:
    """Bitrate (constant) and quality (VBR) exclude each other, in a batch job (`f`) or on the command line."""
    if values.get("bitrate") is not None and values.get("quality") is not None:
        problem = "a job sets both 'bitrate' and 'quality'" if f else "--bitrate and --quality cannot be used together"
        raise RoutineError(problem, "Choose one of them", path=f.path if f else None,
                           line=f.line("quality") if f else None)


def get(key: str) -> Setting:
    return BY_KEY[key]


def default(key: str) -> Any:
    return BY_KEY[key].default


@dataclass(frozen=True)
class Voice:
    engine: str = default("voice.engine")
    voice: str | None = default("voice.voice")
    rate_wpm: int = default("voice.rate")


@dataclass(frozen=True)
class Breathing:
    inhale_ms: int = default("breathing.inhale")
    exhale_ms: int = default("breathing.exhale")
    hold_in_ms: int = default("breathing.hold_in")
    hold_out_ms: int = default("breathing.hold_out")

    @property
    def cycle_ms(self) -> int:
        return self.inhale_ms + self.hold_in_ms + self.exhale_ms + self.hold_out_ms


@dataclass(frozen=True)
class Ambient:
    sound: str = default("ambient.sound")  # a bed name, "none", or a file path (resolved against its file)
    level_db: float = default("ambient.level")
    # the file and line that chose `sound`, so a missing or broken sound file is reported there;
    # None when it came from a command-line flag or a default
    origin: tuple[str, int] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Settings:
    """Everything personal about a track; the defaults are the table's."""

    voice: Voice = Voice()
    breathing: Breathing = Breathing()
    ambient: Ambient = Ambient()
    pace: str = default("pace")
    instruction: str = default("instruction")
    bedtime: bool = default("bedtime")
    tail_ms: int = default("tail")
    order: str = default("order")
    safety: bool = default("safety")
    length_ms: int | None = default("length")
    add_stretches: bool = default("add_stretches")
    avoid: tuple[str, ...] = default("avoid")
    exclude: tuple[str, ...] = default("exclude")
    in_bed_only: bool = default("in_bed_only")
    name: str | None = default("name")
    seed: int | None = default("seed")
    transition_ms: int = default("transition")
    journal: bool = default("journal")


def value_of(s: Settings, key: str) -> Any:
    part, _, attr = BY_KEY[key].attr.partition(".")
    return getattr(getattr(s, part), attr) if attr else getattr(s, part)


def with_value(s: Settings, key: str, value: Any, origin: tuple[str, int] | None = None) -> Settings:
    """`s` with one setting changed (a sound's origin is the file and line that chose it, or None)."""
    part, _, attr = BY_KEY[key].attr.partition(".")
    if not attr:
        return dataclasses.replace(s, **{part: value})
    extra = {"origin": origin} if key == "ambient.sound" else {}
    return dataclasses.replace(s, **{part: dataclasses.replace(getattr(s, part), **{attr: value}, **extra)})


def read(f: Fields, base: Settings, *, where: str = "routine") -> tuple[Settings, dict[str, Any]]:
    """The settings keys of a routine, profile or batch-job mapping, applied over `base`.

    Returns the settings and the values the mapping set itself ({setting key: value}).
    """
    allowed = [s for s in SETTINGS if where == "routine" or getattr(s, where)]
    found: dict[str, Any] = {}
    for top in dict.fromkeys(s.group or s.key for s in allowed):
        members = [s for s in allowed if (s.group or s.key) == top]
        if members[0].group is None:
            value = f.get(top, members[0].reader())
            if value is not None:
                found[top] = value
            continue
        group = f.get(top, lambda v, ff, k: v)
        if group is None:
            continue
        if top == "ambient" and isinstance(group, str):  # `ambient: rain` is short for `ambient: {sound: rain}`
            found["ambient.sound"] = source.text(1000)(group, f, top)
            continue
        if top == "voice" and isinstance(group, str) and group in ENGINES:  # `voice: espeak-ng` meant the engine
            raise f.error(top, f"'{top}' must be a mapping, not {kind_of(group)}",
                          f"Write `{top}: {{engine: {group}}}`")
        if not isinstance(group, Map):
            raise f.error(top, f"'{top}' must be a mapping, not {kind_of(group)}",
                          f"Indent its keys under '{top}:'; see `windown init`")
        g = Fields(group, f.path, f"'{top}'")
        for s in members:
            value = g.get(s.name, s.reader())
            if value is not None:
                found[s.key] = value
        g.finish()
    sound = found.get("ambient.sound")
    if sound is not None and sound not in _beds():
        from windown import ambient

        found["ambient.sound"] = ambient.named_in_file(sound, f.path)  # relative to the file naming it
    voice = found.get("voice.voice")
    if voice is not None and voice.endswith(".onnx") and f.path is not None:  # a Piper voice file: the same rule
        found["voice.voice"] = str(Path(f.path).resolve().parent / Path(voice).expanduser())
    out = base
    for key, value in found.items():
        origin = (f.path, f.line("ambient")) if key == "ambient.sound" else None
        out = with_value(out, key, value, origin)
    return out, found


def read_breathing(f: Fields, base: Breathing) -> Breathing | None:
    """A breathing pattern written beside a `breathe:` step: the same keys and limits as `breathing:`."""
    s = Settings(breathing=base)
    changed = False
    for setting in SETTINGS:
        if setting.group == "breathing":
            value = f.get(setting.name, setting.reader())
            if value is not None:
                s = with_value(s, setting.key, value)
                changed = True
    return s.breathing if changed else None


def apply(s: Settings, values: dict[str, Any]) -> Settings:
    """Checked values {setting key: value} over `s` (flags carry no file line)."""
    for key, value in values.items():
        if value is not None:
            s = with_value(s, key, value)
    return s


def summary(s: Settings) -> dict[str, Any]:
    """The settings as the cue sheet records them (no private ones, no paths)."""
    return {setting.json_key: setting.to_json(value_of(s, setting.key))
            for setting in SETTINGS if not setting.private}
