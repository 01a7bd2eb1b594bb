"""The export stage against real ffmpeg: decoded audio, tags and chapters read back, exact sidecar text."""

from __future__ import annotations

import json
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from conftest import decode
from windown import export
from windown.errors import BuildError, MissingToolError
from windown.export import Chapter, Encoding

SR = 44100
CHAPTERS = [Chapter("Settle", 0, 1000), Chapter("Knees to chest", 1000, 2200), Chapter("Sleep", 2200, 3000)]
TAGS = {"title": "Wind = down; #1 \\ night", "artist": "windown", "album": "Evenings", "genre": "Meditation",
        "year": "2024", "comment": "two\nlines"}


def sine(freq_hz: float, seconds: float, amplitude: float = 0.1) -> np.ndarray:
    t = np.arange(round(seconds * SR)) / SR
    wave_ = (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
    return np.stack([wave_, wave_], axis=1)


def in_blocks(signal: np.ndarray, sizes: list[int]):
    """Blocks of the given sizes, then the rest: the renderer's blocks need not be equal."""
    start = 0
    for size in sizes:
        yield signal[start:start + size]
        start += size
    yield signal[start:]


def dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum)) * SR / len(samples)


def encode(target: Path, signal: np.ndarray, **kwargs) -> int:
    return export.encode_mp3(in_blocks(signal, [1000, SR, 7, 30000]), target, sample_rate=SR,
                             tags=kwargs.pop("tags", TAGS), chapters=kwargs.pop("chapters", CHAPTERS), **kwargs)


# --- the MP3 -------------------------------------------------------------------------------------

def test_encoded_mp3_decodes_to_the_same_length_level_and_pitch(tmp_path):
    signal = sine(440, 3.0)
    target = tmp_path / "evening.mp3"
    size = encode(target, signal)
    assert size == target.stat().st_size
    decoded = decode(target)
    # the LAME header carries encoder delay and padding, so the decoder trims to the exact input length
    assert decoded.shape == signal.shape
    middle = decoded[SR // 2: -SR // 2]
    level_db = 20 * np.log10(np.sqrt(np.mean(middle ** 2, axis=0)) / (0.1 / np.sqrt(2)))
    # LAME at 128k quantises a lone pure tone about 0.45 dB low (320k gives 0.00 dB), hence 0.6 dB
    assert np.all(np.abs(level_db) < 0.6)
    assert dominant_hz(middle[:, 0]) == pytest.approx(440, abs=1)


def test_probe_reads_duration_tags_and_chapters(tmp_path):
    target = tmp_path / "evening.mp3"
    encode(target, sine(440, 3.0))
    info = export.probe(target)
    # ffprobe counts whole 1152-sample frames, delay and padding included: a little over the audio
    assert 3.0 <= info["duration_s"] < 3.05
    assert info["channels"] == 2 and info["sample_rate"] == SR
    tags = info["tags"]
    assert tags["title"] == "Wind = down; #1 \\ night"
    assert (tags["artist"], tags["album"], tags["genre"], tags["date"]) == ("windown", "Evenings", "Meditation", "2024")
    assert tags["comment"] == "two\nlines"
    assert [title for title, _, _ in info["chapters"]] == ["Settle", "Knees to chest", "Sleep"]
    for (_, start_s, end_s), chapter in zip(info["chapters"], CHAPTERS):
        assert start_s == pytest.approx(chapter.start_ms / 1000, abs=0.001)
        assert end_s == pytest.approx(chapter.end_ms / 1000, abs=0.001)


def test_tag_is_id3v23_with_chapter_frames_and_a_table_of_contents(tmp_path):
    target = tmp_path / "evening.mp3"
    encode(target, sine(440, 3.0))
    data = target.read_bytes()
    assert data[:3] == b"ID3" and data[3] == 3
    size = sum((byte & 0x7F) << (7 * (3 - i)) for i, byte in enumerate(data[6:10]))  # synchsafe
    tag = data[10:10 + size]
    assert b"CTOC" in tag
    assert tag.count(b"CHAP") == 3


def test_mono_encoding_has_one_channel(tmp_path):
    target = tmp_path / "mono.mp3"
    encode(target, sine(440, 2.0), encoding=Encoding(bitrate_kbps=64, mono=True))
    assert export.probe(target)["channels"] == 1
    assert decode(target).shape == (2 * SR, 2)


def test_vbr_quality_writes_a_xing_header_and_cbr_an_info_header(tmp_path):
    vbr, cbr = tmp_path / "vbr.mp3", tmp_path / "cbr.mp3"
    encode(vbr, sine(440, 2.0), encoding=Encoding(bitrate_kbps=None, quality=4))
    encode(cbr, sine(440, 2.0))
    assert b"Xing" in vbr.read_bytes() and b"Info" not in vbr.read_bytes()
    assert b"Info" in cbr.read_bytes() and b"Xing" not in cbr.read_bytes()
    assert dominant_hz(decode(vbr)[SR // 2:, 0]) == pytest.approx(440, abs=1)


@pytest.mark.parametrize("encoding", [Encoding(bitrate_kbps=128, quality=2), Encoding(bitrate_kbps=None),
                                      Encoding(bitrate_kbps=None, quality=10)])
def test_contradictory_or_missing_encoding_is_refused(tmp_path, encoding):
    with pytest.raises(ValueError):
        encode(tmp_path / "x.mp3", sine(440, 0.1), encoding=encoding)
    assert list(tmp_path.iterdir()) == []


def test_chapters_beyond_what_a_table_of_contents_holds_are_refused(tmp_path):
    many = [Chapter(str(i), i * 10, i * 10 + 10) for i in range(256)]
    with pytest.raises(ValueError, match="at most 255"):
        encode(tmp_path / "x.mp3", sine(440, 3.0), chapters=many)
    assert list(tmp_path.iterdir()) == []


def test_the_tag_round_trips_unusual_text_through_ffprobe(tmp_path):
    target = tmp_path / "odd.mp3"
    odd = {"title": "Ünïcode ☾ = ; # \\ \"quotes\"", "artist": None, "comment": "x"}
    encode(target, sine(440, 1.0), tags=odd, chapters=[Chapter("Ré; ☾", 0, 1000)])
    info = export.probe(target)
    assert info["tags"]["title"] == odd["title"] and "artist" not in info["tags"]
    assert info["chapters"] == [("Ré; ☾", 0.0, 1.0)]


# --- failures leave nothing behind ---------------------------------------------------------------

@pytest.fixture
def children(monkeypatch):
    """Every Popen made during the test, so the test can check each one was reaped."""
    made = []

    class Recording(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(subprocess, "Popen", Recording)
    return made


def assert_all_reaped(children):
    assert children
    for child in children:
        assert child.returncode is not None
        assert not Path(f"/proc/{child.pid}").exists()


@pytest.mark.parametrize("exception", [RuntimeError, KeyboardInterrupt])
def test_failure_midway_keeps_the_old_file_and_stops_ffmpeg(tmp_path, children, exception):
    target = tmp_path / "evening.mp3"
    target.write_bytes(b"the previous, complete track")

    def blocks():
        signal = sine(440, 2.0)
        yield signal[:SR]
        yield signal[SR:]
        raise exception("stop")

    with pytest.raises(exception, match="stop"):
        export.encode_mp3(blocks(), target, sample_rate=SR, tags=TAGS, chapters=CHAPTERS)
    assert target.read_bytes() == b"the previous, complete track"
    assert [p.name for p in tmp_path.iterdir()] == ["evening.mp3"]
    assert_all_reaped(children)


def test_a_block_of_the_wrong_shape_is_refused_and_cleaned_up(tmp_path, children):
    with pytest.raises(ValueError, match=r"\(frames, 2\)"):
        export.encode_mp3([np.zeros(100, np.float32)], tmp_path / "x.mp3", sample_rate=SR, tags={}, chapters=[])
    assert list(tmp_path.iterdir()) == []
    assert_all_reaped(children)


def fake_ffmpeg(folder: Path, script: str) -> None:
    folder.mkdir()
    path = folder / "ffmpeg"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def test_ffmpeg_dying_midstream_is_a_build_error_with_its_last_words(tmp_path, monkeypatch, children):
    fake_ffmpeg(tmp_path / "bin", "head -c 1000 >/dev/null\necho 'something odd' >&2\necho 'Conversion failed!' >&2\n"
                                  "exit 1\n")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(BuildError) as caught:
        encode(out / "evening.mp3", sine(440, 5.0))
    assert str(caught.value) == f"ffmpeg failed while encoding {out / 'evening.mp3'}: Conversion failed!"
    assert caught.value.exit_code == 1
    assert list(out.iterdir()) == []
    assert_all_reaped(children)


def test_ffmpeg_failing_at_the_end_is_a_build_error(tmp_path, monkeypatch):
    fake_ffmpeg(tmp_path / "bin", "cat >/dev/null\necho 'Error writing trailer: Invalid argument' >&2\nexit 1\n")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(BuildError, match="encoding .*evening.mp3: Error writing trailer: Invalid argument$"):
        encode(out / "evening.mp3", sine(440, 1.0))
    assert list(out.iterdir()) == []


def test_missing_ffmpeg_names_the_fix(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(MissingToolError) as caught:
        encode(tmp_path / "evening.mp3", sine(440, 0.1))
    assert str(caught.value) == "ffmpeg is not installed. Run ./scripts/setup, or install the Debian package ffmpeg"
    assert caught.value.exit_code == 2
    assert [p.name for p in tmp_path.iterdir()] == ["empty"]


@pytest.fixture
def small_disk(tmp_path):
    """A real 200 kB filesystem (tmpfs; needs root), so ffmpeg meets a real ENOSPC."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip() or 'mount failed'}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_is_a_build_error_and_leaves_no_partial_file(small_disk, children):
    target = small_disk / "evening.mp3"
    noise = np.random.default_rng(7).uniform(-0.5, 0.5, (30 * SR, 2)).astype(np.float32)  # ~480 kB at 128k
    with pytest.raises(BuildError) as caught:
        encode(target, noise)
    assert str(caught.value) == (f"the disk is full while writing {target}. "
                                 "Free some space or choose another output folder with -o")
    assert list(small_disk.iterdir()) == []
    assert_all_reaped(children)


# --- transcripts and the cue sheet ---------------------------------------------------------------

CUES = [
    {"start_ms": 0, "end_ms": 1500, "text": "Lie down & relax", "chapter": "Settle"},
    {"start_ms": 61_250, "end_ms": 63_004, "text": "Knees <to> chest", "chapter": "Knees to chest"},
    {"start_ms": 3_725_007, "end_ms": 3_726_500, "text": "Sleep\nwell", "chapter": None},
]


def test_webvtt_text():
    assert export.to_webvtt(CUES) == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:01.500\nLie down &amp; relax\n\n"
        "00:01:01.250 --> 00:01:03.004\nKnees &lt;to&gt; chest\n\n"
        "01:02:05.007 --> 01:02:06.500\nSleep well\n\n"
    )


def test_srt_text():
    assert export.to_srt(CUES) == (
        "1\n00:00:00,000 --> 00:00:01,500\nLie down & relax\n\n"
        "2\n00:01:01,250 --> 00:01:03,004\nKnees <to> chest\n\n"
        "3\n01:02:05,007 --> 01:02:06,500\nSleep well\n\n"
    )


def test_lrc_text_counts_minutes_past_an_hour():
    assert export.to_lrc(CUES, title="Evening", length_ms=3_730_400) == (
        "[ti:Evening]\n"
        "[length:62:10]\n"
        "[00:00.00]Lie down & relax\n"
        "[01:01.25]Knees <to> chest\n"
        "[62:05.01]Sleep well\n"  # 3725.007 s, to the nearest hundredth
    )


def test_cue_sheet_rounds_every_time_to_the_millisecond():
    sheet = export.cue_sheet(title="Evening", duration_s=3730.40049, speech_end_s=3726.5004, cues=CUES,
                             chapters=[Chapter("Settle", 0, 61_000), Chapter("Knees to chest", 61_000, 3_730_400)],
                             settings={"pace": "slow", "voice": "slt"},
                             holds=[{"label": "the hold of knees to chest", "start_ms": 65_004, "end_ms": 95_004}])
    assert sheet == {
        "title": "Evening",
        "duration_s": 3730.4,
        "speech_end_s": 3726.5,
        "cues": [
            {"start_s": 0.0, "end_s": 1.5, "text": "Lie down & relax", "chapter": "Settle"},
            {"start_s": 61.25, "end_s": 63.004, "text": "Knees <to> chest", "chapter": "Knees to chest"},
            {"start_s": 3725.007, "end_s": 3726.5, "text": "Sleep\nwell", "chapter": None},
        ],
        "chapters": [{"title": "Settle", "start_s": 0.0, "end_s": 61.0},
                     {"title": "Knees to chest", "start_s": 61.0, "end_s": 3730.4}],
        "holds": [{"label": "the hold of knees to chest", "start_s": 65.004, "end_s": 95.004}],
        "settings": {"pace": "slow", "voice": "slt"},
    }


def test_sidecars_are_written_beside_the_mp3_and_round_trip(tmp_path):
    sheet = export.cue_sheet(title="Evening", duration_s=3730.4, speech_end_s=3726.5, cues=CUES,
                             chapters=[], settings={})
    paths = export.write_sidecars(tmp_path / "evening.mp3", sheet)
    assert [p.name for p in paths] == ["evening.vtt", "evening.srt", "evening.lrc", "evening.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
    assert json.loads((tmp_path / "evening.json").read_text("utf-8")) == sheet
    assert (tmp_path / "evening.vtt").read_text("utf-8") == export.to_webvtt(CUES)
    assert (tmp_path / "evening.srt").read_text("utf-8") == export.to_srt(CUES)
    assert (tmp_path / "evening.lrc").read_text("utf-8") == export.to_lrc(CUES, title="Evening", length_ms=3_730_400)


# --- loudness ------------------------------------------------------------------------------------

def test_measure_loudness_of_a_997_hz_sine_at_minus_20_dbfs(tmp_path):
    path = tmp_path / "tone.wav"
    samples = np.round(sine(997, 10.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(SR)
        out.writeframes(samples.tobytes())
    integrated_lufs, true_peak_dbtp = export.measure_loudness(path)
    assert integrated_lufs == pytest.approx(-20.0, abs=0.3)  # BS.1770: 0 dBFS sine, both channels = 0 LUFS
    assert true_peak_dbtp == pytest.approx(-20.0, abs=0.5)


def test_measure_loudness_of_an_unreadable_file_is_a_build_error(tmp_path):
    path = tmp_path / "not-audio.wav"
    path.write_text("hello")
    with pytest.raises(BuildError, match="could not measure the loudness of .*not-audio.wav"):
        export.measure_loudness(path)


def test_lrc_times_round_to_the_nearest_hundredth():
    """32.049 s is [00:32.05], not cut to [00:32.04]; 59.995 s rounds up into the next minute."""
    cues = [{"start_ms": 32_049, "end_ms": 33_000, "text": "Breathe in"},
            {"start_ms": 59_995, "end_ms": 61_000, "text": "Breathe out"},
            {"start_ms": 61_004, "end_ms": 62_000, "text": "Rest"}]
    assert export.to_lrc(cues, title="T", length_ms=62_500) == (
        "[ti:T]\n[length:01:03]\n[00:32.05]Breathe in\n[01:00.00]Breathe out\n[01:01.00]Rest\n")


def test_sidecars_round_the_cue_sheet_times_the_same_way(tmp_path):
    """Every transcript is the cue sheet's time, rounded: SRT/VTT keep its ms, LRC its nearest hundredth."""
    sheet = export.cue_sheet(title="T", duration_s=40.0, speech_end_s=34.0, chapters=[], settings={},
                             cues=[{"start_ms": 32_049, "end_ms": 33_996, "text": "Breathe in"}])
    export.write_sidecars(tmp_path / "t.mp3", sheet)
    assert "[00:32.05]Breathe in" in (tmp_path / "t.lrc").read_text("utf-8")
    assert "00:00:32,049 --> 00:00:33,996" in (tmp_path / "t.srt").read_text("utf-8")
    assert "00:00:32.049 --> 00:00:33.996" in (tmp_path / "t.vtt").read_text("utf-8")


def test_chapters_and_cues_round_a_frame_to_the_same_millisecond():
    """A chapter that starts with its first words has the same start as that cue (1000 frames = 22.68 ms)."""
    from windown.timeline import Event, Span, Timeline

    tl = Timeline(SR, events=[Event(1000, 30_000, "speech", "Knees to chest", 140, "Knees")],
                  chapters=[Span(0, 1000, "Settle"), Span(1000, 31_000, "Knees")], end_frame=31_000)
    chapters = export.chapter_list(tl, 1000)
    cues = export.cue_list(tl)
    assert chapters[1].start_ms == cues[0]["start_ms"] == 23
    assert chapters[0].end_ms == 23
    assert cues[0]["end_ms"] == 703  # 31 000 frames = 702.95 ms
