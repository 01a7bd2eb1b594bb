"""The command line: thin wrappers over the library, and the one place errors become exit codes.

Exit codes: 0 success, 1 a build failed, 2 bad input or usage, 130/143 interrupted (SIGINT/SIGTERM).
Results go to stdout; progress and errors go to stderr; colour only on a terminal without NO_COLOR.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import click

from windown import __version__, library, personalise, pipeline, routine, source
from windown.errors import Interrupted, UserError


class Context:
    def __init__(self, quiet: bool, verbose: bool):
        self.quiet = quiet
        self.verbose = verbose


def _color() -> bool:
    return sys.stderr.isatty() and not os.environ.get("NO_COLOR")


def note(ctx: Context, message: str) -> None:
    if not ctx.quiet:
        click.echo(message, err=True, color=_color())


def _duration(ctx_click, param, value):
    if value is None:
        return None
    ms = source.parse_duration_ms(value)
    if ms is None or ms < 0:
        raise click.BadParameter(f"{value!r} is not a duration; {source.DURATION_HINT[0].lower()}"
                                 f"{source.DURATION_HINT[1:]}")
    return ms


def _tags(ctx_click, param, value):
    if not value:
        return None
    return tuple(t.strip() for t in value.split(",") if t.strip())


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="windown")
@click.option("-q", "--quiet", is_flag=True, help="Print only results and errors.")
@click.option("-v", "--verbose", is_flag=True, help="Say more about each stage.")
@click.pass_context
def cli(ctx, quiet, verbose):
    """Turn a bedtime stretching routine into one calm, voice-guided MP3.

    \b
    Example:
      windown build bedtime-lower-back --length 15m --avoid kneeling
    """
    ctx.obj = Context(quiet, verbose)


def personal_options(func):
    """The options every command that makes a track shares: the profile and its overrides."""
    options = [
        click.option("--profile", type=click.Path(dir_okay=False), help="Profile file (default: "
                     "~/.config/windown/profile.yaml when it exists)."),
        click.option("--name", help="Your name, for a short greeting."),
        click.option("--engine", type=click.Choice(routine.ENGINES), help="Speech engine."),
        click.option("--voice", help="Voice id (see `windown voices`)."),
        click.option("--rate", type=click.IntRange(80, 300), help="Speaking rate in words per minute."),
        click.option("--pace", type=click.Choice(routine.PACES), help="Scales holds, settling and transitions."),
        click.option("--instruction", type=click.Choice(routine.INSTRUCTION), help="How much talk you hear."),
        click.option("--length", callback=_duration, help="Target length of the guided part, e.g. 15m."),
        click.option("--avoid", callback=_tags, help="Tags to avoid, comma-separated (kneeling,prone,...)."),
        click.option("--exclude", callback=_tags, help="Stretch ids to leave out, comma-separated."),
        click.option("--in-bed/--not-only-in-bed", "in_bed_only", default=None,
                     help="Only stretches done lying in bed (or lift a profile's in_bed_only)."),
        click.option("--bedtime/--no-bedtime", default=None, help="Bedtime mode: no progress talk, chimes "
                     "instead of countdowns, a slower voice towards the end."),
        click.option("--order", type=click.Choice(routine.ORDERS), help="auto groups stretches by position."),
        click.option("--safety/--no-safety", default=None, help="Speak the short safety introduction."),
        click.option("--seed", type=click.IntRange(0, 2**31 - 1), help="Phrasing seed (default: today's date)."),
        click.option("--ambient", help="Bed: brown-noise, pink-noise, rain, ocean, drone, none, or a file."),
        click.option("--ambient-level", type=click.FloatRange(-60, 0), help="Bed level in dB under the voice."),
        click.option("--tail", callback=_duration, help="How long the bed plays on after the last words."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def profile_from(opts: dict) -> personalise.Profile:
    flags = {
        "name": opts.get("name"), "voice.engine": opts.get("engine"), "voice.voice": opts.get("voice"),
        "voice.rate_wpm": opts.get("rate"), "pace": opts.get("pace"), "instruction": opts.get("instruction"),
        "length_ms": opts.get("length"), "avoid": opts.get("avoid"), "exclude": opts.get("exclude"),
        "in_bed_only": opts.get("in_bed_only"), "bedtime": opts.get("bedtime"), "order": opts.get("order"),
        "safety": opts.get("safety"), "seed": opts.get("seed"), "ambient.level_db": opts.get("ambient_level"),
        "tail_ms": opts.get("tail"),
    }
    if opts.get("ambient"):
        sound = opts["ambient"]
        from windown import ambient

        path = Path(sound).expanduser()
        # an existing file is made absolute here: routine settings resolve paths against the routine
        flags["ambient.sound"] = str(path.resolve()) if sound not in ambient.BED_NAMES and path.exists() else sound
    if flags.get("length_ms") is not None and flags["length_ms"] < 60_000:
        raise UserError(f"--length must be at least 1m (got {source.format_duration(flags['length_ms'])})",
                        "Give the guided part's length, e.g. --length 15m")
    if flags.get("avoid"):
        bad = [t for t in flags["avoid"] if t not in library.TAGS]
        if bad:
            hint = source.closest(bad[0], library.TAGS) or "Choose from: " + ", ".join(library.TAGS)
            raise UserError(f"--avoid: unknown tag '{bad[0]}'", hint)
    if flags.get("exclude"):
        bad = [t for t in flags["exclude"] if t not in library.all_ids()]
        if bad:
            hint = source.closest(bad[0], library.all_ids()) or "Run `windown stretches` to list them"
            raise UserError(f"--exclude: unknown stretch '{bad[0]}'", hint)
    return personalise.load_profile(opts.get("profile"), flags)


def personalised(name: str, opts: dict) -> tuple[routine.Routine, list[str]]:
    return pipeline.prepare(name, profile_from(opts))


@cli.command()
@click.argument("routine_name", metavar="ROUTINE")
@personal_options
@click.option("-o", "--output", type=click.Path(), help="Output MP3 (default: output/<name>.mp3).")
@click.option("--loudness", type=click.FloatRange(-30, -10), default=-18.0, show_default=True,
              help="Integrated loudness target in LUFS.")
@click.option("--bitrate", type=click.IntRange(32, 320), help="Constant bitrate in kb/s instead of VBR.")
@click.option("--quality", type=click.IntRange(0, 9), help="VBR quality, 0 best to 9 smallest (default 4, "
              "about 165 kb/s).")
@click.option("--mono", is_flag=True, help="One channel: half the size, same sound on phone speakers.")
@click.pass_obj
def build(ctx, routine_name, output, loudness, bitrate, quality, mono, **opts):
    """Build a track: one MP3 plus its chapters, transcripts (.vtt .srt .lrc) and cue sheet (.json).

    ROUTINE is a routine file or a preset name (see `windown presets`).

    \b
    Examples:
      windown build bedtime-lower-back
      windown build my-routine.yaml -o tonight.mp3 --ambient rain --tail 20m
      windown build bedtime-lower-back --length 12m --avoid kneeling,prone --pace slow
    """
    from windown import export

    r, changes = personalised(routine_name, opts)
    out = Path(output) if output else pipeline.default_output(r)
    if bitrate is not None and quality is not None:
        raise UserError("--bitrate and --quality cannot be used together", "Choose one of them")
    encoding = export.Encoding.choose(bitrate, quality, mono)
    progress = Progress(ctx)
    result = pipeline.build(r, out, changes=changes, loudness_lufs=loudness, encoding=encoding,
                            on_progress=progress.update)
    progress.done()
    if ctx.quiet:  # -q silences the progress bar and this summary alike; errors still print
        return
    minutes, seconds = divmod(int(round(result.duration_s)), 60)
    click.echo(f"{result.mp3}: {minutes}:{seconds:02d}, {result.size_bytes / 1e6:.1f} MB, "
               f"{result.loudness_lufs:.1f} LUFS, peak {result.peak_db:.1f} dBFS; "
               f"sidecars: {', '.join(p.suffix for p in result.sidecars)}")


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
@click.pass_obj
def script(ctx, routine_name, as_json, **opts):
    """Print the timed narration: every cue with its start time, chapters, holds and the total.

    \b
    Example:
      windown script bedtime-lower-back --pace slow
    """
    r, changes = personalised(routine_name, opts)
    p = pipeline.plan(r, changes)
    tl = p.timeline
    cues = pipeline.cue_list(tl)
    chapters = [{"title": c.label, "start_ms": round(tl.ms(c.start)), "end_ms": round(tl.ms(c.stop))}
                for c in tl.chapters]
    if as_json:
        click.echo(json.dumps({"title": r.title, "total_ms": round(tl.ms(tl.end)), "changes": changes,
                               "chapters": chapters, "cues": cues,
                               "holds": [{"start_ms": round(tl.ms(h.start)), "end_ms": round(tl.ms(h.stop)),
                                          "label": h.label} for h in tl.holds]}, indent=2))
        return
    click.echo(r.title)
    for change in changes:
        click.echo(f"  * {change}")
    events = sorted([(c.start, 0, f"\n== {c.label} ==") for c in tl.chapters] +
                    [(e.start, 1, f"{_clock(tl.ms(e.start))}  " + (e.text if e.kind == "speech" else "(chime)"))
                     for e in tl.events])
    for _, _, line in events:
        click.echo(line)
    click.echo(f"\ntotal {_clock(tl.ms(tl.end))} (then the bed plays on for "
               f"{source.format_duration(r.settings.tail_ms)})")


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.pass_obj
def validate(ctx, files):
    """Check routine files; stops at the first bad one with its file:line and the fix.

    \b
    Example:
      windown validate my-routine.yaml other.yaml
    """
    from windown import ambient

    for name in files:
        chosen = routine.load(name).settings.ambient
        if chosen.sound not in ambient.BED_NAMES:
            with ambient.reported_at(chosen.origin):  # a missing ambient file is caught now, not at build time
                ambient.find_file(chosen.sound, None)
        click.echo(f"{name}: ok")


@cli.command()
def stretches():
    """List the stretch library: id, position, in bed, default length and tags.

    \b
    Example:
      windown stretches
    """
    for st in library.stretches().values():
        for s in (st, st.easier):
            if s is None:
                continue
            bed = "in bed" if s.in_bed else ""
            click.echo(f"{s.id:28s} {s.position:9s} {bed:6s} ~{source.format_duration(s.default_length_ms):7s} "
                       f"{', '.join(s.tags)}")


@cli.command()
def presets():
    """List the built-in presets with their stretches and guided length.

    \b
    Example:
      windown presets
    """
    for name in library.preset_names():
        r = routine.load(name)
        names = [s.stretch.id for s in r.steps if isinstance(s, routine.StretchStep)]
        estimate = sum(s.stretch.default_length_ms for s in r.steps if isinstance(s, routine.StretchStep))
        click.echo(f"{name:20s} ~{source.format_duration(estimate // 60_000 * 60_000):6s} {r.title}")
        click.echo(f"{'':22s}{', '.join(names)}")


@cli.command()
@click.option("--engine", type=click.Choice(routine.ENGINES), default="pyttsx3", show_default=True)
def voices(engine):
    """List the voices a speech engine offers.

    \b
    Example:
      windown voices --engine espeak-ng
    """
    from windown import speech

    eng = speech.get_engine(engine)
    eng.check()
    for voice_id, description in eng.voices():
        click.echo(f"{voice_id:32s} {description}")


@cli.command()
@click.option("--preview", metavar="NAME", help="Write a short sample of this bed.")
@click.option("-o", "--output", type=click.Path(), help="Where the preview goes (.wav, .mp3, ...).")
@click.option("--seconds", type=click.FloatRange(1, 300), default=20.0, show_default=True)
def sounds(preview, output, seconds):
    """List the ambient beds, or write a preview of one.

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
@click.option("--loudness", type=click.FloatRange(-30, -10), help="Integrated loudness target in LUFS (default -18).")
@click.option("--bitrate", type=click.IntRange(32, 320), help="Constant bitrate in kb/s instead of VBR.")
@click.option("--quality", type=click.IntRange(0, 9), help="VBR quality, 0 best to 9 smallest (default 4).")
@click.option("--mono", is_flag=True, help="One channel: half the size.")
@click.pass_obj
def batch(ctx, sources, output_dir, workers, force, all_presets, scheduler, playlist, no_playlist, loudness, bitrate,
          quality, mono, **opts):
    """Build many tracks at once: routine files, preset names and batch files.

    Tracks whose inputs are unchanged (routine, profile, settings, engine and voice, windown's
    version) are skipped; each track's input fingerprint is kept beside it in <name>.fingerprint.
    Settings given here apply to every job; a batch file's own settings win over them. A failing
    job does not stop the others; the exit code is 1 if any failed. The table of results goes to
    stdout, progress to stderr. Finally the shelf's playlist (.m3u) is written.

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
    from windown.errors import BuildError

    if bitrate is not None and quality is not None:
        raise UserError("--bitrate and --quality cannot be used together", "Choose one of them")
    encoding = {k: v for k, v in (("loudness_lufs", loudness), ("bitrate_kbps", bitrate), ("quality", quality),
                                  ("mono", mono or None)) if v is not None}
    profile = profile_from(opts)  # checks the flags and an explicit --profile now, before any job
    flags = {k: v for k, v in profile.flags.items() if v is not None}
    jobs = []
    for name in sources:
        if batching.is_batch_file(name):
            jobs += batching.read_batch_file(name, output_dir, profile=opts.get("profile"), overrides=flags,
                                             **encoding)
        else:
            jobs += batching.jobs_for([name], output_dir, profile=opts.get("profile"), overrides=flags, **encoding)
    if all_presets:
        jobs += batching.jobs_for(library.preset_names(), output_dir, profile=opts.get("profile"), overrides=flags,
                                  **encoding)
    if not jobs:
        raise UserError("nothing to build", "Name routine files, presets or a batch file, or add --all-presets")

    finished = []

    def on_event(kind: str, job, detail: str) -> None:
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

    colour = _stdout_color()
    width = max(len(str(o.job.output)) for o in outcomes)
    for o in outcomes:
        if o.duration_s is not None:
            minutes, seconds = divmod(int(round(o.duration_s)), 60)
            length = f"{minutes}:{seconds:02d}"
        else:
            length = "-"
        detail = {"built": f"built in {o.seconds:.0f}s", "skipped": "unchanged"}.get(o.status, o.reason)
        status = click.style(f"{o.status:8s}", fg=_STATUS_COLOURS[o.status]) if colour else f"{o.status:8s}"
        click.echo(f"{status} {str(o.job.output):{width}s} {length:>6s}  {detail}", color=colour)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("built", "skipped", "failed")}
    summary = (f"{len(outcomes)} track{'s' if len(outcomes) != 1 else ''}: {counts['built']} built, "
               f"{counts['skipped']} skipped, {counts['failed']} failed")
    playlist_error = None
    if not no_playlist:
        try:
            summary += f"; playlist {batching.write_playlist(output_dir, playlist)}"
        except UserError as exc:
            playlist_error = exc
    click.echo(summary)
    if counts["failed"]:
        if playlist_error:
            note(ctx, str(playlist_error))
        raise BuildError(f"{counts['failed']} of {len(outcomes)} job{'s' if len(outcomes) != 1 else ''} failed",
                         "Their reasons are in the table above")
    if playlist_error:
        raise playlist_error


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
    if not path.parent.is_dir():
        raise UserError("its folder does not exist", "Create the folder first, or choose another place",
                        path=path.parent)
    atomic.write_text(path, routine.STARTER.format(name=path.name))
    click.echo(str(path))


# Durations: 30s, 1m30s, 5m, 1h, 250ms, or a number of seconds (source.parse_duration_ms).


@cli.command()
@click.option("--shelf", "shelf_dir", type=click.Path(file_okay=False), default="output", show_default=True,
              help="The folder of tracks the page shows and builds into.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="The port to listen on.")
@click.option("--lan", is_flag=True, help="Listen on the home network (for your phone), with a secret in every "
              "address; the address and a QR code of it are printed.")
@click.pass_obj
def serve(ctx, shelf_dir, port, lan):
    """Open the page: build tonight's track, play it, keep a shelf, and a podcast feed for your phone.

    It listens on 127.0.0.1 (this computer only) unless --lan is given. Ctrl-C stops it.

    \b
    Examples:
      windown serve                 # then open http://127.0.0.1:8000/
      windown serve --lan --shelf ~/bedtime
    """
    from windown.web import app

    app.serve(shelf_dir, port, lan, say=click.echo)  # the address (and its QR code) is what it prints


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
    click.echo(json.dumps(routine.schema(), indent=2))


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
    except BrokenPipeError:
        sys.exit(0)
    sys.exit(0)
