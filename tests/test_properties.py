"""Properties over generated input: the loader never crashes, and valid routines always place exactly.

(a) Any document (YAML built from random values, routine-shaped or not, arbitrary text, arbitrary bytes) either
    loads as a Routine or raises UserError: never any other exception.
(b) Any valid routine built from the library composes and places into a timeline whose speech never overlaps,
    whose holds last exactly their stated samples with every cue inside, and whose end is the sum of its parts.
"""

from __future__ import annotations

import re

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from windown import compose, library, personalise, pipeline, routine, source, timeline
from windown import settings as table
from windown.errors import RoutineError, UserError

SAMPLE_RATE = 44100

# -- (a) the loader never crashes ---------------------------------------------------------------------------

ROUTINE_KEYS = ["title", "steps", *table.TOP_KEYS]
STEP_KEYS = [*routine.STEP_KINDS, "hold", "sides", "reps", "rounds", "settle", "rest", "setup", "cues", "release",
             "name", "inhale", "exhale", "hold_in", "hold_out"]
STRETCH_KEYS = ["id", "name", "position", "in_bed", "kind", "sides", "hold", "reps", "rounds", "rest", "settle",
                "tags", "props", "optional", "setup", "brief", "start", "cues", "inhale", "exhale", "release",
                "switch", "about", "easier", "default", "min", "max"]
WORDS = ["30s", "1m30s", "-5s", "0", "90h", "1e400", "nan", ".inf", "both", "none", "hold", "flow", "reps", "rest",
         "supine", "kneeling", "espeak-ng", "rain", "brown-noise", "slow", "full", "auto", "yes", "~", "",
         *library.all_ids()[:6]]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.sampled_from(WORDS))
keys = st.one_of(st.sampled_from(ROUTINE_KEYS + STEP_KEYS + STRETCH_KEYS), st.text(max_size=12))
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(keys, inner, max_size=6)),
    max_leaves=40)
steps = st.one_of(
    st.sampled_from(["chime", 3, None]),
    st.dictionaries(st.sampled_from(STEP_KEYS), st.one_of(scalars, documents), min_size=1, max_size=4),
    st.fixed_dictionaries({"stretch": st.dictionaries(st.sampled_from(STRETCH_KEYS), st.one_of(scalars, documents),
                                                      max_size=8)}))


def load_or_user_error(data: str | bytes) -> None:
    try:
        result = routine.parse(source.load("x.yaml", data), "x.yaml")
    except UserError as exc:
        assert "\n" not in str(exc), str(exc)  # always one line on stderr
    else:
        assert isinstance(result, routine.Routine)


@settings(max_examples=100)
@given(documents)
def test_any_yaml_document_loads_or_raises_a_user_error(doc):
    load_or_user_error(yaml.safe_dump(doc, allow_unicode=True))


@settings(max_examples=100)
@given(st.one_of(st.text(max_size=300), st.text(alphabet=":-[]{}&*!|>'\"#%@`,?<= \t\n\\abc0123456789", max_size=200)))
def test_any_text_loads_or_raises_a_user_error(text):
    load_or_user_error(text)


@settings(max_examples=100)
@given(st.binary(max_size=300))
def test_any_bytes_load_or_raise_a_user_error(data):
    load_or_user_error(data)


# -- (b) valid routines place exactly -----------------------------------------------------------------------

SHORT_WORDS = ["rest", "soft", "slow", "breathe", "easy", "calm", "let", "go", "warm", "heavy", "quiet", "now"]


def seconds(ms: int) -> str:
    return f"{ms // 1000}s"


@st.composite
def stretch_steps(draw) -> dict:
    stretch = draw(st.sampled_from([library.find(i) for i in library.all_ids()]))
    step: dict = {"stretch": stretch.id}
    if stretch.kind in ("hold", "rest") and draw(st.booleans()):
        step["hold"] = seconds(draw(st.integers(stretch.hold_ms.min // 1000, stretch.hold_ms.max // 1000)) * 1000)
    if stretch.kind == "flow" and draw(st.booleans()):
        step["rounds"] = draw(st.integers(stretch.rounds.min, stretch.rounds.max))
    elif draw(st.booleans()):
        step["reps"] = draw(st.integers(stretch.reps.min, stretch.reps.max))
    if stretch.kind in ("hold", "rest") and draw(st.booleans()):
        step["sides"] = draw(st.sampled_from(library.SIDES))
    return step


phrases = st.lists(st.sampled_from(SHORT_WORDS), min_size=1, max_size=4).map(lambda w: " ".join(w).capitalize() + ".")
valid_steps = st.one_of(
    stretch_steps(),
    st.builds(lambda t: {"say": t}, st.one_of(phrases, st.lists(phrases, min_size=1, max_size=3))),
    st.builds(lambda s: {"pause": f"{s}s"}, st.integers(1, 20)),
    st.just("chime"),
    st.just({"chime": None}),
    st.builds(lambda n: {"breathe": n}, st.integers(1, 3)),
)
breath_s = st.integers(3, 6).map(lambda s: f"{s}s")
valid_routines = st.fixed_dictionaries(
    {"title": phrases, "steps": st.lists(valid_steps, min_size=1, max_size=6),
     "breathing": st.fixed_dictionaries({"inhale": breath_s, "exhale": breath_s},
                                        optional={"hold_in": st.sampled_from(["0s", "2s", "3s"]),
                                                  "hold_out": st.sampled_from(["0s", "2s", "3s"])})},
    optional={"pace": st.sampled_from(table.get("pace").options), "instruction": st.sampled_from(table.get("instruction").options),
              "bedtime": st.booleans(), "safety": st.booleans(), "name": st.sampled_from(["Sam", "Alex"])})

# routine-shaped documents, mostly right, so that generation reaches the deeper checks
routine_shaped = st.fixed_dictionaries(
    {"title": st.one_of(phrases, scalars), "steps": st.lists(st.one_of(valid_steps, steps), min_size=1, max_size=6)},
    optional={k: st.one_of(documents, st.sampled_from(WORDS)) for k in table.TOP_KEYS})


@settings(max_examples=100)
@given(routine_shaped)
def test_any_routine_shaped_document_loads_or_raises_a_user_error(doc):
    load_or_user_error(yaml.safe_dump(doc, allow_unicode=True))


TOO_LONG = re.compile(r"take (\d+\.\d)s but fit only (\d+\.\d)s")


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(doc=valid_routines)
def test_any_valid_routine_places_exactly(tone_engine, doc):
    r = routine.parse(source.load("x.yaml", yaml.safe_dump(doc)), "x.yaml")
    r, _ = personalise.personalise(r, personalise.Profile(flags={"seed": 1}))
    try:
        p = pipeline.plan(r)
    except RoutineError as exc:  # only a cue longer than its slot may fail, and then it must be reported
        found = TOO_LONG.search(exc.problem)
        assert found and float(found[1]) > float(found[2]), str(exc)
        return
    tl = p.timeline

    speech = sorted((e for e in tl.events if e.kind == "speech"), key=lambda e: e.start_frame)
    for before, after in zip(speech, speech[1:]):
        assert before.stop_frame <= after.start_frame, (before, after)

    holds = [item for item in p.script.items if isinstance(item, compose.Hold)]
    assert len(holds) == len(tl.holds)
    at = {(e.start_frame, e.text) for e in speech}
    for hold, span in zip(holds, tl.holds):
        assert span.stop_frame - span.start_frame == hold.hold_ms * SAMPLE_RATE // 1000
        for inner in hold.inner:
            if isinstance(inner.item, compose.Say):
                start = span.start_frame + timeline.to_samples(inner.offset_ms, SAMPLE_RATE)
                assert (start, inner.item.text) in at
                length = len(p.clips[(inner.item.text, inner.item.rate_wpm)])
                assert span.start_frame <= start and start + length <= span.stop_frame

    total = 0
    for item in p.script.items:
        if isinstance(item, compose.Say):
            total += len(p.clips[(item.text, item.rate_wpm)])
        elif isinstance(item, compose.Gap):
            total += item.gap_ms * SAMPLE_RATE // 1000
        elif isinstance(item, compose.Hold):
            total += item.hold_ms * SAMPLE_RATE // 1000
    assert tl.end_frame == total
