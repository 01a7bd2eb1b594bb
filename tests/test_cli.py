"""Command-line conventions: help with examples, --version, -q, exit codes, colour, init, schema, completion."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from conftest import REPO, run_cli, write
from windown import __version__, library, source
from windown.cli import cli
from windown.schema import DURATION_PATTERN

ANSI = re.compile(r"\x1b\[[0-9;]*m")
BROKEN = "title: Broken\nsteps:\n  - stretch: knee-to-chestt\n"


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout == f"windown, version {__version__}\n"


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_has_help_with_an_example(command):
    result = CliRunner().invoke(cli, [command, "--help"], prog_name="windown")
    assert result.exit_code == 0, result.output
    assert re.search(r"^\s+Examples?:\n\s+windown " + re.escape(command), result.output, re.M), result.output


def test_quiet_and_verbose_are_global_options():
    result = CliRunner().invoke(cli, ["--help"], prog_name="windown")
    assert "-q, --quiet" in result.output and "-v, --verbose" in result.output


# --- exit codes, streams and colour -----------------------------------------------------------------

def test_exit_codes_follow_the_documented_meaning(tmp_path):
    write(tmp_path / "broken.yaml", BROKEN)
    assert run_cli("presets").returncode == 0
    usage = run_cli("batch", "--no-such-option")
    assert usage.returncode == 2 and "No such option" in usage.stderr
    bad_input = run_cli("validate", "broken.yaml", cwd=tmp_path)
    assert bad_input.returncode == 2
    assert bad_input.stderr == "broken.yaml:3: unknown stretch 'knee-to-chestt'. Did you mean 'knee-to-chest' or " \
                               "'knee-to-chest-easier'? Run `windown stretches` to list them\n"
    failed = run_cli("batch", "broken.yaml", cwd=tmp_path)
    assert failed.returncode == 1


def test_presets_show_the_guided_length_that_script_gives():
    listing = run_cli("presets")
    assert listing.returncode == 0, listing.stderr
    shown = dict(re.findall(r"^(\S+) +(\d+:\d\d)  \S", listing.stdout, re.M))
    assert sorted(shown) == library.preset_names(), listing.stdout
    for name, length in shown.items():
        script = run_cli("script", name)
        assert script.returncode == 0, script.stderr
        total = re.search(r"^total (\d+:\d\d)\.\d{3} ", script.stdout, re.M)
        assert total and total[1] == length, (name, length, script.stdout[-120:])
    again = run_cli("presets")  # every phrase was spoken once, into the cache: nothing is spoken again
    assert again.stdout == listing.stdout and again.stderr == ""


def test_batch_results_go_to_stdout_and_progress_to_stderr(tmp_path):
    write(tmp_path / "broken.yaml", BROKEN)
    result = run_cli("batch", "broken.yaml", "-o", "shelf", cwd=tmp_path)
    assert result.stdout.splitlines() == [
        "failed   shelf/broken.mp3      -  broken.yaml:3: unknown stretch 'knee-to-chestt'. Did you mean "
        "'knee-to-chest' or 'knee-to-chest-easier'? Run `windown stretches` to list them",
        "1 track: 0 built, 0 skipped, 1 failed; playlist shelf/playlist.m3u",
    ]
    assert result.stderr.splitlines()[0].startswith("[1/1] failed shelf/broken.mp3: broken.yaml:3: ")
    assert result.stderr.splitlines()[-1] == "1 of 1 job failed. Their reasons are in the table above"
    assert (tmp_path / "shelf" / "playlist.m3u").read_text() == "#EXTM3U\n"
    quiet = run_cli("-q", "batch", "broken.yaml", "-o", "shelf", cwd=tmp_path)
    assert quiet.stdout == result.stdout
    assert quiet.stderr == "1 of 1 job failed. Their reasons are in the table above\n"


def test_nothing_to_build_is_a_usage_error(tmp_path):
    result = run_cli("batch", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "nothing to build. Name routine files, presets or a batch file, or add --all-presets\n"


def run_on_a_terminal(*args: str, cwd, env: dict) -> str:
    """Run windown with stdout and stderr on a pseudo-terminal; return what the terminal showed."""
    leader, follower = pty.openpty()
    full_env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    full_env.update(env)
    proc = subprocess.Popen([sys.executable, "-m", "windown", *args], cwd=cwd, env=full_env, stdout=follower,
                            stderr=follower, stdin=subprocess.DEVNULL)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode()


def test_colour_only_on_a_terminal_and_never_with_no_color(tmp_path):
    write(tmp_path / "broken.yaml", BROKEN)
    on_terminal = run_on_a_terminal("batch", "broken.yaml", cwd=tmp_path, env={})
    assert "\x1b[31mfailed" in on_terminal
    no_color = run_on_a_terminal("batch", "broken.yaml", cwd=tmp_path, env={"NO_COLOR": "1"})
    assert "failed" in no_color and not ANSI.search(no_color)
    piped = run_cli("batch", "broken.yaml", cwd=tmp_path, env={"NO_COLOR": ""})
    assert not ANSI.search(piped.stdout + piped.stderr)


# --- init -------------------------------------------------------------------------------------------

def test_init_writes_a_commented_starter_that_validates(tmp_path):
    result = run_cli("init", "my-routine.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "my-routine.yaml\n"
    text = (tmp_path / "my-routine.yaml").read_text()
    assert text.startswith("# A windown routine")
    assert "windown build my-routine.yaml" in text
    assert "\n## yaml-language-server: $schema=windown.schema.json\n" in text
    checked = run_cli("validate", "my-routine.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout == "my-routine.yaml: ok\n"


def test_init_refuses_to_overwrite_unless_forced(tmp_path):
    target = write(tmp_path / "mine.yaml", "title: Mine\n")
    refused = run_cli("init", "mine.yaml", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr == "mine.yaml: the file already exists. Choose another name, or add --force to overwrite it\n"
    assert target.read_text() == "title: Mine\n"
    forced = run_cli("init", "mine.yaml", "--force", cwd=tmp_path)
    assert forced.returncode == 0
    assert target.read_text().startswith("# A windown routine")
    missing = run_cli("init", "no/such/folder/r.yaml", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr == "no/such/folder: its folder does not exist. Create the folder first, or choose another " \
                             "place\n"


# --- schema -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def schema() -> dict:
    result = run_cli("schema")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_schema_is_draft_2020_12_with_the_librarys_names(schema):
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["title", "steps"] and schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"title", "voice", "breathing", "ambient", "pace", "instruction", "bedtime",
                                         "tail", "order", "safety", "length", "add_stretches", "avoid", "exclude", "in_bed_only",
                                         "name", "seed", "transition", "journal", "steps"}
    assert schema["properties"]["avoid"]["anyOf"][0]["items"]["enum"] == list(library.TAGS)
    assert schema["properties"]["exclude"]["anyOf"][0]["items"]["enum"] == library.all_ids()
    steps = schema["$defs"]["step"]["anyOf"]
    stretch_step = next(s for s in steps if "stretch" in s.get("properties", {}))
    assert stretch_step["properties"]["stretch"]["anyOf"][0]["enum"] == library.all_ids()
    kinds = {s.get("const") or next(iter(s["required"])) for s in steps}
    assert kinds == {"chime", "say", "pause", "breathe", "stretch"}


@pytest.mark.parametrize("text", ["30s", "1m30s", "5m", "1h", "250ms", "90", "1.5", "2.5m", "1h 30m", " 45s ", "0"])
def test_the_schemas_duration_pattern_accepts_what_routines_accept(text):
    assert source.parse_duration_ms(text) is not None
    assert re.match(DURATION_PATTERN, text)


@pytest.mark.parametrize("text", ["", " ", "5 minutes", "s", "m", "1x", "-5s", "30sec"])
def test_the_schemas_duration_pattern_rejects_what_routines_reject(text):
    assert not re.match(DURATION_PATTERN, text)


def test_presets_the_starter_and_the_library_validate_against_the_schema(schema, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(schema)
    jsonschema.Draft202012Validator.check_schema(schema)
    run_cli("init", "starter.yaml", cwd=tmp_path)
    files = sorted((REPO / "src" / "windown" / "data" / "presets").glob("*.yaml")) + [tmp_path / "starter.yaml"]
    for path in files:
        assert not [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))], path
    stretch = jsonschema.Draft202012Validator({**{k: v for k, v in schema.items() if k == "$defs"},
                                               "$ref": "#/$defs/stretch"})
    for entry in yaml.safe_load((REPO / "src" / "windown" / "data" / "stretches.yaml").read_text())["stretches"]:
        assert not [e.message for e in stretch.iter_errors(entry)], entry["id"]
    for bad in ({"title": "x", "steps": [{"stretch": "nope"}]}, {"title": "x", "steps": [], "pase": "slow"},
                {"title": "x", "steps": [{"pause": "5 minutes"}]}, {"steps": ["chime"]}):
        assert list(validator.iter_errors(bad)), bad


# --- shell completion -------------------------------------------------------------------------------

def test_shell_completion_is_clicks_own():
    script = run_cli(env={"_WINDOWN_COMPLETE": "bash_source"})
    assert script.returncode == 0
    assert "_windown_completion()" in script.stdout
    assert "complete -o nosort -F _windown_completion windown" in script.stdout
    commands = run_cli(env={"_WINDOWN_COMPLETE": "bash_complete", "COMP_WORDS": "windown ba", "COMP_CWORD": "1"})
    assert commands.stdout.splitlines() == ["plain,batch"]
    options = run_cli(env={"_WINDOWN_COMPLETE": "bash_complete", "COMP_WORDS": "windown batch --sch",
                           "COMP_CWORD": "2"})
    assert options.stdout.splitlines() == ["plain,--scheduler"]


def test_validate_catches_a_missing_ambient_file(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("title: T\nambient: {sound: waves.ogg}\nsteps:\n  - pause: 2s\n")
    result = run_cli("validate", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"{path}:2: ambient file not found: {tmp_path / 'waves.ogg'}. Check the path")
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_ambient_file_from_a_flag_is_reported_by_its_own_name(tmp_path):
    """--ambient has no routine line to point at, so the error names the file alone."""
    path = write(tmp_path / "r.yaml", "title: T\nambient: rain\nsteps:\n  - pause: 2s\n")
    result = run_cli("build", str(path), "--ambient", str(tmp_path / "gone.ogg"), "-o", str(tmp_path / "r.mp3"))
    assert result.returncode == 2
    assert result.stderr.startswith(f"{tmp_path / 'gone.ogg'}: ambient file not found. Check the path")
    assert not (tmp_path / "r.mp3").exists()
