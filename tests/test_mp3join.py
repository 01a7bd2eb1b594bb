"""The rest of a track encoded in two halves at once and joined (export.Split, mp3join), on real ffmpeg."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import ToneEngine, write
from windown import export, loudness, mp3join, speech

SR = 44100
FRAME = mp3join.SAMPLES_PER_FRAME


def track(seconds: float) -> np.ndarray:
    """A bed-like stereo signal: soft noise, a tone that comes and goes, a fade to silence at the end."""
    n = int(seconds * SR)
    rng = np.random.default_rng(7)
    t = np.arange(n) / SR
    noise = rng.standard_normal((n, 2)).cumsum(axis=0)
    noise -= np.convolve(noise[:, 0], np.ones(2048) / 2048, mode="same")[:, None]  # keep it near zero
    noise *= 0.02 / np.abs(noise).max()
    tone = (0.2 * np.sin(2 * math.pi * 330 * t) * (np.sin(2 * math.pi * t / 7) > 0.3))[:, None]
    fade = np.clip((t[-1] - t) / 20, 0, 1)[:, None]
    return ((noise + tone) * fade).astype(np.float32)


def decode(path: Path) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "2", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, "<f4").reshape(-1, 2)


def in_blocks(signal: np.ndarray, start: int = 0, stop: int | None = None, size: int = 1 << 16):
    stop = len(signal) if stop is None else stop
    for a in range(start, stop, size):
        yield signal[a:min(stop, a + size)]


class Known:
    """A Split whose track length becomes known once the first pass has reached `known_at` frames."""

    def __init__(self, signal: np.ndarray, known_at: int):
        self.signal, self.known_at, self.position = signal, known_at, 0

    def first_pass(self):
        for block in in_blocks(self.signal):
            self.position += len(block)
            yield block

    def split(self) -> export.Split:
        return export.Split(lambda: len(self.signal) if self.position >= self.known_at else None,
                            lambda start, stop: in_blocks(self.signal, start, stop))


@pytest.fixture
def joins(monkeypatch):
    """Every join made, as (join frame, second encoder's first frame); each still made for real."""
    made = []
    real = mp3join.join

    def spy(first, second, join_frame, second_start, out, ffmpeg):
        made.append((join_frame, second_start))
        return real(first, second, join_frame, second_start, out, ffmpeg)

    monkeypatch.setattr(mp3join, "join", spy)
    return made


def encode(signal, target, split=None, meter=None, encoding=export.Encoding.choose(), first=None, progress=None):
    return export.encode_mp3(first if first is not None else in_blocks(signal), target, sample_rate=SR,
                             tags={"title": "T"}, chapters=[], encoding=encoding, split=split, meter=meter,
                             on_progress=progress)


def test_a_split_encode_decodes_sample_for_sample_as_one_encode(tmp_path, joins):
    signal = track(150)
    encode(signal, tmp_path / "one.mp3")
    known = Known(signal, 30 * SR)
    done = []
    encode(signal, tmp_path / "two.mp3", split=known.split(), first=known.first_pass(), progress=done.append)
    assert len(joins) == 1
    join, second_start = joins[0]
    assert join % FRAME == 0 and abs(join - (30 * SR + len(signal)) / 2) < 1 << 16  # the middle of the rest
    assert second_start == join - mp3join.PREROLL_FRAMES * FRAME
    one, two = decode(tmp_path / "one.mp3"), decode(tmp_path / "two.mp3")
    assert len(two) == len(one) == len(signal)  # the LAME tag's delay and padding trim it exactly
    assert np.array_equal(one, two)  # the same frames of audio, either side of the join
    assert done == sorted(done) and done[-1] == len(signal)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.mp3", "two.mp3"]  # no scratch file left


def test_each_frame_is_metered_once_across_the_join(tmp_path, joins):
    signal = track(100)
    signal[70 * SR:71 * SR] *= 3  # louder, and the peak, after the join
    whole = loudness.Meter(SR, 2)
    encode(signal, tmp_path / "one.mp3", meter=whole)
    known = Known(signal, 10 * SR)
    parts = loudness.Meter(SR, 2)
    encode(signal, tmp_path / "two.mp3", split=known.split(), first=known.first_pass(), meter=parts)
    assert joins and joins[0][0] < 70 * SR
    assert parts.integrated_lufs() == pytest.approx(whole.integrated_lufs(), abs=1e-4)
    assert parts.peak == whole.peak


@pytest.mark.parametrize("at_s, rest_s", [(0.5, 40), (3.7, 0.05)])
def test_a_meter_continued_after_a_frame_measures_as_one(at_s, rest_s):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((int((at_s + rest_s) * SR), 2)) * 0.1).astype(np.float32)
    x[: SR // 3] *= 4
    at = int(at_s * SR)
    whole = loudness.Meter(SR, 2)
    whole.add(x)
    first = loudness.Meter(SR, 2)
    for block in in_blocks(x, 0, at, 7777):
        first.add(block)
    later = first.after(at, x[:at])
    for block in in_blocks(x, at, None, 5555):
        later.add(block)
    first.absorb(later)
    assert np.allclose(np.concatenate(first.energies), np.concatenate(whole.energies), rtol=1e-5)
    assert first.pending.shape == whole.pending.shape
    assert first.integrated_lufs() == pytest.approx(whole.integrated_lufs(), abs=1e-4)


@pytest.mark.parametrize("encoding", [export.Encoding.choose(bitrate_kbps=128),
                                      export.Encoding.choose(mono=True)], ids=["cbr", "mono"])
def test_cbr_and_mono_encodes_are_never_split(tmp_path, joins, encoding):
    signal = track(90)
    known = Known(signal, 0)
    encode(signal, tmp_path / "x.mp3", split=known.split(), first=known.first_pass(), encoding=encoding)
    assert joins == []
    assert len(decode(tmp_path / "x.mp3")) == len(signal)


def test_a_short_rest_stays_with_one_encoder(tmp_path, joins):
    signal = track(80)
    known = Known(signal, len(signal) - (export.SPLIT_MIN_S - 5) * SR)
    encode(signal, tmp_path / "x.mp3", split=known.split(), first=known.first_pass())
    assert joins == []


def test_a_failure_in_the_second_half_leaves_no_file(tmp_path, joins):
    signal = track(120)

    def broken(start, stop):
        for i, block in enumerate(in_blocks(signal, start, stop)):
            if i == 5:
                raise RuntimeError("the renderer broke")
            yield block

    known = Known(signal, 0)
    with pytest.raises(RuntimeError, match="renderer broke"):
        encode(signal, tmp_path / "x.mp3", split=export.Split(lambda: len(signal), broken), first=known.first_pass())
    assert list(tmp_path.iterdir()) == []


def test_the_lame_tag_is_rewritten_as_ffmpeg_writes_it(tmp_path):
    encode(track(5), tmp_path / "x.mp3")
    data = (tmp_path / "x.mp3").read_bytes()
    data = data[10 + int.from_bytes(data[6:10], "big"):] if data[:3] == b"ID3" else data  # v2.3 size: no syncsafe here
    bare = tmp_path / "bare.mp3"
    bare.write_bytes(data)
    first = data[:mp3join.frame_length(data)]
    delay, padding = mp3join.delay_padding(first)
    assert delay == 576 and (5 * SR + delay + padding) % FRAME == 0
    crc_at = mp3join.lame_tag_at(first) + mp3join.LAME_TAG_CRC_AT
    bare.write_bytes(data[:crc_at] + b"\0\0" + data[crc_at + 2:])  # spoil its CRC
    mp3join.set_delay_padding(bare, delay, padding)
    assert bare.read_bytes() == data


def test_a_second_encode_that_borrows_bits_is_refused(tmp_path):
    signal = track(30)
    join = 1000 * FRAME
    start = join - mp3join.PREROLL_FRAMES * FRAME
    for name, part in (("a", signal[:join + mp3join.POSTROLL_FRAMES * FRAME]), ("b", signal[start:])):
        subprocess.run(["ffmpeg", "-v", "error", "-f", "f32le", "-ar", str(SR), "-ac", "2", "-i", "pipe:0",
                        "-c:a", "libmp3lame", "-q:a", "4", "-id3v2_version", "0", "-f", "mp3",  # the reservoir on
                        str(tmp_path / f"{name}.mp3")], input=part.tobytes(), check=True)
    with pytest.raises(mp3join.JoinError, match="bit reservoir"):
        mp3join.join(tmp_path / "a.mp3", tmp_path / "b.mp3", join, start, tmp_path / "j.mp3", "ffmpeg")
    assert not (tmp_path / "j.mp3.frames").exists()


# -- through the pipeline: a cold build with a streaming engine ------------------------------------------

class StreamingTone(ToneEngine):
    """The tone engine, handing its clips over one by one as piper does (so the build renders while it speaks)."""

    def stream(self, phrases, voice, out_dir, *, script_order=False):
        yield from enumerate(self.synthesize(phrases, voice, out_dir))


def test_a_cold_build_encodes_its_tail_in_two_halves_and_sounds_as_with_one(tmp_path, monkeypatch, joins):
    from windown import pipeline, routine

    engine = StreamingTone()
    monkeypatch.setattr(speech, "get_engine", lambda name: engine)
    path = write(tmp_path / "r.yaml", "title: Two halves\nbedtime: false\ntail: 2m\nsteps:\n"
                 "  - say: Lie down and let the floor take your weight.\n  - say: Breathe out slowly.\n")
    r = routine.load(str(path))
    split = pipeline.build(r, tmp_path / "split.mp3", cache_dir=tmp_path / "cold-1")
    assert len(joins) == 1 and split.synthesised >= 2  # the two lines, and windown's welcome and closing
    one = pipeline.build(r, tmp_path / "one.mp3", cache_dir=tmp_path / "cold-2", split=False)
    assert len(joins) == 1 and one.synthesised == split.synthesised
    a, b = decode(tmp_path / "split.mp3"), decode(tmp_path / "one.mp3")
    assert len(a) == len(b) and round(len(a) / SR, 3) == split.duration_s  # to the frame, as the cue sheet says
    assert np.array_equal(a, b)
    assert split.loudness_lufs == pytest.approx(one.loudness_lufs, abs=1e-3)
