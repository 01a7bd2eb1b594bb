"""Jobs: what a batch builds. A `Job` is one routine (a file or a preset) with an optional profile and
setting overrides, built to one MP3 in an output folder. Jobs come from the command line (`jobs_for`)
or from a batch file (`read_batch_file`), whose every problem is reported as `file:line: problem. Fix`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from windown import export, library, pipeline, settings, source
from windown.errors import RoutineError, UserError, closest, kind_of
from windown.settings import Settings
from windown.source import Fields, Map, Seq

# Keys of a batch-file job besides the settings (settings.SETTINGS and settings.ENCODING).
JOB_KEYS = ("routine", "output", "profile")


@dataclass(frozen=True)
class Job:
    """One track to build."""

    routine: str                       # a routine file or a preset name
    output: Path                       # the MP3 to write
    profile: str | None = None         # a profile file; None: the default profile when it exists
    overrides: dict[str, Any] = field(default_factory=dict)  # checked setting values by key: "pace", "voice.rate"
    loudness_lufs: float = settings.default("loudness")
    bitrate_kbps: int | None = None    # constant bitrate; else VBR at `quality` (default 4)
    quality: int | None = None
    mono: bool = False
    problem: str = ""                  # why the batch file's job cannot be built (`file:line: ...`); it fails alone

    @property
    def label(self) -> str:
        return self.output.stem


@dataclass
class Outcome:
    """What became of one job."""

    job: Job
    status: str                        # "built", "skipped" or "failed"
    reason: str = ""                   # why it failed, in one line
    seconds: float = 0.0               # wall time this job took here (queueing included)
    title: str | None = None
    duration_s: float | None = None
    synthesised: int = 0               # phrases the speech engine had to synthesise
    bug: bool = False                  # it failed on a bug in windown (`reason` says where the traceback is)
    session: Any = None                # journal.Session: what the built track contains, for the journal


Event = Callable[[str, Job, str], None]  # (kind: warning/queued/built/skipped/failed, job, detail)


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
    hint = closest(name, library.preset_names())
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


def jobs_from(sources: list[str], folder: str | os.PathLike, *, profile: str | None = None,
              overrides: dict[str, Any] | None = None, **encoding: Any) -> list[Job]:
    """Jobs for `windown batch SOURCES`: each a batch file, a routine file or a preset name."""
    jobs = []
    for name in sources:
        if is_batch_file(name):
            jobs += read_batch_file(name, folder, profile=profile, overrides=overrides, **encoding)
        else:
            jobs += jobs_for([name], folder, profile=profile, overrides=overrides, **encoding)
    if not jobs:
        raise UserError("nothing to build", "Name routine files, presets or a batch file, or add --all-presets")
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
            raise f.error("jobs", f"'jobs' must be a list, not {kind_of(items)}",
                          "Write each job on its own line starting with '- '")
        if defaults is not None:
            base = _merge(base, _read_job(Fields(defaults, path, "'defaults'"), path, with_routine=False))
    elif isinstance(doc, Seq):
        items = doc
    else:
        raise RoutineError(f"a batch file must be a list of jobs, not {kind_of(doc)}",
                           "Write e.g. `- routine: bedtime-lower-back` on each line", path=path,
                           line=getattr(doc, "line", 1))
    if not items:
        raise RoutineError("the batch file has no jobs", "Add at least one, e.g. `- routine: gentle`",
                           path=path, line=getattr(items, "line", 1))
    jobs = []
    for item, line in zip(items, items.item_lines):
        if isinstance(item, str):
            item = _one_key_map("routine", item, line)
        try:
            jobs.append(_job(item, line, path, folder, base))
        except UserError as exc:  # this job fails alone, with its line; the others still build
            jobs.append(_unbuildable(item, line, folder, str(exc)))
    return jobs


def _job(item: Any, line: int, path: str, folder: str | os.PathLike, base: dict) -> Job:
    if not isinstance(item, Map):
        raise RoutineError(f"a job must be a routine name or a mapping, not {kind_of(item)}",
                           "Write e.g. `- routine: gentle` and its settings below it", path=path, line=line)
    spec = _merge(base, _read_job(Fields(item, path, "a job"), path, with_routine=True))
    enc = spec["encoding"]
    if enc.get("bitrate_kbps") is not None and enc.get("quality") is not None:
        raise RoutineError("a job sets both 'bitrate' and 'quality'", "Choose one of them", path=path, line=line)
    out = output_path(folder, spec["routine"], name=spec["flags"].get("name"), output=spec.get("output"))
    return Job(spec["routine"], out, spec["profile"], spec["flags"], **enc)


def _unbuildable(item: Any, line: int, folder: str | os.PathLike, problem: str) -> Job:
    """A job the batch file got wrong, named in the summary by its output, routine or line."""
    routine = item.get("routine") if isinstance(item, Map) else None
    output = item.get("output") if isinstance(item, Map) else None
    routine = routine if isinstance(routine, str) and routine else f"job-on-line-{line}"
    if isinstance(output, str) and output:
        try:
            output = export.mp3_name(output)
        except UserError:
            output = Path(output).stem  # `second.wav` is listed as second.mp3
    else:
        output = None
    return Job(routine, output_path(folder, routine, output=output), problem=problem)


def _output_name(value: Any, f: Fields, key: str) -> str:
    """A job's `output`: a name in the output folder, `.mp3` or no extension, as `-o` takes."""
    name = source.text(100)(value, f, key)
    try:
        export.mp3_name(name)
    except UserError as exc:
        raise f.error(key, exc.problem, exc.hint) from None
    return name


def _mapping(value: Any, f: Fields, key: str) -> Map:
    if not isinstance(value, Map):
        raise f.error(key, f"'{key}' must be a mapping, not {kind_of(value)}",
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
        spec["output"] = f.get("output", _output_name)
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

