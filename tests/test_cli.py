"""Command-line conventions: help with examples, --version, -q, exit codes, colour, init, schema, completion."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from conftest import REPO, decode, run_cli, write
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


def test_init_creates_the_folder_as_build_o_does(tmp_path):
    made = run_cli("init", "routines/evening/new.yaml", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert made.stdout == "routines/evening/new.yaml\n"
    assert (tmp_path / "routines" / "evening" / "new.yaml").read_text().startswith("# A windown routine")
    write(tmp_path / "blocker", "a file, not a folder\n")
    blocked = run_cli("init", "blocker/new.yaml", cwd=tmp_path)
    assert blocked.returncode == 2
    assert blocked.stderr == "blocker: cannot create its folder (File exists). Choose another place\n"


# --- -o: where the MP3 goes (issue 13, defect 3) -------------------------------------------------------

TINY = "title: Tiny\nvoice: {engine: espeak-ng, rate: 170}\nsafety: false\nambient: none\ntail: 2s\nsteps:\n" \
       "  - say: Good night.\n"


@pytest.mark.parametrize("given, made", [
    ("tonight", "tonight.mp3"),              # no extension: .mp3 is added
    ("Tonight.MP3", "Tonight.MP3"),
    ("shelf/", "shelf/tiny.mp3"),            # a folder written with its slash, made if missing
    ("existing", "existing/tiny.mp3"),       # a folder that exists
    ("v1.2", "v1.2.mp3"),                    # `.2` is not an extension
])
def test_o_names_a_file_or_a_folder_and_the_track_is_always_an_mp3(given, made, tmp_path):
    write(tmp_path / "tiny.yaml", TINY)
    (tmp_path / "existing").mkdir()
    result = run_cli("-q", "build", "tiny.yaml", "-o", given, "--no-journal", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / made
    assert out.read_bytes()[:3] == b"ID3"
    assert out.with_suffix(".json").is_file()
    assert sorted(p.name for p in out.parent.iterdir() if p.name.lower().endswith(".mp3")) == [out.name]


@pytest.mark.parametrize("given", ["x.wav", "night.ogg", "out/track.flac"])
def test_o_with_another_extension_is_one_line_and_writes_nothing(given, tmp_path):
    write(tmp_path / "tiny.yaml", TINY)
    result = run_cli("-q", "build", "tiny.yaml", "-o", given, "--no-journal", cwd=tmp_path)
    assert result.returncode == 2
    suffix = given.rsplit(".", 1)[1]
    stem = given.rsplit(".", 1)[0]
    assert result.stderr == (f"{given}: windown writes MP3 files, not .{suffix}. Name it {stem}.mp3, or leave the "
                             "extension off and .mp3 is added\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]


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
    assert result.stderr.startswith(f"{path}:2: ambient file not found: waves.ogg. A path in a routine, profile or "
                                    "batch file is relative to that file")
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_ambient_file_from_a_flag_is_reported_by_its_own_name(tmp_path):
    """--ambient has no routine line to point at, so the error names the file alone, and its rule."""
    path = write(tmp_path / "r.yaml", "title: T\nambient: rain\nsteps:\n  - stretch: knee-to-chest\n")
    result = run_cli("build", str(path), "--ambient", str(tmp_path / "gone.ogg"), "-o", str(tmp_path / "r.mp3"))
    assert result.returncode == 2
    assert result.stderr.startswith(f"{tmp_path / 'gone.ogg'}: ambient file not found. A path in a routine, "
                                    "profile or batch file is relative to that file, one on the command line to "
                                    "the current folder")
    assert not (tmp_path / "r.mp3").exists()


# --- script --json and the cue sheet --------------------------------------------------------------

def _keys(value) -> set[str]:
    """Every key anywhere in a JSON document."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_script_json_is_the_cue_sheet_a_build_writes_plus_the_changes(tmp_path):
    """One shape: seconds with three decimals, holds in both; `changes` only in `script --json` (it can
    quote the journal, which never goes into a track's files)."""
    r = write(tmp_path / "r.yaml", "title: Short\nvoice: {engine: espeak-ng}\nambient: none\ntail: 5s\n"
              "steps:\n  - say: Settle in and let the day go.\n  - stretch: knee-to-chest\n")
    script = run_cli("script", str(r), "--json", "--pace", "slow")
    assert script.returncode == 0, script.stderr
    data = json.loads(script.stdout)
    built = run_cli("build", str(r), "--pace", "slow", "-o", str(tmp_path / "short.mp3"))
    assert built.returncode == 0, built.stderr
    sheet = json.loads((tmp_path / "short.json").read_text("utf-8"))
    changes = data.pop("changes")
    assert changes and changes[0].startswith("slow pace")
    assert data == sheet
    assert not {k for k in _keys(sheet) if k.endswith("_ms")}
    holds = sheet["holds"]
    assert [h["label"] for h in holds] == ["the hold of knee to chest (right side)",
                                           "the hold of knee to chest (left side)"] * 2  # two rounds a side
    assert {round(h["end_s"] - h["start_s"], 3) for h in holds} == {37.5}  # 30 s x1.25, in the safe range
    assert sheet["cues"][0]["start_s"] <= holds[0]["start_s"] < holds[0]["end_s"] <= sheet["speech_end_s"]
    assert sheet["duration_s"] >= sheet["speech_end_s"] + 5


# --- a closed pipe (issue 13, defect 9) ---------------------------------------------------------------

PRINTING_COMMANDS = [("script", "quick-wind-down"), ("presets",), ("stretches",), ("settings",), ("schema",),
                     ("sounds",), ("voices", "--engine", "espeak-ng")]


@pytest.mark.parametrize("command", PRINTING_COMMANDS, ids=lambda c: c[0])
def test_a_pipe_closed_by_its_reader_ends_the_command_quietly_as_sigpipe(command, tmp_path):
    """The reader went away before the first line (a real pipe whose read end is closed): windown stops
    as `yes` or `seq` would, killed by SIGPIPE (the shell shows 141), with nothing on stderr."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([sys.executable, "-m", "windown", *command], stdout=write_end,
                                stderr=subprocess.PIPE, text=True, timeout=600, cwd=tmp_path)
    finally:
        os.close(write_end)
    assert result.returncode == -signal.SIGPIPE
    assert result.stderr == ""


def test_script_into_head_exits_like_the_tools_around_it(tmp_path):
    """`windown script quick-wind-down | head -1` in a real shell: the first line, no message, and the
    status (with pipefail) of a tool killed by SIGPIPE, or 0 when it finished before head left."""
    result = subprocess.run(["bash", "-o", "pipefail", "-c",
                             f"'{sys.executable}' -m windown script quick-wind-down | head -1"],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.stdout == "Quick wind-down\n"
    assert result.stderr == ""
    assert result.returncode in (0, 128 + signal.SIGPIPE)


# --- where a sound file is found (issue 13, defect 4) -------------------------------------------------

def hum_wav(path: Path) -> Path:
    """Three seconds of a quiet 110 Hz hum: a sound file of the user's own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = (0.2 * np.sin(2 * np.pi * 110 * np.arange(3 * 8000) / 8000) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(samples.tobytes())
    return path


def test_a_sound_named_in_a_routine_is_found_beside_it_from_any_folder(tmp_path):
    """`windown build r/w2.yaml` with `ambient: waves2` and r/sounds/waves2.wav, run from the folder above r/."""
    hum_wav(tmp_path / "r" / "sounds" / "waves2.wav")  # makes r/ too
    write(tmp_path / "r" / "w2.yaml", TINY.replace("ambient: none", "ambient: waves2"))
    checked = run_cli("validate", "r/w2.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    result = run_cli("-q", "build", "r/w2.yaml", "-o", "w2.mp3", "--no-journal", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sheet = json.loads((tmp_path / "w2.json").read_text())
    assert sheet["settings"]["sound"] == "waves2.wav"
    audio = decode(tmp_path / "w2.mp3")
    start = round((sheet["speech_end_s"] + 0.3) * 44100)
    after_words = audio[start:start + 22050]  # half a second after the last words: only the bed plays there
    assert float(np.sqrt(np.mean(after_words ** 2))) > 1e-3


def test_a_path_on_the_command_line_is_from_the_current_folder(tmp_path):
    hum_wav(tmp_path / "snd" / "hum.wav")
    (tmp_path / "r").mkdir()
    write(tmp_path / "r" / "t.yaml", TINY)
    found = run_cli("-q", "build", "r/t.yaml", "--ambient", "snd/hum.wav", "-o", "t.mp3", "--no-journal",
                    cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    missing = run_cli("-q", "build", "r/t.yaml", "--ambient", "r/hum.wav", "-o", "u.mp3", "--no-journal", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.startswith("r/hum.wav: ambient file not found. A path in a routine, profile or batch file "
                                     "is relative to that file, one on the command line to the current folder")
    assert not (tmp_path / "u.mp3").exists()


def test_a_near_miss_on_the_command_line_suggests_the_closest_sound(tmp_path):
    write(tmp_path / "t.yaml", TINY)
    hum_wav(tmp_path / "sounds" / "waves.wav")
    flag = run_cli("-q", "build", "t.yaml", "--ambient", "rian", "--no-journal", cwd=tmp_path)
    assert flag.returncode == 2
    assert flag.stderr.startswith("rian: ambient file not found. Did you mean 'rain'? ")
    assert len(flag.stderr.splitlines()) == 1
    preview = run_cli("sounds", "--preview", "wavs", cwd=tmp_path)
    assert preview.returncode == 2
    assert preview.stderr.startswith("wavs: ambient file not found. Did you mean 'waves'? ")
    assert run_cli("sounds", "--preview", "rainn", cwd=tmp_path).stderr.startswith(
        "rainn: ambient file not found. Did you mean 'rain'? ")
    assert not list(tmp_path.glob("*preview*"))


def test_sounds_lists_the_beds_and_the_files_in_sounds(tmp_path):
    hum_wav(tmp_path / "sounds" / "waves.wav")
    listed = run_cli("sounds", cwd=tmp_path)
    assert listed.returncode == 0
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert names == ["brown-noise", "pink-noise", "rain", "ocean", "drone", "none", "waves"]
    assert listed.stdout.splitlines()[-1].endswith("your file: sounds/waves.wav")


# --- close matches for files and presets (issue 13, wish) ---------------------------------------------

@pytest.mark.parametrize("given, message", [
    ("my.yml", "my.yml: no such file. Did you mean 'my.yaml'? Check the path, or run `windown presets` to list "
               "the presets"),
    ("routines/evening.yml", "routines/evening.yml: no such file. Did you mean 'routines/evening.yaml'? Check the "
                             "path, or run `windown presets` to list the presets"),
    ("bedtime", "no routine file or preset named 'bedtime'. Did you mean 'bedtime-lower-back'? Run `windown "
                "presets` to list the presets"),
    ("quick", "no routine file or preset named 'quick'. Did you mean 'quick-wind-down'? Run `windown presets` to "
              "list the presets"),
    ("evenin", "no routine file or preset named 'evenin'. Did you mean 'evening.yaml'? Run `windown presets` to "
               "list the presets"),
])
def test_a_near_miss_names_the_routine_file_or_preset_meant(given, message, tmp_path):
    write(tmp_path / "my.yaml", TINY)
    write(tmp_path / "evening.yaml", TINY)
    write(tmp_path / "other.yaml", TINY)
    (tmp_path / "routines").mkdir()
    write(tmp_path / "routines" / "evening.yaml", TINY)
    result = run_cli("script", given, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == message + "\n"


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
