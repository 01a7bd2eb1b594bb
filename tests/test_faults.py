"""Faults a person can meet: missing tools, unwritable or full disks, interrupts, concurrent builds.

In every case: one clear line, the right exit code, no traceback, an existing track untouched and
no temporary files left behind.
"""

from __future__ import annotations

import json
import re
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import decode, descendants, run_cli, start_windown, still_running, write
from windown import pipeline

SMALL = """\
title: Small
voice: {engine: espeak-ng}
bedtime: false
tail: 5s
steps:
  - say: Settle in, and breathe out slowly.
  - stretch: supine-twist
    hold: 12s
    sides: none
"""


def tool_path(tmp_path: Path, *tools: str) -> str:
    """A PATH holding only the named programs (and nothing else windown might find)."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    for tool in tools:
        os.symlink(shutil.which(tool), folder / tool)
    return str(folder)


def assert_clean_failure(result, code: int, line: str):
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [line]


def test_no_ffmpeg_names_the_package(tmp_path):
    routine = write(tmp_path / "r.yaml", SMALL)
    out = tmp_path / "out" / "r.mp3"
    result = run_cli("build", str(routine), "-o", str(out), env={"PATH": tool_path(tmp_path, "espeak-ng")})
    assert_clean_failure(result, 2, "ffmpeg is not installed. Run ./scripts/setup, or install the Debian package ffmpeg")
    assert not out.exists()


def test_no_espeak_ng_names_the_package(tmp_path):
    routine = write(tmp_path / "r.yaml", SMALL)
    result = run_cli("script", str(routine), env={"PATH": tool_path(tmp_path, "ffmpeg")})
    assert_clean_failure(result, 2, "espeak-ng is not installed. Run ./scripts/setup, or install the Debian "
                                    "package espeak-ng")


def test_no_festival_voice_names_the_package(monkeypatch, capsys, tmp_path):
    from windown import cli
    from windown.speech import festival

    monkeypatch.setattr(festival, "voice_dir", lambda voice: None)
    routine = write(tmp_path / "r.yaml", SMALL.replace("espeak-ng", "festival"))
    monkeypatch.setattr(sys, "argv", ["windown", "script", str(routine)])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == ("the festival voice cmu_us_slt_arctic_hts is not installed. Run "
                                               "./scripts/setup, or install the Debian package festvox-us-slt-hts")


def test_no_festival_program(tmp_path):
    routine = write(tmp_path / "r.yaml", SMALL.replace("espeak-ng", "festival"))
    result = run_cli("script", str(routine), env={"PATH": tool_path(tmp_path, "ffmpeg", "espeak-ng")})
    assert_clean_failure(result, 2, "festival is not installed. Run ./scripts/setup, or install the Debian packages "
                                    "festival and festvox-us-slt-hts")


@pytest.mark.skipif(os.geteuid() == 0 and not shutil.which("setpriv"), reason="needs a non-root user")
def test_an_unwritable_output_folder():
    import tempfile

    tmp_path = Path(tempfile.mkdtemp(prefix="windown-perm-"))  # pytest's own folders are private to root
    routine = write(tmp_path / "r.yaml", SMALL)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    tmp_path.chmod(0o777)
    routine.chmod(0o644)
    cmd = [sys.executable, "-m", "windown", "build", str(routine), "-o", str(locked / "r.mp3")]
    if os.geteuid() == 0:  # root may write anywhere: drop to nobody for a real permission fault
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + cmd
    env = {**os.environ, "WINDOWN_CACHE_DIR": str(tmp_path / "cache"), "HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data")}
    (tmp_path / "cache").mkdir(mode=0o777)
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    finally:
        locked.chmod(0o755)
    shutil.rmtree(tmp_path, ignore_errors=True)
    assert_clean_failure(result, 2, f"{locked}: the output folder is not writable. Choose another place with -o, "
                                    "or fix its permissions")


@pytest.mark.slow
def test_a_full_disk_keeps_the_old_track_and_leaves_nothing(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        old = disk / "r.mp3"
        old.write_bytes(b"x" * 1000)
        routine = write(tmp_path / "r.yaml", SMALL)
        result = run_cli("build", str(routine), "-o", str(old))
        assert_clean_failure(result, 1, f"the disk is full while writing {old}. Free some space or choose another "
                                        "output folder with -o")
        assert old.read_bytes() == b"x" * 1000
        assert sorted(p.name for p in disk.iterdir()) == ["r.mp3"]
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def worker_processes(proc) -> dict:
    return {k: v for k, v in descendants(proc.pid).items() if "windown.speech.pyttsx3_worker" in v}


@pytest.mark.slow
@pytest.mark.parametrize("signum, code, moment", [(signal.SIGINT, 130, "speaking"), (signal.SIGTERM, 143, "speaking"),
                                                  (signal.SIGINT, 130, "cached")])
def test_interrupting_synthesis_leaves_the_cache_valid(tmp_path, signum, code, moment):
    """Stop a cold build while its pyttsx3 workers speak, or once the clips are being cached: no output,
    no temp files, no broken clips, no worker left running."""
    cache = tmp_path / "cache"
    temp = tmp_path / "tmp"
    temp.mkdir()
    lines = "".join(f"  - say: Phrase {i}, breathe in, and breathe out very slowly.\n" for i in range(60))
    # a long tail keeps the build busy long after its clips are cached, so the signal lands during the build
    routine = write(tmp_path / "r.yaml", "title: Many words\nvoice: {engine: pyttsx3}\ntail: 30m\nsteps:\n" + lines)
    out = tmp_path / "out" / "r.mp3"
    env = {**os.environ, "WINDOWN_CACHE_DIR": str(cache), "TMPDIR": str(temp)}
    proc = start_windown("build", str(routine), "-o", str(out), env=env, start_new_session=True)
    workers: dict = {}
    while not workers:  # the synthesis workers this build started, by process id
        assert proc.poll() is None, proc.communicate()
        workers = worker_processes(proc)
        time.sleep(0.02)
    if moment == "cached":  # every phrase is spoken; the clips are being written to the cache
        while not list((cache / "clips").rglob("*.npy")):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert not out.exists()
    assert not list(tmp_path.rglob("*.part"))
    assert [p for p in temp.iterdir() if p.name.startswith("windown-")] == []  # its temp folders went too
    for clip in (cache / "clips").rglob("*"):
        if clip.is_file():
            assert clip.suffix == ".npy", clip
            assert np.load(clip).dtype == np.float32
    assert still_running(workers) == [], "a pyttsx3 worker outlived the build"


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupting_piper_synthesis_stops_its_workers(tmp_path, signum, code):
    """Stop a cold build while piper's workers are speaking: no output, no temp files, no worker left."""
    cache = tmp_path / "cache"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    lines = "".join(f"  - say: Phrase {i}, breathe in, and breathe out very slowly.\n" for i in range(60))
    routine = write(tmp_path / "r.yaml", "title: Many words\nvoice: {engine: piper}\nsteps:\n" + lines)
    out = tmp_path / "out" / "r.mp3"
    env = {**os.environ, "WINDOWN_CACHE_DIR": str(cache), "TMPDIR": str(scratch)}
    proc = start_windown("build", str(routine), "-o", str(out), env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(scratch.rglob("piper-*.wav")):  # the workers are speaking
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert not out.exists()
    # ONNX Runtime itself keeps one small `.ses` file (its telemetry session id) in the temp folder
    assert [p.name for p in scratch.iterdir() if p.name != ".ses"] == [], "the build left temporary files"
    assert not list((cache / "clips").rglob("*.npy"))  # nothing half-made reached the cache
    deadline = time.monotonic() + 10  # workers finish the phrase they are on, then exit
    while time.monotonic() < deadline:
        listing = subprocess.run(["ps", "-o", "stat=,args=", "-s", str(proc.pid)], capture_output=True, text=True)
        left = [line for line in listing.stdout.splitlines() if not line.strip().startswith("Z")]  # zombies: gone
        if not left:
            break
        time.sleep(0.2)
    assert not left, f"processes outlived the build: {left}"


@pytest.mark.slow
def test_two_builds_share_a_folder_and_a_cold_cache(tmp_path):
    cache = tmp_path / "cache"
    folder = tmp_path / "out"
    first = write(tmp_path / "first.yaml", SMALL)
    second = write(tmp_path / "second.yaml", SMALL.replace("supine-twist", "knee-to-chest").replace("Small", "Other"))
    env = {**os.environ, "WINDOWN_CACHE_DIR": str(cache)}
    procs = [subprocess.Popen([sys.executable, "-m", "windown", "build", str(r), "-o", str(folder / f"{r.stem}.mp3")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in (first, second)]
    for proc in procs:
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
    for name, title in (("first", "Small"), ("second", "Other")):
        sheet = json.loads((folder / f"{name}.json").read_text())
        assert sheet["title"] == title
        audio = decode(folder / f"{name}.mp3")
        assert abs(len(audio) / 44100 - sheet["duration_s"]) < 0.05
        assert np.abs(audio).max() > 0.1
    assert not list(folder.glob("*.part")) and not list(cache.rglob("*.part"))


def test_crafted_names_cannot_leave_the_output_folder():
    for name in ("../../etc/passwd", "..", "/abs/path", "a/../../b", "...", "", "nul\0byte"):
        safe = pipeline.safe_name(name)
        assert "/" not in safe and safe not in ("", ".", "..") and "\0" not in safe


def test_the_default_output_is_inside_output(tmp_path):
    routine = write(tmp_path / "..weird name!.yaml", SMALL)
    from windown import routine as routine_mod

    out = pipeline.default_output(routine_mod.load(str(routine)))
    assert out.parent == Path("output") and out.name == "weird-name.mp3"


# --- a bug in windown -------------------------------------------------------------------------------

BUG_LINE = re.compile(r"windown hit a bug: (?P<summary>.+)\. The full traceback is in (?P<path>\S+); "
                      r"please report it\.")


def run_with_a_bug(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`windown ARGS` in a real process whose preset list is broken, as a bug would break it."""
    code = ("import windown.library as lib\n"
            "lib.preset_names = lambda: None  # a bug: not a list\n"
            "from windown.cli import main\n"
            "main()\n")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, **(env or {})})


def test_a_bug_is_one_line_exit_3_and_a_saved_traceback(tmp_path):
    cache = tmp_path / "cache"
    result = run_with_a_bug(tmp_path, "presets", env={"WINDOWN_CACHE_DIR": str(cache)})
    assert result.returncode == 3, result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    match = BUG_LINE.fullmatch(line)
    assert match, line
    assert match["summary"] == "TypeError: 'NoneType' object is not iterable"
    saved = Path(match["path"])
    assert saved.parent == cache / "bugs"
    report = saved.read_text()
    assert "command: -c presets" in report
    assert "Traceback (most recent call last):" in report
    assert "in presets" in report and report.rstrip().endswith("TypeError: 'NoneType' object is not iterable")
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]  # no temporary file left beside it


def test_a_bug_whose_traceback_cannot_be_saved_still_says_so_in_one_line(tmp_path):
    blocked = write(tmp_path / "not-a-folder", "")
    result = run_with_a_bug(tmp_path, "presets", env={"WINDOWN_CACHE_DIR": str(blocked)})
    assert result.returncode == 3
    assert result.stderr == ("windown hit a bug: TypeError: 'NoneType' object is not iterable. Its traceback could "
                             "not be saved; please report it with the command you ran.\n")


def test_bad_input_is_still_exit_2_and_not_a_bug(tmp_path):
    result = run_with_a_bug(tmp_path, "build", "missing.yaml")
    assert result.returncode == 2
    assert "hit a bug" not in result.stderr
