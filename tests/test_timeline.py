"""The timing rules, proved on real synthesised clips (espeak-ng) and on exact sample positions."""

from __future__ import annotations

import pytest

from conftest import ToneEngine, write
from windown import compose, personalise, pipeline, routine, source, timeline
from windown.errors import RoutineError
from windown.timeline import SLOT_GUARD_MS

SR = 44100


def planned(path, **flags):
    r, changes = personalise.personalise(routine.load(str(path)), personalise.Profile(flags={"seed": 7, **flags}))
    return pipeline.plan(r, changes)


ROUTINE = """\
title: Timing check
voice: {engine: espeak-ng, rate: 150}
breathing: {inhale: 4s, exhale: 6s}
bedtime: false
steps:
  - stretch: knee-to-chest
    hold: 23s
    reps: 2
    sides: both
  - breathe: 3
  - stretch: cat-cow
    rounds: 3
  - stretch: supine-twist
    hold: 31.5s
"""


@pytest.fixture(scope="module")
def plan_real(tmp_path_factory, shared_cache):
    path = write(tmp_path_factory.mktemp("t") / "timing.yaml", ROUTINE)
    with pytest.MonkeyPatch.context() as patch:  # module-scoped, so not the function-scoped fixture
        patch.setenv("WINDOWN_CACHE_DIR", str(shared_cache))
        return pipeline.plan(personalise.personalise(routine.load(str(path)),
                                                     personalise.Profile(flags={"seed": 7}))[0])


def test_every_hold_is_exact_to_the_sample_and_bounded_by_its_cues(plan_real):
    tl = plan_real.timeline
    holds = [h for h in tl.holds if h.label.startswith("the hold of")]
    knee = [h for h in holds if "knee to chest" in h.label]
    twist = [h for h in holds if "twist" in h.label]
    assert len(knee) == 4 and len(twist) == 2
    for h in knee:
        assert h.stop_frame - h.start_frame == 23 * SR
    for h in twist:
        assert h.stop_frame - h.start_frame == 31_500 * SR // 1000
    speech = [e for e in tl.events if e.kind == "speech"]
    for h in holds:
        # the cue that starts the hold ends exactly at its start; the release starts exactly at its end
        assert any(e.stop_frame == h.start_frame for e in speech), h
        assert any(e.start_frame == h.stop_frame for e in speech), h


def test_breath_cues_start_exactly_on_phase_boundaries(plan_real):
    tl = plan_real.timeline
    phases = [h for h in tl.holds if h.label.startswith(("the inhale", "the exhale"))]
    assert len(phases) == 2 * (3 + 3)  # three paced breaths, three rounds of cat-cow
    starts = {e.start_frame for e in tl.events if e.kind == "speech"}
    for phase in phases:
        assert phase.start_frame in starts, phase
        expected = (4000 if "inhale" in phase.label else 6000) * SR // 1000
        assert phase.stop_frame - phase.start_frame == expected
    # phases follow each other with no gap: inhale, exhale, inhale, ...
    cat_cow = [p for p in phases if "cat cow" in p.label]
    for a, b in zip(cat_cow, cat_cow[1:]):
        assert a.stop_frame == b.start_frame


def test_both_sides_and_every_rep_are_present(plan_real):
    labels = [h.label for h in plan_real.timeline.holds if "knee to chest" in h.label]
    assert labels == ["the hold of knee to chest (right side)", "the hold of knee to chest (left side)"] * 2
    texts = " ".join(e.text for e in plan_real.timeline.events)
    assert "right" in texts and "left" in texts


def test_cues_never_overlap_and_inner_cues_fit_their_hold(plan_real):
    tl = plan_real.timeline
    speech = [e for e in tl.events if e.kind == "speech"]
    for a, b in zip(speech, speech[1:]):
        assert a.stop_frame <= b.start_frame
    for h in tl.holds:
        for e in speech:
            if h.start_frame < e.start_frame < h.stop_frame:
                assert e.stop_frame <= h.stop_frame


def test_placement_is_deterministic(plan_real, tmp_path):
    path = write(tmp_path / "timing.yaml", ROUTINE)
    again = planned(path)
    assert [(e.start_frame, e.length_frames, e.text) for e in again.timeline.events] == \
        [(e.start_frame, e.length_frames, e.text) for e in plan_real.timeline.events]


def test_total_is_the_sum_of_the_parts(plan_real):
    total = 0
    for item in plan_real.script.items:
        if isinstance(item, compose.Say):
            total += len(plan_real.clips[(item.text, item.rate_wpm)])
        elif isinstance(item, compose.Gap):
            total += item.gap_ms * SR // 1000
        elif isinstance(item, compose.Hold):
            total += item.hold_ms * SR // 1000
    assert plan_real.timeline.end_frame == total


def test_a_breath_cue_too_long_for_its_phase_is_an_error_with_its_line(tmp_path, tone_engine):
    # The tone engine speaks 250 ms per word: ten words need 2.5 s, the inhale is 2 s.
    path = write(tmp_path / "r.yaml", """\
title: Overflow
breathing: {inhale: 2s, exhale: 6s}
steps:
  - say: Hello.
  - stretch:
      id: my-flow
      name: my flow
      kind: flow
      rounds: 2
      setup: Lie down.
      inhale: one two three four five six seven eight nine ten
      exhale: out
""")
    with pytest.raises(RoutineError) as err:
        planned(path)
    slot = (2000 - SLOT_GUARD_MS) / 1000
    # the line of the inhale words, not of `- stretch:`; a flow has no hold, so the fix is a slower breath
    assert str(err.value) == (
        f"{path}:11: the words \"one two three four five six seven eight nine ten\" take 2.5s but fit only "
        f"{slot:.1f}s inside the inhale of my flow. Slow the breathing (e.g. `breathing: {{inhale: 3s}}`), "
        "or use fewer words")


def test_a_cue_too_long_for_its_hold_names_the_line_of_the_cue(tmp_path):
    path = write(tmp_path / "r.yaml", """\
title: Overflow
steps:
  - stretch:
      id: my-rest
      name: my rest
      kind: rest
      hold: 1m
      setup: Lie down.
      cues:
        - Soft shoulders.
        - Heavy legs.
""")
    r = personalise.personalise(routine.load(str(path)), personalise.Profile(flags={"seed": 7}))[0]
    script = compose.compose(r)
    hold = next(i for i in script.items if isinstance(i, compose.Hold) and i.label == "the hold of my rest")
    said = {inner.item.text: inner.item.line for inner in hold.inner if isinstance(inner.item, compose.Say)}
    # each cue of its own on its own line, not the step's (3); windown's own words keep the step's
    assert said == {"Soft shoulders.": 10, "Heavy legs.": 11, "Halfway.": 3, "Ten more seconds.": 3}
    # every clip one second, but the first cue three times its slot: the build stops on that cue's line
    first = next(i for i in hold.inner if i.item.text == "Soft shoulders.")
    frames = {(s.text, s.rate_wpm): SR for s in script.says()}
    frames[(first.item.text, first.item.rate_wpm)] = 3 * (first.slot_ms * SR // 1000)
    with pytest.raises(RoutineError) as err:
        timeline.place(script, frames, SR, SR)
    assert str(err.value).startswith(f"{path}:10: the words \"Soft shoulders.\" take ")
    assert str(err.value).endswith("inside the hold of my rest. Lengthen the hold, or use fewer words")


def test_a_cue_that_just_fits_is_placed_at_its_boundary(tmp_path, tone_engine):
    path = write(tmp_path / "r.yaml", """\
title: Fits
breathing: {inhale: 3s, exhale: 3s}
steps:
  - breathe: 1
""")
    tl = planned(path).timeline
    inhale = next(h for h in tl.holds if "inhale" in h.label)
    cue = next(e for e in tl.events if e.start_frame == inhale.start_frame)
    assert cue.length_frames <= inhale.stop_frame - inhale.start_frame


def test_clips_are_trimmed_to_speech(tone_engine, tmp_path):
    path = write(tmp_path / "r.yaml", "title: T\nsteps:\n  - say: one two three four\n")
    p = planned(path)
    clip = p.clips[("one two three four", 140)]
    # 4 words x 250 ms of tone; the 200 ms pads are trimmed to the 10 ms margins kept around speech
    assert abs(len(clip) - (1000 + 2 * 10) * SR // 1000) <= SR // 100


def test_hold_overrides_and_durations(tmp_path, tone_engine):
    path = write(tmp_path / "r.yaml", """\
title: Durations
steps:
  - stretch: childs-pose
    hold: 1m30s
  - pause: 2.5s
""")
    p = planned(path)
    hold = next(h for h in p.timeline.holds if "child" in h.label)
    assert hold.stop_frame - hold.start_frame == 90 * SR
    assert source.parse_duration_ms("1m30s") == 90_000
    assert source.parse_duration_ms("90") == 90_000
    assert source.parse_duration_ms("5m") == 300_000
    assert source.parse_duration_ms("250ms") == 250
    assert source.parse_duration_ms("soon") is None


def test_tone_engine_word_timing_matches_fixture():
    assert ToneEngine.speech_ms("a b c") == 750


def test_a_pause_step_is_a_span_of_its_own_length(tmp_path, tone_engine):
    path = write(tmp_path / "r.yaml", "title: T\nsteps:\n  - say: one two\n  - pause: 5s\n  - say: three\n")
    tl = planned(path).timeline
    assert [(p.label, p.line) for p in tl.pauses] == [("pause", 4)]
    pause = tl.pauses[0]
    assert pause.stop_frame - pause.start_frame == 5 * SR
    before = next(e for e in tl.events if e.text == "one two")
    after = next(e for e in tl.events if e.text == "three")
    assert (pause.start_frame, pause.stop_frame) == (before.stop_frame, after.start_frame)
