"""Batch: build a shelf of tracks in one run, in parallel, incrementally, locally or on a Dask cluster.

- `jobs`: a `Job` is one routine with an optional profile and overrides, built to one MP3; jobs come
  from the command line (`jobs_for`) or a batch file (`read_batch_file`).
- `fingerprint`: a job's inputs, hashed; a track built from the same inputs is skipped.
- `running`: `run(jobs)` builds what changed through an `Executor` (`LocalExecutor`, `DaskExecutor`).
- `results`: writing built tracks onto the shelf, the journal's record, and the summary table (the
  shelf itself, its listing and playlist, is `windown.shelf`).
"""

from windown.batch.fingerprint import (FINGERPRINT_SUFFIX, SIDECARS, Prepared, engine_version, fingerprint,
                                       fingerprint_path, prepare, stale_reason)
from windown.batch.jobs import (Event, Job, Outcome, check_routine_name, is_batch_file, jobs_for, jobs_from,
                                output_path, read_batch_file)
from windown.batch.results import counts, failure, record_sessions, summary, table, write_track
from windown.batch.running import (DASK_HINT, DaskExecutor, Executor, LocalExecutor, Task, build_task, default_workers,
                                   run)

__all__ = [
    "DASK_HINT", "FINGERPRINT_SUFFIX", "SIDECARS", "DaskExecutor", "Event", "Executor", "Job",
    "LocalExecutor", "Outcome", "Prepared", "Task", "build_task", "check_routine_name", "counts", "default_workers",
    "engine_version", "failure", "fingerprint", "fingerprint_path", "is_batch_file", "jobs_for", "jobs_from",
    "output_path", "prepare", "read_batch_file", "record_sessions", "run", "stale_reason", "summary", "table",
    "write_track",
]
