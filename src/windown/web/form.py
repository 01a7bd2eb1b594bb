"""The "Tonight" form: which fields it shows and how their text becomes profile flags, as the CLI does it.

The fields are the personal settings a person sets for tonight's track. Each value is parsed and
checked with the same rules and in the same words as the command-line flag of that setting, so the
page and the CLI can never disagree; a bad value comes back as an error beside its field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from windown import ambient, library, routine, source
from windown.errors import UserError


@dataclass(frozen=True)
class Field:
    """One setting as the form shows it. `key` is the routine's YAML key (dotted inside a group)."""

    key: str
    kind: str  # choice | flag | duration | whole | number | tags | stretches | sound | text
    label: str
    help: str
    flag: str  # the CLI flag, whose words the errors use
    profile_key: str  # where the value goes in personalise.Profile.flags
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    unit: str = ""
    default: Any = None  # what the routine gets when the field is left empty, for the placeholder

    @property
    def name(self) -> str:
        """The HTML form field name."""
        return self.key.replace(".", "-")


# Until the settings table lands this is a local list of the fields the page offers; the words,
# limits and defaults are those of the CLI's flags (cli.personal_options) and routine.read_settings.
FIELDS: tuple[Field, ...] = (
    Field("length", "duration", "Length", "Fit the guided part to this length, e.g. 15m (blank: as the routine is).",
          "--length", "length_ms"),
    Field("pace", "choice", "Pace", "Scales holds, settling and transitions.", "--pace", "pace",
          choices=routine.PACES, default="medium"),
    Field("instruction", "choice", "Instruction", "How much talk you hear.", "--instruction", "instruction",
          choices=routine.INSTRUCTION, default="full"),
    Field("avoid", "tags", "Avoid", "Positions and movements to keep out; a stretch that has one is swapped "
          "for its easier variation or left out.", "--avoid", "avoid", choices=library.TAGS),
    Field("exclude", "stretches", "Leave out", "Stretches to leave out.", "--exclude", "exclude"),
    Field("voice.engine", "choice", "Voice engine", "The speech engine.", "--engine", "voice.engine",
          choices=routine.ENGINES, default="pyttsx3"),
    Field("voice.voice", "text", "Voice", "A voice of that engine (blank: its default; `windown voices` "
          "lists them).", "--voice", "voice.voice"),
    Field("voice.rate", "whole", "Speaking rate", "Words per minute.", "--rate", "voice.rate_wpm",
          low=80, high=300, unit="wpm", default=140),
    Field("ambient.sound", "sound", "Ambient bed", "The sound under the voice.", "--ambient", "ambient.sound",
          choices=ambient.BED_NAMES, default="brown-noise"),
    Field("ambient.level", "number", "Bed level", "The bed's level under the voice.", "--ambient-level",
          "ambient.level_db", low=-60, high=0, unit="dB", default=-20),
    Field("tail", "duration", "Sleep tail", "How long the bed plays on after the last words.", "--tail", "tail_ms",
          default=60_000),
    Field("bedtime", "flag", "Bedtime mode", "No progress talk, chimes instead of countdowns, a slower voice "
          "towards the end.", "--bedtime", "bedtime", default=False),
)


def stretch_choices() -> tuple[str, ...]:
    """Every stretch id the CLI's --exclude accepts (the ten, and their easier variations)."""
    return tuple(library.all_ids())


def stretch_boxes() -> tuple[str, ...]:
    """The ten stretches, as the form's check boxes (leaving one out leaves out its easier variation too)."""
    return tuple(library.stretches())


def parse(field: Field, raw: Any) -> Any:
    """The value a form field holds, checked as its CLI flag checks it; None when left empty."""
    if field.kind in ("tags", "stretches"):
        words = [w.strip() for w in (raw if isinstance(raw, list) else str(raw or "").split(",")) if str(w).strip()]
        if not words:
            return None
        known = field.choices if field.kind == "tags" else stretch_choices()
        for word in words:
            if word not in known:
                what = "tag" if field.kind == "tags" else "stretch"
                hint = source.closest(word, known) or ("Choose from: " + ", ".join(known) if field.kind == "tags"
                                                       else "Run `windown stretches` to list them")
                raise UserError(f"{field.flag}: unknown {what} '{word}'", hint)
        return tuple(words)
    text = str(raw if raw is not None else "").strip()
    if not text:
        return None
    if field.kind in ("choice", "sound"):
        if text not in field.choices:
            options = ", ".join(repr(c) for c in field.choices)
            raise UserError(f"Invalid value for '{field.flag}': {text!r} is not one of {options}.")
        return text
    if field.kind == "flag":
        if text not in ("on", "off"):
            raise UserError(f"Invalid value for '{field.flag}': {text!r} is not one of 'on', 'off'.")
        return text == "on"
    if field.kind == "duration":
        ms = source.parse_duration_ms(text)
        if ms is None or ms < 0:
            raise UserError(f"Invalid value for '{field.flag}': {text!r} is not a duration; "
                            f"{source.DURATION_HINT[0].lower()}{source.DURATION_HINT[1:]}")
        if field.key == "length" and ms < 60_000:
            raise UserError(f"--length must be at least 1m (got {source.format_duration(ms)})",
                            "Give the guided part's length, e.g. --length 15m")
        return ms
    if field.kind in ("whole", "number"):
        try:
            value = int(text) if field.kind == "whole" else float(text)
        except ValueError:
            what = "integer" if field.kind == "whole" else "float"
            raise UserError(f"Invalid value for '{field.flag}': {text!r} is not a valid {what} range.") from None
        if not (field.low <= value <= field.high):
            raise UserError(f"Invalid value for '{field.flag}': {value} is not in the range "
                            f"{field.low:g}<=x<={field.high:g}.")
        return value
    return text


def read(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Profile flags from the submitted values, and an error (the CLI's words) per field that has one."""
    flags: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in FIELDS:
        try:
            value = parse(field, values.get(field.name))
        except UserError as exc:
            errors[field.name] = str(exc)
            continue
        if value is not None:
            flags[field.profile_key] = value
    return flags, errors
