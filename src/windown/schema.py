"""The routine format as a JSON Schema (draft 2020-12), for completion and checking in editors.

The settings part is made from the settings table; the steps and stretches from the library's own lists.
"""

from __future__ import annotations

from typing import Any

from windown import library, routine, settings

DURATION_PATTERN = (r"^ *(?=[^ ])([0-9]+(\.[0-9]+)?|([0-9]+(\.[0-9]+)?[hH])? *([0-9]+(\.[0-9]+)?[mM](?![sS]))? *"
                    r"([0-9]+(\.[0-9]+)?[sS])? *([0-9]+[mM][sS])?) *$")

_REF = {name: {"$ref": f"#/$defs/{name}"} for name in ("duration", "text", "texts", "durationRange",
                                                        "countRange", "stretch", "step")}
_FLAG = {"type": "boolean"}


def _obj(properties: dict, required: tuple = (), description: str = "") -> dict:
    out: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        out["required"] = list(required)
    if description:
        out["description"] = description
    return out


def _whole(low: int, high: int, description: str = "") -> dict:
    return {"type": "integer", "minimum": low, "maximum": high, **({"description": description} if description
                                                                    else {})}


def _listed(names: list[str], description: str) -> dict:
    return {"description": description, "anyOf": [{"type": "array", "items": {"enum": list(names)}},
                                                  {"type": "string", "description": "comma-separated"}]}


def setting_schema(s: settings.Setting) -> dict:
    """One setting's schema, with its help and range."""
    described = {"description": s.help}
    if s.kind == "choice":
        return {"enum": list(s.options), **described}
    if s.kind == "flag":
        return {**_FLAG, **described}
    if s.kind == "duration":
        return {"allOf": [_REF["duration"]], "description": f"{s.help} ({s.range_text()})"}
    if s.kind == "whole":
        return _whole(int(s.low), int(s.high), s.help)
    if s.kind == "number":
        return {"description": f"{s.help}, {s.low:g} to {s.high:g}",
                "anyOf": [{"type": "number", "minimum": s.low, "maximum": s.high},
                          {"type": "string", "pattern": r"^ *-?[0-9]+(\.[0-9]+)? *([dD][bB])? *$"}]}
    if s.kind == "text":
        return {"type": "string", "minLength": 1, "maxLength": s.max_chars, **described}
    if s.kind in ("tags", "stretches"):
        return _listed(list(s.options), s.help)
    if s.kind == "sound":
        return {"description": s.help, "anyOf": [{"enum": list(s.options)}, {"type": "string", "minLength": 1}]}
    raise AssertionError(s.kind)


def settings_properties() -> dict:
    """Every setting a routine may name: groups as objects, the rest as plain keys."""
    out: dict[str, Any] = {}
    for top in settings.TOP_KEYS:
        members = [s for s in settings.SETTINGS if (s.group or s.key) == top]
        if members[0].group is None:
            out[top] = setting_schema(members[0])
            continue
        group = _obj({s.name: setting_schema(s) for s in members}, (), settings.GROUPS[top])
        if top == "ambient":  # `ambient: rain` is short for `ambient: {sound: rain}`
            group = {"anyOf": [setting_schema(settings.get("ambient.sound")), group]}
        out[top] = group
    return out


def schema() -> dict:
    """A JSON Schema of the routine format."""
    breath = {s.name: setting_schema(s) for s in settings.SETTINGS if s.group == "breathing"}
    stretch_words = {k: _REF["texts"] for k in ("setup", "brief", "start", "cues", "inhale", "exhale", "release",
                                                "switch")}
    stretch_props = {
        "id": {"type": "string", "minLength": 1, "maxLength": 60},
        "name": {"type": "string", "minLength": 1, "maxLength": 80, "description": "spoken"},
        "position": {"enum": list(library.POSITIONS)},
        "in_bed": _FLAG,
        "kind": {"enum": list(library.KINDS)},
        "sides": {"enum": list(library.SIDES)},
        "hold": _REF["durationRange"],
        "reps": _REF["countRange"],
        "rounds": _REF["countRange"],
        "rest": _REF["duration"],
        "settle": _REF["duration"],
        "tags": {"type": "array", "items": {"enum": list(library.TAGS)}},
        "props": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string", "maxLength": 40}}]},
        "optional": _FLAG,
        "about": {"type": "string", "maxLength": 400},
        **stretch_words,
    }
    steps = [
        {"const": "chime", "description": "a soft chime"},
        _obj({"say": _REF["texts"]}, ("say",), "words to speak"),
        _obj({"pause": _REF["duration"]}, ("pause",), "silence between the words before and after (the bed "
                                                      "plays on)"),
        _obj({"chime": {"enum": [None, True]}}, ("chime",), "a soft chime"),
        _obj({"breathe": _whole(1, 100, "breath cycles"), **breath}, ("breathe",), "paced breathing"),
        _obj({"stretch": {"anyOf": [{"enum": library.all_ids()}, _REF["stretch"]],
                          "description": "a library stretch id (`windown stretches`) or an inline stretch"},
              "hold": _REF["duration"], "sides": {"enum": list(library.SIDES)}, "reps": _whole(1, 100),
              "rounds": _whole(1, 100), "settle": _REF["duration"], "rest": _REF["duration"],
              "setup": _REF["texts"], "cues": _REF["texts"], "release": _REF["texts"],
              "name": {"type": "string", "minLength": 1, "maxLength": 80}}, ("stretch",), "a stretch"),
    ]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "windown routine",
        "description": "A bedtime stretching routine for windown (`windown init` writes a starter).",
        **_obj({
            "title": {"type": "string", "minLength": 1, "maxLength": 120},
            **settings_properties(),
            "steps": {"type": "array", "minItems": 1, "maxItems": routine.MAX_STEPS, "items": _REF["step"]},
        }, ("title", "steps")),
        "$defs": {
            "duration": {"description": "30s, 1m30s, 5m, 250ms, or a number of seconds",
                         "anyOf": [{"type": "number", "minimum": 0},
                                   {"type": "string", "pattern": DURATION_PATTERN}]},
            "text": {"type": "string", "minLength": 1, "maxLength": routine.MAX_SAY_CHARS},
            "texts": {"anyOf": [_REF["text"], {"type": "array", "minItems": 1, "items": _REF["text"]}]},
            "durationRange": {"anyOf": [_REF["duration"], _obj({"default": _REF["duration"],
                                                                "min": _REF["duration"],
                                                                "max": _REF["duration"]}, ("default",))]},
            "countRange": {"anyOf": [_whole(1, 200), _obj({"default": _whole(1, 200), "min": _whole(1, 200),
                                                           "max": _whole(1, 200)}, ("default",))]},
            "stretch": {**_obj({**stretch_props, "easier": _obj(stretch_props, (), "an easier variation: "
                                                                             "the keys that change")},
                               ("id", "name", "setup"), "an inline stretch, in the library's format")},
            "step": {"anyOf": steps},
        },
    }
