"""The Tonight form: its fields are rows of the settings table, read exactly as the CLI reads their flags.

Labels, help, ranges, defaults and choices come from `settings.SETTINGS`, and each value is checked by
`Setting.parse_flag`, the same reader the command line uses, so the page and the CLI can never
disagree; a bad value comes back beside its field in the CLI's words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from windown import library, settings
from windown.errors import UserError

# The personal settings a person sets for tonight, in the order the form shows them.
FORM_KEYS = ("length", "add_stretches", "pace", "instruction", "avoid", "exclude", "voice.engine", "voice.voice",
             "voice.rate", "ambient.sound", "ambient.level", "tail", "bedtime")


@dataclass(frozen=True)
class Field:
    """One settings-table row as the form shows it."""

    setting: settings.Setting

    @property
    def key(self) -> str:
        return self.setting.key

    @property
    def name(self) -> str:
        """The HTML form field's name (and id): the key with '-' for '.'."""
        return self.setting.key.replace(".", "-")

    @property
    def kind(self) -> str:
        return self.setting.kind

    @property
    def label(self) -> str:
        return self.setting.label

    @property
    def unit(self) -> str:
        return "" if self.setting.unit == "ms" else self.setting.unit

    @property
    def help(self) -> str:
        """The table's one-line help as a sentence, with its range and default where it has them."""
        s = self.setting
        words = s.help.replace(", or a sound file", "") if s.kind == "sound" else s.help  # the page offers beds only
        text = words[:1].upper() + words[1:] + ("" if words.endswith(".") else ".")
        if s.kind not in ("choice", "flag", "tags", "stretches", "sound") and s.range_text():
            text += f" From {s.range_text()}."
        if s.default not in (None, (), ""):
            text += f" Default: {self._shown(s.default)}."
        return text

    @property
    def options(self) -> tuple[str, ...]:
        """What a select or the check boxes offer. The page offers the built-in beds, never a file."""
        if self.kind == "flag":
            return ("on", "off")
        if self.kind == "stretches":
            return tuple(library.stretches())  # the ten; leaving one out leaves out its easier variation too
        return self.setting.options

    @property
    def placeholder(self) -> str:
        s = self.setting
        if s.default not in (None, (), ""):
            return self._shown(s.default)
        return f"e.g. {s.example}" if s.example and s.kind in ("duration", "whole", "number", "text") else ""

    def _shown(self, value: Any) -> str:
        if self.kind == "flag":
            return "on" if value else "off"
        return self.setting.show(value)


FIELDS: tuple[Field, ...] = tuple(Field(settings.get(key)) for key in FORM_KEYS)


def parse(field: Field, raw: Any) -> Any:
    """The value a form field holds, checked as its CLI flag is; None when left empty."""
    if isinstance(raw, list):
        raw = ",".join(str(v) for v in raw if str(v).strip())
    text = str(raw if raw is not None else "").strip()
    if not text:
        return None
    if field.kind == "sound" and text not in field.options:
        raise UserError(f"{field.setting.flag}: the page offers the built-in beds only, not {text!r}",
                        "Choose one of: " + ", ".join(field.options))
    return field.setting.parse_flag(text)


def read(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Profile flags {setting key: value} from the submitted values, and an error per field that has one."""
    flags: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in FIELDS:
        try:
            value = parse(field, values.get(field.name))
        except UserError as exc:
            errors[field.name] = str(exc)
            continue
        if value is not None:
            flags[field.key] = value
    return flags, errors
