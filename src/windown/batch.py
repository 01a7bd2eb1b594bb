"""Batch: build a shelf of tracks in one run, in parallel, incrementally, locally or on a Dask cluster.

A `Job` is one routine (a file or a preset) with an optional profile and setting overrides, built to
one MP3 in an output folder. Jobs come from the command line or from a batch file (`read_batch_file`).

Incremental builds: each job's input fingerprint is a sha256 over everything that decides the track,
namely the routine file's bytes, the stretch library and phrase pools, the profile file's bytes, the
overrides, the encoding settings, the engine with its version and the voice, a user's ambient file's
bytes and the windown version. It is stored in a `<name>.fingerprint` sidecar (JSON: the digest, the
inputs it was made from, and the MP3's size) beside the MP3, written last, after the MP3 and its other
sidecars. A job is skipped when its MP3 and sidecars exist, the digest matches and the MP3 still has
the recorded size; `-v` says which input changed when it is not. An unset `seed` is not an input: such a track takes its phrasing from
the day it was built, and a new day does not make it stale (set `seed` to pin the phrasing).

Builds run in worker processes (`spawn`, never `fork`: pyttsx3 must not be forked after it starts),
or on a Dask cluster (`scheduler=`). Either way a worker builds into its own temporary folder and
returns the files as bytes; this process writes them, each atomically. So Dask workers need no shared
disk. The speech cache is shared safely: every cache write is atomic.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import multiprocessing
import os
import signal
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from windown import __version__, ambient, atomic, library, personalise, pipeline, routine, settings, source
from windown.errors import BuildError, RoutineError, UserError
from windown.settings import Settings
from windown.source import Fields, Map, Seq

FINGERPRINT_SUFFIX = ".fingerprint"
FINGERPRINT_FORMAT = 1  # bump when the fingerprint's recipe changes: every track is then rebuilt once
SIDECARS = (".vtt", ".srt", ".lrc", ".json")
PLAYLIST_NAME = "playlist.m3u"
DASK_HINT = "Install it with: pip install 'windown[dask]'"
CONNECT_TIMEOUT_S = 15

# Keys of a batch-file job besides the settings (settings.SETTINGS and settings.ENCODING).
JOB_KEYS = ("routine", "output", "profile")


@dataclass(frozen=True)
class Job:
    """One track to build."""

    routine: str                       # a routine file or a preset name
    output: Path                       # the MP3 to write
    profile: str | None = None         # a profile file; None: the default profile when it exists
    overrides: dict[str, Any] = field(default_factory=dict)  # checked setting values by key: "pace", "voice.rate"
    loudness_lufs: float = -18.0
    bitrate_kbps: int | None = None    # constant bitrate; else VBR at `quality` (default 4)
    quality: int | None = None
    mono: bool = False

    @property
    def label(self) -> str:
        return self.output.stem


@dataclass
class Outcome:
    job: Job
    status: str                        # "built", "skipped" or "failed"
    reason: str = ""                   # why it was built, or the one-line failure
    seconds: float = 0.0               # wall time this job took here (queueing included)
    title: str | None = None
    duration_s: float | None = None
    synthesised: int = 0               # phrases the speech engine had to synthesise


Event = Callable[[str, Job, str], None]  # (kind: queued/built/skipped/failed, job, detail)


# --- jobs -------------------------------------------------------------------------------------------

def output_path(folder: str | os.PathLike, routine_name: str, *, name: str | None = None,
                output: str | None = None) -> Path:
    """`<routine stem>[-<name>].mp3`, or `<output>.mp3`, in `folder`; never outside it."""
    if output:
        stem = output[:-4] if output.lower().endswith(".mp3") else output
    else:
        stem = Path(routine_name).stem + (f"-{name}" if name else "")
    return Path(folder) / (pipeline.safe_name(stem) + ".mp3")


def check_routine_name(name: str) -> None:
    """A routine file that exists, or a preset name; else the error `windown build` would give."""
    if not os.path.exists(name) and library.preset_path(name) is None:
        raise missing_routine(name)


def missing_routine(name: str, *, path: str | None = None, line: int | None = None) -> RoutineError:
    if os.sep in name or "/" in name or name.endswith((".yaml", ".yml")):
        return RoutineError(f"no routine file '{name}'", "Check the path" + ("; it is relative to the batch file"
                                                                          if path else ""), path=path, line=line)
    hint = source.closest(name, library.preset_names())
    return RoutineError(f"no routine file or preset named '{name}'",
                        (hint + " " if hint else "") + "Run `windown presets` to list the presets", path=path, line=line)


def jobs_for(names: list[str], folder: str | os.PathLike, *, profile: str | None = None,
             overrides: dict[str, Any] | None = None, **encoding: Any) -> list[Job]:
    """Jobs for routine files and preset names given on the command line, all with the same settings."""
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    jobs = []
    for name in names:
        check_routine_name(name)
        jobs.append(Job(name, output_path(folder, name, name=flags.get("name")), profile, flags, **encoding))
    return jobs


def is_batch_file(name: str) -> bool:
    """A YAML file holding a list of jobs, or a mapping with 'jobs' (a routine is a mapping with 'steps')."""
    if not os.path.isfile(name):
        return False
    try:
        doc = source.load(name)
    except UserError:
        return False
    return isinstance(doc, Seq) or (isinstance(doc, Map) and "jobs" in doc and "steps" not in doc)


def read_batch_file(path: str | os.PathLike, folder: str | os.PathLike = "output", *, profile: str | None = None,
                    overrides: dict[str, Any] | None = None, **encoding: Any) -> list[Job]:
    """Jobs from a batch file; every problem is reported as `file:line: problem. Fix`.

    The file is a list of jobs, or a mapping with `jobs` and `defaults` (keys every job shares). A job is
    a routine file or preset name, or a mapping with `routine` and any of: `output` (the file name in the
    output folder), `profile`, the routine settings (`pace`, `length`, `ambient`, `voice`, ...) and
    `loudness`, `bitrate`, `quality`, `mono`. Paths are relative to the batch file. `profile`,
    `overrides` and `encoding` are the command line's defaults; the file's own keys win over them.
    """
    path = os.fspath(path)
    doc = source.load(path)
    base = {"profile": profile, "flags": {k: v for k, v in (overrides or {}).items() if v is not None},
            "encoding": dict(encoding)}
    if doc is None:
        raise RoutineError("the batch file is empty", "List the jobs, e.g. `- routine: bedtime-lower-back`",
                           path=path, line=1)
    if isinstance(doc, Map):
        f = Fields(doc, path, "the batch file")
        defaults = f.get("defaults", _mapping)
        items = f.get("jobs", lambda v, ff, k: v)
        f.finish()
        if items is None:
            raise f.error(None, "the batch file needs 'jobs'", "Add a list of jobs, e.g. `jobs: [gentle, in-bed]`")
        if not isinstance(items, Seq):
            raise f.error("jobs", f"'jobs' must be a list, not {source.kind_of(items)}",
                          "Write each job on its own line starting with '- '")
        if defaults is not None:
            base = _merge(base, _read_job(Fields(defaults, path, "'defaults'"), path, with_routine=False))
    elif isinstance(doc, Seq):
        items = doc
    else:
        raise RoutineError(f"a batch file must be a list of jobs, not {source.kind_of(doc)}",
                           "Write e.g. `- routine: bedtime-lower-back` on each line", path=path,
                           line=getattr(doc, "line", 1))
    if not items:
        raise RoutineError("the batch file has no jobs", "Add at least one, e.g. `- routine: gentle`",
                           path=path, line=getattr(items, "line", 1))
    jobs = []
    for item, line in zip(items, items.item_lines):
        if isinstance(item, str):
            item = _one_key_map("routine", item, line)
        if not isinstance(item, Map):
            raise RoutineError(f"a job must be a routine name or a mapping, not {source.kind_of(item)}",
                               "Write e.g. `- routine: gentle` and its settings below it", path=path, line=line)
        spec = _merge(base, _read_job(Fields(item, path, "a job"), path, with_routine=True))
        enc = spec["encoding"]
        if enc.get("bitrate_kbps") is not None and enc.get("quality") is not None:  # one from defaults, one here
            raise RoutineError("a job sets both 'bitrate' and 'quality'", "Choose one of them", path=path, line=line)
        out = output_path(folder, spec["routine"], name=spec["flags"].get("name"), output=spec.get("output"))
        jobs.append(Job(spec["routine"], out, spec["profile"], spec["flags"], **enc))
    return jobs


def _mapping(value: Any, f: Fields, key: str) -> Map:
    if not isinstance(value, Map):
        raise f.error(key, f"'{key}' must be a mapping, not {source.kind_of(value)}",
                      f"Indent its keys under '{key}:'")
    return value


def _one_key_map(key: str, value: str, line: int) -> Map:
    item = Map(line)
    item[key] = value
    item.key_lines[key] = item.value_lines[key] = line
    return item


def _merge(base: dict, over: dict) -> dict:
    out = {**base, **{k: v for k, v in over.items() if k not in ("flags", "encoding") and v is not None}}
    out["flags"] = {**base["flags"], **over["flags"]}
    out["encoding"] = {**base["encoding"], **over["encoding"]}
    return out


def _relative(batch_path: str, value: str) -> str:
    candidate = Path(os.path.expanduser(value))
    return str(candidate if candidate.is_absolute() else Path(batch_path).parent / candidate)


def _read_job(f: Fields, batch_path: str, *, with_routine: bool) -> dict:
    spec: dict[str, Any] = {"flags": {}, "encoding": {}}
    if with_routine:
        name = f.get("routine", source.text(1000))
        if name is None:
            raise f.error(None, "a job needs a 'routine'", "Add e.g. `routine: bedtime-lower-back`")
        local = _relative(batch_path, name)
        if os.path.exists(local):
            spec["routine"] = local
        elif library.preset_path(name) is not None:
            spec["routine"] = name
        else:
            raise missing_routine(name, path=batch_path, line=f.line("routine"))
        spec["output"] = f.get("output", source.text(100))
    profile = f.get("profile", source.text(1000))
    if profile is not None:
        spec["profile"] = _relative(batch_path, profile)
        if not os.path.isfile(spec["profile"]):
            raise f.error("profile", f"no profile file '{profile}'",
                          "Check the path; it is relative to the batch file")
    spec["encoding"] = {settings.get(k).attr: v for k, v in settings.read_encoding(f).items()}
    _, spec["flags"] = settings.read(f, Settings(), where="batch")
    f.finish()
    return spec


# --- fingerprints -----------------------------------------------------------------------------------

@dataclass
class _Prepared:
    routine: routine.Routine
    profile: personalise.Profile
    inputs: dict[str, Any]
    ambient_file: Path | None

    @property
    def fingerprint(self) -> str:
        return _digest(self.inputs)


def _digest(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode("utf-8")).hexdigest()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.cache
def _library_sha() -> str:
    """The stretch library and phrase pools: routines name their stretches and phrases from them."""
    from importlib import resources

    data = resources.files("windown") / "data"
    return _sha(b"".join((data / name).read_bytes() for name in ("stretches.yaml", "phrases.yaml")))


@functools.cache
def engine_version(name: str) -> str:
    """Cheap: the program's version for espeak-ng and festival; the package version for pyttsx3
    (asking pyttsx3 itself starts a driver process and takes seconds)."""
    if name == "pyttsx3":
        from importlib import metadata

        try:
            return "pyttsx3 " + metadata.version("pyttsx3")
        except metadata.PackageNotFoundError:
            return "pyttsx3 (not installed)"
    from windown import speech

    return speech.get_engine(name).version()


def _prepare(job: Job) -> _Prepared:
    """Load the routine and profile (milliseconds) and gather the inputs that decide the track."""
    r = routine.load(job.routine)
    profile = personalise.load_profile(job.profile, dict(job.overrides))
    settings = personalise.apply_settings(r, profile)
    sound = settings.ambient.sound
    ambient_file = None
    if sound not in ambient.BED_NAMES:
        try:
            ambient_file = ambient.find_file(sound, None).resolve()
        except UserError:
            ambient_file = None  # the build reports it, with its hint
    inputs = {
        "format": FINGERPRINT_FORMAT,
        "windown": __version__,
        "routine": _sha(routine.resolve(job.routine).read_bytes()),
        "library": _library_sha(),
        "profile": _sha(Path(profile.path).read_bytes()) if profile.path else None,
        "overrides": json.loads(json.dumps(job.overrides, sort_keys=True, default=str)),
        "encoding": [job.loudness_lufs, job.bitrate_kbps, job.quality, job.mono],
        "engine": settings.voice.engine,
        "engine_version": engine_version(settings.voice.engine),
        "voice": settings.voice.voice,
        "ambient": _file_sha(ambient_file) if ambient_file else None,
    }
    return _Prepared(r, profile, inputs, ambient_file)


def fingerprint(job: Job) -> str:
    """The sha256 of the job's inputs; equal fingerprints mean an identical track."""
    return _prepare(job).fingerprint


def fingerprint_path(mp3: Path) -> Path:
    return Path(mp3).with_suffix(FINGERPRINT_SUFFIX)


def stale_reason(job: Job, prepared: _Prepared) -> str | None:
    """None when the track on disk was built from these exact inputs; else why it must be built."""
    out = job.output
    if not out.is_file():
        return "new"
    if not all(out.with_suffix(s).is_file() for s in SIDECARS):
        return "a sidecar is missing"
    try:
        recorded = json.loads(fingerprint_path(out).read_text("utf-8"))
    except FileNotFoundError:
        return "no fingerprint (built outside a batch)"
    except (OSError, ValueError):
        return "unreadable fingerprint"
    if not isinstance(recorded, dict) or recorded.get("fingerprint") != prepared.fingerprint:
        old = recorded.get("inputs", {}) if isinstance(recorded, dict) else {}
        changed = [k for k, v in prepared.inputs.items() if not isinstance(old, dict) or old.get(k) != v]
        return "changed: " + ", ".join(changed or ["fingerprint"])
    if recorded.get("mp3_bytes") != out.stat().st_size:
        return "the MP3 was replaced since its fingerprint was written"
    return None


def _track_info(mp3: Path) -> tuple[str | None, float | None]:
    try:
        sheet = json.loads(mp3.with_suffix(".json").read_text("utf-8"))
        return str(sheet["title"]), float(sheet["duration_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, None


# --- building ---------------------------------------------------------------------------------------

@dataclass
class Task:
    """What a worker needs: everything loaded already, so it reads no input files of ours."""

    index: int
    stem: str
    routine: routine.Routine
    profile: personalise.Profile
    loudness_lufs: float
    bitrate_kbps: int | None
    quality: int | None
    mono: bool
    ambient_name: str | None = None
    ambient_bytes: bytes | None = None  # shipped only to remote workers


def personalised(r: routine.Routine, profile: personalise.Profile) -> tuple[routine.Routine, list[str]]:
    """Personalise as `windown build` does (pipeline.prepare, from a loaded routine): a target length is
    fitted against the real timeline."""
    return personalise.personalise(r, profile, pipeline.guided_ms)


def build_task(task: Task) -> dict:
    """Run in a worker: build into a private temporary folder and return the files as bytes.

    Never raises for a failed build: the answer carries a one-line reason instead.
    """
    from windown import export

    try:
        with tempfile.TemporaryDirectory(prefix="windown-batch-") as tmp:
            profile = task.profile
            if task.ambient_bytes is not None:
                local = Path(tmp) / f"ambient-{task.ambient_name}"
                local.write_bytes(task.ambient_bytes)
                profile = dataclasses.replace(profile, flags={**profile.flags, "ambient.sound": str(local)})
            r, changes = personalised(task.routine, profile)
            encoding = export.Encoding.choose(task.bitrate_kbps, task.quality, task.mono)
            result = pipeline.build(r, Path(tmp) / f"{task.stem}.mp3", changes=changes,
                                    loudness_lufs=task.loudness_lufs, encoding=encoding,
                                    measure=False)  # the shelf's table shows no loudness: skip the meter
            files = {p.suffix: p.read_bytes() for p in (result.mp3, *result.sidecars)}
        return {"ok": True, "files": files, "title": r.title, "duration_s": result.duration_s,
                "synthesised": result.synthesised}
    except UserError as exc:
        return {"ok": False, "reason": str(exc)}
    except Exception as exc:  # a bug or an environment fault: still one line, and the other jobs go on
        return {"ok": False, "reason": short_error(exc)}


def short_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _worker_init(speech_workers: int) -> None:
    """Ctrl-C belongs to the parent, which stops the workers with SIGTERM; that unwinds every `finally`.
    Parallel jobs share the cores for speech too, rather than each starting one synthesiser per core."""
    os.environ["WINDOWN_SPEECH_WORKERS"] = str(speech_workers)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def run(jobs: list[Job], workers: int | None = None, force: bool = False, scheduler: str | None = None,
        on_event: Event | None = None) -> list[Outcome]:
    """Build every job whose inputs changed (all with `force`); one outcome per job, in job order.

    A failing job never stops the others. `scheduler` is a Dask scheduler address.
    """
    emit = on_event or (lambda kind, job, detail: None)
    if scheduler is not None:
        _import_distributed()
    outcomes: list[Outcome | None] = [None] * len(jobs)
    started: dict[int, float] = {}
    tasks: list[Task] = []
    inputs: dict[int, dict] = {}
    owners: dict[str, int] = {}

    def fail(i: int, reason: str) -> None:
        outcomes[i] = Outcome(jobs[i], "failed", reason, time.monotonic() - started[i])
        emit("failed", jobs[i], reason)

    for i, job in enumerate(jobs):
        started[i] = time.monotonic()
        key = os.path.normcase(os.path.abspath(job.output))
        if key in owners:
            fail(i, f"{job.output}: another job writes this file too. Give one of them an `output:` name")
            continue
        owners[key] = i
        try:
            pipeline.check_output(job.output)
            prepared = _prepare(job)
            why = "--force" if force else stale_reason(job, prepared)
            task = None if why is None else _task(i, job, prepared, ship=scheduler is not None)
        except UserError as exc:
            fail(i, str(exc))
            continue
        except Exception as exc:
            fail(i, short_error(exc))
            continue
        if task is None:
            title, duration = _track_info(job.output)
            outcomes[i] = Outcome(job, "skipped", "unchanged", time.monotonic() - started[i], title, duration)
            emit("skipped", job, "unchanged")
            continue
        tasks.append(task)
        inputs[i] = prepared.inputs
        emit("queued", job, why)

    def finish(task: Task, answer: dict) -> None:
        i = task.index
        if not answer.get("ok"):
            fail(i, answer.get("reason") or "failed")
            return
        try:
            _commit(jobs[i], answer["files"], inputs[i])
        except OSError as exc:
            fail(i, f"{jobs[i].output}: cannot write the track ({exc.strerror or exc})")
            return
        outcomes[i] = Outcome(jobs[i], "built", "", time.monotonic() - started[i], answer.get("title"),
                              answer.get("duration_s"), answer.get("synthesised", 0))
        emit("built", jobs[i], "")

    if tasks:
        if scheduler is not None:
            _run_dask(tasks, scheduler, finish)
        else:
            _run_local(tasks, workers or default_workers(), finish)
    return [o for o in outcomes if o is not None]


def _task(i: int, job: Job, prepared: _Prepared, *, ship: bool) -> Task:
    profile = prepared.profile
    name = data = None
    if prepared.ambient_file is not None:
        profile = dataclasses.replace(profile, flags={**profile.flags, "ambient.sound": str(prepared.ambient_file)})
        if ship:
            name, data = prepared.ambient_file.name, prepared.ambient_file.read_bytes()
    return Task(i, job.output.stem, prepared.routine, profile, job.loudness_lufs, job.bitrate_kbps, job.quality,
                job.mono, name, data)


def _commit(job: Job, files: dict[str, bytes], inputs: dict) -> None:
    """Write the track and its sidecars, each atomically; the fingerprint last, so it vouches for them."""
    stamp = fingerprint_path(job.output)
    stamp.unlink(missing_ok=True)  # a half-replaced shelf entry must never look current
    atomic.write_bytes(job.output, files[".mp3"])
    for suffix in SIDECARS:
        if suffix in files:
            atomic.write_bytes(job.output.with_suffix(suffix), files[suffix])
    record = {"fingerprint": _digest(inputs), "routine": job.routine, "inputs": inputs,
              "mp3_bytes": len(files[".mp3"])}
    atomic.write_text(stamp, json.dumps(record, indent=2, sort_keys=True) + "\n")


def _run_local(tasks: list[Task], workers: int, finish: Callable[[Task, dict], None]) -> None:
    size = max(1, min(workers, len(tasks)))
    pool = ProcessPoolExecutor(max_workers=size, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=(max(1, default_workers() // size),))
    try:
        futures = {pool.submit(build_task, task): task for task in tasks}
        for future in as_completed(futures):
            try:
                answer = future.result()
            except BrokenProcessPool:
                answer = {"ok": False, "reason": "a worker process stopped unexpectedly (out of memory?); "
                                                 "run again to retry, or use fewer jobs at once with -j"}
            except Exception as exc:
                answer = {"ok": False, "reason": short_error(exc)}
            finish(futures[future], answer)
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown(wait=True)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and stop the running workers now (not after their builds)."""
    processes = list(getattr(pool, "_processes", {}).values())  # no public way before Python 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise UserError("--scheduler needs Dask distributed, which is not installed", DASK_HINT) from None
    return distributed


def _run_dask(tasks: list[Task], scheduler: str, finish: Callable[[Task, dict], None]) -> None:
    distributed = _import_distributed()
    try:
        client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise UserError(f"cannot reach the Dask scheduler at {scheduler} ({short_error(exc)})",
                        "Start one with `dask scheduler` and workers with `dask worker ADDRESS`, "
                        "or check the address") from None
    futures: dict = {}
    try:
        run_id = uuid.uuid4().hex[:8]
        for task in tasks:
            future = client.submit(build_task, task, pure=False, key=f"windown-{run_id}-{task.index}-{task.stem}")
            futures[future] = task
        for future in distributed.as_completed(list(futures), loop=client.loop):
            try:
                answer = future.result()
            except Exception as exc:  # KilledWorker, a lost connection, ...
                answer = {"ok": False, "reason": short_error(exc)}
            finish(futures[future], answer)
            future.release()
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        client.close()


# --- the shelf --------------------------------------------------------------------------------------

def write_playlist(folder: str | os.PathLike, target: str | os.PathLike | None = None) -> Path:
    """An extended M3U of every track on the shelf (each MP3 with its .json cue sheet), by file name.

    Paths are relative to the playlist; it is written atomically, and only when it changes.
    """
    folder = Path(folder)
    target = Path(target) if target is not None else folder / PLAYLIST_NAME
    lines = ["#EXTM3U"]
    for mp3 in sorted(folder.glob("*.mp3")):
        if mp3.name.startswith("."):
            continue
        title, duration = _track_info(mp3)
        if title is None:
            continue
        lines.append(f"#EXTINF:{round(duration)},{' '.join(title.split())}")
        lines.append(Path(os.path.relpath(mp3, target.parent if str(target.parent) else ".")).as_posix())
    text = "\n".join(lines) + "\n"
    try:
        if target.read_text("utf-8") == text:
            return target
    except (OSError, ValueError):
        pass
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(target, text)
    except OSError as exc:
        raise BuildError(f"cannot write the playlist ({exc.strerror or exc})", "Choose another place with --playlist",
                         path=target) from None
    return target
