"""What a batch run leaves behind: each built track written onto the shelf (fingerprint last), the
journal's record of what was built, and the summary table `windown batch` prints. Reading the shelf
back (listing, playlist, deleting) is `windown.shelf`'s.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from windown import atomic
from windown.batch.fingerprint import SIDECARS, digest, fingerprint_path
from windown.batch.jobs import Job, Outcome
from windown.errors import BuildError, JobsHitABug

STATUSES = ("built", "skipped", "failed")


def write_track(job: Job, files: dict[str, bytes], inputs: dict) -> None:
    """Write a track and its sidecars (`files`: suffix -> bytes), each atomically; the fingerprint of
    `inputs` last, so it vouches for them."""
    stamp = fingerprint_path(job.output)
    stamp.unlink(missing_ok=True)  # a half-replaced shelf entry must never look current
    atomic.write_bytes(job.output, files[".mp3"])
    for suffix in SIDECARS:
        if suffix in files:
            atomic.write_bytes(job.output.with_suffix(suffix), files[suffix])
    record = {"fingerprint": digest(inputs), "routine": job.routine, "inputs": inputs,
              "mp3_bytes": len(files[".mp3"])}
    atomic.write_text(stamp, json.dumps(record, indent=2, sort_keys=True) + "\n")


def record_sessions(outcomes: list[Outcome], journal_path: str | os.PathLike | None) -> None:
    """Each track built this run into the journal, naming its job's routine and where its MP3 now lies
    (a worker built it elsewhere, perhaps on another machine)."""
    from windown import journal

    built = [o for o in outcomes if o.status == "built" and o.session is not None]
    if not built:
        return
    with journal.open_journal(journal.default_path(journal_path)) as diary:
        for o in built:
            diary.add_session(dataclasses.replace(o.session, routine=o.job.routine,
                                                  output=str(Path(o.job.output).resolve())))


def table(outcomes: list[Outcome]) -> list[tuple[str, str]]:
    """The summary table, one row per job: (status, the rest of the line). A row prints as
    `f"{status:8s} {rest}"`; the CLI only adds colour to the status."""
    width = max((len(str(o.job.output)) for o in outcomes), default=0)
    rows = []
    for o in outcomes:
        if o.duration_s is not None:
            minutes, seconds = divmod(int(round(o.duration_s)), 60)
            length = f"{minutes}:{seconds:02d}"
        else:
            length = "-"
        detail = {"built": f"built in {o.seconds:.0f}s", "skipped": "unchanged"}.get(o.status, o.reason)
        rows.append((o.status, f"{str(o.job.output):{width}s} {length:>6s}  {detail}"))
    return rows


def counts(outcomes: list[Outcome]) -> dict[str, int]:
    return {status: sum(o.status == status for o in outcomes) for status in STATUSES}


def summary(outcomes: list[Outcome]) -> str:
    """`4 tracks: 1 built, 2 skipped, 1 failed`."""
    n = counts(outcomes)
    return (f"{len(outcomes)} track{'s' if len(outcomes) != 1 else ''}: {n['built']} built, "
            f"{n['skipped']} skipped, {n['failed']} failed")


def failure(outcomes: list[Outcome]) -> BuildError | None:
    """The error a batch with failed jobs ends with (exit code 1, or 3 when one hit a bug); None if none failed."""
    failed = [o for o in outcomes if o.status == "failed"]
    if not failed:
        return None
    error = JobsHitABug if any(o.bug for o in failed) else BuildError
    return error(f"{len(failed)} of {len(outcomes)} job{'s' if len(outcomes) != 1 else ''} failed",
                 "Their reasons are in the table above")
