"""Batch builds: the batch file, fingerprints, the playlist, and real parallel, incremental and Dask builds."""

from __future__ import annotations

import json
import os
import wave
from pathlib import Path

import numpy as np
import pytest

from conftest import decode, run_cli, write
from windown import __version__, batch, pipeline
from windown import shelf as shelf_mod
from windown.errors import RoutineError

SR = 44100

# A short routine: about a minute of audio, built in a second or two with espeak-ng.
SHORT = """\
title: {title}
voice: {{engine: espeak-ng, rate: 170}}
safety: false
ambient: none
tail: 5s
seed: 7
steps:
  - say: {words}
  - stretch: knee-to-chest
    hold: 5s
    reps: 1
    sides: none
"""


def routine_file(folder: Path, name: str, title: str = "Short", words: str = "Welcome. Let's begin.") -> Path:
    return write(folder / f"{name}.yaml", SHORT.format(title=title, words=words))


def table(stdout: str) -> dict[str, tuple[str, str]]:
    """The summary table as {output file name: (status, detail)}."""
    rows = {}
    for line in stdout.splitlines():
        parts = line.split(None, 3)
        if parts and parts[0] in ("built", "skipped", "failed"):
            rows[Path(parts[1]).name] = (parts[0], parts[3] if len(parts) > 3 else "")
    return rows


# --- the batch file ---------------------------------------------------------------------------------

def test_a_batch_file_is_a_list_of_jobs_with_paths_relative_to_it(tmp_path):
    folder = tmp_path / "jobs"
    folder.mkdir()
    routine_file(folder, "evening")
    write(folder / "anna.yaml", "pace: slow\n")
    path = write(folder / "shelf.yaml", """\
- bedtime-lower-back
- routine: evening.yaml
  output: evening-anna
  profile: anna.yaml
  length: 15m
  ambient: rain
  voice: {rate: 150}
  tail: 20s
- routine: evening.yaml
  name: Sam
  bitrate: 96
  mono: true
""")
    jobs = batch.read_batch_file(path, tmp_path / "out")
    assert [j.routine for j in jobs] == ["bedtime-lower-back", str(folder / "evening.yaml"),
                                         str(folder / "evening.yaml")]
    assert [j.output for j in jobs] == [tmp_path / "out" / "bedtime-lower-back.mp3",
                                        tmp_path / "out" / "evening-anna.mp3", tmp_path / "out" / "evening-Sam.mp3"]
    assert jobs[0].overrides == {} and jobs[0].profile is None
    assert jobs[1].profile == str(folder / "anna.yaml")
    assert jobs[1].overrides == {"length": 900_000, "ambient.sound": "rain", "voice.rate": 150,
                                 "tail": 20_000}
    assert jobs[2].overrides == {"name": "Sam"}
    assert (jobs[2].bitrate_kbps, jobs[2].mono, jobs[2].loudness_lufs) == (96, True, -18.0)


def test_defaults_apply_to_every_job_and_a_jobs_own_keys_win(tmp_path):
    routine_file(tmp_path, "a")
    path = write(tmp_path / "shelf.yaml", """\
defaults:
  voice: {engine: espeak-ng}
  pace: slow
  loudness: -20
jobs:
  - a.yaml
  - routine: a.yaml
    output: brisk
    pace: brisk
    voice: {voice: en-gb}
""")
    jobs = batch.read_batch_file(path, tmp_path, overrides={"tail": 5000, "pace": "medium"}, quality=2)
    assert jobs[0].overrides == {"tail": 5000, "pace": "slow", "voice.engine": "espeak-ng"}
    assert jobs[1].overrides == {"tail": 5000, "pace": "brisk", "voice.engine": "espeak-ng",
                                 "voice.voice": "en-gb"}
    assert [(j.loudness_lufs, j.quality) for j in jobs] == [(-20.0, 2), (-20.0, 2)]


def test_an_ambient_file_in_a_batch_file_is_relative_to_it(tmp_path):
    routine_file(tmp_path, "a")
    (tmp_path / "sounds").mkdir()
    path = write(tmp_path / "shelf.yaml", "- routine: a.yaml\n  ambient: sounds/waves.wav\n")
    [job] = batch.read_batch_file(path, tmp_path)
    assert job.overrides == {"ambient.sound": str(tmp_path / "sounds" / "waves.wav")}


@pytest.mark.parametrize("text, message", [
    ("- routine: a.yaml\n  pase: slow\n", "shelf.yaml:2: unknown key 'pase' in a job. Did you mean 'pace'?"),
    ("- routine: a.yaml\n  pace: fast\n", "shelf.yaml:2: 'pace' cannot be 'fast'. Choose one of: slow, medium, brisk"),
    ("- a.yaml\n- routine: nope.yaml\n",
     "shelf.yaml:2: no routine file 'nope.yaml'. Check the path; it is relative to the batch file"),
    ("- bedtime-lower-bak\n", "shelf.yaml:1: no routine file or preset named 'bedtime-lower-bak'. "
                              "Did you mean 'bedtime-lower-back'? Run `windown presets` to list the presets"),
    ("- routine: a.yaml\n  bitrate: 96\n  quality: 2\n",
     "shelf.yaml:3: a job sets both 'bitrate' and 'quality'. Choose one of them"),
    ("- output: x\n", "shelf.yaml:1: a job needs a 'routine'. Add e.g. `routine: bedtime-lower-back`"),
    ("- [a.yaml]\n", "shelf.yaml:1: a job must be a routine name or a mapping, not a list. "
                     "Write e.g. `- routine: gentle` and its settings below it"),
    ("- routine: a.yaml\n  profile: missing.yaml\n",
     "shelf.yaml:2: no profile file 'missing.yaml'. Check the path; it is relative to the batch file"),
    ("- routine: a.yaml\n  output: night.wav\n",
     "shelf.yaml:2: windown writes MP3 files, not .wav. Name it night.mp3, or leave the extension off and .mp3 "
     "is added"),
])
def test_a_bad_job_carries_its_line_and_fix_and_the_others_stay(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    routine_file(tmp_path, "a")
    write(tmp_path / "shelf.yaml", text + "- routine: a.yaml\n  output: fine\n")
    jobs = batch.read_batch_file("shelf.yaml", "out")
    assert [j.problem for j in jobs if j.problem] == [message]
    assert jobs[-1] == batch.Job("a.yaml", Path("out/fine.mp3"))


@pytest.mark.parametrize("text, message", [
    ("jobs: a.yaml\n", "shelf.yaml:1: 'jobs' must be a list, not 'a.yaml'. Write each job on its own line "
                       "starting with '- '"),
    ("defaults: {pace: slow}\n", "shelf.yaml:1: the batch file needs 'jobs'. Add a list of jobs, "
                                 "e.g. `jobs: [gentle, in-bed]`"),
    ("defaults: {pase: slow}\njobs: [a.yaml]\n", "shelf.yaml:1: unknown key 'pase' in 'defaults'. Did you mean 'pace'?"),
    ("[]\n", "shelf.yaml:1: the batch file has no jobs. Add at least one, e.g. `- routine: gentle`"),
    ("", "shelf.yaml:1: the batch file is empty. List the jobs, e.g. `- routine: bedtime-lower-back`"),
])
def test_a_file_that_is_no_batch_file_stops_everything(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    routine_file(tmp_path, "a")
    write(tmp_path / "shelf.yaml", text)
    with pytest.raises(RoutineError) as err:
        batch.read_batch_file("shelf.yaml", "out")
    assert str(err.value) == message


def test_one_bad_job_fails_alone_and_the_others_build(tmp_path):
    """Issue 13, defect 8: a job naming a missing routine used to stop the whole batch (exit 2)."""
    routine_file(tmp_path, "a")
    write(tmp_path / "shelf.yaml", "- routine: a.yaml\n  output: first\n- routine: nope.yaml\n"
                                   "- routine: a.yaml\n  output: second.wav\n")
    result = run_cli("batch", "shelf.yaml", "-o", "out", "--no-journal", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    rows = table(result.stdout)
    assert rows["first.mp3"][0] == "built"
    assert rows["nope.mp3"] == ("failed", "shelf.yaml:3: no routine file 'nope.yaml'. Check the path; it is "
                                          "relative to the batch file")
    assert rows["second.mp3"] == ("failed", "shelf.yaml:5: windown writes MP3 files, not .wav. Name it second.mp3, "
                                            "or leave the extension off and .mp3 is added")
    assert result.stdout.splitlines()[-1] == "3 tracks: 1 built, 0 skipped, 2 failed; playlist out/playlist.m3u"
    assert result.stderr.splitlines()[-1] == "2 of 3 jobs failed. Their reasons are in the table above"
    assert sorted(p.name for p in (tmp_path / "out").glob("*.mp3")) == ["first.mp3"]
    assert len(decode(tmp_path / "out" / "first.mp3")) > SR
    whole = run_cli("batch", write(tmp_path / "broken.yaml", "jobs: a.yaml\n").name, "-o", "out", "--no-journal",
                    cwd=tmp_path)
    assert whole.returncode == 2
    assert whole.stderr == ("broken.yaml:1: 'jobs' must be a list, not 'a.yaml'. Write each job on its own line "
                            "starting with '- '\n")


def test_a_job_s_warnings_are_said_as_build_says_them_and_change_nothing(tmp_path):
    routine_file(tmp_path, "a")  # its 5s hold on knee to chest is legal, but far below the safe range
    write(tmp_path / "shelf.yaml", "- routine: a.yaml\n")
    result = run_cli("batch", "shelf.yaml", "-o", "out", "--no-journal", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    built = run_cli("build", "a.yaml", "-o", "one.mp3", "--no-journal", cwd=tmp_path)
    warning = [line for line in built.stderr.splitlines() if ": warning: " in line]
    assert len(warning) == 1 and warning[0].startswith("a.yaml:10: warning: a 5s hold is too short"), built.stderr
    said = [line for line in result.stderr.splitlines() if ": warning: " in line]
    assert said == warning, result.stderr
    assert table(result.stdout)["a.mp3"][0] == "built"
    quiet = run_cli("-q", "batch", "shelf.yaml", "-o", "out", "--no-journal", "--force", cwd=tmp_path)
    assert quiet.returncode == 0 and ": warning: " not in quiet.stderr


def test_output_names_never_leave_the_output_folder(tmp_path):
    assert batch.output_path(tmp_path, "gentle", output="../../etc/passwd") == tmp_path / "etc-passwd.mp3"
    assert batch.output_path(tmp_path, "gentle", output="Night one.mp3") == tmp_path / "Night-one.mp3"
    assert batch.output_path(tmp_path, "routines/evening.yaml", name="Ann/../x") == tmp_path / "evening-Ann-..-x.mp3"
    assert batch.output_path(tmp_path, "gentle", output="..") == tmp_path / "track.mp3"


def test_the_batch_file_and_routine_files_are_told_apart(tmp_path):
    routine_file(tmp_path, "a")
    assert not batch.is_batch_file(str(tmp_path / "a.yaml"))
    assert batch.is_batch_file(str(write(tmp_path / "list.yaml", "- a.yaml\n")))
    assert batch.is_batch_file(str(write(tmp_path / "map.yaml", "jobs: [a.yaml]\n")))
    assert not batch.is_batch_file("bedtime-lower-back")


# --- fingerprints -----------------------------------------------------------------------------------

def test_the_fingerprint_follows_every_input_and_nothing_else(tmp_path):
    path = routine_file(tmp_path, "a")
    profile = write(tmp_path / "profile.yaml", "pace: slow\n")
    job = batch.Job(str(path), tmp_path / "a.mp3", profile=str(profile), overrides={"tail": 5000})
    first = batch.fingerprint(job)
    assert len(first) == 64 and batch.fingerprint(job) == first
    os.utime(path, (1, 1))  # a touched file with the same bytes is the same input
    assert batch.fingerprint(job) == first
    path.write_text(path.read_text() + "  - pause: 1s\n")
    second = batch.fingerprint(job)
    profile.write_text("pace: brisk\n")
    third = batch.fingerprint(job)
    seen = {first, second, third}
    assert len(seen) == 3
    for other in (batch.Job(str(path), job.output, str(profile), {"tail": 6000}),
                  batch.Job(str(path), job.output, str(profile), {"tail": 5000}, bitrate_kbps=96),
                  batch.Job(str(path), job.output, str(profile), {"tail": 5000}, loudness_lufs=-16),
                  batch.Job(str(path), job.output, str(profile), {"tail": 5000, "voice.voice": "en-gb"}),
                  batch.Job(str(path), job.output, None, {"tail": 5000})):
        assert batch.fingerprint(other) not in seen, other
        seen.add(batch.fingerprint(other))
    assert batch.fingerprint(batch.Job(str(path), tmp_path / "elsewhere.mp3", str(profile), {"tail": 5000})) \
        == third  # where the track goes is not an input


def test_the_fingerprint_records_engine_voice_and_version(tmp_path):
    job = batch.Job(str(routine_file(tmp_path, "a")), tmp_path / "a.mp3", overrides={"voice.voice": "en-gb"})
    inputs = batch.prepare(job).inputs
    assert inputs["engine"] == "espeak-ng" and inputs["voice"] == "en-gb" and inputs["windown"] == __version__
    assert "espeak" in inputs["engine_version"].lower()


def test_an_ambient_files_bytes_are_an_input(tmp_path):
    sound = tmp_path / "waves.wav"
    sound.write_bytes(b"one")
    job = batch.Job(str(routine_file(tmp_path, "a")), tmp_path / "a.mp3", overrides={"ambient.sound": str(sound)})
    first = batch.fingerprint(job)
    sound.write_bytes(b"two")
    assert batch.fingerprint(job) != first


def test_a_track_is_current_only_with_all_its_files_and_a_matching_fingerprint(tmp_path):
    job = batch.Job(str(routine_file(tmp_path, "a")), tmp_path / "out" / "a.mp3")
    job.output.parent.mkdir()
    prepared = batch.prepare(job)
    assert batch.stale_reason(job, prepared) == "new"
    files = {".mp3": b"mp3", **{s: s.encode() for s in batch.SIDECARS}}
    batch.write_track(job, files, prepared.inputs)
    assert batch.stale_reason(job, prepared) is None
    record = json.loads((tmp_path / "out" / "a.fingerprint").read_text())
    assert record["fingerprint"] == prepared.fingerprint and record["inputs"] == prepared.inputs
    job.output.with_suffix(".srt").unlink()
    assert batch.stale_reason(job, prepared) == "a sidecar is missing"
    batch.write_track(job, files, prepared.inputs)
    job.output.write_bytes(b"another mp3")
    assert batch.stale_reason(job, prepared) == "the MP3 was replaced since its fingerprint was written"
    batch.write_track(job, files, prepared.inputs)
    batch.write_track(job, files, {**prepared.inputs, "engine_version": "older", "routine": "older"})
    assert batch.stale_reason(job, prepared) == "changed: routine, engine_version"
    (tmp_path / "out" / "a.fingerprint").write_text("{not json")
    assert batch.stale_reason(job, prepared) == "unreadable fingerprint"
    (tmp_path / "out" / "a.fingerprint").unlink()
    assert batch.stale_reason(job, prepared) == "no fingerprint (built outside a batch)"
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


class Recording:
    """An executor that builds nothing and records what it was given."""

    def __init__(self, remote: bool = False):
        self.remote = remote
        self.tasks: list[batch.Task] = []

    def run(self, tasks, finish):
        self.tasks += tasks


class InProcess:
    """An executor that builds each task here, in this process, one after another."""

    remote = False

    def run(self, tasks, finish):
        for task in tasks:
            finish(task, batch.build_task(task))


def test_current_tracks_are_skipped_without_building_anything(tmp_path, monkeypatch):
    jobs = [batch.Job(str(routine_file(tmp_path, f"r{i}")), tmp_path / f"r{i}.mp3") for i in range(20)]
    for job in jobs:
        batch.write_track(job, {".mp3": b"mp3", ".json": b'{"title": "T", "duration_s": 61.5}',
                                **{s: b"" for s in batch.SIDECARS if s != ".json"}}, batch.prepare(job).inputs)
    events = []
    executor = Recording()
    outcomes = batch.run(jobs, on_event=lambda kind, job, detail: events.append((kind, job.label)), executor=executor)
    assert [(o.status, o.title, o.duration_s) for o in outcomes] == [("skipped", "T", 61.5)] * 20
    assert [e for e in events if e[0] != "warning"] == [("skipped", f"r{i}") for i in range(20)]
    assert executor.tasks == []  # no build was even handed to a worker
    (tmp_path / "r3.yaml").write_text((tmp_path / "r3.yaml").read_text().replace("seed: 7", "seed: 8"))
    batch.run(jobs, executor=executor)
    assert [task.stem for task in executor.tasks] == ["r3"]  # the one changed job, and only it


# --- the playlist -----------------------------------------------------------------------------------

def fake_track(folder: Path, stem: str, title: str, duration_s: float) -> None:
    (folder / f"{stem}.mp3").write_bytes(b"")
    (folder / f"{stem}.json").write_text(json.dumps({"title": title, "duration_s": duration_s}))


def test_the_playlist_lists_the_shelf_with_durations_titles_and_relative_paths(tmp_path):
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    fake_track(shelf, "b-night", "Night,  with rain", 600.4)
    fake_track(shelf, "a-gentle", "Gentle", 1712.6)
    (shelf / "stray.mp3").write_bytes(b"")  # not a windown track: no cue sheet
    path = shelf_mod.write_playlist(shelf)
    assert path == shelf / "playlist.m3u"
    assert path.read_text() == ("#EXTM3U\n#EXTINF:1713,Gentle\na-gentle.mp3\n"
                                "#EXTINF:600,Night, with rain\nb-night.mp3\n")
    elsewhere = shelf_mod.write_playlist(shelf, tmp_path / "lists" / "all.m3u")
    assert elsewhere.read_text().splitlines()[2] == "../shelf/a-gentle.mp3"
    assert not [p for p in shelf.iterdir() if p.name.endswith(".part")]


def test_an_unchanged_playlist_is_not_rewritten(tmp_path):
    fake_track(tmp_path, "a", "A", 60)
    path = shelf_mod.write_playlist(tmp_path)
    os.utime(path, (1, 1))
    shelf_mod.write_playlist(tmp_path)
    assert path.stat().st_mtime == 1


# --- jobs that fail before any build ----------------------------------------------------------------

def test_two_jobs_writing_one_file_fail_the_second_one(tmp_path):
    bad = write(tmp_path / "bad.yaml", "title: Bad\nsteps:\n  - stretch: nope\n")
    jobs = [batch.Job(str(bad), tmp_path / "x.mp3"), batch.Job(str(bad), tmp_path / "x.mp3")]
    outcomes = batch.run(jobs)
    assert [o.status for o in outcomes] == ["failed", "failed"]
    assert outcomes[0].reason.startswith(f"{bad}:3: unknown stretch 'nope'")
    assert outcomes[1].reason == f"{tmp_path / 'x.mp3'}: another job writes this file too. " \
                                 "Give one of them an `output:` name"


BUG = "windown hit a bug: TypeError: unsupported operand. The full traceback is in {}; please report it."


def broken_build(*args, **kwargs):
    raise TypeError("unsupported operand")


def test_a_bug_in_a_job_is_reported_as_a_bug_with_its_traceback_saved(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "build", broken_build)
    monkeypatch.setenv("WINDOWN_CACHE_DIR", str(tmp_path / "cache"))
    jobs = [batch.Job(str(routine_file(tmp_path, "a")), tmp_path / "out" / "a.mp3"),
            batch.Job(str(write(tmp_path / "bad.yaml", "title: Bad\nsteps: []\n")), tmp_path / "out" / "bad.mp3")]
    jobs[0].output.parent.mkdir()
    [bug, bad] = batch.run(jobs, executor=InProcess())
    [saved] = (tmp_path / "cache" / "bugs").iterdir()
    assert (bug.status, bug.bug, bug.reason) == ("failed", True, BUG.format(saved))
    assert (bad.status, bad.bug) == ("failed", False) and "hit a bug" not in bad.reason
    report = saved.read_text()
    assert f"batch job: {jobs[0].routine} -> {jobs[0].output}" in report
    assert "in build_task" in report and report.rstrip().endswith("TypeError: unsupported operand")
    assert type(batch.failure([bug, bad])).__name__ == "JobsHitABug" and batch.failure([bug, bad]).exit_code == 3
    assert batch.failure([bad]).exit_code == 1 and batch.failure([]) is None
    assert not list(jobs[0].output.parent.iterdir())


def test_a_bug_in_a_worker_process_ends_the_batch_with_exit_3(tmp_path):
    """A real `windown batch` whose worker processes have a broken build (a shim loaded at start-up)."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text("import windown.pipeline\n\n\n"
                                           "def build(*args, **kwargs):\n"
                                           "    raise TypeError('unsupported operand')\n\n\n"
                                           "windown.pipeline.build = build\n")
    routine_file(tmp_path, "a")
    cache = tmp_path / "cache"
    result = run_cli("batch", "a.yaml", "-o", "out", cwd=tmp_path,
                     env={"PYTHONPATH": str(shim), "WINDOWN_CACHE_DIR": str(cache)})
    assert result.returncode == 3, result.stderr
    [saved] = (cache / "bugs").iterdir()
    assert table(result.stdout) == {"a.mp3": ("failed", BUG.format(saved))}
    assert [line for line in result.stderr.splitlines() if ": warning: " not in line] == [
        f"[1/1] failed {Path('out') / 'a.mp3'}: {BUG.format(saved)}",
        "1 of 1 job failed. Their reasons are in the table above"]
    assert "Traceback" not in result.stderr
    report = saved.read_text()
    assert "batch job: a.yaml -> out/a.mp3" in report and "in build_task" in report


def test_scheduler_needs_dask(tmp_path):
    shim = tmp_path / "shim" / "distributed"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('No module named distributed')\n")
    routine_file(tmp_path, "a")
    result = run_cli("batch", "a.yaml", "--scheduler", "tcp://127.0.0.1:8786", cwd=tmp_path,
                     env={"PYTHONPATH": str(tmp_path / "shim")})
    assert result.returncode == 2
    assert result.stderr == "--scheduler needs Dask distributed, which is not installed. " \
                            "Install it with: pip install 'windown[dask]'\n"
    assert not (tmp_path / "output").exists() or not list((tmp_path / "output").glob("*.mp3"))


# --- real builds ------------------------------------------------------------------------------------

def assert_real_track(mp3: Path) -> None:
    sheet = json.loads(mp3.with_suffix(".json").read_text())
    audio = decode(mp3)
    assert abs(len(audio) / SR - sheet["duration_s"]) < 0.05
    assert np.sqrt(np.mean(audio ** 2)) > 1e-3  # speech, not silence
    for suffix in (".vtt", ".srt", ".lrc", ".fingerprint"):
        assert mp3.with_suffix(suffix).is_file(), suffix


@pytest.mark.slow
def test_parallel_builds_share_a_cold_cache(tmp_path):
    """Three builds at once synthesise the same phrases into one empty cache: nothing is corrupted."""
    cache = tmp_path / "cache"
    for name in ("a", "b", "c"):
        routine_file(tmp_path, name, title=f"Track {name}")
    result = run_cli("batch", "a.yaml", "b.yaml", "c.yaml", "-j", "3", "-o", "shelf", cwd=tmp_path,
                     env={"WINDOWN_CACHE_DIR": str(cache)})
    assert result.returncode == 0, result.stderr
    assert {k: v[0] for k, v in table(result.stdout).items()} == {"a.mp3": "built", "b.mp3": "built", "c.mp3": "built"}
    assert result.stdout.splitlines()[-1] == "3 tracks: 3 built, 0 skipped, 0 failed; playlist shelf/playlist.m3u"
    for name in "abc":
        assert_real_track(tmp_path / "shelf" / f"{name}.mp3")
    clips = list((cache / "clips").rglob("*"))
    assert [p for p in clips if p.suffix == ".npy"], "the cache is empty"
    assert not [p for p in clips if p.name.endswith(".part")]
    for path in clips:
        if path.suffix == ".npy":
            clip = np.load(path)
            assert clip.dtype == np.float32 and len(clip) and np.isfinite(clip).all(), path
    assert (tmp_path / "shelf" / "playlist.m3u").read_text().splitlines() == [
        "#EXTM3U",
        *[line for n in "abc" for line in (
            f"#EXTINF:{round(json.loads((tmp_path / 'shelf' / f'{n}.json').read_text())['duration_s'])},Track {n}",
            f"{n}.mp3")]]
    assert not [p for p in (tmp_path / "shelf").iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_unchanged_jobs_are_skipped_and_changed_ones_rebuilt(tmp_path):
    routine_file(tmp_path, "a", title="A")
    routine_file(tmp_path, "b", title="B")
    shelf = write(tmp_path / "shelf.yaml", "- a.yaml\n- routine: b.yaml\n  pace: slow\n")
    first = run_cli("batch", "shelf.yaml", "-o", "out", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert {k: v[0] for k, v in table(first.stdout).items()} == {"a.mp3": "built", "b.mp3": "built"}
    built_a = (tmp_path / "out" / "a.mp3").stat().st_mtime_ns

    again = run_cli("batch", "shelf.yaml", "-o", "out", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert table(again.stdout) == {"a.mp3": ("skipped", "unchanged"), "b.mp3": ("skipped", "unchanged")}
    assert (tmp_path / "out" / "a.mp3").stat().st_mtime_ns == built_a

    # a skipped job costs no build: nothing reaches a worker
    jobs = batch.read_batch_file(tmp_path / "shelf.yaml", tmp_path / "out")
    executor = Recording()
    outcomes = batch.run(jobs, executor=executor)
    assert [o.status for o in outcomes] == ["skipped", "skipped"] and executor.tasks == []
    assert outcomes[0].title == "A" and outcomes[0].duration_s > 30

    os.utime(tmp_path / "a.yaml")  # touched, not changed
    routine_file(tmp_path, "b", title="B", words="Welcome back. Let's begin.")
    changed = run_cli("-v", "batch", "shelf.yaml", "-o", "out", cwd=tmp_path)
    assert changed.returncode == 0, changed.stderr
    assert {k: v[0] for k, v in table(changed.stdout).items()} == {"a.mp3": "skipped", "b.mp3": "built"}
    assert f"building {Path('out') / 'b.mp3'}: changed: routine" in changed.stderr
    assert "Welcome back" in (tmp_path / "out" / "b.vtt").read_text()

    shelf.write_text("- a.yaml\n- routine: b.yaml\n  pace: brisk\n")  # an override changed
    override = run_cli("-v", "batch", "shelf.yaml", "-o", "out", cwd=tmp_path)
    assert {k: v[0] for k, v in table(override.stdout).items()} == {"a.mp3": "skipped", "b.mp3": "built"}
    assert "changed: overrides" in override.stderr

    forced = run_cli("-q", "batch", "shelf.yaml", "-o", "out", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert {k: v[0] for k, v in table(forced.stdout).items()} == {"a.mp3": "built", "b.mp3": "built"}
    assert forced.stderr == ""  # -q: no progress
    assert (tmp_path / "out" / "a.mp3").stat().st_mtime_ns != built_a
    assert_real_track(tmp_path / "out" / "a.mp3")

    (tmp_path / "out" / "a.fingerprint").unlink()  # built by hand, or by an older windown
    lost = run_cli("-v", "batch", "shelf.yaml", "-o", "out", cwd=tmp_path)
    assert table(lost.stdout)["a.mp3"][0] == "built"
    assert "no fingerprint" in lost.stderr


@pytest.mark.slow
def test_a_failing_job_does_not_stop_the_others(tmp_path):
    routine_file(tmp_path, "good", title="Good")
    write(tmp_path / "broken.yaml", "title: Broken\nsteps:\n  - stretch: knee-to-chestt\n")
    write(tmp_path / "shelf.yaml", """\
- good.yaml
- broken.yaml
- routine: good.yaml
  output: mumbled
  voice: {voice: klingon}
- routine: good.yaml
  output: no-bed
  ambient: missing.wav
""")
    result = run_cli("batch", "shelf.yaml", "-o", "out", cwd=tmp_path)
    assert result.returncode == 1
    rows = table(result.stdout)
    assert rows["good.mp3"][0] == "built"
    assert rows["broken.mp3"] == ("failed", "broken.yaml:3: unknown stretch 'knee-to-chestt'. Did you mean "
                                            "'knee-to-chest' or 'knee-to-chest-easier'? Run `windown stretches` "
                                            "to list them")
    assert rows["mumbled.mp3"] == ("failed", "the espeak-ng engine has no voice 'klingon'. "
                                             "Run `windown voices --engine espeak-ng` to list them")
    assert rows["no-bed.mp3"][0] == "failed"
    assert rows["no-bed.mp3"][1].startswith("missing.wav: ambient file not found")
    assert result.stdout.splitlines()[-1] == "4 tracks: 1 built, 0 skipped, 3 failed; playlist out/playlist.m3u"
    assert result.stderr.splitlines()[-1] == "3 of 4 jobs failed. Their reasons are in the table above"
    assert "Traceback" not in result.stderr
    assert_real_track(tmp_path / "out" / "good.mp3")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "good.fingerprint", "good.json", "good.lrc", "good.mp3", "good.srt", "good.vtt", "playlist.m3u"]


def tone(path: Path, seconds: float = 3.0) -> Path:
    """A quiet 220 Hz tone as a 16-bit WAV: a stand-in for a user's own ambient file."""
    t = np.arange(int(seconds * SR)) / SR
    pcm = (0.1 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(SR)
        handle.writeframes(pcm.tobytes())
    return path


def tail_rms(mp3: Path) -> float:
    """The level of the first seconds after the last words."""
    sheet = json.loads(mp3.with_suffix(".json").read_text())
    audio = decode(mp3)
    start = int((sheet["speech_end_s"] + 0.5) * SR)
    return float(np.sqrt(np.mean(audio[start:start + 2 * SR] ** 2)))


@pytest.mark.slow
def test_a_batch_on_a_local_dask_cluster(tmp_path):
    """Real scheduler and worker processes on loopback; the workers have their own cache and temp folders,
    and the tracks come back as bytes written here."""
    distributed = pytest.importorskip("distributed")
    worker_cache = tmp_path / "worker-cache"
    client_cache = tmp_path / "client-cache"
    routine_file(tmp_path, "a", title="Remote A")
    routine_file(tmp_path, "b", title="Remote B", words="Hello from the cluster.")
    tone(tmp_path / "bed.wav")
    write(tmp_path / "shelf.yaml", "- a.yaml\n- b.yaml\n- routine: a.yaml\n  output: a-bed\n  ambient: bed.wav\n")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, env={"WINDOWN_CACHE_DIR": str(worker_cache)}) as cluster:
        result = run_cli("batch", "shelf.yaml", "-o", "out", "--scheduler", cluster.scheduler_address,
                         cwd=tmp_path, env={"WINDOWN_CACHE_DIR": str(client_cache)})
    assert result.returncode == 0, result.stderr
    assert {k: v[0] for k, v in table(result.stdout).items()} == {"a.mp3": "built", "b.mp3": "built",
                                                                  "a-bed.mp3": "built"}
    for name in ("a", "b", "a-bed"):
        assert_real_track(tmp_path / "out" / f"{name}.mp3")
    # the user's bed file travelled to the worker: it plays on in the tail, after the last words
    assert tail_rms(tmp_path / "out" / "a-bed.mp3") > 10 * tail_rms(tmp_path / "out" / "a.mp3")
    assert "Hello from the cluster" in (tmp_path / "out" / "b.vtt").read_text()
    assert list((worker_cache / "clips").rglob("*.npy")), "the workers synthesised"
    assert not (client_cache / "clips").exists(), "the client synthesised nothing"
    again = run_cli("batch", "shelf.yaml", "-o", "out", cwd=tmp_path)  # the same fingerprints, locally
    assert {v[0] for v in table(again.stdout).values()} == {"skipped"}


@pytest.mark.slow
def test_a_remote_task_needs_none_of_our_files(tmp_path):
    """What a Dask worker gets is enough on its own: the routine, profile and bed file may all be gone."""
    folder = tmp_path / "client"
    folder.mkdir()
    routine = routine_file(folder, "a", title="Travelling")
    profile = write(folder / "profile.yaml", "ambient: {sound: bed.wav, level: -10}\n")
    tone(folder / "bed.wav")
    job = batch.Job(str(routine), tmp_path / "a.mp3", profile=str(profile))
    remote = Recording(remote=True)
    batch.run([job], executor=remote)
    [task] = remote.tasks
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    answer = batch.build_task(task)
    assert answer["ok"], answer
    assert sorted(answer["files"]) == [".json", ".lrc", ".mp3", ".srt", ".vtt"]
    assert answer["title"] == "Travelling"
    for suffix, data in answer["files"].items():
        (tmp_path / f"a{suffix}").write_bytes(data)
    assert tail_rms(tmp_path / "a.mp3") > 1e-3  # the bed came along
