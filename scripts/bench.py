"""Benchmark: build time (cold and warm speech cache) against the encode floor, and peak memory.

The floor is ffmpeg alone encoding the very same audio with the same settings, so a ratio of 1.0
would mean windown's own work (speech, placing, rendering, metering) costs nothing on top.
Targets (issue 3): warm <= 1.15x the floor, cold <= 1.3x, peak memory < 200 MB at 60 minutes and
flat in track length. With the piper voice (issue 10): cold <= 1.8x, warm <= 1.10x, synthesis alone at
a real-time factor <= 0.05 on 2 cores, and peak memory of all processes together < 600 MB during
synthesis. Batch (issue 5): every preset with -j 1 and with -j = cores, speed-up >= 1.7x on
2 cores; a second run with nothing changed under 1 s per job. Run: ./scripts/bench [--quick] [--no-batch]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import shutil
import tempfile
import threading
import time
from pathlib import Path

CHILD = """
import resource, runpy, sys
sys.argv = ["windown"] + sys.argv[1:]
try:
    runpy.run_module("windown", run_name="__main__")
finally:
    print("MAXRSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def timed_build(args: list[str], cache: Path, command: str = "build") -> tuple[float, float, float]:
    """(wall seconds, peak RSS of the windown process in MB, peak RSS of it and all its child
    processes together in MB, sampled every 50 ms) for one `windown build` (or `script`)."""
    env = {**os.environ, "WINDOWN_CACHE_DIR": str(cache)}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, "-q", command, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    peak = [0.0]
    watcher = threading.Thread(target=_watch_tree, args=(proc, peak), daemon=True)
    watcher.start()
    _, stderr = proc.communicate()
    wall = time.perf_counter() - start
    watcher.join()
    if proc.returncode != 0:
        sys.exit(f"bench: {command} failed: {stderr.strip()}")
    rss_kb = next(int(line.split()[1]) for line in stderr.splitlines() if line.startswith("MAXRSS_KB"))
    return wall, rss_kb / 1024, peak[0]


def _watch_tree(proc: subprocess.Popen, peak: list[float]) -> None:
    """Sum the resident memory of a process and all its descendants until it exits; keep the peak."""
    page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20
    while proc.poll() is None:
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as handle:
                        parents[int(entry)] = int(handle.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
        tree, frontier = {proc.pid}, [proc.pid]
        while frontier:
            pid = frontier.pop()
            kids = [child for child, parent in parents.items() if parent == pid and child not in tree]
            tree.update(kids)
            frontier.extend(kids)
        total = 0.0
        for pid in tree:
            try:
                with open(f"/proc/{pid}/statm") as handle:
                    total += int(handle.read().split()[1]) * page_mb
            except (OSError, IndexError, ValueError):
                continue
        peak[0] = max(peak[0], total)
        time.sleep(0.05)


def speech_seconds(cache: Path) -> float:
    """Seconds of speech in every clip of a cache (float32 .npy files at 44.1 kHz)."""
    import numpy as np

    return sum(len(np.load(path, mmap_mode="r")) for path in (cache / "clips").rglob("*.npy")) / 44100


def encode_floor(mp3: Path, quality: str) -> float:
    """ffmpeg alone encoding the same audio (decoded from our MP3 to a WAV first, not timed)."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "track.wav"
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(mp3), "-c:a", "pcm_f32le", str(wav)], check=True)
        start = time.perf_counter()
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-c:a", "libmp3lame", "-q:a", quality,
                        "-id3v2_version", "3", str(Path(tmp) / "floor.mp3")], check=True)
        return time.perf_counter() - start


def timed_batch(args: list[str], cache: Path) -> float:
    env = {**os.environ, "WINDOWN_CACHE_DIR": str(cache)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "windown", "-q", "batch", *args], env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        sys.exit(f"bench: batch failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return time.perf_counter() - start


def duration_s(mp3: Path) -> float:
    return json.loads(mp3.with_suffix(".json").read_text())["duration_s"]


def row(label: str, seconds: float, floor: float, rss_mb: float | None = None) -> str:
    memory = f"{rss_mb:7.0f} MB" if rss_mb is not None else " " * 10
    return f"  {label:34s} {seconds:7.1f} s  {seconds / floor:5.2f}x floor  {memory}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="bedtime-lower-back")
    parser.add_argument("--engine", default=None, help="speech engine (default: the preset's)")
    parser.add_argument("--quick", action="store_true", help="use quick-wind-down and a 20-minute long track")
    parser.add_argument("--no-batch", action="store_true", help="skip the batch figures")
    opts = parser.parse_args()
    preset = "quick-wind-down" if opts.quick else opts.preset
    long_min = 20 if opts.quick else 60
    engine = ["--engine", opts.engine] if opts.engine else []
    with tempfile.TemporaryDirectory(prefix="windown-bench-") as tmp:
        tmp = Path(tmp)
        cache = tmp / "cache"
        out = tmp / "preset.mp3"
        base = [preset, "-o", str(out), "--seed", "1", *engine]
        cold, cold_rss, cold_tree = timed_build(base, cache)
        warm, warm_rss, _ = timed_build(base, cache)
        # synthesis alone: `windown script` (speak and place, no render) with every clip missing but the
        # voice already prepared (piper's patched model and rate measurement are kept, once per voice)
        synth_cache = tmp / "synth-cache"
        synth_cache.mkdir()
        if (cache / "piper").is_dir():
            shutil.copytree(cache / "piper", synth_cache / "piper")
        import resource

        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        synth, _, synth_tree = timed_build([preset, "--seed", "1", *engine], synth_cache, command="script")
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        synth_cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
        speech_s = speech_seconds(synth_cache)
        floor = encode_floor(out, "4")
        length = duration_s(out)
        # the long track: the same guided part, then a tail long enough to reach the target length
        guided = json.loads(out.with_suffix(".json").read_text())["speech_end_s"]
        tail_s = max(60, int(long_min * 60 - guided))
        long_out = tmp / "long.mp3"
        long_wall, long_rss, _ = timed_build([preset, "-o", str(long_out), "--seed", "1", "--tail", f"{tail_s}s",
                                           *engine], cache)
        long_floor = encode_floor(long_out, "4")
        long_length = duration_s(long_out)
        if not opts.no_batch:
            from windown import library

            presets = library.preset_names()
            common = ["--all-presets", "--seed", "1", "--no-playlist", *engine]
            timed_batch(["-o", str(tmp / "warmup"), "-j", "2", *common], cache)  # every phrase cached first
            serial = timed_batch(["-o", str(tmp / "serial"), "-j", "1", *common], cache)
            cores = os.cpu_count() or 1
            parallel = timed_batch(["-o", str(tmp / "parallel"), "-j", str(cores), *common], cache)
            again = timed_batch(["-o", str(tmp / "parallel"), "-j", str(cores), *common], cache)
    print(f"windown benchmark ({os.cpu_count()} cores; all figures from this one run)")
    print(f"{preset}: {length / 60:.1f} min track")
    print(row("encode floor (ffmpeg alone, VBR 4)", floor, floor))
    print(row("build, cold speech cache", cold, floor, cold_rss) + "   target <= 1.8x with piper")
    print(row("build, warm speech cache", warm, floor, warm_rss) + "   target <= 1.10x")
    print(f"  peak memory of all processes, cold build        {cold_tree:7.0f} MB   target < 600 MB")
    print(f"synthesis alone (`windown script`, cold clips): {synth:.1f} s for {speech_s:.0f} s of speech, "
          f"real-time factor {synth / speech_s:.3f} (target <= 0.05), all processes {synth_tree:.0f} MB")
    cores = os.cpu_count() or 1
    print(f"  its CPU time: {synth_cpu:.1f} s, so {synth_cpu / speech_s / cores:.3f} on {cores} otherwise idle cores "
          "(the wall-clock figure above includes whatever else the machine was doing)")
    print(f"long track: {long_length / 60:.1f} min")
    print(row("encode floor (ffmpeg alone, VBR 4)", long_floor, long_floor))
    print(row("build, warm speech cache", long_wall, long_floor, long_rss) + "   target < 200 MB")
    if not opts.no_batch:
        print(f"batch of all {len(presets)} presets (warm speech cache):")
        print(f"  -j 1                               {serial:7.1f} s")
        print(f"  -j {cores}                               {parallel:7.1f} s  speed-up {serial / parallel:.2f}x"
              "   target >= 1.7x")
        print(f"  again, nothing changed             {again:7.1f} s  {again / len(presets):.2f} s per job"
              "   target < 1 s per job")
    print(f"memory vs length: {warm_rss:.0f} MB at {length / 60:.0f} min, {long_rss:.0f} MB at "
          f"{long_length / 60:.0f} min ({long_rss / warm_rss:.2f}x for {long_length / length:.2f}x the length)")


if __name__ == "__main__":
    main()
