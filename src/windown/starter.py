"""`windown init`'s starter routine: its settings part is written from the settings table."""

from __future__ import annotations

from windown import settings

# Settings the starter sets (the rest are listed as comments, ready to use): a bedtime track.
STARTER_VALUES = {"voice.engine": settings.default("voice.engine"), "voice.rate": settings.default("voice.rate"),
                  "breathing.inhale": settings.default("breathing.inhale"),
                  "breathing.exhale": settings.default("breathing.exhale"),
                  "ambient.sound": settings.default("ambient.sound"),
                  "ambient.level": settings.default("ambient.level"), "bedtime": True, "tail": 10 * 60_000}

HEADER = """\
# A windown routine: what you will hear, in order. Build it with
#     windown build {name}
# Check it with `windown validate {name}`; list the stretches with `windown stretches`.
# Durations are written 30s, 1m30s, 5m or as a number of seconds.
#
# Completion in your editor (yaml-language-server): run `windown schema > windown.schema.json`
# beside this file, then delete the first "#" of the next line.
## yaml-language-server: $schema=windown.schema.json

title: My bedtime stretches
"""

STEPS = """
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


def _choices(s: settings.Setting) -> str:
    return " | ".join(s.options) if s.kind == "choice" else ""


def starter(name: str) -> str:
    """The starter routine for a file called `name`."""
    lines = [HEADER.format(name=name)]
    more = []
    for top in settings.TOP_KEYS:
        members = [s for s in settings.SETTINGS if (s.group or s.key) == top]
        chosen = [s for s in members if s.key in STARTER_VALUES]
        if chosen and members[0].group:
            lines.append(f"# {settings.GROUPS[top][:1].upper()}{settings.GROUPS[top][1:]}:")
            for s in members:  # every key of the group, so the optional ones can be added
                lines.append(f"#   {s.name}: {_choices(s) or s.help}")
            values = ", ".join(f"{s.name}: {s.show(STARTER_VALUES[s.key])}" for s in chosen)
            lines.append(f"{top}: {{{values}}}\n")
        elif chosen:
            s = chosen[0]
            lines.append(f"# {s.label}: {s.help}.")
            lines.append(f"{s.key}: {s.show(STARTER_VALUES[s.key])}\n")
        for s in members:
            if s.key not in STARTER_VALUES and not s.group and (s.default is not None or s.example):
                more.append((f"{s.key}: {s.example or s.show(s.default)}", s.help))
    lines.append('# More settings (remove the "# " to use one):')
    width = max(len(key) for key, _ in more)
    lines += [f"# {key:{width}s}  # {help}" for key, help in more]
    return "\n".join(lines) + "\n" + STEPS
