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
                                         "tail", "order", "safety", "length", "avoid", "exclude", "in_bed_only",
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
    path = write(tmp_path / "r.yaml", "title: T\nambient: rain\nsteps:\n  - stretch: knee-to-chest\n")
    result = run_cli("build", str(path), "--ambient", str(tmp_path / "gone.ogg"), "-o", str(tmp_path / "r.mp3"))
    assert result.returncode == 2
    assert result.stderr.startswith(f"{tmp_path / 'gone.ogg'}: ambient file not found. Check the path")
    assert not (tmp_path / "r.mp3").exists()


# --- validate finds what script and build would refuse -------------------------------------------------

CORPUS = REPO / "tests" / "bad_routines"
FLOW_WORDS = REPO / "tests" / "inhale-words-too-long.yaml"  # an inline flow whose inhale words outrun the breath
EXCLUDE_ALL = "title: Nothing left\nexclude: [knee-to-chest]\nsteps:\n  - stretch: knee-to-chest\n"
LENGTH_OUT_OF_REACH = "title: Too short\nlength: 1m\nsteps:\n  - stretch: knee-to-chest\n  - stretch: childs-pose\n"


def _where(stderr: str) -> str:
    """`file:line:` (or `file:`) of a one-line error: what a person looks at first."""
    return stderr.split(": ", 1)[0]


def test_validate_fails_on_every_routine_script_fails_on_at_the_same_line(tmp_path):
    """The real default path (piper, the user's profile and journal places): each routine below stops
    `windown script`, and `windown validate` stops on it too, at the same file and line."""
    write(tmp_path / "exclude-all.yaml", EXCLUDE_ALL)
    write(tmp_path / "length.yaml", LENGTH_OUT_OF_REACH)
    cases = [FLOW_WORDS] + [CORPUS / n for n in ("script-voice-unknown.yaml",
                                  "20-unknown-stretch.yaml", "85-hold-on-reps.yaml", "41-say-too-long.yaml")]
    cases += [tmp_path / "exclude-all.yaml", tmp_path / "length.yaml"]
    for case in cases:
        script = run_cli("script", str(case))
        assert script.returncode == 2, (case, script.stdout[-300:], script.stderr)
        validate = run_cli("validate", str(case))
        assert validate.returncode == 2, (case, validate.stdout, validate.stderr)
        assert validate.stdout == ""
        assert len(validate.stderr.splitlines()) == 1, validate.stderr
        assert _where(validate.stderr) == _where(script.stderr), (script.stderr, validate.stderr)
    flow = run_cli("script", str(FLOW_WORDS)).stderr
    assert _where(flow) == f"{FLOW_WORDS}:10"  # the `inhale:` line, not `- stretch:` (3)
    assert "Slow the breathing (e.g. `breathing: {inhale: " in flow and "hold" not in flow.split(". ", 1)[1]


def test_validate_judges_a_cue_on_its_cached_speech_once_it_has_been_spoken(tmp_path):
    """Words a fast engine could say in time are only a warning before they are spoken; once `script`
    has spoken them (the cache), validate judges them on their real length, as the build does."""
    words = "Breathe in slowly, sweep both arms up over your head, zephyr, and rest."  # 13 words
    path = write(tmp_path / "r.yaml", f"""\
title: Borderline
steps:
  - stretch:
      id: sweep
      name: sweep
      kind: flow
      rounds: 2
      setup: Lie on your back.
      inhale: {words}
      exhale: Breathe out.
""")
    before = run_cli("validate", str(path))
    assert before.returncode == 0, before.stderr
    assert before.stdout == f"{path}: ok\n"
    assert before.stderr.startswith(f"{path}:9: warning: the words \"{words}\" may not fit the 3.9s inside the "
                                     "inhale of sweep")
    assert "Run `windown script` to check with the real voice" in before.stderr
    script = run_cli("script", str(path))
    assert script.returncode == 2 and script.stderr.startswith(f"{path}:9: the words \"{words}\" take ")
    after = run_cli("validate", str(path))
    assert after.returncode == 2
    assert after.stderr == script.stderr  # the same line, the same real length


WARNED = """\
title: Unlikely
voice: {engine: espeak-ng}
ambient: none
tail: 0s
steps:
  - stretch: knee-to-chest
    hold: 2.5s
    reps: 1
"""


def test_unlikely_values_are_warned_about_by_validate_script_and_build_without_failing(tmp_path):
    path = write(tmp_path / "r.yaml", WARNED)
    warning = (f"{path}:7: warning: a 2.5s hold is too short to ease into (the safe range of knee to chest: "
               "20s to 45s). Hold it for at least 20s\n")
    validate = run_cli("validate", str(path))
    assert (validate.returncode, validate.stdout, validate.stderr) == (0, f"{path}: ok\n", warning)
    script = run_cli("script", str(path))
    assert script.returncode == 0 and script.stderr == warning and script.stdout.startswith("Unlikely\n")
    build = run_cli("build", str(path), "-o", str(tmp_path / "r.mp3"), "--no-journal")
    assert build.returncode == 0 and build.stderr == warning
    assert build.stdout.startswith(f"{tmp_path / 'r.mp3'}: ") and (tmp_path / "r.mp3").stat().st_size > 0
    quiet = run_cli("validate", str(path), "-q")  # -q keeps stderr for errors alone
    assert (quiet.returncode, quiet.stderr) == (0, "")


def test_the_warnings_and_their_thresholds():
    from windown import routine as routines

    def warnings(steps: str) -> list[str]:
        return [str(w) for w in routines.parse(source.load("r.yaml", "title: T\nsteps:\n" + steps), "r.yaml").warnings]

    assert warnings("  - stretch: supine-twist\n    hold: 1h\n") == [
        "r.yaml:4: warning: a 1h hold is far longer than the safe range of lying twist (20s to 45s). Check the "
        "units (30s is thirty seconds, 30m half an hour), or hold it for at most 45s"]
    assert warnings("  - stretch: pelvic-tilts\n    reps: 50\n") == [
        "r.yaml:4: warning: 50 reps is far more than the safe range of pelvic tilts (6 to 15). Do it at most 15 "
        "times; a few slow repetitions ease a back more than many"]
    assert warnings("  - say: Good night.\n  - pause: 5s\n") == [
        "r.yaml:2: warning: the routine has no stretch, only words, breaths or pauses. Add one, e.g. `- stretch: "
        "knee-to-chest`; a track without stretches is fine if that is what you meant"]
    inline = "  - stretch: {id: rest, name: rest, kind: rest, setup: Lie still., hold: 1h}\n"
    assert [w.split(": warning: ")[1][:44] for w in warnings(inline)] == ["a 1h hold is far longer than the library's h"]
    # up to twice the top of the range, and down to half its bottom, is a personal choice, not a slip
    assert warnings("  - stretch: supine-twist\n    hold: 1m30s\n    reps: 4\n") == []
    assert warnings("  - stretch: supine-twist\n    hold: 10s\n") == []
    assert warnings("  - stretch: cat-cow\n    rounds: 20\n") == []
    assert len(warnings("  - stretch: cat-cow\n    rounds: 21\n")) == 1
    for name in library.preset_names():
        assert routines.load(name).warnings == ()


def test_stretches_has_a_header_row():
    lines = run_cli("stretches").stdout.splitlines()
    assert lines[0].split() == ["id", "position", "in", "bed", "length", "tags"]
    assert lines[1].startswith("knee-to-chest ")
    assert len(lines) == 1 + 2 * len(library.stretches())


def test_script_shows_pause_steps(tmp_path):
    path = write(tmp_path / "r.yaml", "title: P\nvoice: {engine: espeak-ng}\nsteps:\n  - stretch: knee-to-chest\n"
                                       "  - pause: 5s\n  - say: Now rest.\n")
    out = run_cli("script", str(path)).stdout.splitlines()
    pause = next(i for i, line in enumerate(out) if line.endswith("(pause 5s)"))
    assert re.fullmatch(r"\d\d:\d\d\.\d{3}  \(pause 5s\)", out[pause])
    start = source.parse_duration_ms(out[pause][:9].replace(":", "m") + "s")
    after = out[pause + 1]
    assert after.endswith("Now rest.")
    # the words after the pause start exactly 5 s after it began
    assert source.parse_duration_ms(after[:9].replace(":", "m") + "s") - start == 5000


def test_validate_help_says_what_only_a_build_finds():
    text = " ".join(CliRunner().invoke(cli, ["validate", "--help"], prog_name="windown").output.split())
    assert "Left to the build, as they need audio: an ambient file ffmpeg cannot decode, an engine that cannot " \
           "speak a phrase, and encoding and writing the MP3." in text
