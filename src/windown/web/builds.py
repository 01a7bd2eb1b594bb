"""The build queue: page requests only enqueue; worker threads run each build in its own process.

At most one build per core runs at once, the rest wait in order. Each build is a separate process
(spawned, so it shares nothing with the server's threads), which keeps the pages responsive however
busy the builds are; its progress comes back over a pipe. A build belongs to the server, not to the
page that asked for it: closing the page does not cancel it.

A build writes into a hidden staging folder inside the shelf (`.building/JOB/`) and moves its files
onto the shelf when every one is complete, the MP3 last, so the shelf never lists a track whose
sidecars are still missing, and a failed or stopped build leaves nothing behind.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import multiprocessing
import os
import queue
import secrets
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from windown.errors import UserError

STAGING = ".building"
MAX_WAITING = 100
_STAGE_WORDS = {"preparing": "Preparing the routine", "speech": "Speaking the words", "render": "Mixing and encoding"}


@dataclass
class Job:
    """One build request and how it is going."""

    id: str
    title: str
    stem: str  # the track's file name on the shelf, without .mp3
    spec: dict[str, Any]  # what the build process needs: a preset or routine text, and the profile flags
    form: dict[str, Any] = field(default_factory=dict)  # the submitted form, to fill it again after a failure
    warnings: tuple[str, ...] = ()  # legal but unlikely values in the routine, in the CLI's words
    state: str = "queued"  # queued | running | done | failed
    stage: str = ""
    fraction: float = 0.0
    error: str = ""
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None

    @property
    def stage_words(self) -> str:
        return _STAGE_WORDS.get(self.stage, self.stage)


class QueueFull(UserError):
    """More builds are waiting than the server accepts."""


class BuildQueue:
    def __init__(self, shelf: str | os.PathLike, workers: int | None = None, max_waiting: int = MAX_WAITING):
        self.shelf = Path(shelf)
        self.workers = workers or os.cpu_count() or 1
        self.max_waiting = max_waiting
        self._jobs: dict[str, Job] = {}
        self._order: collections.deque[str] = collections.deque(maxlen=1000)  # finished jobs are forgotten in time
        self._waiting: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._processes: dict[str, multiprocessing.process.BaseProcess] = {}
        self._reserved: set[str] = set()
        self._stopping = False
        self.max_running_seen = 0

    # --- the server's side ----------------------------------------------------------------------

    def start(self) -> None:
        shutil.rmtree(self.shelf / STAGING, ignore_errors=True)  # what a killed server left half-built
        for n in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"windown-build-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop taking jobs, stop running builds (they clean up after themselves), wait for the workers."""
        with self._lock:
            self._stopping = True
            processes = list(self._processes.values())
        for _ in self._threads:
            self._waiting.put(None)
        for process in processes:
            with contextlib.suppress(Exception):
                process.terminate()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()

    def submit(self, title: str, base_name: str, spec: dict[str, Any], form: dict[str, Any] | None = None,
               warnings: tuple[str, ...] = ()) -> Job:
        with self._lock:
            if self._stopping:
                raise QueueFull("the server is stopping", "Start it again and resubmit")
            if self.waiting_count() >= self.max_waiting:
                raise QueueFull(f"{self.max_waiting} builds are already waiting",
                                "Wait for some to finish, then try again")
            job = Job(secrets.token_urlsafe(9), title, self._unique_stem(base_name), spec, dict(form or {}),
                      tuple(warnings))
            self._jobs[job.id] = job
            self._order.append(job.id)
            self._reserved.add(job.stem)
            self._forget_old()
        self._waiting.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        """Jobs in the order they were asked for."""
        with self._lock:
            return [self._jobs[i] for i in self._order if i in self._jobs]

    def position(self, job: Job) -> int:
        """How many builds run or wait ahead of a waiting job (0 once it runs)."""
        if job.state != "queued":
            return 0
        with self._lock:
            ahead = [j for j in self._jobs.values() if j.state in ("queued", "running") and j.created <= job.created
                     and j.id != job.id]
        return len(ahead)

    def counts(self) -> tuple[int, int]:
        """(running, waiting), read together: state changes happen under the same lock."""
        with self._lock:
            states = [j.state for j in self._jobs.values()]
        return states.count("running"), states.count("queued")

    def waiting_count(self) -> int:
        return sum(1 for j in self._jobs.values() if j.state == "queued")

    def _unique_stem(self, base_name: str) -> str:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M")
        stem = f"{base_name}-{stamp}"
        n = 2
        while stem in self._reserved or (self.shelf / f"{stem}.mp3").exists():
            stem = f"{base_name}-{stamp}-{n}"
            n += 1
        return stem

    def _forget_old(self) -> None:
        known = set(self._order)
        for job_id in [i for i in self._jobs if i not in known]:
            self._reserved.discard(self._jobs.pop(job_id).stem)

    # --- the workers ----------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            job = self._waiting.get()
            if job is None or self._stopping:
                if job is not None:
                    self._finish(job, "failed", "the server stopped before this build began")
                return
            self._run(job)

    def _run(self, job: Job) -> None:
        staging = self.shelf / STAGING / job.id
        context = multiprocessing.get_context("spawn")
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=run_build, args=(job.spec, str(staging), str(self.shelf), job.stem, sender),
                                  name=f"windown-build-{job.id}", daemon=True)
        with self._lock:
            if self._stopping:
                self._finish_locked(job, "failed", "the server stopped before this build began")
                return
            job.state, job.started, job.stage = "running", time.time(), "preparing"
            self._processes[job.id] = process
            self.max_running_seen = max(self.max_running_seen, sum(j.state == "running" for j in self._jobs.values()))
        outcome: tuple[str, str] | None = None
        try:
            staging.mkdir(parents=True, exist_ok=True)
            process.start()
            sender.close()
            while True:
                try:
                    message = receiver.recv()
                except (EOFError, OSError):
                    break
                if message[0] == "progress":
                    job.stage, job.fraction = message[1], message[2]
                else:
                    outcome = (message[0], message[1])
            process.join()
        except Exception as exc:  # the process could not even start (no memory, no processes left)
            outcome = ("failed", f"the build could not start: {exc}")
        finally:
            receiver.close()
            shutil.rmtree(staging, ignore_errors=True)
            with self._lock:
                self._processes.pop(job.id, None)
        if outcome is None:
            outcome = ("failed", "the build stopped unexpectedly; no partial file was written"
                       if self._stopping else f"the build process ended without a result (exit code "
                       f"{process.exitcode}); no partial file was written")
        self._finish(job, *outcome)

    def _finish(self, job: Job, state: str, error: str) -> None:
        with self._lock:
            self._finish_locked(job, state, error)

    def _finish_locked(self, job: Job, state: str, error: str) -> None:
        job.state = "done" if state == "done" else "failed"
        job.error = "" if state == "done" else error
        job.fraction = 1.0 if state == "done" else job.fraction
        job.finished = time.time()
        if job.state == "failed":
            self._reserved.discard(job.stem)


# --- the build process ------------------------------------------------------------------------------

def run_build(spec: dict[str, Any], staging: str, shelf_dir: str, stem: str, conn) -> None:
    """In its own process: prepare and build through the same pipeline as `windown build`, then shelve.

    Errors are reported in the CLI's words (str of the UserError). SIGTERM stops the build the way
    it stops the CLI: every `finally` runs, so no temporary file is left.
    """
    from windown import journal, personalise, pipeline
    from windown.errors import Interrupted

    def on_term(signum, frame):
        raise Interrupted(signum)

    signal.signal(signal.SIGTERM, on_term)
    with contextlib.suppress(OSError):
        os.nice(10)  # the pages come first: a build waits a moment, a person at the page does not
    last = [-1.0]

    def send(message: tuple) -> None:
        with contextlib.suppress(OSError):
            conn.send(message)

    def progress(stage: str, done: int, total: int) -> None:
        fraction = round(done / total, 2) if total else 0.0
        if fraction != last[0]:
            last[0] = fraction
            send(("progress", stage, fraction))

    try:
        staging_dir = Path(staging).resolve()
        shelf = Path(shelf_dir).resolve()
        # Work inside the (empty) staging folder: a preset name then always means the preset, never a
        # file of that name where the server was started, and a routine's own file name stays relative,
        # so its errors read as they did on the form.
        os.chdir(staging_dir)
        if spec.get("text") is not None:
            name = spec["filename"]
            Path(name).write_text(spec["text"], encoding="utf-8")
        else:
            name = spec["preset"]
        send(("progress", "preparing", 0.0))
        profile = personalise.load_profile(None, spec.get("flags") or {})
        # the server's journal, as `windown build` uses it: its verdicts shape the track, and the build is
        # recorded ("journal": None is `windown serve --no-journal`; no key: the default journal)
        journal_file = spec.get("journal")
        use = pipeline.JournalUse(journal_file) if "journal" not in spec or journal_file is not None else None
        result = pipeline.build(name, staging_dir / f"{stem}.mp3", profile=profile, journal_use=use,
                                on_progress=progress)
        for sidecar in result.sidecars:
            os.replace(sidecar, shelf / sidecar.name)
        os.replace(result.mp3, shelf / result.mp3.name)  # last: from now on the track is listed
        if use is not None and result.routine.settings.journal:
            shelved = dataclasses.replace(result, mp3=shelf / result.mp3.name)
            journal.record_session(journal_file, journal.session_of(shelved, spec.get("preset") or name, "web"))
        send(("done", ""))
    except UserError as exc:
        send(("failed", str(exc)))
    except (Interrupted, KeyboardInterrupt):
        send(("failed", "stopped; no partial file was written"))
    except Exception as exc:  # a bug in windown: its traceback is saved, and the page gets the one line
        from windown import errors

        send(("failed", errors.report_bug(exc, context=f"a build from the page: {stem}")))
    finally:
        conn.close()
