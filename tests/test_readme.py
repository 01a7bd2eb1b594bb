"""The README's examples are real: its routine and profile load, and its commands exist."""

from __future__ import annotations

import re

import yaml

from conftest import REPO, run_cli, write
from windown import personalise, routine

README = (REPO / "README.md").read_text()
BLOCKS = re.findall(r"```yaml\n(.*?)```", README, re.S)


def test_readme_has_a_routine_and_a_profile_example():
    assert len(BLOCKS) == 2
    assert "steps:" in BLOCKS[0] and "steps:" not in BLOCKS[1]


def test_the_readme_routine_is_valid_and_uses_every_step_kind(tmp_path):
    path = write(tmp_path / "evening.yaml", BLOCKS[0])
    r = routine.load(str(path))
    kinds = {step.kind for step in r.steps}
    assert kinds == {"stretch", "say", "breathe", "pause", "chime"}
    assert any(s.kind == "stretch" and s.stretch.id == "belly-breathing" for s in r.steps)
    result = run_cli("validate", str(path))
    assert result.returncode == 0 and result.stdout.strip() == f"{path}: ok"


def test_the_readme_profile_loads_and_sets_every_field(tmp_path):
    path = write(tmp_path / "profile.yaml", BLOCKS[1])
    profile = personalise.load_profile(path)
    assert set(yaml.safe_load(BLOCKS[1])) == set(profile.doc)
    r = routine.load("bedtime-lower-back")
    settings = personalise.apply_settings(r, profile)
    assert settings.name == "Sam" and settings.pace == "slow" and settings.voice.engine == "festival"
    assert settings.avoid == ("kneeling", "prone") and settings.exclude == ("cobra",)
    assert settings.length_ms == 15 * 60_000 and settings.tail_ms == 20 * 60_000 and settings.safety is False


def test_every_command_in_the_reference_table_has_help_with_an_example():
    commands = re.findall(r"^\| `windown (\w+)", README, re.M)
    assert {"build", "script", "batch", "validate", "init", "schema", "stretches", "voices", "sounds"} <= set(commands)
    for command in set(commands) | {"presets"}:
        result = run_cli(command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert "Example" in result.stdout, command


def test_every_flag_of_the_settings_table_is_in_the_readme():
    from windown import settings

    for s in settings.SETTINGS + settings.ENCODING:
        if s.flag:
            for flag in s.flag.split("/"):
                assert f"`{flag}" in README or f"{flag}`" in README or f"`{flag}/" in README, flag


def test_the_exit_codes_are_documented_with_the_bug_code():
    rows = dict(re.findall(r"^\| (\d+(?: / \d+)?) \| (.+) \|$", README, re.M))
    assert set(rows) == {"0", "1", "2", "3", "130 / 143", "141"}
    assert "SIGPIPE" in rows["141"]
    assert "bug in windown" in rows["3"]


def test_the_lock_covers_pyproject_and_its_refresh_command_is_documented():
    """Every dependency pyproject.toml names (all extras) is pinned in requirements.lock to a version it
    accepts, so a fresh clone installs what CI tested; the lock names the command that refreshes it."""
    import sys
    import tomllib

    from packaging.requirements import Requirement

    lock = (REPO / "requirements.lock").read_text()
    assert "#    ./scripts/lock\n" in lock and "./scripts/lock" in README
    assert (REPO / "scripts" / "lock").stat().st_mode & 0o111
    environment = {"sys_platform": "linux", "python_version": f"{sys.version_info[0]}.{sys.version_info[1]}"}
    pins: dict[str, list[Requirement]] = {}
    for line in lock.splitlines():
        if line and not line.startswith((" ", "#")):
            pin = Requirement(line)
            if pin.marker is None or pin.marker.evaluate(environment):
                pins.setdefault(pin.name.lower().replace("_", "-"), []).append(pin)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    for text in wanted:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({**environment, "extra": ""}):
            continue
        [pin] = pins.get(req.name.lower().replace("_", "-"), [None])
        assert pin is not None, f"{req.name} is not in requirements.lock: run ./scripts/lock"
        version = next(iter(pin.specifier)).version
        assert req.specifier.contains(version, prereleases=True), f"{pin} does not meet {req}: run ./scripts/lock"


def test_the_readme_states_each_presets_tail_and_the_default_one():
    """Each preset's own tail, and the settings table's default for a routine without one."""
    from collections import Counter

    from windown import library, settings

    minutes = {name: routine.load(name).settings.tail_ms // 60_000 for name in library.preset_names()}
    usual, _ = Counter(minutes.values()).most_common(1)[0]
    others = [f"{m} for `{name}`" for name, m in minutes.items() if m != usual]
    assert f"Each preset sets its own tail: {usual} minutes" + (", or " + ", ".join(others) if others else "") + "." \
        in README
    assert "presets: 10m" not in README
    assert settings.default("tail") == 60_000 and personalise.BEDTIME_TAIL_MS == 600_000
    assert "without `tail`, the bed plays on for 1 minute\n(10 minutes in bedtime mode)" in README
    assert "| `--tail DURATION` | how long the bed plays on after the last words (up to 2h; default 1m, 10m in " \
           "bedtime mode; the presets set their own) |" in README


def test_the_readme_states_the_text_limits_the_code_enforces():
    from windown import library
    from windown import routine as routines

    assert routines.MAX_SAY_CHARS == library.MAX_CUE_CHARS == 400
    assert "each at most 400 characters" in README and "A title is at most 120 characters" in README
