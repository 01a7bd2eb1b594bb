"""Running a batch: skip the jobs whose tracks are current, build the rest through an `Executor`, and
write what comes back onto the shelf.

Two executors: `LocalExecutor` builds in worker processes on this machine (`spawn`, never `fork`:
pyttsx3 must not be forked after it starts) and `DaskExecutor` on a Dask cluster. Either way a worker
builds into its own temporary folder and returns the files as bytes; this process writes them, each
atomically, so Dask workers need no shared disk. The speech cache is shared safely: every cache write
is atomic. A failing job never stops the others; a bug in one is reported like `windown build`
reports one, with its traceback saved on this machine.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import sys
import tempfile
import time
import traceback
import uuid
from concurrent.futures import CancelledError, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from windown import errors, export, personalise, pipeline, routine
from windown.batch.fingerprint import Prepared, prepare, stale_reason
from windown.batch.jobs import Event, Job, Outcome
from windown.batch.results import write_track
from windown.errors import UserError, short_error
from windown.shelf import track_info

DASK_HINT = "Install it with: pip install 'windown[dask]'"
CONNECT_TIMEOUT_S = 15


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


Finish = Callable[[Task, dict], None]


class Executor(Protocol):
    """Where builds run. It calls `finish(task, build_task(task))` in this thread as each answer arrives;
    a task it could not run gets an answer `{"ok": False, "reason": ...}` instead."""

    remote: bool  # its workers may not see our disk: a task carries the bytes of a user's ambient file

    def run(self, tasks: list[Task], finish: Finish) -> None: ...


def build_task(task: Task) -> dict:
    """Run in a worker: build into a private temporary folder and return the files as bytes.

    Never raises: a failed build answers with its one-line reason, a bug with its traceback as text
    (saved by the process that reports it, which may be on another machine).
    """
    from windown import journal

    try:
        with tempfile.TemporaryDirectory(prefix="windown-batch-") as tmp:
            profile = task.profile
            if task.ambient_bytes is not None:
                local = Path(tmp) / f"ambient-{task.ambient_name}"
                local.write_bytes(task.ambient_bytes)
                profile = dataclasses.replace(profile, flags={**profile.flags, "ambient.sound": str(local)})
            encoding = export.Encoding.choose(task.bitrate_kbps, task.quality, task.mono)
            # a shelf is built as written: the journal records what was built but adapts nothing
            result = pipeline.build(task.routine, Path(tmp) / f"{task.stem}.mp3", profile=profile,
                                    loudness_lufs=task.loudness_lufs, encoding=encoding,
                                    measure=False,  # the shelf's table shows no loudness: skip the meter
                                    split=False)  # the jobs share the cores among them (-j), not an encode
            files = {p.suffix: p.read_bytes() for p in (result.mp3, *result.sidecars)}
        return {"ok": True, "files": files, "title": result.routine.title, "duration_s": result.duration_s,
                "synthesised": result.synthesised,
                "session": journal.session_of(result, task.routine.path, "batch")
                if result.routine.settings.journal else None}
    except UserError as exc:
        return {"ok": False, "reason": str(exc)}
    except Exception as exc:  # a bug: still one line in the table, and the other jobs go on
        return bug_answer(exc)


def bug_answer(exc: BaseException) -> dict:
    return {"ok": False, "bug": short_error(exc), "traceback": "".join(traceback.format_exception(exc))}


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def run(jobs: list[Job], workers: int | None = None, force: bool = False, scheduler: str | None = None,
        on_event: Event | None = None, executor: Executor | None = None) -> list[Outcome]:
    """Build every job whose inputs changed (all with `force`); one outcome per job, in job order.

    A failing job never stops the others. The builds run on `executor`; by default in `workers` local
    processes, or on the Dask cluster whose scheduler address is `scheduler`.
    """
    emit = on_event or (lambda kind, job, detail: None)
    if executor is None:
        executor = DaskExecutor(scheduler) if scheduler is not None else LocalExecutor(workers or default_workers())
    outcomes: list[Outcome | None] = [None] * len(jobs)
    started: dict[int, float] = {}
    tasks: list[Task] = []
    inputs: dict[int, dict] = {}
    owners: dict[str, int] = {}

    def fail(i: int, reason: str, bug: bool = False) -> None:
        outcomes[i] = Outcome(jobs[i], "failed", reason, time.monotonic() - started[i], bug=bug)
        emit("failed", jobs[i], reason)

    def context(job: Job) -> str:
        return f"batch job: {job.routine} -> {job.output}"

    for i, job in enumerate(jobs):
        started[i] = time.monotonic()
        if job.problem:  # the batch file got this job wrong: it fails alone
            fail(i, job.problem)
            continue
        key = os.path.normcase(os.path.abspath(job.output))
        if key in owners:
            fail(i, f"{job.output}: another job writes this file too. Give one of them an `output:` name")
            continue
        owners[key] = i
        try:
            export.check_output(job.output)
            prepared = prepare(job)
            for warning in prepared.routine.warnings:  # legal but unlikely values, said as `build` says them
                emit("warning", job, str(warning))
            why = "--force" if force else stale_reason(job, prepared)
            task = None if why is None else _task(i, job, prepared, remote=executor.remote)
        except UserError as exc:
            fail(i, str(exc))
            continue
        except Exception as exc:
            fail(i, errors.report_bug(exc, context=context(job)), bug=True)
            continue
        if task is None:
            title, duration = track_info(job.output)
            outcomes[i] = Outcome(job, "skipped", "unchanged", time.monotonic() - started[i], title, duration)
            emit("skipped", job, "unchanged")
            continue
        tasks.append(task)
        inputs[i] = prepared.inputs
        emit("queued", job, why)

    def finish(task: Task, answer: dict) -> None:
        i = task.index
        if answer.get("bug"):
            saved = errors.save_traceback(answer.get("traceback", ""), context=context(jobs[i]))
            fail(i, errors.bug_line(answer["bug"], saved), bug=True)
            return
        if not answer.get("ok"):
            fail(i, answer.get("reason") or "failed")
            return
        try:
            write_track(jobs[i], answer["files"], inputs[i])
        except OSError as exc:
            fail(i, f"{jobs[i].output}: cannot write the track ({exc.strerror or exc})")
            return
        outcomes[i] = Outcome(jobs[i], "built", "", time.monotonic() - started[i], answer.get("title"),
                              answer.get("duration_s"), answer.get("synthesised", 0), session=answer.get("session"))
        emit("built", jobs[i], "")

    if tasks:
        executor.run(tasks, finish)
    return [o for o in outcomes if o is not None]


def _task(i: int, job: Job, prepared: Prepared, *, remote: bool) -> Task:
    profile = prepared.profile
    name = data = None
    if prepared.ambient_file is not None:
        profile = dataclasses.replace(profile, flags={**profile.flags, "ambient.sound": str(prepared.ambient_file)})
        if remote:
            name, data = prepared.ambient_file.name, prepared.ambient_file.read_bytes()
    return Task(i, job.output.stem, prepared.routine, profile, job.loudness_lufs, job.bitrate_kbps, job.quality,
                job.mono, name, data)


# --- on this machine --------------------------------------------------------------------------------

class LocalExecutor:
    """Worker processes on this machine, up to `workers` builds at once."""

    remote = False

    def __init__(self, workers: int):
        self.workers = workers

    def run(self, tasks: list[Task], finish: Finish) -> None:
        size = max(1, min(self.workers, len(tasks)))
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
                except Exception as exc:  # the task could not reach its worker: a bug of ours
                    answer = bug_answer(exc)
                finish(futures[future], answer)
        except BaseException:
            _stop(pool)
            raise
        pool.shutdown(wait=True)


def _worker_init(speech_workers: int) -> None:
    """Ctrl-C belongs to the parent, which stops the workers with SIGTERM; that unwinds every `finally`.
    Parallel jobs share the cores for speech too, rather than each starting one synthesiser per core."""
    os.environ["WINDOWN_SPEECH_WORKERS"] = str(speech_workers)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and stop the running workers now (not after their builds)."""
    processes = list(getattr(pool, "_processes", {}).values())  # no public way before Python 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)


# --- on a Dask cluster ------------------------------------------------------------------------------

def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise UserError("--scheduler needs Dask distributed, which is not installed", DASK_HINT) from None
    return distributed


class DaskExecutor:
    """An existing Dask cluster, reached through its scheduler's address. Each task travels with its
    parsed routine, profile and ambient file's bytes."""

    remote = True

    def __init__(self, scheduler: str):
        self.scheduler = scheduler
        self.distributed = _import_distributed()  # now, before any job is prepared

    def run(self, tasks: list[Task], finish: Finish) -> None:
        distributed = self.distributed
        try:
            client = distributed.Client(self.scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise UserError(f"cannot reach the Dask scheduler at {self.scheduler} ({short_error(exc)})",
                            "Start one with `dask scheduler` and workers with `dask worker ADDRESS`, "
                            "or check the address") from None
        futures: dict = {}
        try:
            run_id = uuid.uuid4().hex[:8]
            for task in tasks:
                key = f"windown-{run_id}-{task.index}-{task.stem}"
                futures[client.submit(build_task, task, pure=False, key=key)] = task
            for future in distributed.as_completed(list(futures), loop=client.loop):
                try:
                    answer = future.result()
                except (distributed.KilledWorker, CancelledError, OSError, TimeoutError) as exc:  # the cluster
                    answer = {"ok": False, "reason": f"the Dask cluster lost the job ({short_error(exc)})"}
                except Exception as exc:
                    answer = bug_answer(exc)
                finish(futures[future], answer)
                future.release()
        except BaseException:
            client.cancel(list(futures))
            raise
        finally:
            client.close()
