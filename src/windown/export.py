"""Export: stream rendered PCM through ffmpeg into one MP3 with tags and chapters, plus transcripts.

The MP3 appears whole or not at all (atomic.replacing). ffmpeg gets the PCM pipe as its only input
and writes bare MP3 frames; the ID3v2.3 tag (text frames, one CHAP per chapter and the CTOC players
need) is built here and put in front. Chapters used to travel as an FFMETADATA second input, but with
two inputs ffmpeg 5.1 polls its pipe and ran up to 50% slower beside the renderer (scripts/bench).
Transcripts (WebVTT, SRT, LRC) and the JSON cue sheet all come from one cue list.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import errno
import html
import json
import os
import queue
import re
import shutil
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator

import numpy as np

from windown import atomic, loudness, mp3join
from windown.errors import BuildError, MissingToolError, UserError
from windown.timeline import Timeline

INSTALL_HINT = "Run ./scripts/setup, or install the Debian package ffmpeg"
STOP_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Chapter:
    title: str
    start_ms: int
    end_ms: int
    stretch: str | None = None  # the stretch id (cue sheet only; ID3 chapters carry the title)


DEFAULT_VBR_QUALITY = 4


@dataclass(frozen=True)
class Encoding:
    bitrate_kbps: int | None = 128  # CBR when set
    quality: int | None = None      # LAME VBR -q:a 0 (best) .. 9 when set (bitrate_kbps then None)
    mono: bool = False              # downmix to one channel: smaller files for phones

    @classmethod
    def choose(cls, bitrate_kbps: int | None = None, quality: int | None = None, mono: bool = False) -> "Encoding":
        """What a user asked for: constant bitrate when given one, else VBR at `quality` (default 4,
        about 165 kb/s: 128k CBR measured 0.5 LU quieter after encoding, VBR 4 loses nothing)."""
        if bitrate_kbps is not None:
            return cls(bitrate_kbps=bitrate_kbps, quality=None, mono=mono)
        return cls(bitrate_kbps=None, quality=DEFAULT_VBR_QUALITY if quality is None else quality, mono=mono)

    def ffmpeg_args(self) -> list[str]:
        if self.quality is not None:
            if self.bitrate_kbps is not None:
                raise ValueError("Encoding takes bitrate_kbps or quality, not both")
            if not 0 <= self.quality <= 9:
                raise ValueError(f"LAME VBR quality must be 0..9, not {self.quality}")
            rate = ["-q:a", str(self.quality)]
        elif self.bitrate_kbps is not None:
            rate = ["-b:a", f"{self.bitrate_kbps}k"]
        else:
            raise ValueError("Encoding needs bitrate_kbps or quality")
        return rate + (["-ac", "1"] if self.mono else [])


def ffmpeg_path() -> str:
    return _tool("ffmpeg")


def ffprobe_path() -> str:
    return _tool("ffprobe")


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise MissingToolError(f"{name} is not installed", INSTALL_HINT)
    return found


# --- the MP3 -------------------------------------------------------------------------------------

@dataclass
class Split:
    """How to encode the rest of a track in two halves at once once its length is known (mp3join).

    `total_frames` is None until the length is known; `blocks(start, stop)` renders frames start..stop
    (a second pass, beside the one `encode_mp3` is given). A VBR stereo encode (the default) is split
    when at least SPLIT_MIN_S of it is left: ffmpeg encodes on one core, so a cold build's sleep tail,
    which can only be mixed once the last clip is placed, otherwise runs on one core after the speech."""

    total_frames: Callable[[], int | None]
    blocks: Callable[[int, int], Iterator[np.ndarray]]


SPLIT_MIN_S = 60  # shorter rests stay with one encoder: the join costs a few tenths of a second


def encode_mp3(blocks: Iterable[np.ndarray], target: Path, *, sample_rate: int, tags: dict[str, str],
               chapters: list[Chapter] | Callable[[], list[Chapter]], encoding: Encoding = Encoding(),
               split: Split | None = None, meter: loudness.Meter | None = None,
               on_progress: Callable[[int], None] | None = None) -> int:
    """Encode float32 (frames, 2) blocks into `target`; return the MP3's size in bytes.

    Memory stays flat at any length: each block goes straight down ffmpeg's stdin. An existing target
    is replaced only by a complete, successful encode; on any error or Ctrl-C ffmpeg is stopped and
    every temporary file removed before the exception goes on. `chapters` may be a function, called
    once the blocks are all encoded (a cold build knows its chapters only then). `meter` measures
    every frame once, in either half of a split encode; `on_progress` hears the frames encoded so far.
    """
    target = Path(target)
    ffmpeg = ffmpeg_path()
    quality_args = encoding.ffmpeg_args()
    tag = None if callable(chapters) else id3_tag(tags, chapters)  # bad chapters are refused before any work
    if encoding.quality is None or encoding.mono:
        split = None  # the join decodes exactly as one encode only for VBR stereo (see mp3join)
    try:
        with atomic.replacing(target) as temp, _scratch_file(target, ".mp3") as frames, \
                contextlib.ExitStack() as split_files:  # made only when the encode is split
            pcm_in = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
                      "-f", "f32le", "-ar", str(sample_rate), "-ac", "2", "-i", "pipe:0"]
            mp3_out = ["-c:a", "libmp3lame", *quality_args, "-id3v2_version", "0", "-f", "mp3"]
            first = _Encoder([*pcm_in, *mp3_out, str(frames)], target)
            try:
                position = 0
                blocks = iter(blocks)
                for block in blocks:
                    first.put(block)
                    if meter:
                        meter.add(block)
                    position += len(block)
                    if on_progress:
                        on_progress(position)
                    if split is not None and (plan := _split_plan(split, position, sample_rate)):
                        second = split_files.enter_context(_scratch_file(target, ".second.mp3"))
                        joined = split_files.enter_context(_scratch_file(target, ".joined.mp3"))
                        _encode_halves(first, blocks, position, plan, split, meter, on_progress,
                                       _Encoder([*pcm_in, *mp3_out, "-reservoir", "0", str(second)], target))
                        _join(frames, second, plan, joined, ffmpeg, target)
                        frames = joined
                        break
                else:
                    first.finish()
            finally:
                first.close()
            if tag is None:
                tag = id3_tag(tags, chapters())
            with open(temp, "wb") as out, open(frames, "rb") as audio:
                out.write(tag)
                shutil.copyfileobj(audio, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            return temp.stat().st_size
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise _disk_full(target) from error
        raise


def _join(first: Path, second: Path, plan: tuple[int, int], out: Path, ffmpeg: str, target: Path) -> None:
    """mp3join.join, its failure said as an encoder's is."""
    try:
        mp3join.join(first, second, *plan, out, ffmpeg)
    except mp3join.JoinError as error:
        raise _encoder_failure([str(error)], target, None) from None


def _split_plan(split: Split, position: int, sample_rate: int) -> tuple[int, int] | None:
    """(join frame, the second encoder's first frame) to split the rest at its middle, or None."""
    total = split.total_frames()
    if total is None or total - position < SPLIT_MIN_S * sample_rate:
        return None
    unit = mp3join.SAMPLES_PER_FRAME
    join = (position + total) // 2 // unit * unit
    return join, join - mp3join.PREROLL_FRAMES * unit


def _encode_halves(first: "_Encoder", rest: Iterator[np.ndarray], position: int, plan: tuple[int, int],
                   split: Split, meter: loudness.Meter | None, on_progress: Callable[[int], None] | None,
                   second: "_Encoder") -> None:
    """Feed `first` the rest of its pass up to just past the join, and `second` from just before the
    join to the end, a block to whichever has room. The meter hears each frame once: the first pass's
    up to the join, the second's from it (its frames before the join prime the meter's filter)."""
    join, second_start = plan
    later: list[loudness.Meter] = []  # the second half's meter, made from its first block

    def measure_first(block: np.ndarray, at: int) -> None:
        if meter is not None:
            meter.add(block[:max(0, join - at)])

    def measure_second(block: np.ndarray, at: int) -> None:
        if meter is not None:
            lead = max(0, join - at)
            if not later:
                later.append(meter.after(join, block[:lead]))
            later[0].add(block[lead:])

    halves = [_Half(first, _cut(rest, position, join + mp3join.POSTROLL_FRAMES * mp3join.SAMPLES_PER_FRAME),
                    position, measure_first),
              _Half(second, split.blocks(second_start, split.total_frames()), second_start, measure_second)]
    try:
        while any(half.blocks is not None for half in halves):
            fed = [half.feed() for half in halves]
            if on_progress:
                on_progress(min(halves[0].at, join) + max(0, halves[1].at - join))
            if not any(fed):
                time.sleep(0.005)  # both encoders' queues are full
        first.wait()
        second.wait()
        if later:
            meter.absorb(later[0])
    finally:
        second.close()


@dataclass
class _Half:
    """One encoder of a split encode, the blocks it still gets, and the track frame it has reached."""

    encoder: "_Encoder"
    blocks: Iterator[np.ndarray] | None
    at: int
    measure: Callable[[np.ndarray, int], None]  # meters the part of a block (starting at frame `at`) it owns

    def feed(self) -> bool:
        """Give the encoder one block if it has room for one; whether it got one."""
        if self.blocks is None or not self.encoder.has_room():
            return False
        block = next(self.blocks, None)
        if block is None:
            self.encoder.end()
            self.blocks = None
            return False
        self.encoder.put(block)
        self.measure(block, self.at)
        self.at += len(block)
        return True


def _cut(blocks: Iterator[np.ndarray], position: int, stop: int) -> Iterator[np.ndarray]:
    """The blocks from `position` on, cut at frame `stop` (the pass is then closed: it renders no more)."""
    try:
        for block in blocks:
            if position >= stop:
                break
            yield block[:stop - position]
            position += len(block)
    finally:
        if hasattr(blocks, "close"):
            blocks.close()


class _Encoder:
    """One ffmpeg writing MP3 frames to a file from the PCM on its stdin (fed on a thread: _PipeWriter).

    start_new_session puts ffmpeg outside the terminal's process group, so Ctrl-C reaches only us
    and we decide how ffmpeg ends."""

    def __init__(self, command: list[str], target: Path):
        self.target = target
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, start_new_session=True)
        self.stderr = _StderrTail(self.process.stderr)
        self.writer = _PipeWriter(self.process.stdin)
        self.finished = False

    def has_room(self) -> bool:
        return not self.writer.queue.full()

    def put(self, block: np.ndarray) -> None:
        try:
            self.writer.put(_pcm_bytes(block))
        except BrokenPipeError:  # ffmpeg died; its stderr says why
            self.process.wait()
            self.stderr.join()
            raise _encoder_failure(self.stderr.lines, self.target, self.process.returncode) from None

    def end(self) -> None:
        """No more PCM: ffmpeg finishes once it has encoded what it was given."""
        try:
            self.writer.put(None)
        except BrokenPipeError:
            self.process.wait()
            self.stderr.join()
            raise _encoder_failure(self.stderr.lines, self.target, self.process.returncode) from None

    def wait(self) -> None:
        """Wait for ffmpeg to finish; a failure is one BuildError saying why."""
        self.writer.join()
        if self.writer.error is not None:
            self.process.wait()
            self.stderr.join()
            raise _encoder_failure(self.stderr.lines, self.target, self.process.returncode)
        returncode = self.process.wait()
        self.stderr.join()
        if returncode != 0:
            raise _encoder_failure(self.stderr.lines, self.target, returncode)
        self.finished = True

    def finish(self) -> None:
        self.end()
        self.wait()

    def close(self) -> None:
        """Whatever happened: stop ffmpeg unless it finished, and reap it."""
        if not self.finished:
            self.writer.abort()
            _stop(self.process)
        if self.process.poll() is None:  # only if a second Ctrl-C cut _stop short
            self.process.kill()
            self.process.wait()
        self.stderr.join()
        self.process.stderr.close()


class _PipeWriter(threading.Thread):
    """Writes PCM to ffmpeg on its own thread, a few blocks behind the renderer.

    Without it each write waits until ffmpeg has taken all but the pipe's 64 KB, so ffmpeg would sit
    idle while the next block renders: the two would take turns instead of running side by side.
    """

    QUEUE_BLOCKS = 4

    def __init__(self, pipe):
        super().__init__(daemon=True, name="windown-pcm-writer")
        self.pipe = pipe
        self.queue: queue.Queue[bytes | None] = queue.Queue(self.QUEUE_BLOCKS)
        self.error: BaseException | None = None
        _widen_pipe(pipe)
        self.start()

    def run(self) -> None:
        try:
            while (data := self.queue.get()) is not None:
                self.pipe.write(data)
            self.pipe.close()
        except BaseException as exc:  # handed to the main thread by put()/finish()
            self.error = exc

    def put(self, data: bytes | None) -> None:
        while True:
            if self.error is not None or not self.is_alive():
                raise BrokenPipeError(str(self.error or "the PCM writer stopped"))
            try:
                self.queue.put(data, timeout=0.1)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        self.put(None)
        self.join()
        if self.error is not None:
            raise BrokenPipeError(str(self.error))

    def abort(self) -> None:
        """Let the thread end: empty the queue and ask it to stop (ffmpeg is stopped by the caller)."""
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        with contextlib.suppress(queue.Full):
            self.queue.put_nowait(None)


def _widen_pipe(pipe) -> None:
    """Ask Linux for a 1 MiB pipe (from 64 KB) so ffmpeg always has audio waiting; harmless elsewhere."""
    with contextlib.suppress(Exception):
        import fcntl

        fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)


def _stop(process: subprocess.Popen) -> None:
    """Terminate ffmpeg, closing its stdin so a blocked read ends too; kill it if it lingers; reap it."""
    if process.poll() is None:
        process.terminate()
    with contextlib.suppress(Exception):
        process.stdin.close()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _pcm_bytes(block: np.ndarray) -> memoryview:
    if block.ndim != 2 or block.shape[1] != 2:
        raise ValueError(f"export takes (frames, 2) blocks, not shape {block.shape}")
    if not len(block):
        return memoryview(b"")
    return memoryview(np.ascontiguousarray(block, dtype="<f4")).cast("B")


class _StderrTail:
    """Drain ffmpeg's stderr in a thread, so a chatty ffmpeg can never fill the pipe and stall."""

    def __init__(self, stream: IO[bytes]):
        self.lines: collections.deque[str] = collections.deque(maxlen=50)
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").strip()
            if line:
                self.lines.append(line)

    def join(self) -> None:
        self.thread.join()


def _encoder_failure(lines: Iterable[str], target: Path, returncode: int | None) -> BuildError:
    lines = list(lines)
    if any("No space left on device" in line for line in lines):
        return _disk_full(target)
    last = lines[-1] if lines else f"exit status {returncode}"
    return BuildError(f"ffmpeg failed while encoding {target}: {last}")


def _disk_full(target: Path) -> BuildError:
    return BuildError(f"the disk is full while writing {target}",
                      "Free some space or choose another output folder with -o")


@contextlib.contextmanager
def _scratch_file(beside: Path, suffix: str) -> Iterator[Path]:
    """A hidden file next to `beside` (so a full output disk is reported as such), always removed."""
    fd, name = tempfile.mkstemp(prefix=f".{beside.name}.", suffix=suffix + ".part", dir=beside.parent)
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# --- the ID3 tag ---------------------------------------------------------------------------------

TEXT_FRAMES = {"title": "TIT2", "artist": "TPE1", "album": "TALB", "genre": "TCON", "year": "TYER", "date": "TYER"}


def id3_tag(tags: dict[str, str | None], chapters: list[Chapter]) -> bytes:
    """An ID3v2.3 tag: text frames, a comment, one CHAP per chapter (in time order, times in ms) and a
    top-level ordered CTOC listing them, which is what podcast players and ffprobe read.
    Other keys become TXXX frames; None values are left out."""
    frames = []
    for key, value in tags.items():
        if value is None:
            continue
        if key == "comment":
            frames.append(_frame("COMM", _text_body(str(value), lang=b"eng", desc="")))
        elif key in TEXT_FRAMES:
            frames.append(_frame(TEXT_FRAMES[key], _text_body(str(value))))
        else:
            frames.append(_frame("TXXX", _text_body(str(value), desc=key)))
    if len(chapters) > 255:  # CTOC counts its entries in one byte; routines stop at 200 steps
        raise ValueError(f"{len(chapters)} chapters; an ID3 table of contents holds at most 255")
    ids = []
    for number, chapter in enumerate(sorted(chapters, key=lambda c: c.start_ms), start=1):
        if not 0 <= chapter.start_ms < chapter.end_ms < 2 ** 32:
            raise ValueError(f"chapter {chapter.title!r} has start {chapter.start_ms} ms, end {chapter.end_ms} ms")
        ids.append(f"ch{number}".encode("ascii"))
        no_offset = 0xFFFFFFFF  # "use the times": no byte offsets
        frames.append(_frame("CHAP", ids[-1] + b"\0" + struct.pack(">IIII", chapter.start_ms, chapter.end_ms,
                                                                       no_offset, no_offset)
                             + _frame("TIT2", _text_body(chapter.title))))
    if ids:
        top_level_and_ordered = 0x03
        frames.append(_frame("CTOC", b"toc\0" + bytes([top_level_and_ordered, len(ids)])
                             + b"".join(i + b"\0" for i in ids)))
    body = b"".join(frames)
    if len(body) >= 1 << 28:
        raise ValueError("the ID3 tag would pass 256 MB")
    synchsafe = bytes((len(body) >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x03\x00\x00" + synchsafe + body


def _frame(frame_id: str, body: bytes) -> bytes:
    """A v2.3 frame: id, plain big-endian size (v2.4 would be synchsafe), no flags."""
    return frame_id.encode("ascii") + struct.pack(">I", len(body)) + b"\0\0" + body


def _text_body(text: str, *, lang: bytes | None = None, desc: str | None = None) -> bytes:
    """Encoding byte, [language], [description + terminator], text: Latin-1 when it fits, else UTF-16
    with a byte-order mark (v2.3 has no UTF-8)."""
    parts = [text] if desc is None else [desc, text]
    latin = all(ch < "\u0100" for part in parts for ch in part)
    encode = (lambda t: t.encode("latin-1")) if latin else (lambda t: t.encode("utf-16"))
    terminator = b"\0" if latin else b"\0\0"
    out = bytes([0 if latin else 1]) + (lang or b"")
    if desc is not None:
        out += encode(desc) + terminator
    return out + encode(text)


# --- the track: checks before the work, then the MP3 and its sidecars --------------------------------

_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,3}")  # `.wav`, `.m4a`, `.flac`; not `.2` (v1.2) or `.final`


def output_file(given: str | os.PathLike) -> Path | None:
    """The MP3 that `-o GIVEN` names, or None when GIVEN is a folder (existing, or written with a trailing
    slash), which gets `<name>.mp3` inside it."""
    text = os.fspath(given)
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        return None
    try:
        return Path(mp3_name(text))
    except UserError as exc:
        raise UserError(exc.problem, exc.hint, path=text) from None


def mp3_name(name: str) -> str:
    """`name` as an MP3's name: `.mp3` added when it has no extension; another extension is refused, since
    windown writes MP3 only (`-o`, a batch job's `output`)."""
    suffix = Path(name).suffix
    if not _EXTENSION.fullmatch(suffix):
        return name + ".mp3"
    if suffix.lower() != ".mp3":
        raise UserError(f"windown writes MP3 files, not {suffix}",
                        f"Name it {Path(name).with_suffix('.mp3')}, or leave the extension off and .mp3 is added")
    return name


def check_output(out: Path) -> None:
    """Everything that would stop the export, said before minutes of work: the place and the encoder."""
    folder = out.parent if str(out.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the output folder ({exc.strerror})",
                        "Choose another place with -o", path=folder) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError("the output folder is not writable", "Choose another place with -o, or fix its permissions",
                        path=folder)
    if out.is_dir():
        raise UserError("the output path is a folder", "Give a file name ending in .mp3", path=out)
    ffmpeg_path()


@dataclass(frozen=True)
class Written:
    mp3: Path
    sidecars: list[Path]
    duration_s: float
    size_bytes: int


def track_tags(title: str) -> dict[str, str]:
    return {"title": title, "artist": "windown", "album": "windown", "genre": "Meditation",
            "date": str(datetime.date.today().year), "comment": "Made with windown"}


def write_track(blocks: Iterable[np.ndarray], out: Path, *, title: str, timeline: Timeline,
                total_frames: int | Callable[[], int], words: dict, settings: dict, encoding: Encoding,
                split: Split | None = None, meter: loudness.Meter | None = None,
                on_progress: Callable[[int], None] | None = None) -> Written:
    """The MP3 (tags and chapters) from the rendered blocks, then its transcripts and cue sheet.

    A cold build places its timeline while the blocks stream (see render.Renderer): `timeline`, `words`
    and `total_frames` (then a function) are read only once the last block has gone to the encoder.
    `split`, `meter` and `on_progress` go to encode_mp3."""
    rate = timeline.sample_rate

    def frames() -> int:
        return total_frames() if callable(total_frames) else total_frames

    def chapters() -> list[Chapter]:
        return chapter_list(timeline, frame_ms(frames(), rate))

    size = encode_mp3(blocks, out, sample_rate=rate, tags=track_tags(title),
                      chapters=chapters if callable(total_frames) else chapters(), encoding=encoding,
                      split=split, meter=meter, on_progress=on_progress)
    sheet = track_sheet(timeline, frames(), title=title, words=words, settings=settings)
    return Written(out, write_sidecars(out, sheet), frame_ms(frames(), rate) / 1000, size)


def track_sheet(tl: Timeline, total_frames: int, *, title: str, words: dict | None, settings: dict) -> dict:
    """The cue sheet of a track placed on `tl` and `total_frames` long: what a build writes beside the
    MP3 and what `windown script --json` prints (there with the personalisation's changes added)."""
    total_ms = frame_ms(total_frames, tl.sample_rate)
    return cue_sheet(title=title, duration_s=total_ms / 1000, speech_end_s=tl.speech_end_frame / tl.sample_rate,
                     cues=cue_list(tl, words), chapters=chapter_list(tl, total_ms), holds=hold_list(tl),
                     settings=settings)


def chapter_list(tl: Timeline, total_ms: int) -> list[Chapter]:
    """The timeline's chapters in ms; the last one runs to the end of the sleep tail."""
    rate = tl.sample_rate
    out = []
    for i, span in enumerate(tl.chapters):
        end_ms = total_ms if i == len(tl.chapters) - 1 else frame_ms(span.stop_frame, rate)
        out.append(Chapter(span.label, frame_ms(span.start_frame, rate), end_ms, span.stretch))
    return out


def cue_list(tl: Timeline, words: dict | None = None) -> list[dict]:
    """Every spoken cue in ms; with `words` (clip-relative word timings from the engine), each cue also
    gets its words in track seconds."""
    out = []
    for e in tl.events:
        if e.kind != "speech":
            continue
        cue = {"start_ms": frame_ms(e.start_frame, tl.sample_rate), "end_ms": frame_ms(e.stop_frame, tl.sample_rate),
               "text": e.text, "chapter": e.chapter or None}
        timed = (words or {}).get((e.text, e.rate_wpm))
        if timed:
            start_s = e.start_frame / tl.sample_rate
            cue["words"] = [{"start_s": round(start_s + a, 3), "end_s": round(start_s + b, 3), "text": w}
                            for a, b, w in timed]
        out.append(cue)
    return out


def hold_list(tl: Timeline) -> list[dict]:
    """Every timed hold (a stretch held, or one side of it) in ms, with the label the script gives it."""
    return [{"label": h.label, "start_ms": frame_ms(h.start_frame, tl.sample_rate),
             "end_ms": frame_ms(h.stop_frame, tl.sample_rate)} for h in tl.holds]


# --- transcripts and the cue sheet ---------------------------------------------------------------

def cue_sheet(*, title: str, duration_s: float, speech_end_s: float, cues: list[dict],
              chapters: list[Chapter], settings: dict, holds: Iterable[dict] = ()) -> dict:
    """The JSON cue sheet: every spoken line, chapter and hold in seconds (3 decimals = whole ms)."""
    return {
        "title": title,
        "duration_s": round(duration_s, 3),
        "speech_end_s": round(speech_end_s, 3),
        "cues": [{"start_s": _seconds(cue["start_ms"]), "end_s": _seconds(cue["end_ms"]),
                  "text": cue["text"], "chapter": cue.get("chapter"),
                  **({"words": cue["words"]} if cue.get("words") else {})} for cue in cues],
        "chapters": [{"title": chapter.title, "start_s": _seconds(chapter.start_ms),
                      "end_s": _seconds(chapter.end_ms), **({"stretch": chapter.stretch} if chapter.stretch else {})}
                     for chapter in chapters],
        "holds": [{"label": hold["label"], "start_s": _seconds(hold["start_ms"]), "end_s": _seconds(hold["end_ms"])}
                  for hold in holds],
        "settings": settings,
    }


def to_webvtt(cues: Iterable[dict]) -> str:
    parts = ["WEBVTT\n\n"]
    for cue in cues:
        text = html.escape(_one_line(cue["text"]), quote=False)
        parts.append(f"{_clock(cue['start_ms'], '.')} --> {_clock(cue['end_ms'], '.')}\n{text}\n\n")
    return "".join(parts)


def to_srt(cues: Iterable[dict]) -> str:
    return "".join(f"{number}\n{_clock(cue['start_ms'], ',')} --> {_clock(cue['end_ms'], ',')}\n"
                   f"{_one_line(cue['text'])}\n\n"
                   for number, cue in enumerate(cues, start=1))


def to_lrc(cues: Iterable[dict], *, title: str, length_ms: int) -> str:
    """LRC for music players' synced lyrics: [mm:ss.xx], each start to the nearest hundredth; minutes may pass 59."""
    length_s = _nearest(length_ms, 1000)
    lines = [f"[ti:{_one_line(title)}]", f"[length:{length_s // 60:02d}:{length_s % 60:02d}]"]
    for cue in cues:
        centiseconds = _nearest(cue["start_ms"], 10)
        minutes, centiseconds = divmod(centiseconds, 6000)
        lines.append(f"[{minutes:02d}:{centiseconds // 100:02d}.{centiseconds % 100:02d}]{_one_line(cue['text'])}")
    return "\n".join(lines) + "\n"


def write_sidecars(mp3_path: Path, sheet: dict) -> list[Path]:
    """Write <stem>.vtt, .srt, .lrc and .json beside the MP3, each atomically; return their paths."""
    mp3_path = Path(mp3_path)
    cues = [{"start_ms": round(cue["start_s"] * 1000), "end_ms": round(cue["end_s"] * 1000),
             "text": cue["text"], "chapter": cue.get("chapter")} for cue in sheet["cues"]]
    texts = {
        ".vtt": to_webvtt(cues),
        ".srt": to_srt(cues),
        ".lrc": to_lrc(cues, title=sheet["title"], length_ms=round(sheet["duration_s"] * 1000)),
        ".json": json.dumps(sheet, indent=2, ensure_ascii=False) + "\n",
    }
    paths = []
    for suffix, text in texts.items():
        path = mp3_path.with_suffix(suffix)
        try:
            atomic.write_text(path, text)
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise _disk_full(path) from error
            raise
        paths.append(path)
    return paths


def frame_ms(frame: int, sample_rate: int) -> int:
    """A frame's time in whole ms, rounded to the nearest (halves up), never cut. Every time in a track's
    files is rounded from its frame once, so a chapter and the words that open it share one start."""
    return _nearest(frame * 1000, sample_rate)


def _nearest(value: int, step: int) -> int:
    """value / step rounded to the nearest whole number, halves up (ms -> centiseconds for LRC)."""
    return (2 * int(value) + step) // (2 * step)


def _seconds(ms: int) -> float:
    return round(ms / 1000, 3)


def _clock(ms: int, decimal_mark: str) -> str:
    """HH:MM:SS.mmm (WebVTT) or HH:MM:SS,mmm (SRT)."""
    seconds, ms = divmod(int(ms), 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{decimal_mark}{ms:03d}"


def _one_line(text: str) -> str:
    """Cue text on one line: a newline would end an LRC line, a blank line would end a VTT/SRT cue."""
    return " ".join(text.split())


# --- reading files back --------------------------------------------------------------------------

def probe(path: Path) -> dict:
    """What ffprobe reads from a file: duration, channels, sample rate, tags and chapters.

    For an MP3, duration_s is ffprobe's figure, which counts whole LAME frames: up to a few tens of ms
    more than the audio, whose exact length a decoder recovers from the LAME header.
    """
    result = subprocess.run([ffprobe_path(), "-v", "error", "-show_format", "-show_streams", "-show_chapters",
                             "-of", "json", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        last = result.stderr.strip().splitlines()[-1:] or [f"exit status {result.returncode}"]
        raise BuildError(f"ffprobe could not read {path}: {last[0]}")
    info = json.loads(result.stdout)
    audio = next((s for s in info.get("streams", []) if s.get("codec_type") == "audio"), {})
    fmt = info.get("format", {})
    return {
        "duration_s": float(fmt.get("duration", "nan")),
        "channels": audio.get("channels"),
        "sample_rate": int(audio["sample_rate"]) if "sample_rate" in audio else None,
        "tags": {key.lower(): value for key, value in fmt.get("tags", {}).items()},
        "chapters": [(c.get("tags", {}).get("title", ""), float(c["start_time"]), float(c["end_time"]))
                     for c in info.get("chapters", [])],
    }


def measure_loudness(path: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) from ffmpeg's ebur128 'Summary:' block (5.1 has no framelog)."""
    result = subprocess.run([ffmpeg_path(), "-hide_banner", "-nostdin", "-nostats", "-i", str(path),
                             "-af", "ebur128=peak=true", "-f", "null", "-"], capture_output=True, text=True)
    summary = result.stderr.rpartition("Summary:")[2]
    integrated = re.search(r"\bI:\s+(-?(?:[\d.]+|inf)) LUFS", summary)
    peak = re.search(r"\bPeak:\s+(-?(?:[\d.]+|inf)) dBFS", summary)
    if result.returncode != 0 or not integrated or not peak:
        last = result.stderr.strip().splitlines()[-1:] or [f"exit status {result.returncode}"]
        raise BuildError(f"ffmpeg could not measure the loudness of {path}: {last[0]}")
    return float(integrated.group(1)), float(peak.group(1))
