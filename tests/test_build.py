"""End to end: real espeak-ng, real ffmpeg, real decoded audio, real signals to a real process."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import decode, descendants, run_cli, start_windown, still_running, write
from windown import export

pytestmark = pytest.mark.slow
SR = 44100

SHORT = """\
title: Short evening
voice: {engine: espeak-ng, rate: 150}
bedtime: false
tail: 12s
steps:
  - say: Welcome. Let's begin gently.
  - stretch: knee-to-chest
    hold: 21s
    reps: 1
  - pause: 2s
  - breathe: 2
"""


@pytest.fixture(scope="module")
def quiet_build(tmp_path_factory, shared_cache):
    """One build with no bed, so every sound in the file is a cue (or a chime)."""
    folder = tmp_path_factory.mktemp("quiet")
    routine = write(folder / "short.yaml", SHORT)
    out = folder / "short.mp3"
    result = run_cli("build", str(routine), "-o", str(out), "--ambient", "none", "--seed", "5", "--no-safety",
                     env={"WINDOWN_CACHE_DIR": str(shared_cache)})
    assert result.returncode == 0, result.stderr
    return out, json.loads(out.with_suffix(".json").read_text()), result


def test_build_writes_the_mp3_and_every_sidecar(quiet_build):
    out, sheet, result = quiet_build
    for suffix in (".mp3", ".vtt", ".srt", ".lrc", ".json"):
        assert out.with_suffix(suffix).is_file(), suffix
    assert result.stdout.startswith(f"{out}: ")
    assert "LUFS" in result.stdout
    assert out.with_suffix(".vtt").read_text().startswith("WEBVTT")
    assert sheet["title"] == "Short evening"
    assert [c["title"] for c in sheet["chapters"]] == ["Welcome", "Knee to chest", "Breathing", "Sleep"]


def test_decoded_duration_matches_the_cue_sheet(quiet_build):
    out, sheet, _ = quiet_build
    audio = decode(out)
    assert abs(len(audio) / SR - sheet["duration_s"]) < 0.05
    assert sheet["duration_s"] - sheet["speech_end_s"] >= 12.0  # the tail follows the last words


def onset(audio: np.ndarray, near_s: float, threshold_db: float = -45.0) -> float:
    """The first moment after near_s - 0.2 s where the signal rises above the threshold."""
    start = max(0, int((near_s - 0.2) * SR))
    mono = np.abs(audio[start:start + SR, 0])
    above = np.nonzero(mono > 10 ** (threshold_db / 20))[0]
    return (start + above[0]) / SR if len(above) else float("inf")


def test_every_speech_onset_is_within_20_ms_of_its_cue(quiet_build):
    out, sheet, _ = quiet_build
    audio = decode(out)
    errors = [(c["text"], round(onset(audio, c["start_s"]) - c["start_s"], 4)) for c in sheet["cues"]]
    assert len(errors) >= 10
    late = [e for e in errors if abs(e[1]) > 0.020]
    assert not late, late
    # and the silence before each cue is real: nothing sounds in the 150 ms before it
    for cue in sheet["cues"][1:]:
        before = audio[int((cue["start_s"] - 0.15) * SR):int(cue["start_s"] * SR), 0]
        assert np.abs(before).max() < 10 ** (-50 / 20), cue["text"]


def test_ffprobe_lists_the_chapters(quiet_build):
    out, sheet, _ = quiet_build
    probed = export.probe(out)
    titles = [c[0] for c in probed["chapters"]]
    assert titles == [c["title"] for c in sheet["chapters"]]
    for (title, start_s, end_s), chapter in zip(probed["chapters"], sheet["chapters"]):
        assert abs(start_s - chapter["start_s"]) < 0.002 and abs(end_s - chapter["end_s"]) < 0.002
    with open(out, "rb") as handle:
        head = handle.read(10)
    assert head[:3] == b"ID3" and head[3] == 3  # ID3v2.3, the most widely read


def test_the_tail_fades_to_silence_and_the_last_second_is_silent(tmp_path, shared_cache):
    routine = write(tmp_path / "tail.yaml", SHORT.replace("tail: 12s", "tail: 20s"))
    out = tmp_path / "tail.mp3"
    result = run_cli("build", str(routine), "-o", str(out), "--ambient", "pink-noise", "--seed", "5",
                     env={"WINDOWN_CACHE_DIR": str(shared_cache)})
    assert result.returncode == 0, result.stderr
    sheet = json.loads(out.with_suffix(".json").read_text())
    audio = decode(out)
    speech_end = int(sheet["speech_end_s"] * SR)

    def rms_db(a, b):
        return 20 * np.log10(np.sqrt(np.mean(audio[a:b] ** 2)) + 1e-12)

    levels = [rms_db(speech_end + i * SR, speech_end + (i + 1) * SR) for i in range(1, 18)]
    assert levels[0] > -60  # the bed plays on after the last words
    assert all(b <= a + 0.5 for a, b in zip(levels[8:], levels[9:]))  # and only falls in the fade
    assert levels[-1] < levels[8] - 15
    assert np.abs(audio[-SR + 2048:]).max() < 10 ** (-70 / 20)  # the final second is silence (MP3 frame margin)


def test_loudness_and_true_peak_meet_the_target(tmp_path, shared_cache):
    routine = write(tmp_path / "loud.yaml", SHORT)
    out = tmp_path / "loud.mp3"
    result = run_cli("build", str(routine), "-o", str(out), "--ambient", "rain", "--seed", "5",
                     "--loudness", "-16", env={"WINDOWN_CACHE_DIR": str(shared_cache)})
    assert result.returncode == 0, result.stderr
    lufs, true_peak = export.measure_loudness(out)
    assert abs(lufs - (-16.0)) <= 1.0, lufs
    assert true_peak <= -1.5, true_peak


def _start_build(tmp_path, shared_cache, out):
    routine = write(tmp_path / "long.yaml", SHORT.replace("tail: 12s", "tail: 40m"))
    env = {**os.environ, "WINDOWN_CACHE_DIR": str(shared_cache)}
    return start_windown("build", str(routine), "-o", str(out), "--seed", "5", env=env)


def _wait_for_encoder(folder, proc) -> dict:
    """Until ffmpeg, started by this build, has written some MP3 frames; returns the build's helper
    processes. The 40-minute tail keeps it encoding long after."""
    while True:
        assert proc.poll() is None, proc.communicate()  # it ended before encoding anything
        helpers = descendants(proc.pid)
        encoding = any(Path(command.partition(" ")[0]).name == "ffmpeg" for command in helpers.values())
        if encoding and any(p.stat().st_size > 0 for p in folder.glob(".*.part")):
            return helpers
        time.sleep(0.05)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_build_leaves_no_file_and_keeps_the_old_one(tmp_path, shared_cache, signum, code):
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "track.mp3"
    out.write_bytes(b"last night's track")
    proc = _start_build(tmp_path, shared_cache, out)
    helpers = _wait_for_encoder(folder, proc)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert out.read_bytes() == b"last night's track"
    assert sorted(p.name for p in folder.iterdir()) == ["track.mp3"]
    assert still_running(helpers) == []  # no encoder left running on our behalf


def test_outputs_are_ordinary_files_not_private_temp_files(quiet_build):
    out, _, _ = quiet_build
    mask = os.umask(0)
    os.umask(mask)
    for suffix in (".mp3", ".json", ".vtt"):
        assert out.with_suffix(suffix).stat().st_mode & 0o777 == 0o666 & ~mask


def test_the_meter_only_reports_and_a_build_without_it_is_as_loud(tmp_path, shared_cache, monkeypatch):
    """Batch jobs skip the in-stream meter (their table shows no loudness); the track must not change."""
    from windown import pipeline, routine

    monkeypatch.setenv("WINDOWN_CACHE_DIR", str(shared_cache))
    r = routine.load(str(write(tmp_path / "m.yaml", SHORT)))
    measured = pipeline.build(r, tmp_path / "measured.mp3")
    unmeasured = pipeline.build(r, tmp_path / "unmeasured.mp3", measure=False)
    assert (unmeasured.loudness_lufs, unmeasured.peak_db) == (None, None)
    lufs, _ = export.measure_loudness(tmp_path / "unmeasured.mp3")
    assert abs(lufs - (-18.0)) <= 0.5
    assert abs(measured.loudness_lufs - lufs) <= 0.5  # the meter reads the mix ffmpeg then encodes
    assert np.array_equal(decode(tmp_path / "measured.mp3"), decode(tmp_path / "unmeasured.mp3"))


def test_quiet_build_prints_nothing_but_still_builds(tmp_path, shared_cache):
    routine = write(tmp_path / "q.yaml", SHORT)
    out = tmp_path / "q.mp3"
    result = run_cli("-q", "build", str(routine), "-o", str(out), "--seed", "5",
                     env={"WINDOWN_CACHE_DIR": str(shared_cache)})
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")
    assert out.stat().st_size > 10_000
