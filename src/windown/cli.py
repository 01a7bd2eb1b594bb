"""The command line: thin wrappers over the library, and the one place errors become exit codes.

Exit codes: 0 success, 1 a build failed, 2 bad input or usage, 3 a bug in windown (its traceback is
saved to a file), 130/143 interrupted (SIGINT/SIGTERM). When the reader of its output goes away
(`windown script x | head -1`), windown ends as `cat`, `seq` or `git log` do: silently, killed by
SIGPIPE (a shell shows 141), so a pipeline with `pipefail` treats it as those tools, not as a failed build.
Results go to stdout; progress and errors go to stderr; colour only on a terminal without NO_COLOR.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable

import click

from windown import (__version__, errors, export, library, personalise, pipeline, routine, settings, shelf, source,
                     starter)
from windown.errors import Interrupted, UserError, closest


class Context:
    def __init__(self, quiet: bool = False, verbose: bool = False):
        self.quiet = quiet
        self.verbose = verbose
        self.journal_file: str | None = None  # `windown journal --journal FILE`, for its subcommands


def _color() -> bool:
    return sys.stderr.isatty() and not os.environ.get("NO_COLOR")


def note(ctx: Context, message: str) -> None:
    if not ctx.quiet:
        click.echo(message, err=True, color=_color())


def _set_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(Context).quiet = True


def _set_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(Context).verbose = True


def _talk_options() -> list[click.Option]:
    """-q and -v, accepted before the command and after it, as people type them."""
    return [click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, is_eager=True, callback=_set_quiet,
                         help="Print only results and errors."),
            click.Option(["-v", "--verbose"], is_flag=True, expose_value=False, is_eager=True,
                         callback=_set_verbose, help="Say more about each stage.")]


class PipeClosed(Exception):
    """The reader of stdout or stderr went away. Not an OSError, so click does not turn it into exit code 1."""


class Group(click.Group):
    """Every command also takes -q/-v after its name."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        cmd.params.extend(_talk_options())
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
            if ctx.parent is None:
                sys.stdout.flush()  # the last buffered output fails here, not at exit where nobody can catch it
            return result
        except BrokenPipeError:
            raise PipeClosed() from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="windown")
@click.pass_context
def cli(ctx):
    """Turn a bedtime stretching routine into one calm, voice-guided MP3.

    \b
    Example:
      windown build bedtime-lower-back --length 15m --avoid kneeling
    """
    ctx.ensure_object(Context)


cli.params.extend(_talk_options())


def _help(s: settings.Setting) -> str:
    text = s.help[:1].upper() + s.help[1:]
    if s.kind != "choice" and s.range_text():
        text += f" ({s.range_text()}" + (f"; default {s.show(s.default)})" if s.default is not None else ")")
    return text + "."


def setting_option(s: settings.Setting) -> Callable:
    """A click option made from a settings-table row; its value is checked as a file's would be."""
    if s.kind == "flag":
        if "/" in s.flag:
            return click.option(s.flag, s.param, default=None, help=_help(s))
        return click.option(s.flag, s.param, is_flag=True, default=None, help=_help(s))

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        return None if value is None else s.parse_flag(value)

    metavar = {"duration": "DURATION", "whole": "N", "number": "N", "tags": "TAG,...", "stretches": "ID,...",
               "sound": "NAME|FILE", "text": "TEXT"}.get(s.kind, "[" + "|".join(s.options) + "]")
    complete = (lambda ctx, param, incomplete: [o for o in s.options if o.startswith(incomplete)]) \
        if s.kind in ("choice", "sound") else None
    return click.option(s.flag, s.param, metavar=metavar, callback=check, shell_complete=complete, help=_help(s))


def setting_options(table: tuple[settings.Setting, ...]) -> Callable:
    def decorate(func: Callable) -> Callable:
        for s in reversed([s for s in table if s.flag]):
            func = setting_option(s)(func)
        return func
    return decorate


def personal_options(func):
    """The options every command that makes a track shares: the profile and every setting with a flag."""
    func = setting_options(settings.SETTINGS)(func)
    return click.option("--profile", type=click.Path(dir_okay=False), help="Profile file (default: "
                        "~/.config/windown/profile.yaml when it exists).")(func)


def flag_values(opts: dict, table: tuple[settings.Setting, ...] = settings.SETTINGS) -> dict[str, Any]:
    """{setting key: checked value} for the flags given (taken out of `opts`)."""
    out = {}
    for s in table:
        if s.flag:
            value = opts.pop(s.param, None)
            if value is not None:
                out[s.key] = value
    return out


def profile_from(opts: dict) -> personalise.Profile:
    return personalise.load_profile(opts.pop("profile", None), flag_values(opts))


def journal_options(func):
    """--journal FILE and --no-journal, for the commands that build or show a track."""
    func = click.option("--no-journal", is_flag=True, help="Build without the journal: no changes from it and "
                        "no session recorded.")(func)
    return click.option("--journal", "journal_file", type=click.Path(dir_okay=False), metavar="FILE",
                        help="The journal file (default: $WINDOWN_JOURNAL, else "
                        "$XDG_DATA_HOME/windown/journal.sqlite).")(func)


def personalised(name: str, opts: dict, journal_use: pipeline.JournalUse | None = None,
                 ctx: Context | None = None) -> tuple[routine.Routine, list[str]]:
    return pipeline.prepare(loaded(ctx or Context(), name), profile_from(opts), journal_use)


def loaded(ctx: Context, name: str) -> routine.Routine:
    """The routine, its warnings said on stderr unless -q (legal but unlikely values; never an exit code)."""
    r = routine.load(name)
    for warning in r.warnings:
        note(ctx, str(warning))
    return r


def journal_use(journal_file: str | None, no_journal: bool, record: bool) -> pipeline.JournalUse | None:
    return None if no_journal else pipeline.JournalUse(journal_file, record)


@cli.command()
@click.argument("routine_name", metavar="ROUTINE")
@personal_options
@click.option("-o", "--output", type=click.Path(), help="Output MP3 (default: output/<name>.mp3); a folder (existing, "
              "or ending in /) gets <name>.mp3, a name without an extension gets .mp3.")
@setting_options(settings.ENCODING)
@journal_options
@click.pass_obj
def build(ctx, routine_name, output, journal_file, no_journal, **opts):
    """Build a track: one MP3 plus its chapters, transcripts (.vtt .srt .lrc) and cue sheet (.json).

    ROUTINE is a routine file or a preset name (see `windown presets`).

    \b
    Examples:
      windown build bedtime-lower-back
      windown build my-routine.yaml -o tonight.mp3 --ambient rain --tail 20m
      windown build bedtime-lower-back --length 12m --avoid kneeling,prone --pace slow

    The build is recorded in your journal (see `windown log`), and the journal's changes are listed
    below the summary; --no-journal builds without it.
    """
    from windown import journal

    enc = flag_values(opts, settings.ENCODING)
    settings.check_encoding(enc)
    progress = Progress(ctx)
    result = pipeline.build(loaded(ctx, routine_name), output, profile=profile_from(opts),
                            journal_use=journal_use(journal_file, no_journal, record=True),
                            loudness_lufs=enc.get("loudness", settings.default("loudness")),
                            encoding=export.Encoding.choose(enc.get("bitrate"), enc.get("quality"),
                                                            enc.get("mono", False)),
                            on_progress=progress.update)
    progress.done()
    if not no_journal and result.routine.settings.journal:
        journal.record_session(journal_file, journal.session_of(result, routine_name))
    if ctx.quiet:  # -q silences the progress bar and this summary alike; errors still print
        return
    minutes, seconds = divmod(int(round(result.duration_s)), 60)
    click.echo(f"{result.mp3}: {minutes}:{seconds:02d}, {result.size_bytes / 1e6:.1f} MB, "
               f"{result.loudness_lufs:.1f} LUFS, peak {result.peak_db:.1f} dBFS; "
               f"sidecars: {', '.join(p.suffix for p in result.sidecars)}")
    for change in result.changes:
        click.echo(f"  * {change}")


class Progress:
    """A one-line progress bar on stderr, only on a terminal and never with -q."""

    def __init__(self, ctx: Context):
        self.on = not ctx.quiet and sys.stderr.isatty()
        self.last = -1

    def update(self, stage: str, done: int, total: int) -> None:
        if not self.on or not total:
            return
        percent = int(100 * done / total)
        if percent != self.last:
            self.last = percent
            bar = "#" * (percent // 4)
            sys.stderr.write(f"\r{stage:8s} [{bar:<25s}] {percent:3d}%")
            sys.stderr.flush()

    def done(self) -> None:
        if self.on and self.last >= 0:
            sys.stderr.write("\r" + " " * 50 + "\r")
            sys.stderr.flush()


def _clock(ms: float) -> str:
    minutes, rest = divmod(ms / 1000, 60)
    return f"{int(minutes):02d}:{rest:06.3f}"


@cli.command()
@click.argument("routine_name", metavar="ROUTINE")
@personal_options
@click.option("--json", "as_json", is_flag=True, help="Print the timed script as JSON.")
@journal_options
@click.pass_obj
def script(ctx, routine_name, as_json, journal_file, no_journal, **opts):
    """Print the timed narration: every cue with its start time, chapters, holds and the total.

    \b
    Example:
      windown script bedtime-lower-back --pace slow
    """
    r, changes = personalised(routine_name, opts, journal_use(journal_file, no_journal, record=False), ctx)
    p = pipeline.plan(r, changes)
    tl = p.timeline
    if as_json:  # the cue sheet `build` writes, plus the changes (they may quote the journal, kept out of files)
        click.echo(json.dumps({**pipeline.cue_sheet(p), "changes": changes}, indent=2))
        return
    click.echo(r.title)
    for change in changes:
        click.echo(f"  * {change}")
    events = sorted([(c.start_frame, 0, f"\n== {c.label} ==") for c in tl.chapters] +
                    [(e.start_frame, 1, f"{_clock(tl.ms(e.start_frame))}  " +
                      (e.text if e.kind == "speech" else "(chime)"))
                     for e in tl.events] +
                    [(p.start_frame, 1, f"{_clock(tl.ms(p.start_frame))}  (pause "
                      f"{source.format_duration(round(tl.ms(p.stop_frame - p.start_frame)))})") for p in tl.pauses])
    for _, _, line in events:
        click.echo(line)
    click.echo(f"\ntotal {_clock(tl.ms(tl.end_frame))} (then the bed plays on for "
               f"{source.format_duration(r.settings.tail_ms)})")


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
@personal_options
@journal_options
@click.pass_obj
def validate(ctx, files, journal_file, no_journal, **opts):
    """Check routine files as a build would, without making audio; stops at the first bad one with its
    file:line and the fix. Legal but unlikely values are warnings.

    It checks the file, your profile and journal, the options given, the engine and voice, the
    ambient file's place, and that every cue fits its hold: on the real length of speech already
    in the cache, else on an estimate (a cue that surely overruns is an error, one that may is a
    warning). Left to the build, as they need audio: an ambient file ffmpeg cannot decode, an
    engine that cannot speak a phrase, and encoding and writing the MP3.

    \b
    Example:
      windown validate my-routine.yaml other.yaml
    """
    from windown import check

    profile = profile_from(opts)
    for name in files:
        checked = check.check(name, profile, journal_file, use_journal=not no_journal)
        for warning in dict.fromkeys(str(w) for w in checked.warnings):
            note(ctx, warning)
        click.echo(f"{name}: ok")


@cli.command(name="settings")
def list_settings():
    """List every setting: its key in a routine or profile, its flag, default, range and meaning.

    \b
    Example:
      windown settings
    """
    click.echo(f"{'key':19s} {'flag':27s} {'default':11s} {'values':27s} meaning")
    for s in settings.SETTINGS + settings.ENCODING:
        key = s.key if s in settings.SETTINGS else s.key + "*"
        default = s.show(s.default) if s.default is not None else "-"
        click.echo(f"{key:19s} {s.flag or '':27s} {default:11s} {s.range_text():27s} {s.help}")
    click.echo("* set by a flag or a batch job, not by a routine or profile")


@cli.command()
def stretches():
    """List the stretch library: id, position, in bed, default length and tags.

    \b
    Example:
      windown stretches
    """
    click.echo(f"{'id':28s} {'position':9s} {'in bed':6s} {'length':8s} tags")
    for st in library.stretches().values():
        for s in (st, st.easier):
            if s is None:
                continue
            bed = "in bed" if s.in_bed else ""
            click.echo(f"{s.id:28s} {s.position:9s} {bed:6s} ~{source.format_duration(s.default_length_ms):7s} "
                       f"{', '.join(s.tags)}")


@cli.command()
@click.pass_obj
def presets(ctx):
    """List the built-in presets with their stretches and guided length.

    The length is the one `windown script NAME` gives the preset as written (without a profile, flags or
    the journal), from its timeline with the preset's own voice. Words not yet in the speech cache are
    spoken once to measure them, and kept for builds.

    \b
    Example:
      windown presets
    """
    for name in library.preset_names():
        r, _ = pipeline.prepare(str(library.preset_path(name)))  # the preset, even beside a file of its name

        def speaking(count: int, name: str = name) -> None:
            if count:
                note(ctx, f"{name}: speaking {count} phrases not yet in the speech cache, to measure its length")

        tl = pipeline.plan(r, on_synth=speaking).timeline
        names = [s.stretch.id for s in r.steps if isinstance(s, routine.StretchStep)]
        click.echo(f"{name:20s} {_clock(tl.ms(tl.end_frame)).partition('.')[0]:>6s}  {r.title}")
        click.echo(f"{'':22s}{', '.join(names)}")


@cli.command()
@click.option("--engine", type=click.Choice(settings.ENGINES), default=settings.default("voice.engine"),
              show_default=True)
def voices(engine):
    """List the voices a speech engine offers.

    \b
    Example:
      windown voices --engine espeak-ng
    """
    from windown import speech

    eng = speech.get_engine(engine)
    eng.check()
    listed = eng.voices()
    for voice_id, description in listed:
        click.echo(f"{voice_id:32s} {description}")
    pairs = [v.split("+", 1) for v, _ in listed if "+" in v]
    variants = [variant for _, variant in pairs]
    others = [v for v, _ in listed if "+" not in v and v not in {base for base, _ in pairs}
              and v.rsplit("/", 1)[-1].startswith("en")]
    if others and variants:  # a note for people, on stderr so the list stays one voice a line
        click.echo(f"A variant also goes on any language above: LANGUAGE+VARIANT, such as "
                   f"{min(others, key=len)}+{'m3' if 'm3' in variants else variants[0]}.", err=True)


@cli.command()
@click.option("--preview", metavar="NAME", help="Write a short sample of this bed.")
@click.option("-o", "--output", type=click.Path(), help="Where the preview goes (.wav, .mp3, ...).")
@click.option("--seconds", type=click.FloatRange(1, 300), default=20.0, show_default=True)
def sounds(preview, output, seconds):
    """List the ambient beds and the sound files in ./sounds/, or write a preview of one.

    \b
    Examples:
      windown sounds
      windown sounds --preview rain -o rain.mp3
    """
    from windown import ambient

    if preview:
        out = Path(output or f"{pipeline.safe_name(Path(preview).stem)}-preview.wav")
        ambient.preview(preview, out, seconds)
        click.echo(str(out))
        return
    for name, description in ambient.describe():
        click.echo(f"{name:12s} {description}")
    for path in ambient.user_sounds():
        click.echo(f"{path.stem:12s} your file: {os.path.relpath(path)}")


def _stdout_color() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


_STATUS_COLOURS = {"built": "green", "skipped": None, "failed": "red"}


@cli.command()
@click.argument("sources", nargs=-1, metavar="[ROUTINE | BATCH-FILE]...")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False), default="output", show_default=True,
              help="The shelf: the folder the tracks go into.")
@click.option("-j", "--jobs", "workers", type=click.IntRange(1, 512), metavar="N",
              help="Tracks to build at once (default: the number of cores).")
@click.option("--force", is_flag=True, help="Rebuild every track, changed or not.")
@click.option("--all-presets", is_flag=True, help="Add a job for every built-in preset.")
@click.option("--scheduler", metavar="ADDRESS", help="Build on a Dask cluster, e.g. tcp://10.0.0.5:8786 "
              "(needs windown[dask]; workers need no shared disk).")
@click.option("--playlist", type=click.Path(dir_okay=False), help="The playlist to write (default: "
              "<output-dir>/playlist.m3u).")
@click.option("--no-playlist", is_flag=True, help="Do not write a playlist.")
@personal_options
@setting_options(settings.ENCODING)
@journal_options
@click.pass_obj
def batch(ctx, sources, output_dir, workers, force, all_presets, scheduler, playlist, no_playlist, journal_file,
          no_journal, **opts):
    """Build many tracks at once: routine files, preset names and batch files.

    Tracks whose inputs are unchanged (routine, profile, settings, engine and voice, windown's
    version) are skipped; each track's input fingerprint is kept beside it in <name>.fingerprint.
    Settings given here apply to every job; a batch file's own settings win over them. A failing
    job does not stop the others, nor does a job the batch file gets wrong (it is listed with its
    file:line); the exit code is 1 if any failed. The table of results goes to
    stdout, progress to stderr. Finally the shelf's playlist (.m3u) is written. Each track built is
    recorded in the journal (--no-journal: not); a shelf is built as written, without the journal's
    changes, since it is for many people.

    A batch file is a YAML list of jobs; each is a routine (file or preset) or a mapping with
    `routine` plus `output` (the file name; default <routine>[-<name>].mp3), `profile`, any
    routine setting (pace, length, ambient, voice, name, ...) and loudness, bitrate, quality,
    mono. A mapping with `defaults` and `jobs` sets keys for every job. Paths are relative to
    the batch file.

    \b
    Examples:
      windown batch --all-presets -o output/
      windown batch bedtime-lower-back gentle.yaml --pace slow -j 2
      windown batch shelf.yaml --force
      windown batch shelf.yaml --scheduler tcp://127.0.0.1:8786

    \b
    A batch file:
      - bedtime-lower-back
      - routine: routines/evening.yaml
        output: evening-anna
        profile: profiles/anna.yaml
        length: 15m
        ambient: rain
    """
    from windown import batch as batching

    enc = flag_values(opts, settings.ENCODING)
    settings.check_encoding(enc)
    encoding = {settings.get(k).attr: v for k, v in enc.items()}
    profile_file = opts.get("profile")
    profile = profile_from(opts)  # checks the flags and an explicit --profile now, before any job
    flags = {k: v for k, v in profile.flags.items() if v is not None}
    jobs = batching.jobs_from(list(sources) + (library.preset_names() if all_presets else []), output_dir,
                              profile=profile_file, overrides=flags, **encoding)
    from windown import journal

    if not no_journal:  # a foreign or read-only journal is reported before any job, not after
        journal.open_journal(journal.default_path(journal_file)).close()

    finished = []

    def on_event(kind: str, job, detail: str) -> None:
        if kind == "warning":
            note(ctx, detail)
            return
        if kind == "queued":
            if ctx.verbose:
                note(ctx, f"building {job.output}: {detail}")
            return
        finished.append(job)
        line = f"[{len(finished)}/{len(jobs)}] {kind} {job.output}"
        note(ctx, line + (f": {detail}" if kind == "failed" else ""))

    if ctx.verbose:
        where = f"on {scheduler}" if scheduler else f"with up to {workers or batching.default_workers()} at once"
        note(ctx, f"{len(jobs)} jobs into {output_dir}/ {where}")
    outcomes = batching.run(jobs, workers=workers, force=force, scheduler=scheduler, on_event=on_event)
    if not no_journal:
        batching.record_sessions(outcomes, journal_file)

    colour = _stdout_color()
    for status, rest in batching.table(outcomes):
        shown = click.style(f"{status:8s}", fg=_STATUS_COLOURS[status]) if colour else f"{status:8s}"
        click.echo(f"{shown} {rest}", color=colour)
    summary = batching.summary(outcomes)
    playlist_error = None
    if not no_playlist:
        try:
            summary += f"; playlist {shelf.write_playlist(output_dir, playlist)}"
        except UserError as exc:
            playlist_error = exc
    click.echo(summary)
    failure = batching.failure(outcomes)
    if failure and playlist_error:
        note(ctx, str(playlist_error))
    if failure or playlist_error:
        raise failure or playlist_error


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
def init(file, force):
    """Write a commented starter routine to FILE, ready to edit and build.

    \b
    Example:
      windown init my-routine.yaml && windown build my-routine.yaml
    """
    from windown import atomic

    path = Path(file)
    if path.exists() and not force:
        raise UserError("the file already exists", "Choose another name, or add --force to overwrite it", path=path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # as `build -o` does
    except OSError as exc:
        raise UserError(f"cannot create its folder ({exc.strerror})", "Choose another place",
                        path=path.parent) from None
    atomic.write_text(path, starter.starter(path.name))
    click.echo(str(path))


# --- the journal ------------------------------------------------------------------------------------

def _ask(journal_file: str | None, which: str | None) -> dict[str, str | None]:
    """On a terminal with no flags: the evening's or the morning's few questions; Enter skips one."""
    import datetime

    from windown import journal

    morning = which == "morning" if which else datetime.datetime.now().hour < 14
    last = None
    existing = journal.open_journal(journal.default_path(journal_file), write=False)
    if existing is not None:
        with existing:
            last = existing.last_session()
    if morning:
        questions = [("sleep", "--sleep", "How did you sleep? 1 very poor, 2 poor, 3 fair, 4 good, 5 very good"),
                     ("fell_asleep", "--fell-asleep", "About how many minutes did it take to fall asleep?"),
                     ("woke", "--woke", "How many times did you wake in the night?"),
                     ("pain_waking", "--pain-waking", "Back pain on waking, 0 none to 10 worst?")]
    else:
        done = f" ({', '.join(x.stretch for x in last.stretches)})" if last else ""
        questions = [("pain", "--pain", "Back pain now, 0 none to 10 worst?"),
                     ("hurt", "--hurt", f"Did any stretch hurt? ids, comma-separated{done}"),
                     ("helped", "--helped", "Did any stretch help?"),
                     ("skipped", "--skipped", "Did you skip any?"),
                     ("note", "--note", "A note?")]
    answers: dict[str, str | None] = {}
    for key, flag, question in questions:
        while True:
            answer = click.prompt(question, default="", show_default=False, err=True).strip()
            try:
                if flag in journal.SCALES:
                    journal.score(flag, answer)
                elif flag != "--note":
                    journal.check_ids(flag, journal.stretch_ids(answer), last)
            except UserError as exc:
                click.echo(str(exc), err=True)
                continue
            answers[key] = answer or None
            break
    return answers


@cli.command("log")
@click.option("--pain", metavar="N", help="Evening: back pain now, 0 (none) to 10 (worst imaginable).")
@click.option("--hurt", metavar="IDS", help="Evening: stretches that hurt tonight, comma-separated ids.")
@click.option("--helped", metavar="IDS", help="Evening: stretches that helped.")
@click.option("--skipped", metavar="IDS", help="Evening: stretches you skipped.")
@click.option("--note", metavar="TEXT", help="A few words to remember.")
@click.option("--sleep", metavar="N", help="Morning: sleep quality, 1 very poor to 5 very good.")
@click.option("--fell-asleep", "fell_asleep", metavar="MINUTES", help="Morning: minutes it took to fall asleep.")
@click.option("--woke", metavar="N", help="Morning: times you woke in the night.")
@click.option("--pain-waking", "pain_waking", metavar="N", help="Morning: back pain on waking, 0 to 10.")
@click.option("--ask", type=click.Choice(["evening", "morning"]), help="On a terminal, the questions to ask "
              "(default: the morning's before 14:00, else the evening's).")
@click.option("--journal", "journal_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="The journal file (default: $WINDOWN_JOURNAL, else $XDG_DATA_HOME/windown/journal.sqlite).")
@click.pass_obj
def log_entry(ctx, journal_file, ask, **answers):
    """Add a journal entry: tonight's pain and how the stretches felt, or this morning's sleep.

    With no options on a terminal, it asks (the morning's questions before 14:00, else the evening's;
    --ask chooses). Stretch ids are checked against your last session. Several entries a day are fine;
    each keeps its time and the session it follows.

    \b
    Examples:
      windown log --pain 3 --hurt cobra --helped knee-to-chest
      windown log --sleep 4 --fell-asleep 20 --woke 1 --pain-waking 2
    """
    from windown import journal

    if all(v is None for v in answers.values()):
        if not sys.stdin.isatty():
            raise UserError("nothing to log", "Give e.g. --pain 3 in the evening or --sleep 4 in the morning; "
                            "on a terminal, `windown log` asks")
        answers = _ask(journal_file, ask)
    entry = journal.entry_from(answers)  # every value is checked before the journal is opened
    if all(getattr(entry, k) in (None, ()) for k in ("pain", "hurt", "helped", "skipped", "note", "sleep",
                                                      "fell_asleep_min", "woke", "pain_waking")):
        raise UserError("nothing to log", "Answer at least one question, or give e.g. --pain 3")
    journal.add_entry(journal_file, entry)
    parts = [f"{flag.strip('-').replace('-', ' ')} {getattr(entry, attr)}" for flag, attr in
             (("--pain", "pain"), ("--sleep", "sleep"), ("--fell-asleep", "fell_asleep_min"), ("--woke", "woke"),
              ("--pain-waking", "pain_waking")) if getattr(entry, attr) is not None]
    parts += [f"{kind} {', '.join(getattr(entry, kind))}" for kind in ("hurt", "helped", "skipped")
              if getattr(entry, kind)]
    if not ctx.quiet:
        click.echo(f"logged {entry.at[:16].replace('T', ' ')}: " + "; ".join(parts + (["note"] if entry.note else [])))


@cli.group("journal", invoke_without_command=True)
@click.option("--journal", "journal_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="The journal file (default: $WINDOWN_JOURNAL, else $XDG_DATA_HOME/windown/journal.sqlite).")
@click.option("--plot", metavar="FILE", help="Draw pain and sleep over time into FILE (.png or .svg).")
@click.option("--csv", "as_csv", is_flag=True, help="Print every session and entry as CSV.")
@click.pass_context
def journal_command(click_ctx, journal_file, plot, as_csv):
    """Look back: the last 14 nights, 7-night averages, and what each stretch seems to do.

    \b
    Examples:
      windown journal
      windown journal --plot journal.png
      windown journal --csv > journal.csv
      windown journal import journal.csv
      windown journal forgive cobra
    """
    from windown import journal
    from windown.journal import csvfile

    click_ctx.obj.journal_file = journal_file
    if click_ctx.invoked_subcommand:
        return
    if plot:
        from windown.journal import plot as plotting

        plotting.check_target(plot)  # a bad name is refused before the journal is read
    opened = journal.open_journal(journal.default_path(journal_file), write=False)
    contents = journal.Contents()
    if opened is not None:
        with opened:
            contents = opened.read()
    if as_csv:
        click.echo(csvfile.dumps(contents), nl=False)
    elif plot:
        click.echo(str(plotting.write(contents, plot)))
    else:
        click.echo(journal.report.text(contents, journal.report.night_of(journal.now())), nl=False)


@journal_command.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--journal", "journal_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="The journal file to add to.")
@click.pass_obj
def journal_import(ctx, file, journal_file):
    """Add the rows of a CSV written by `windown journal --csv`; rows already there are left alone.

    \b
    Example:
      windown journal import journal.csv
    """
    from windown import journal
    from windown.journal import csvfile

    contents = csvfile.read(file)  # every row is checked before anything is written
    with journal.open_journal(journal.default_path(journal_file or ctx.journal_file)) as diary:
        added, already = diary.add_all(contents)
    click.echo(f"{file}: {added} rows added, {already} already in the journal")


@journal_command.command("forgive")
@click.argument("stretch_id", metavar="ID")
@click.option("--journal", "journal_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="The journal file.")
@click.pass_obj
def journal_forgive(ctx, stretch_id, journal_file):
    """Bring back a stretch the journal left out or eased: its earlier hurt marks stop counting.

    \b
    Example:
      windown journal forgive cobra
    """
    import datetime

    from windown import journal

    path = journal.default_path(journal_file or ctx.journal_file)
    with journal.open_journal(path) as diary:
        contents = diary.read()
        stretch = journal.report.root_id(stretch_id)
        held = {v.stretch: v for v in journal.report.verdicts(contents, datetime.date.today())
                if v.action in ("ease", "leave-out")}
        if stretch not in held:
            known = sorted(held) or library.all_ids()
            hint = closest(stretch, known) or (f"The journal holds back: {', '.join(sorted(held))}" if held
                                                      else "The journal holds no stretch back")
            raise UserError(f"'{stretch_id}' is not held back by the journal, so there is nothing to forgive", hint)
        diary.forgive(stretch)
    click.echo(f"{stretch} forgiven: the next track has it again as written")


# Durations: 30s, 1m30s, 5m, 1h, 250ms, or a number of seconds (source.parse_duration_ms).


@cli.command()
@click.option("--shelf", "shelf_dir", type=click.Path(file_okay=False), default="output", show_default=True,
              help="The folder of tracks the page shows and builds into.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="The port to listen on.")
@click.option("--lan", is_flag=True, help="Listen on the home network (for your phone), with a secret in every "
              "address: your own (with the journal; kept beside it) and the shelf's, to share (never the journal; "
              "kept in .windown-secret). Both are printed, and a QR code of yours.")
@click.option("--journal", "journal_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="The journal the page shows and its builds use (default: $WINDOWN_JOURNAL, else "
              "$XDG_DATA_HOME/windown/journal.sqlite).")
@click.option("--no-journal", is_flag=True, help="No Journal page; builds neither read nor record the journal.")
@click.pass_obj
def serve(ctx, shelf_dir, port, lan, journal_file, no_journal):
    """Open the page: build tonight's track, play it, keep a shelf, and a podcast feed for your phone.

    It listens on 127.0.0.1 (this computer only) unless --lan is given. Ctrl-C stops it.

    \b
    Examples:
      windown serve                 # then open http://127.0.0.1:8000/
      windown serve --lan --shelf ~/bedtime
      windown serve --journal ~/back.sqlite
    """
    from windown.web import app

    # the address (and its QR code) is what it prints
    app.serve(shelf_dir, port, lan, journal_file=journal_file, use_journal=not no_journal, say=click.echo)


@cli.command("feed")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--base-url", metavar="URL", help="Where the folder is served from, e.g. https://example.org/shelf "
              "(default: the folder's file:// address).")
def feed_command(folder, base_url):
    """Write a podcast feed (feed.xml) and JSON chapters for every track in FOLDER, for static hosting.

    \b
    Example:
      windown feed output --base-url https://example.org/bedtime
    """
    from windown import feed

    for path in feed.write_static(folder, base_url):
        click.echo(str(path))


@cli.command()
def schema():
    """Print a JSON Schema (draft 2020-12) of the routine format, for completion in editors.

    Save it beside your routines and point yaml-language-server at it with a first line
    `# yaml-language-server: $schema=windown.schema.json` in the routine.

    \b
    Example:
      windown schema > windown.schema.json
    """
    from windown import schema as routine_schema

    click.echo(json.dumps(routine_schema.schema(), indent=2))


def _die_of_sigpipe() -> None:
    """End as a C tool does when its reader leaves: by SIGPIPE, after every `finally` has run, with no
    message. Output still buffered for the closed pipe is dropped (stdout now points at /dev/null)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGPIPE)
    sys.exit(128 + signal.SIGPIPE)  # where SIGPIPE cannot kill (it can on every POSIX system)


def main() -> None:
    """Entry point: run the CLI, turning every known failure into one line and an exit code."""
    def on_term(signum, frame):
        raise Interrupted(signum)

    signal.signal(signal.SIGTERM, on_term)
    try:
        cli.main(standalone_mode=False, prog_name="windown")
    except UserError as exc:
        click.echo(str(exc), err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:  # click's name for a KeyboardInterrupt inside a command
        click.echo("interrupted; no partial file was written", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted; no partial file was written", err=True)
        sys.exit(130)
    except Interrupted:
        click.echo("stopped; no partial file was written", err=True)
        sys.exit(143)
    except (PipeClosed, BrokenPipeError):
        _die_of_sigpipe()
    except Exception as exc:  # not bad input, not a failed build: a bug in windown
        click.echo(errors.report_bug(exc), err=True)
        sys.exit(errors.BUG_EXIT_CODE)
    sys.exit(0)
