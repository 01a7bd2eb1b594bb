"""The settings table: every reader, flag, schema entry and the starter are made from it, so none can drift."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest
import yaml

from conftest import decode, run_cli, write
from windown import cli, routine, schema, settings, source, starter
from windown.errors import RoutineError
from windown.source import Fields

SR = 44100


def read_yaml(text: str, path: str = "r.yaml"):
    doc = source.load(path, text)
    f = Fields(doc, path, "the routine")
    return settings.read(f, settings.Settings())


def yaml_error(key: str, value) -> str:
    """The problem a routine file gets for `key: value` (dotted keys go into their group)."""
    top, _, sub = key.partition(".")
    text = yaml.safe_dump({top: {sub: value}} if sub else {top: value})
    with pytest.raises(RoutineError) as err:
        read_yaml(text)
    return err.value.problem


def flag_error(s: settings.Setting, value) -> str:
    with pytest.raises(RoutineError) as err:
        s.parse_flag(value)
    return err.value.problem


RANGED = [s for s in settings.SETTINGS if s.flag and s.kind in ("duration", "whole", "number")]


@pytest.mark.parametrize("s", RANGED, ids=lambda s: s.key)
def test_a_flag_and_a_file_accept_the_same_range_and_say_the_same_words(s):
    show = (lambda v: source.format_duration(int(v))) if s.unit == "ms" else (lambda v: v)
    flag = s.flag.split("/")[0]
    for bad in (s.high + (1000 if s.unit == "ms" else 1),) + ((s.low - 1,) if s.low else ()):
        assert flag_error(s, show(bad)).replace(f"'{flag}'", "KEY") == \
            yaml_error(s.key, show(bad)).replace(f"'{s.name}'", "KEY")
    for good in (s.low, s.high):
        value = s.parse_flag(str(show(good)))
        settings_read, found = read_yaml(yaml.safe_dump({s.key.partition(".")[0]: {s.name: show(good)}}
                                                         if s.group else {s.key: show(good)}))
        assert value == found[s.key] == settings.value_of(settings_read, s.key)


def test_tail_on_the_command_line_is_capped_like_a_routines(tmp_path):
    result = run_cli("script", "quick-wind-down", "--tail", "100h", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["'--tail' is far too long (100h; the limit is 2h). Check the units: "
                                          "30s is thirty seconds, 30m is half an hour"]
    assert result.stdout == ""


def test_a_breathe_step_pattern_has_the_limits_of_breathing(tmp_path):
    path = write(tmp_path / "r.yaml", "title: T\nsteps:\n  - breathe: 3\n    inhale: 0.5s\n")
    result = run_cli("validate", str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"{path}:4: 'inhale' of 0.5s is too short (the least is 1.5s). "
                                          "A calm breath is about 4s in and 6s out"]
    write(tmp_path / "b.yaml", "title: T\nbreathing: {inhale: 0.5s}\nsteps:\n  - breathe: 3\n")
    other = run_cli("validate", "b.yaml", cwd=tmp_path)
    assert other.stderr.replace("b.yaml:2", "X") == result.stderr.replace(f"{path}:4", "X")


def test_every_flag_of_the_table_is_on_build_script_and_batch():
    for name in ("build", "script", "batch"):
        params = {p.name for p in cli.cli.commands[name].params}
        assert {s.param for s in settings.SETTINGS if s.flag} <= params, name
    assert {s.param for s in settings.ENCODING} <= {p.name for p in cli.cli.commands["build"].params}


def test_every_setting_is_in_the_schema_with_its_range():
    props = schema.schema()["properties"]
    for s in settings.SETTINGS:
        entry = props[s.group]["properties"] if s.group == "breathing" else props[s.group or s.key]
        if s.group == "voice":
            entry = entry["properties"]
        if s.group == "ambient":
            entry = entry["anyOf"][1]["properties"]
        node = entry[s.name] if s.group else entry
        if s.kind == "whole":
            assert (node["minimum"], node["maximum"]) == (s.low, s.high), s.key
        if s.kind == "choice":
            assert node["enum"] == list(s.options), s.key
        assert s.help in json.dumps(node), s.key


def test_the_starter_is_a_valid_routine_with_the_tables_settings(tmp_path):
    path = write(tmp_path / "mine.yaml", starter.starter("mine.yaml"))
    r = routine.load(path)
    assert r.settings.bedtime is True and r.settings.tail_ms == 10 * 60_000
    assert r.settings.voice.engine == settings.default("voice.engine")
    jsonschema.validate(yaml.safe_load(path.read_text()), schema.schema())
    for line in path.read_text().splitlines():  # every commented setting works once uncommented
        if line.startswith("# ") and ": " in line and line[2:].split(":")[0] in settings.TOP_KEYS:
            key_value = line[2:].split("  #")[0]
            read_yaml(key_value + "\n")


def test_the_cue_sheet_settings_come_from_the_table():
    summary = settings.summary(settings.Settings())
    assert set(summary) == {s.json_key for s in settings.SETTINGS if not s.private}
    assert summary["tail_s"] == 60 and summary["rate_wpm"] == 140 and summary["inhale_s"] == 4
    assert "name" not in summary


def test_flags_after_the_command_and_before_it(tmp_path):
    for args in (["-q", "validate", "x.yaml"], ["validate", "x.yaml", "-q"]):
        write(tmp_path / "x.yaml", "title: T\nsteps:\n  - chime\n")
        result = run_cli(*args, cwd=tmp_path)
        assert result.returncode == 0 and result.stderr == ""


PAUSES = """\
title: Pauses
voice: {{engine: espeak-ng, rate: 160}}
ambient: none
safety: false
tail: 5s
seed: 3
steps:
  - say: Rest here now.
  - pause: {pause}
  - say: And breathe out slowly.
"""


@pytest.mark.slow
@pytest.mark.parametrize("pause_ms", [7000, 3500])
def test_a_pause_is_exactly_the_silence_between_the_words(tmp_path, pause_ms):
    """`say A, pause 7s, say B`: 7 s from the end of A to the start of B, in the cue sheet and in the audio."""
    path = write(tmp_path / "p.yaml", PAUSES.format(pause=f"{pause_ms / 1000:g}s"))
    out = tmp_path / "p.mp3"
    result = run_cli("build", str(path), "-o", str(out), "-q")  # -q after the command: a silent build
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""
    cues = json.loads(out.with_suffix(".json").read_text())["cues"]
    first = next(c for c in cues if c["text"] == "Rest here now.")
    second = next(c for c in cues if c["text"] == "And breathe out slowly.")
    assert round((second["start_s"] - first["end_s"]) * 1000) == pause_ms
    audio = np.abs(decode(out)).max(axis=1)
    loud = np.flatnonzero(audio > 10 ** (-50 / 20))
    window = loud[(loud > first["start_s"] * SR) & (loud < second["end_s"] * SR)]
    gap_s = np.diff(window).max() / SR  # the longest quiet stretch between the two phrases
    assert abs(gap_s - pause_ms / 1000) < 0.06, gap_s
