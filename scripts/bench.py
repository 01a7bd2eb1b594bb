"""Benchmark: build time (cold and warm speech cache) against the encode floor, and peak memory.

The floor is ffmpeg alone encoding the very same audio with the same settings, so a ratio of 1.0
would mean windown's own work (speech, placing, rendering, metering) costs nothing on top.
Builds whose time is a target run unwatched; the memory figures come from a second run of the same
build with its processes sampled (see timed_build). Cold is measured twice: "first ever" (an empty cache, so piper's once-per-voice preparation and the
bed are made too) and "cold speech cache" (every clip missing, the voice prepared). Memory of all
processes together is the peak of their summed PSS (shared pages split between the processes that
share them), with their summed RSS beside it. Two lower bounds for a cold build are printed beside it:
its CPU over the cores, and the tighter one that counts the tail (mixed only once the last clip is placed,
then encoded in two halves at once).
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
import resource
import subprocess
import sys
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CHILD = """
import resource, runpy, sys
sys.argv = ["windown"] + sys.argv[1:]
try:
    runpy.run_module("windown", run_name="__main__")
finally:
    print("MAXRSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


@dataclass
class Run:
    """One timed windown command: wall seconds, CPU seconds of it and every process it started (summed
    from their rusage once they have been waited for), and its memory peaks in MB."""

    wall_s: float
    cpu_s: float
    own_rss_mb: float  # the windown process alone (its ru_maxrss)
    tree_rss_mb: float  # peak of the summed resident sizes of it and its descendants (counts shared pages twice)
    tree_pss_mb: float  # peak of their summed proportional set sizes: shared pages split between sharers


def timed_build(args: list[str], cache: Path, command: str = "build", watch: bool = False) -> Run:
    """One `windown build` (or `script`); with `watch`, the memory of all its processes is sampled every
    50 ms. The sampling reads /proc and costs CPU beside the build (measured: about a tenth of a second
    per cold build's second), so builds whose time is a target run unwatched, and their memory is taken
    from a second, watched run of the same build."""
    env = {**os.environ, "WINDOWN_CACHE_DIR": str(cache)}
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, "-q", command, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    peak = {"rss": 0.0, "pss": 0.0} if watch else {"rss": float("nan"), "pss": float("nan")}
    watcher = threading.Thread(target=_watch_tree, args=(proc, peak), daemon=True) if watch else None
    if watcher:
        watcher.start()
    _, stderr = proc.communicate()
    wall = time.perf_counter() - start
    if watcher:
        watcher.join()
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"bench: {command} failed: {stderr.strip()}")
    rss_kb = next(int(line.split()[1]) for line in stderr.splitlines() if line.startswith("MAXRSS_KB"))
    return Run(wall, _cpu_s(cpu_before, cpu_after), rss_kb / 1024, peak["rss"], peak["pss"])


def _cpu_s(before, after) -> float:
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _watch_tree(proc: subprocess.Popen, peak: dict[str, float]) -> None:
    """Sum the memory of a process and all its descendants until it exits; keep the peaks.

    Two sums: resident size (statm), which counts a page shared by two workers (the voice's weights,
    mapped from one file; the libraries) once per process, and proportional set size (smaps_rollup),
    which splits each shared page between its sharers: the honest figure for "all processes together"."""
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
        rss = pss = 0.0
        for pid in tree:
            try:
                with open(f"/proc/{pid}/statm") as handle:
                    rss += int(handle.read().split()[1]) * page_mb
                with open(f"/proc/{pid}/smaps_rollup") as handle:
                    pss += next(int(line.split()[1]) for line in handle if line.startswith("Pss:")) / 1024
            except (OSError, IndexError, ValueError, StopIteration):
                continue
        peak["rss"] = max(peak["rss"], rss)
        peak["pss"] = max(peak["pss"], pss)
        time.sleep(0.05)


def speech_seconds(cache: Path) -> float:
    """Seconds of speech in every clip of a cache (float32 .npy files at 44.1 kHz)."""
    import numpy as np

    return sum(len(np.load(path, mmap_mode="r")) for path in (cache / "clips").rglob("*.npy")) / 44100


def encode_floor(mp3: Path, quality: str) -> tuple[float, float]:
    """(wall, CPU seconds) of ffmpeg alone encoding the same audio (decoded from our MP3 to a WAV
    first, not timed)."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "track.wav"
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(mp3), "-c:a", "pcm_f32le", str(wav)], check=True)
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-c:a", "libmp3lame", "-q:a", quality,
                        "-id3v2_version", "3", str(Path(tmp) / "floor.mp3")], check=True)
        wall = time.perf_counter() - start
        return wall, _cpu_s(cpu_before, resource.getrusage(resource.RUSAGE_CHILDREN))


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


def prepared_cache(tmp: Path, name: str, warm_cache: Path) -> Path:
    """An empty speech cache that already holds what is made once per voice (piper's patched model and
    rate measurement) and the synthesised beds: what any cold *speech* cache after the first build has."""
    cache = tmp / name
    cache.mkdir()
    for part in ("piper", "beds"):
        if (warm_cache / part).is_dir():
            shutil.copytree(warm_cache / part, cache / part)
    return cache


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
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="windown-bench-") as tmp:
        tmp = Path(tmp)
        cache = tmp / "cache"
        out = tmp / "preset.mp3"
        base = [preset, "-o", str(out), "--seed", "1", *engine]
        # first ever: an empty cache, so the voice is prepared too (piper patches its model for word
        # timings and measures the voice's rate, once per voice file) and the bed is synthesised
        first = timed_build(base, cache, watch=True)
        warm = timed_build(base, cache)
        warm_bytes = out.stat().st_size
        # a cold speech cache: every clip missing, the voice already prepared (the usual cold build:
        # a new routine, a changed setting or text)
        cold = timed_build(base, prepared_cache(tmp, "cold-cache", cache))
        cold_bytes = out.stat().st_size  # its tail went to two encoders, the second without the bit reservoir
        cold_memory = timed_build(base, prepared_cache(tmp, "cold-cache-watched", cache), watch=True)
        # synthesis alone: `windown script` (speak and place, no render), every clip missing, voice prepared
        synth_cache = prepared_cache(tmp, "synth-cache", cache)
        synth = timed_build([preset, "--seed", "1", *engine], synth_cache, command="script")
        synth_memory = timed_build([preset, "--seed", "1", *engine], prepared_cache(tmp, "synth-watched", cache),
                                   command="script", watch=True)
        speech_s = speech_seconds(synth_cache)
        floor, floor_cpu = encode_floor(out, "4")
        length = duration_s(out)
        # the long track: the same guided part, then a tail long enough to reach the target length
        guided = json.loads(out.with_suffix(".json").read_text())["speech_end_s"]
        tail_s = max(60, int(long_min * 60 - guided))
        long_out = tmp / "long.mp3"
        long = timed_build([preset, "-o", str(long_out), "--seed", "1", "--tail", f"{tail_s}s", *engine], cache)
        long_floor, _ = encode_floor(long_out, "4")
        long_length = duration_s(long_out)
        if not opts.no_batch:
            from windown import library

            presets = library.preset_names()
            common = ["--all-presets", "--seed", "1", "--no-playlist", *engine]
            timed_batch(["-o", str(tmp / "warmup"), "-j", "2", *common], cache)  # every phrase cached first
            serial = timed_batch(["-o", str(tmp / "serial"), "-j", "1", *common], cache)
            parallel = timed_batch(["-o", str(tmp / "parallel"), "-j", str(cores), *common], cache)
            again = timed_batch(["-o", str(tmp / "parallel"), "-j", str(cores), *common], cache)
    load_after = os.getloadavg()
    print(f"windown benchmark ({cores} cores; all figures from this one run; load average "
          f"{load_before[0]:.2f} at the start, {load_after[0]:.2f} at the end)")
    print(f"{preset}: {length / 60:.1f} min track")
    print(row("encode floor (ffmpeg alone, VBR 4)", floor, floor) + f"   CPU {floor_cpu:.1f} s")
    print(row("build, warm speech cache", warm.wall_s, floor, warm.own_rss_mb) + "   target <= 1.10x"
          f"   CPU {warm.cpu_s:.1f} s")
    print(row("build, cold speech cache", cold.wall_s, floor, cold.own_rss_mb) + "   target <= 1.8x with piper"
          f"   CPU {cold.cpu_s:.1f} s")
    print(row("build, first ever (+ voice, bed)", first.wall_s, floor, first.own_rss_mb) + f"   CPU {first.cpu_s:.1f} s")
    # No build can beat its CPU work spread over every core, nor the encoder, which is one thread:
    # a cold build's synthesis plus a warm build's (render, encode, metering) work, over the cores.
    bound = max(floor, (synth.cpu_s + warm.cpu_s) / cores)
    print(f"  lower bound for a cold build on {cores} cores: max(floor, (synthesis CPU {synth.cpu_s:.1f} s + warm "
          f"build CPU {warm.cpu_s:.1f} s) / {cores}) = {bound:.1f} s, {bound / floor:.2f}x the floor")
    # Tighter: the frames after the last words (the bed's tail) can only be mixed once every clip is
    # placed, since where they start is the sum of all the clips' lengths. So once synthesis ends, the
    # tail is still to encode, in two halves at once (export.Split); before that, both cores at best
    # share the synthesis and the guided part's render and encode.
    spoken = guided / length
    tail_bound = (synth.cpu_s + warm.cpu_s * spoken) / cores + floor_cpu * (1 - spoken) / min(2, cores)
    print(f"  with the {(length - guided) / 60:.1f}-min tail encoded after the last clip, in two halves: (synthesis "
          f"CPU + {spoken:.0%} of the warm build CPU) / {cores} + {1 - spoken:.0%} of the encoder's CPU / "
          f"{min(2, cores)} = "
          f"{tail_bound:.1f} s, {tail_bound / floor:.2f}x the floor"
          + (" (under the bound above: the tail no longer binds)" if tail_bound < bound else ""))
    print(f"  MP3 size: warm build {warm_bytes / 1e6:.1f} MB, cold build {cold_bytes / 1e6:.1f} MB "
          f"({cold_bytes / warm_bytes - 1:+.1%}: the part after the join is encoded without the bit reservoir)")
    print(f"  peak memory of all processes, cold build (a second, watched run: {cold_memory.wall_s:.1f} s): "
          f"{cold_memory.tree_pss_mb:.0f} MB PSS "
          f"({cold_memory.tree_rss_mb:.0f} MB summed RSS)   target < 600 MB; first ever: {first.tree_pss_mb:.0f} MB PSS "
          f"({first.tree_rss_mb:.0f} MB RSS)")
    print(f"synthesis alone (`windown script`, cold clips, voice prepared): {synth.wall_s:.1f} s for {speech_s:.0f} s "
          f"of speech, real-time factor {synth.wall_s / speech_s:.3f} (target <= 0.05)")
    print(f"  all processes {synth_memory.tree_pss_mb:.0f} MB PSS ({synth_memory.tree_rss_mb:.0f} MB summed RSS)   "
          "target < 600 MB (a second, watched run)")
    print(f"  its CPU time: {synth.cpu_s:.1f} s, {synth.cpu_s / speech_s:.3f} s per second of speech, so "
          f"{synth.cpu_s / speech_s / cores:.3f} on {cores} otherwise idle cores (the wall-clock figure above "
          "includes whatever else the machine was doing)")
    print(f"long track: {long_length / 60:.1f} min")
    print(row("encode floor (ffmpeg alone, VBR 4)", long_floor, long_floor))
    print(row("build, warm speech cache", long.wall_s, long_floor, long.own_rss_mb) + "   target < 200 MB")
    if not opts.no_batch:
        print(f"batch of all {len(presets)} presets (warm speech cache):")
        print(f"  -j 1                               {serial:7.1f} s")
        print(f"  -j {cores}                               {parallel:7.1f} s  speed-up {serial / parallel:.2f}x"
              "   target >= 1.7x")
        print(f"  again, nothing changed             {again:7.1f} s  {again / len(presets):.2f} s per job"
              "   target < 1 s per job")
    print(f"memory vs length: {warm.own_rss_mb:.0f} MB at {length / 60:.0f} min, {long.own_rss_mb:.0f} MB at "
          f"{long_length / 60:.0f} min ({long.own_rss_mb / warm.own_rss_mb:.2f}x for {long_length / length:.2f}x "
          "the length)")


if __name__ == "__main__":
    main()
