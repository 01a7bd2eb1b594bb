"""The ambient stage: built-in beds, a user's own file, the chime and previews, measured on real samples."""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from conftest import decode
from windown import ambient
from windown.ambient import BED_LUFS, CHIME_LUFS, SAMPLE_RATE, Bed, chime, load_bed, preview
from windown.errors import MissingToolError, UserError
from windown.loudness import integrated_lufs

BUILT_IN = [name for name in ambient.BED_NAMES if name != "none"]


def seam_score(x: np.ndarray) -> float:
    """The jump from the last frame back to the first, over the 99th percentile of ordinary steps (worst channel)."""
    return max(abs(float(x[0, c]) - float(x[-1, c])) / np.percentile(np.abs(np.diff(x[:, c])), 99)
               for c in range(x.shape[1]))


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WINDOWN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def beds(tmp_path_factory):
    """Each built-in bed synthesised once for the module (about 0.5-1 s each)."""
    cache = tmp_path_factory.mktemp("beds-cache")
    made: dict[str, Bed] = {}

    def get(name: str) -> Bed:
        if name not in made:
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("WINDOWN_CACHE_DIR", str(cache))
                made[name] = load_bed(name)
        return made[name]

    return get


def write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    pcm = np.round(np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1 if samples.ndim == 1 else samples.shape[1])
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())


def time_domain_noise(seconds: float, seed: int) -> np.ndarray:
    """Dark noise from a recursive filter, cut anywhere: not periodic, so a naive loop of it clicks."""
    frames = round(seconds * SAMPLE_RATE)
    white = np.random.default_rng(seed).standard_normal(frames + 2000)
    x = signal.lfilter(*signal.butter(2, [40, 400], "bandpass", fs=SAMPLE_RATE), white)[1000:1000 + frames]
    return 0.3 * x / np.max(np.abs(x))


# --- built-in beds -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", BUILT_IN)
def test_built_in_bed_is_a_stereo_float32_loop_at_bed_loudness(beds, name):
    bed = beds(name)
    assert bed.name == name
    assert bed.loop.dtype == np.float32
    assert bed.loop.shape == (ambient.LOOP_SECONDS * SAMPLE_RATE, 2)
    assert np.isfinite(bed.loop).all()
    assert abs(integrated_lufs(bed.loop, SAMPLE_RATE) - BED_LUFS) < 0.5
    assert np.max(np.abs(bed.loop)) < 1.0


@pytest.mark.parametrize("name", BUILT_IN)
def test_built_in_bed_loops_without_a_seam(beds, name):
    assert seam_score(beds(name).loop) < 1.0


@pytest.mark.parametrize("name", BUILT_IN)
def test_built_in_bed_has_width_but_is_not_two_copies(beds, name):
    left, right = beds(name).loop.T
    assert abs(np.corrcoef(left, right)[0, 1]) < 0.9


def test_a_naive_cut_of_time_domain_noise_fails_the_seam_test():
    assert seam_score(time_domain_noise(10.0, seed=1)[:, None]) > 1.0


def test_none_is_no_bed():
    assert load_bed("none") is None


def test_bed_names_and_descriptions_match():
    assert [name for name, _ in ambient.describe()] == list(ambient.BED_NAMES)
    assert all(text and "\n" not in text for _, text in ambient.describe())


def test_brown_is_darker_than_pink(beds):
    def centroid_hz(x):
        freqs_hz, power = signal.welch(x.mean(axis=1), SAMPLE_RATE, nperseg=8192)
        return float((freqs_hz * power).sum() / power.sum())

    assert centroid_hz(beds("brown-noise").loop) < 0.25 * centroid_hz(beds("pink-noise").loop)


# --- Bed.block -----------------------------------------------------------------------------------

def test_block_across_the_loop_boundary_is_the_end_then_the_start(beds):
    bed = beds("brown-noise")
    n = len(bed.loop)
    expected = np.concatenate([bed.loop[-300:], bed.loop[:200]])
    assert np.array_equal(bed.block(n - 300, n + 200), expected)
    assert np.array_equal(bed.block(5 * n - 300, 5 * n + 200), expected)


def test_block_longer_than_the_loop_repeats_it():
    loop = np.arange(10, dtype=np.float32).repeat(2).reshape(10, 2)
    bed = Bed(loop, "test")
    assert bed.block(7, 32)[:, 0].tolist() == [7, 8, 9] + list(range(10)) * 2 + [0, 1]
    assert bed.block(3, 3).shape == (0, 2)


# --- cache ---------------------------------------------------------------------------------------

def test_bed_is_deterministic_and_the_second_load_comes_from_the_cache(tmp_path, monkeypatch):
    first = load_bed("drone")
    files = list((tmp_path / "cache" / "beds").glob("*.npy"))
    assert [f.name for f in files] == [f"drone-{SAMPLE_RATE}hz-v{ambient.BED_VERSION}.npy"]

    def refuse(*args):
        raise AssertionError("synthesised again instead of using the cache")

    monkeypatch.setitem(ambient._SYNTHS, "drone", refuse)
    second = load_bed("drone")
    assert np.array_equal(first.loop, second.loop)


def test_synthesis_is_deterministic_without_a_cache(tmp_path, monkeypatch):
    first = load_bed("pink-noise", sample_rate=8000)
    monkeypatch.setenv("WINDOWN_CACHE_DIR", str(tmp_path / "another-cache"))
    second = load_bed("pink-noise", sample_rate=8000)
    assert np.array_equal(first.loop, second.loop)
    assert first.loop.shape == (ambient.LOOP_SECONDS * 8000, 2)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_cache_file_is_regenerated(tmp_path, damage):
    good = load_bed("pink-noise", sample_rate=8000).loop
    [path] = (tmp_path / "cache" / "beds").glob("*.npy")
    data = path.read_bytes()
    path.write_bytes(b"not a numpy file" if damage == "garbage" else data[:len(data) // 2])
    again = load_bed("pink-noise", sample_rate=8000).loop
    assert np.array_equal(again, good)
    assert path.read_bytes() == data


def test_an_unwritable_cache_still_gives_a_bed(tmp_path, monkeypatch):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    monkeypatch.setenv("WINDOWN_CACHE_DIR", str(blocker))
    assert load_bed("pink-noise", sample_rate=8000).loop.shape == (ambient.LOOP_SECONDS * 8000, 2)


# --- chime ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bowl():
    return chime()


def test_chime_shape_and_determinism(bowl):
    assert bowl.dtype == np.float32
    assert bowl.ndim == 2 and bowl.shape[1] == 2
    assert 8.0 <= len(bowl) / SAMPLE_RATE <= 12.0
    assert np.array_equal(bowl, chime())


def test_chime_starts_without_a_click(bowl):
    assert np.max(np.abs(bowl[0])) < 1e-6
    steps = np.abs(np.diff(bowl, axis=0))
    first_1ms = steps[: SAMPLE_RATE // 1000].max()
    first_10ms = steps[: SAMPLE_RATE // 100].max()
    assert first_1ms < 0.05 * steps.max()
    assert first_10ms <= steps.max()


def test_chime_decays_to_silence(bowl):
    tail = bowl[-SAMPLE_RATE // 2:]
    assert 20 * np.log10(np.sqrt(np.mean(tail.astype(np.float64) ** 2)) + 1e-20) < -60
    assert np.max(np.abs(bowl[-1])) < 1e-6


def test_chime_fundamental_dominates_its_spectrum(bowl):
    spectrum = np.abs(np.fft.rfft(bowl.mean(axis=1)))
    freqs_hz = np.fft.rfftfreq(len(bowl), 1 / SAMPLE_RATE)
    assert abs(freqs_hz[np.argmax(spectrum)] - ambient.CHIME_FUNDAMENTAL_HZ) < 2.0
    assert 220 <= ambient.CHIME_FUNDAMENTAL_HZ <= 330


def test_chime_loudness(bowl):
    assert abs(integrated_lufs(bowl, SAMPLE_RATE) - CHIME_LUFS) < 0.1
    assert np.max(np.abs(bowl)) < 1.0


def test_chime_at_another_sample_rate():
    assert chime(22050).shape == (round(ambient.CHIME_SECONDS * 22050), 2)


# --- a user's own file ---------------------------------------------------------------------------

def test_user_ogg_is_decoded_to_stereo_looped_and_levelled(tmp_path):
    path = tmp_path / "tone.ogg"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=220:duration=3",
                    "-ar", "22050", str(path)], check=True)
    bed = load_bed(str(path))
    assert bed.loop.dtype == np.float32 and bed.loop.shape[1] == 2
    assert bed.sample_rate == SAMPLE_RATE
    # 3 s at 44.1 kHz, less a crossfade of a quarter of it (short files get short fades)
    assert abs(len(bed.loop) - 0.75 * 3 * SAMPLE_RATE) < 0.05 * SAMPLE_RATE
    assert np.array_equal(bed.loop[:, 0], bed.loop[:, 1])  # mono is copied to both sides
    assert seam_score(bed.loop) < 1.0
    assert abs(integrated_lufs(bed.loop, SAMPLE_RATE) - BED_LUFS) < 0.5


def test_user_noise_that_clicks_when_cut_loops_seamlessly(tmp_path):
    noise = time_domain_noise(8.0, seed=2)
    stereo = np.stack([noise, time_domain_noise(8.0, seed=3)], axis=1)
    assert seam_score(stereo) > 1.0
    write_wav(tmp_path / "brook.wav", stereo, SAMPLE_RATE)
    bed = load_bed(str(tmp_path / "brook.wav"))
    assert len(bed.loop) == 8 * SAMPLE_RATE - round(1.5 * SAMPLE_RATE)  # a 1.5 s crossfade
    assert seam_score(bed.loop) < 1.0
    assert abs(integrated_lufs(bed.loop, SAMPLE_RATE) - BED_LUFS) < 0.5


def test_relative_path_is_from_the_working_directory(tmp_path, monkeypatch):
    write_wav(tmp_path / "hum.wav", 0.1 * np.sin(2 * np.pi * 110 * np.arange(2 * 8000) / 8000), 8000)
    monkeypatch.chdir(tmp_path)
    assert load_bed("hum.wav").loop.shape[1] == 2


@pytest.mark.parametrize("given", ["waves", "waves.wav"])
def test_a_name_alone_is_found_in_sounds_beside_the_routine_file(tmp_path, monkeypatch, given):
    sounds = tmp_path / "r" / "sounds"
    sounds.mkdir(parents=True)
    write_wav(sounds / "waves.wav", 0.1 * np.sin(2 * np.pi * 110 * np.arange(2 * 8000) / 8000), 8000)
    monkeypatch.chdir(tmp_path)  # not the routine's folder
    bed = load_bed(given, routine_file=tmp_path / "r" / "w.yaml")
    assert bed.name == given
    assert abs(len(bed.loop) - 1.5 * SAMPLE_RATE) < 10


def test_default_sounds_folder_is_in_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "sounds").mkdir()
    write_wav(tmp_path / "sounds" / "hum.wav", 0.1 * np.sin(2 * np.pi * 110 * np.arange(16000) / 8000), 8000)
    monkeypatch.chdir(tmp_path)
    assert load_bed("hum").loop.shape[1] == 2
    assert load_bed("hum", routine_file=tmp_path / "elsewhere" / "r.yaml").loop.shape[1] == 2  # after its own


def test_a_path_with_a_folder_is_not_looked_up_by_name(tmp_path, monkeypatch):
    (tmp_path / "sounds").mkdir()
    write_wav(tmp_path / "sounds" / "hum.wav", 0.1 * np.sin(2 * np.pi * 110 * np.arange(16000) / 8000), 8000)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="ambient file not found"):
        load_bed("snd/hum.wav")


def test_missing_file_names_the_path_and_the_one_rule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as caught:
        load_bed("sounds/nope.ogg")
    assert str(caught.value) == (
        "sounds/nope.ogg: ambient file not found. A path in a routine, profile or batch file is relative to that "
        "file, one on the command line to the current folder; a name alone is also looked up in sounds/ beside "
        "that file or the routine file, then in ./sounds/. Built-in beds: brown-noise, pink-noise, rain, ocean, "
        "drone, none")
    assert caught.value.path == "sounds/nope.ogg"


def test_a_near_miss_suggests_a_bed_or_a_file_in_sounds(tmp_path, monkeypatch):
    (tmp_path / "sounds").mkdir()
    write_wav(tmp_path / "sounds" / "waves.wav", 0.1 * np.sin(np.arange(16000)), 8000)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as caught:
        load_bed("rian")
    assert caught.value.hint.startswith("Did you mean 'rain'? A path in")
    with pytest.raises(UserError) as caught:
        load_bed("wave")
    assert caught.value.hint.startswith("Did you mean 'waves'? A path in")


def test_a_text_file_is_not_audio(tmp_path):
    fake = tmp_path / "song.mp3"
    fake.write_text("these are words, not sound\n")
    with pytest.raises(UserError) as caught:
        load_bed(str(fake))
    assert str(caught.value) == (f"{fake}: not an audio file ffmpeg can read. "
                                 "Check that it plays in a media player, or convert it to .wav or .flac")


def test_a_folder_is_not_a_file(tmp_path):
    with pytest.raises(UserError, match="is a folder, not a file"):
        load_bed(str(tmp_path))


def test_too_short_file_is_refused(tmp_path):
    write_wav(tmp_path / "blip.wav", 0.3 * np.sin(np.arange(4000)), 8000)
    with pytest.raises(UserError) as caught:
        load_bed(str(tmp_path / "blip.wav"))
    assert caught.value.problem == "ambient file is shorter than 1 second"


def test_silent_file_is_refused(tmp_path):
    write_wav(tmp_path / "hush.wav", np.zeros(3 * 8000), 8000)
    with pytest.raises(UserError) as caught:
        load_bed(str(tmp_path / "hush.wav"))
    assert caught.value.problem == "ambient file is silent"


def test_missing_ffmpeg_says_how_to_install_it(tmp_path, monkeypatch):
    write_wav(tmp_path / "hum.wav", 0.1 * np.sin(np.arange(16000)), 8000)
    monkeypatch.setattr(ambient.shutil, "which", lambda name: None)
    with pytest.raises(MissingToolError) as caught:
        load_bed(str(tmp_path / "hum.wav"))
    assert str(caught.value) == "ffmpeg is not installed. Run ./scripts/setup, or install the Debian package ffmpeg"


# --- preview -------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".wav", ".mp3", ".flac"])
def test_preview_writes_a_decodable_file_of_the_requested_length(tmp_path, suffix):
    out = tmp_path / f"drone{suffix}"
    preview("drone", out, seconds=3.0)
    samples = decode(out)
    assert abs(len(samples) / SAMPLE_RATE - 3.0) < 0.050
    assert np.max(np.abs(samples[:10])) < 1e-3  # faded in
    assert np.sqrt(np.mean(samples[SAMPLE_RATE:2 * SAMPLE_RATE] ** 2)) > 0.01  # sound in the middle
    assert not list(tmp_path.glob("*.part"))


def test_preview_of_none_or_an_unknown_format_is_an_error_and_leaves_nothing(tmp_path):
    with pytest.raises(UserError, match="nothing to preview"):
        preview("none", tmp_path / "x.wav")
    with pytest.raises(UserError, match="cannot write a preview as '.xyz'"):
        preview("drone", tmp_path / "x.xyz")
    assert not list(tmp_path.glob("x.*"))


def test_an_empty_name_is_not_found(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="ambient file not found"):
        load_bed("")


def test_synthesising_a_bed_needs_no_scipy(tmp_path):
    """scipy is a test-only dependency: a first build (which synthesises its bed) must not import it."""
    code = ("import sys; from windown import ambient; ambient.load_bed('rain', sample_rate=44100); "
            "print('scipy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "WINDOWN_CACHE_DIR": str(tmp_path)}).stdout
    assert out.strip() == "False"
    assert list((tmp_path / "beds").glob("rain-*.npy"))
