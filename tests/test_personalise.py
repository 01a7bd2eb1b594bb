"""Personalisation (issue 4): profile file and flags, avoid/exclude, pace, instruction amount, length fitting,
ordering, bedtime mode and seeded variety. Fast tests use the tone engine; a few run the real CLI."""

from __future__ import annotations

import datetime
import json
import random
import re

import pytest

from conftest import run_cli, write
from windown import cli, compose, library, personalise, pipeline, routine, settings, source, speech
from windown.errors import RoutineError, UserError
from windown.routine import StretchStep

SR = 44100
LYING = ("supine", "prone", "wall")
ALL_TEN = "bedtime-lower-back"  # the preset holds every library stretch once


# -- helpers ---------------------------------------------------------------------------------------

def stretches(r: routine.Routine) -> list:
    return [s.stretch for s in r.steps if isinstance(s, StretchStep)]


def ids(r: routine.Routine) -> list[str]:
    return [st.id for st in stretches(r)]


def personalised(name: str, **flags) -> routine.Routine:
    """Load and personalise without a length target (no speech needed)."""
    r, _ = personalise.personalise(routine.load(name), personalise.Profile(flags=flags))
    return r


def says(r: routine.Routine) -> list[str]:
    return [s.text for s in compose.compose(r).says()]


def guided_ms(r: routine.Routine) -> float:
    """The guided part, as personalise measures it: the end of the placed timeline."""
    tl = pipeline.plan(r).timeline
    return tl.ms(tl.end_frame)


def hold_ms(tl, label: str) -> list[int]:
    return [round(tl.ms(h.stop_frame - h.start_frame)) for h in tl.holds if h.label.startswith(label)]


def variants() -> list:
    """Every library stretch and every easier variation."""
    return [s for st in library.stretches().values() for s in (st, st.easier) if s is not None]


def words_of(st) -> set[str]:
    texts = set()
    for key in ("setup", "brief", "start", "cues", "inhale", "exhale", "release", "switch"):
        for text in getattr(st, key):
            for side, other in (("right", "left"), ("left", "right"), ("", "")):
                texts.add(text.format(side=side, other=other))
    return texts


def pool_pattern(key: str) -> re.Pattern:
    """A phrase pool as one regex; placeholders match any words."""
    parts = [re.escape(p).replace(r"\{n\}", ".+").replace(r"\{total\}", ".+").replace(r"\{name\}", ".+")
             for p in library.phrases()[key]]
    return re.compile("^(?:" + "|".join(parts) + ")$", re.IGNORECASE)


def assert_ends_lying(r: routine.Routine) -> None:
    sts = stretches(r)
    if any(st.position in LYING for st in sts):
        assert sts[-1].position in LYING, ids(r)
    if any(st.kind == "rest" and st.position in LYING for st in sts):
        assert sts[-1].kind == "rest", ids(r)


# -- profile file and flags ------------------------------------------------------------------------

PROFILE = """\
name: Robin
voice: {engine: festival, voice: slt, rate: 110}
breathing: {inhale: 5s, exhale: 7s, hold_in: 1s, hold_out: 2s}
ambient: {sound: ocean, level: -24}
pace: slow
instruction: brief
bedtime: false
tail: 4m
order: as-written
safety: true
length: 20m
avoid: [wall]
exclude: [cobra]
in_bed_only: false
seed: 11
transition: 9s
"""

# flag -> (the Settings path it sets, the profile's value above, the flag's value)
FLAGS = {
    ("--name", "Sam"): ("name", "Robin", "Sam"),
    ("--engine", "espeak-ng"): ("voice.engine", "festival", "espeak-ng"),
    ("--voice", "en-us"): ("voice.voice", "slt", "en-us"),
    ("--rate", "150"): ("voice.rate_wpm", 110, 150),
    ("--pace", "brisk"): ("pace", "slow", "brisk"),
    ("--instruction", "minimal"): ("instruction", "brief", "minimal"),
    ("--length", "15m"): ("length_ms", 20 * 60_000, 15 * 60_000),
    ("--avoid", "kneeling,prone"): ("avoid", ("wall",), ("kneeling", "prone")),
    ("--exclude", "bridge,sphinx"): ("exclude", ("cobra",), ("bridge", "sphinx")),
    ("--in-bed",): ("in_bed_only", False, True),
    ("--bedtime",): ("bedtime", False, True),
    ("--order", "auto"): ("order", "as-written", "auto"),
    ("--no-safety",): ("safety", True, False),
    ("--seed", "42"): ("seed", 11, 42),
    ("--ambient", "rain"): ("ambient.sound", "ocean", "rain"),
    ("--ambient-level", "-30"): ("ambient.level_db", -24.0, -30.0),
    ("--tail", "2m"): ("tail_ms", 4 * 60_000, 2 * 60_000),
}


def setting(s: settings.Settings, path: str):
    for part in path.split("."):
        s = getattr(s, part)
    return s


def settings_from_cli(*args: str) -> settings.Settings:
    """Parse `windown script ARGS` as click does, then profile and settings exactly as the command does."""
    ctx = cli.script.make_context("script", list(args))
    r = routine.load(ctx.params["routine_name"])
    return personalise.apply_settings(r, cli.profile_from(ctx.params))


def test_profile_file_sets_every_field(tmp_path):
    path = write(tmp_path / "me.yaml", PROFILE)
    s = personalise.apply_settings(routine.load(ALL_TEN), personalise.load_profile(path))
    assert s.voice == settings.Voice("festival", "slt", 110)
    assert s.breathing == settings.Breathing(5000, 7000, 1000, 2000)
    assert s.ambient == settings.Ambient("ocean", -24.0)
    for (_, path_, profile_value, _) in ((k, *v) for k, v in FLAGS.items()):
        assert setting(s, path_) == profile_value, path_
    assert s.transition_ms == 9000


@pytest.mark.parametrize("args", list(FLAGS), ids=lambda a: a[0])
def test_each_flag_overrides_the_profile(tmp_path, args):
    path_, profile_value, flag_value = FLAGS[args]
    profile = write(tmp_path / "me.yaml", PROFILE)
    assert setting(settings_from_cli("quick-wind-down", "--profile", str(profile)), path_) == profile_value
    assert setting(settings_from_cli("quick-wind-down", "--profile", str(profile), *args), path_) == flag_value


def test_precedence_routine_then_profile_then_flag(tmp_path):
    r = write(tmp_path / "r.yaml", "title: Mine\npace: slow\nname: Ann\nseed: 5\nsteps:\n  - stretch: knee-to-chest\n")
    profile = write(tmp_path / "p.yaml", "pace: brisk\nname: Bea\n")
    assert settings_from_cli(str(r)).pace == "slow"
    assert settings_from_cli(str(r), "--profile", str(profile)).pace == "brisk"
    assert settings_from_cli(str(r), "--profile", str(profile), "--pace", "medium").pace == "medium"
    s = settings_from_cli(str(r), "--profile", str(profile), "--name", "Cy")
    assert (s.name, s.pace, s.seed) == ("Cy", "brisk", 5)  # what neither profile nor flag names is the routine's


def test_default_profile_lives_in_the_config_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert personalise.default_profile_path() == tmp_path / "cfg" / "windown" / "profile.yaml"
    assert personalise.load_profile(None).doc is None  # no file, no profile, no error
    (tmp_path / "cfg" / "windown").mkdir(parents=True)
    write(tmp_path / "cfg" / "windown" / "profile.yaml", "name: Dee\npace: brisk\n")
    assert settings_from_cli("quick-wind-down").name == "Dee"
    assert settings_from_cli("quick-wind-down", "--pace", "slow").pace == "slow"


def test_a_bad_profile_names_its_file_and_line(tmp_path):
    path = write(tmp_path / "me.yaml", "name: Sam\npace: sluggish\n")
    with pytest.raises(RoutineError) as err:
        personalise.load_profile(path)
    assert str(err.value) == f"{path}:2: 'pace' cannot be 'sluggish'. Choose one of: slow, medium, brisk"
    path = write(tmp_path / "me.yaml", "name: Sam\n\nsteps: []\n")
    with pytest.raises(RoutineError, match=r"^.*me\.yaml:3: unknown key 'steps' in the profile\. Known keys: "):
        personalise.load_profile(path)
    path = write(tmp_path / "me.yaml", "voice:\n  engine: espeak-ng\n  rate: 500\n")
    with pytest.raises(RoutineError) as err:
        personalise.load_profile(path)
    assert str(err.value) == f"{path}:3: 'rate' must be from 80 to 300 (got 500). Write a number from 80 to 300"


def test_a_bad_profile_fails_the_cli_in_one_line(tmp_path):
    path = write(tmp_path / "me.yaml", "avoid: [kneeling, proen]\n")
    result = run_cli("script", "quick-wind-down", "--profile", str(path), "--engine", "espeak-ng")
    assert result.returncode == 2
    assert result.stderr == f"{path}:1: 'avoid' has an unknown entry 'proen'. Did you mean 'prone'?\n"
    assert result.stdout == ""


def test_every_profile_field_takes_effect(tmp_path, tone_engine, monkeypatch):
    engines = []
    monkeypatch.setattr(speech, "get_engine", lambda name: (engines.append(name), tone_engine)[1])
    monkeypatch.setattr(tone_engine, "voices", lambda: [("tone", "a tone"), ("en-gb", "a tone too")])
    path = write(tmp_path / "me.yaml", """\
name: Robin
voice: {engine: espeak-ng, voice: en-gb, rate: 120}
breathing: {inhale: 5s, exhale: 7s, hold_in: 1s, hold_out: 2s}
ambient: {sound: rain, level: -26}
pace: slow
instruction: brief
bedtime: false
tail: 3m
order: auto
safety: false
length: 9m
avoid: [hip-lift]
exclude: [supine-twist]
in_bed_only: true
seed: 99
transition: 8s
""")
    r, changes = cli.personalised("quick-wind-down", {"profile": str(path)})
    p = pipeline.plan(r, changes)
    tl = p.timeline
    texts = [e.text for e in tl.events if e.kind == "speech"]
    assert set(engines) == {"espeak-ng"} and p.clips.voice == "en-gb"  # voice: engine and voice
    assert {s.rate_wpm for s in p.script.says()} == {120}  # voice: rate (no bedtime easing)
    assert "Robin" in texts[0]  # name: the greeting comes first
    assert not any(t in library.phrases()["safety"] for t in texts)  # safety: false
    assert hold_ms(tl, "the inhale of paced breathing")[0] == 5000  # breathing
    assert hold_ms(tl, "the held breath of paced breathing")[0] == 1000
    assert hold_ms(tl, "the exhale of paced breathing")[0] == 7000
    assert hold_ms(tl, "the rest of paced breathing")[0] == 2000
    assert pipeline.mix_for(r).ambient_level_db == -26 and r.settings.ambient.sound == "rain"  # ambient, level
    assert pipeline.mix_for(r).tail_ms == 180_000  # tail
    assert r.settings.transition_ms == 10_000  # transition 8s, slow pace x1.25
    assert r.settings.seed == 99
    assert abs(tl.ms(tl.end_frame) - 540_000) <= 0.03 * 540_000  # length
    assert all(st.in_bed for st in stretches(r))  # in_bed_only
    assert "supine-twist" not in ids(r) and "supine-twist-easier" not in ids(r)  # exclude
    assert not any("hip-lift" in st.tags for st in stretches(r))  # avoid
    assert "childs-pose-easier" in ids(r)  # child's pose is not done in bed: its easier variation is
    steps = [x for x in r.steps if isinstance(x, StretchStep)]
    assert steps == sorted(steps, key=personalise._rank)  # order: auto
    assert any(pool_pattern("progress").match(t) for t in texts)  # bedtime: false keeps the progress talk
    # instruction: brief speaks each stretch's one-line setup, not the full one
    childs = library.find("childs-pose-easier")
    assert childs.brief[0] in texts and childs.setup[1] not in texts


def test_cli_flags_and_profile_end_to_end(tmp_path):
    """A real `windown script --json` with real espeak-ng: a profile, flags over it, and their effects."""
    profile = write(tmp_path / "me.yaml", "name: Robin\nsafety: true\npace: slow\nseed: 3\n")
    result = run_cli("script", "quick-wind-down", "--json", "--engine", "espeak-ng", "--profile", str(profile),
                     "--name", "Sam", "--no-safety", "--pace", "brisk", "--avoid", "kneeling", "--exclude",
                     "knee-to-chest", "--instruction", "brief", "--no-bedtime", "--seed", "4")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    texts = [c["text"] for c in out["cues"]]
    assert "Sam" in texts[0] and not any("Robin" in t for t in texts)
    assert not any(t in library.phrases()["safety"] for t in texts)
    assert [c["title"] for c in out["chapters"]] == ["Welcome", "Breathing", "Child's pose on your back",
                                                      "Lying twist", "Sleep"]
    assert out["changes"][:2] == ["swapped child's pose for child's pose on your back: avoids kneeling",
                                  "dropped knee to chest: excluded by your settings"]
    assert any(c.startswith("brisk pace") for c in out["changes"])
    holds = {h["label"]: round(h["end_s"] - h["start_s"], 3) for h in out["holds"]}
    assert holds["the hold of child's pose on your back"] == 30.0  # 30s x0.8 is below the safe 30s minimum
    assert holds["the hold of lying twist (right side)"] == 20.0  # 20s x0.8, clamped to the safe minimum
    assert library.find("childs-pose-easier").brief[0] in texts  # instruction: brief
    assert library.find("childs-pose-easier").setup[1] not in texts
    assert any(pool_pattern("progress").match(t) for t in texts)


def test_script_begins_with_a_summary_of_changes():
    result = run_cli("script", "quick-wind-down", "--engine", "espeak-ng", "--avoid", "kneeling", "--pace", "slow")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == ["Quick wind-down",
                         "  * swapped child's pose for child's pose on your back: avoids kneeling",
                         "  * slow pace: holds, settling and transitions x1.25 (holds kept within each stretch's "
                         "safe range)"]
    assert lines[3] == "" and lines[4] == "== Welcome =="


# -- avoid, exclude, in bed ------------------------------------------------------------------------

@pytest.mark.parametrize("sid", list(library.stretches()))
@pytest.mark.parametrize("tag", library.TAGS)
def test_avoided_tag_leaves_nothing_behind(tag, sid):
    r = personalised(ALL_TEN, avoid=(tag,), seed=1)
    st = library.stretches()[sid]
    kept = ids(r)
    if tag not in st.tags:
        assert sid in kept
    elif st.easier is not None and tag not in st.easier.tags:
        assert st.easier.id in kept and sid not in kept
    else:
        assert sid not in kept and (st.easier is None or st.easier.id not in kept)
    assert not any(tag in s.tags for s in stretches(r))
    # nor their words: no line that only a stretch with the tag speaks, and no chapter named for one
    allowed_words = set().union(*(words_of(s) for s in variants() if tag not in s.tags))
    pools = {t for pool in library.phrases().values() for t in pool}
    forbidden = set().union(*(words_of(s) for s in variants() if tag in s.tags)) - allowed_words - pools
    script = compose.compose(r)
    assert not forbidden & {s.text for s in script.says()}
    titles = {i.title.lower() for i in script.items if isinstance(i, compose.Chapter)}
    assert not titles & {s.name.lower() for s in variants() if tag in s.tags}


def test_avoid_never_swaps_an_easier_variation_back_for_the_harder_one():
    r, changes = personalise.personalise(routine.load("gentle"), personalise.Profile(flags={"avoid": ("supine",)}))
    assert ids(r) == ["cat-cow-easier"]  # seated cat cow is the only one not on the back
    assert "dropped child's pose on your back: supine" in changes


def test_avoiding_everything_is_an_error():
    with pytest.raises(UserError, match="^no stretch is left after your limitations. Avoid fewer tags"):
        personalised("quick-wind-down", avoid=("supine", "kneeling"))


def test_exclude_by_id_and_by_easier_id():
    assert "sphinx" not in ids(personalised(ALL_TEN, exclude=("sphinx",)))
    r, changes = personalise.personalise(routine.load(ALL_TEN), personalise.Profile(flags={"exclude": ("bridge",)}))
    assert "bridge" not in ids(r) and "dropped bridge: excluded by your settings" in changes
    # excluding a stretch leaves out its easier variation too
    assert "childs-pose-easier" not in ids(personalised("gentle", exclude=("childs-pose",)))
    # excluding an easier variation by its id: it is dropped, and never swapped in
    assert "childs-pose-easier" not in ids(personalised("gentle", exclude=("childs-pose-easier",)))
    assert "childs-pose" in ids(personalised(ALL_TEN, exclude=("childs-pose-easier",)))
    r = personalised(ALL_TEN, exclude=("childs-pose-easier",), avoid=("kneeling",))
    assert "childs-pose" not in ids(r) and "childs-pose-easier" not in ids(r)


def test_in_bed_only():
    r, changes = personalise.personalise(routine.load(ALL_TEN), personalise.Profile(flags={"in_bed_only": True}))
    assert all(st.in_bed for st in stretches(r))
    assert ids(r) == ["childs-pose-easier", "bridge", "pelvic-tilts", "knee-to-chest", "supine-twist",
                      "legs-up-the-wall-easier"]
    assert "swapped legs up the wall for legs up on pillows: avoids not done in bed" in changes
    assert "dropped cat cow: not done in bed" in changes


# -- pace and instruction amount -------------------------------------------------------------------

PACE_ROUTINE = """\
title: Pace check
bedtime: false
steps:
  - stretch: knee-to-chest
    hold: 40s
    reps: 1
  - stretch: childs-pose
  - stretch: cobra
    hold: 16s
    reps: 1
"""


@pytest.mark.parametrize("pace, knee, childs, cobra, settle, transition", [
    ("medium", 40_000, 45_000, 16_000, 6000, 6000),
    ("slow", 45_000, 56_250, 20_000, 7500, 7500),  # knee to chest 50s is over its safe 45s
    ("brisk", 32_000, 36_000, 15_000, 4800, 4800),  # cobra 12.8s is under its safe 15s
])
def test_pace_scales_holds_within_safe_ranges(tmp_path, tone_engine, pace, knee, childs, cobra, settle,
                                              transition):
    r = personalised(str(write(tmp_path / "r.yaml", PACE_ROUTINE)), pace=pace)
    tl = pipeline.plan(r).timeline
    assert hold_ms(tl, "the hold of knee to chest") == [knee, knee]  # right, then left
    assert hold_ms(tl, "the hold of child's pose") == [childs]
    assert hold_ms(tl, "the hold of cobra") == [cobra]
    step = r.steps[0]
    assert (step.stretch.settle_ms if step.settle_ms is None else step.settle_ms) == settle
    assert r.settings.transition_ms == transition


@pytest.mark.parametrize("name", [ALL_TEN, "gentle", "in-bed"])
def test_less_instruction_speaks_fewer_words(name):
    counts = [sum(len(t.split()) for t in says(personalised(name, instruction=amount, seed=3)))
              for amount in ("full", "brief", "minimal")]
    assert counts[0] > counts[1] > counts[2], counts


# -- length fitting --------------------------------------------------------------------------------

RANGE = re.compile(r"cannot fit this routine into (\S+): its guided part can last from (\S+) to (\S+), keeping "
                   r"every hold, rep and round within its safe range, leaving out optional stretches or adding "
                   r"library ones\. Choose a length from \2 to \3, or change the routine's stretches")


def possible_range(name: str, **opts) -> tuple[int, int]:
    with pytest.raises(UserError) as err:
        cli.personalised(name, {"length": 60_000, **opts})
    match = RANGE.fullmatch(str(err.value))
    assert match, str(err.value)
    return source.parse_duration_ms(match[2]), source.parse_duration_ms(match[3])


def assert_fits(r: routine.Routine, target_ms: int) -> None:
    assert abs(guided_ms(r) - target_ms) <= 0.03 * target_ms
    for step in r.steps:
        if isinstance(step, StretchStep):
            st = step.stretch
            if st.hold_ms and step.hold_ms is not None:
                assert st.hold_ms.min <= step.hold_ms <= st.hold_ms.max, st.id
            if step.reps is not None:
                assert st.reps.min <= step.reps <= st.reps.max, st.id
            if step.rounds is not None:
                assert st.rounds.min <= step.rounds <= st.rounds.max, st.id


def test_length_fits_across_the_possible_range(tone_engine):
    low, high = possible_range("quick-wind-down")
    assert low < 6 * 60_000 < 30 * 60_000 < high
    own = routine.load("quick-wind-down")
    for target in (low, (low + high) // 2, high):
        r, changes = cli.personalised("quick-wind-down", {"length": target})
        assert_fits(r, target)
        assert changes[-1].startswith(f"fitted to {source.format_duration(target)}: guided part ")
        assert_ends_lying(r)
        if not any(i.startswith("legs-up-the-wall") for i in ids(r)):  # additions keep the ending, a rest goes last
            assert stretches(r)[-1] == stretches(own)[-1]
    assert "; added " in changes[-1]  # the top of the range needs stretches from the library


def test_length_drops_optional_stretches_for_short_targets(tone_engine):
    low, _ = possible_range(ALL_TEN)
    r, changes = cli.personalised(ALL_TEN, {"length": low})
    assert_fits(r, low)
    assert not any(st.optional for st in stretches(r))
    assert "; dropped seated forward fold, cobra, bridge" in changes[-1]


def test_length_impossible_says_what_is_possible(tone_engine):
    low, high = possible_range("quick-wind-down")
    for target in (int(low * 0.9), int(high * 1.1)):
        with pytest.raises(UserError) as err:
            cli.personalised("quick-wind-down", {"length": target})
        match = RANGE.fullmatch(str(err.value))
        assert match and match[1] == source.format_duration(target)
        assert (source.parse_duration_ms(match[2]), source.parse_duration_ms(match[3])) == (low, high)


def test_length_additions_respect_limitations(tone_engine):
    _, high = possible_range("in-bed", avoid=("hip-lift",))
    r, changes = cli.personalised("in-bed", {"length": high, "avoid": ("hip-lift",)})
    assert_fits(r, high)
    assert "childs-pose-easier" in ids(r)  # the only in-bed stretch the preset lacks
    assert all(st.in_bed and "hip-lift" not in st.tags for st in stretches(r))
    limits = {"avoid": ("kneeling", "wall"), "order": "auto"}
    _, high = possible_range("quick-wind-down", **limits)
    r, changes = cli.personalised("quick-wind-down", {"length": high, **limits})
    assert_fits(r, high)
    assert "; added " in changes[-1]
    assert not any({"kneeling", "wall"} & set(st.tags) for st in stretches(r))
    assert ids(r)[-1] == "legs-up-the-wall-easier"  # an added rest goes last


def test_issue_example_fits_with_tone_clips(tone_engine):
    r, changes = cli.personalised(ALL_TEN, {"length": 12 * 60_000, "avoid": ("kneeling", "prone"), "pace": "slow"})
    assert_fits(r, 12 * 60_000)
    assert not any({"kneeling", "prone"} & set(st.tags) for st in stretches(r))
    assert_ends_lying(r)


def test_impossible_length_fails_the_cli_in_one_line():
    result = run_cli("script", "quick-wind-down", "--length", "1m", "--engine", "espeak-ng")
    assert result.returncode == 2
    assert RANGE.fullmatch(result.stderr.strip()) and result.stderr.count("\n") == 1
    assert result.stdout == ""



def test_no_add_stretches_flag_fails_the_cli_in_one_line():
    result = run_cli("script", "quick-wind-down", "--length", "40m", "--no-add-stretches", "--engine", "espeak-ng")
    assert result.returncode == 2 and result.stdout == ""
    assert NO_ADDITIONS.fullmatch(result.stderr.strip()) and result.stderr.count("\n") == 1, result.stderr


# -- lengthening (issue 13): what the routine has first, then stretches that suit it ------------------

THREE = "title: Three\nsteps:\n  - stretch: knee-to-chest\n  - stretch: supine-twist\n  - stretch: bridge\n"


def amounts(step: StretchStep) -> tuple[int, int, int]:
    """What a step asks for (its hold, reps and rounds, the library default where it says nothing)."""
    st = step.stretch
    return (step.hold_ms or (st.hold_ms.default if st.hold_ms else 0), step.reps or st.reps.default,
            step.rounds or (st.rounds.default if st.rounds else 0))


def position_changes(r: routine.Routine) -> int:
    positions = [st.position for st in stretches(r)]
    return sum(a != b for a, b in zip(positions, positions[1:]))


def test_a_longer_target_lengthens_the_chosen_stretches_and_drops_none(tone_engine, tmp_path):
    path = write(tmp_path / "three.yaml", THREE)
    own = personalised(str(path))
    assert guided_ms(own) < 8 * 60_000
    r, changes = cli.personalised(str(path), {"length": 12 * 60_000})
    assert_fits(r, 12 * 60_000)
    assert ids(r) == ["knee-to-chest", "supine-twist", "bridge"]  # nothing dropped, nothing added
    assert "dropped" not in changes[-1] and "added" not in changes[-1], changes[-1]
    assert "lengthened within their safe ranges" in changes[-1]
    mine = [s for s in own.steps if isinstance(s, StretchStep)]
    fitted = [s for s in r.steps if isinstance(s, StretchStep)]
    for before, after in zip(mine, fitted):  # never shorter than chosen, while making the track longer
        assert all(a >= b for a, b in zip(amounts(after), amounts(before))), after.stretch.id


def test_the_issue_example_is_met_by_its_own_stretches(tone_engine):
    flags = {"length": 12 * 60_000, "pace": "slow", "avoid": ("kneeling",)}
    r, changes = cli.personalised("quick-wind-down", flags)
    assert_fits(r, 12 * 60_000)
    assert ids(r) == ["childs-pose-easier", "knee-to-chest", "supine-twist"]
    assert "added" not in changes[-1] and "slower settling" in changes[-1] and "more paced breaths" in changes[-1]
    breaths = [s.cycles for s in r.steps if isinstance(s, routine.BreatheStep)]
    assert breaths and breaths[0] > 2  # the preset's two paced breaths, lengthened


MIXED = "title: Mixed\nsteps:\n  - stretch: seated-forward-bend\n  - stretch: cobra\n  - stretch: knee-to-chest\n"


@pytest.mark.parametrize("name, flags", [("quick-wind-down", {}), ("quick-wind-down", {"avoid": ("kneeling",)}),
                                         ("in-bed", {}), ("mixed", {"pace": "slow"})])
def test_added_stretches_suit_the_routine_and_keep_its_flow(tone_engine, tmp_path, name, flags):
    if name == "mixed":
        name = str(write(tmp_path / "mixed.yaml", MIXED))
    own = personalised(name, **flags)
    _, high = possible_range(name, **flags)
    for target in (high, (high + guided_ms(own)) // 2):
        r, changes = cli.personalised(name, {"length": target, **flags})
        assert_fits(r, target)
        mine = stretches(own)
        added = [st for st in stretches(r) if st.id not in ids(own)]
        assert added or target < high  # the top of the range needs additions; below it, perhaps not
        assert changes[-1].endswith("; added " + ", ".join(st.name for st in added)) if added else \
            "added" not in changes[-1]
        assert [st for st in stretches(r) if st.id in ids(own)] == mine  # every chosen one kept, in order
        positions = {st.position for st in mine}
        extends = any("back-extension" in st.tags for st in mine)
        for st in added:
            assert st.position in positions, st.id  # no new position: nobody sits up between lying stretches
            assert extends or "back-extension" not in st.tags, st.id
            assert not set(flags.get("avoid", ())) & set(st.tags), st.id
        assert position_changes(r) == position_changes(own), ids(r)
        assert_ends_lying(r)
        if stretches(r)[-1].kind != "rest":
            assert stretches(r)[-1] == mine[-1]  # the ending stays, unless a rest lying down now ends it


def test_no_new_back_extension_without_one_in_the_routine(tone_engine, tmp_path):
    _, high = possible_range("quick-wind-down")
    r, _ = cli.personalised("quick-wind-down", {"length": high})
    assert not any("back-extension" in st.tags for st in stretches(r))
    mixed = str(write(tmp_path / "mixed.yaml", MIXED))
    _, high = possible_range(mixed)
    r, _ = cli.personalised(mixed, {"length": high})
    assert "sphinx" in ids(r)  # the routine has cobra, so sphinx may join it, lying on the front beside it
    assert ids(r).index("sphinx") == ids(r).index("cobra") + 1


NO_ADDITIONS = re.compile(r"cannot fit this routine into (\S+): its guided part can last from (\S+) to (\S+), "
                          r"keeping every hold, rep and round within its safe range, leaving out optional stretches; "
                          r"adding library ones is turned off \(add_stretches: false\)\. Choose a length from \2 "
                          r"to \3, or change the routine's stretches")


def test_a_routine_can_forbid_added_stretches(tone_engine, tmp_path):
    path = str(write(tmp_path / "mine.yaml", "title: Mine\nadd_stretches: false\nsteps:\n"
                                             "  - stretch: knee-to-chest\n  - stretch: supine-twist\n"))
    assert routine.load(path).settings.add_stretches is False
    with pytest.raises(UserError) as err:
        cli.personalised(path, {"length": 40 * 60_000})
    match = NO_ADDITIONS.fullmatch(str(err.value))
    assert match, str(err.value)
    top = source.parse_duration_ms(match[3])
    r, changes = cli.personalised(path, {"length": top})  # the longest its own can be is still possible
    assert_fits(r, top)
    assert ids(r) == ["knee-to-chest", "supine-twist"] and "added" not in changes[-1]
    r, changes = cli.personalised(path, {"length": 25 * 60_000, "add_stretches": True})  # a flag allows them again
    assert_fits(r, 25 * 60_000)
    assert "; added " in changes[-1]


def test_shortening_leaves_out_only_optional_stretches_after_the_holds_are_short(tone_engine, tmp_path):
    path = str(write(tmp_path / "three.yaml", THREE))
    low, _ = possible_range(path)
    own = guided_ms(personalised(path))
    r, changes = cli.personalised(path, {"length": (low + own) // 2})
    assert_fits(r, (low + own) // 2)
    assert ids(r) == ["knee-to-chest", "supine-twist", "bridge"] and "dropped" not in changes[-1]
    r, changes = cli.personalised(path, {"length": low})
    assert_fits(r, low)
    assert ids(r) == ["knee-to-chest", "supine-twist"] and changes[-1].endswith("; dropped bridge")


def test_every_preset_orders_auto_as_the_readme_says():
    for name in library.preset_names():
        assert routine.load(name).settings.order == "auto", name


# -- ordering --------------------------------------------------------------------------------------

def test_auto_order_groups_positions_and_ends_lying_down(tmp_path):
    steps = "".join(f"  - stretch: {sid}\n" for sid in ("legs-up-the-wall", "knee-to-chest", "cat-cow", "sphinx",
                                                       "seated-forward-bend", "supine-twist", "cobra",
                                                       "childs-pose", "pelvic-tilts", "bridge"))
    path = write(tmp_path / "r.yaml", "title: Jumbled\norder: auto\nsteps:\n  - breathe: 2\n" + steps)
    r, changes = personalise.personalise(routine.load(str(path)), personalise.Profile())
    positions = [st.position for st in stretches(r)]
    assert positions == ["seated", "all-fours", "kneeling", "prone", "prone", "supine", "supine", "supine",
                         "supine", "wall"]
    assert ids(r)[5:9] == ["knee-to-chest", "supine-twist", "pelvic-tilts", "bridge"]  # written order kept
    assert isinstance(r.steps[0], routine.BreatheStep)  # other steps keep their places
    assert changes[0].startswith("reordered to keep position changes few: seated forward fold, cat cow")
    as_written = personalised(str(path), order="as-written")
    assert ids(as_written)[0] == "legs-up-the-wall"


@pytest.mark.parametrize("name", library.preset_names())
def test_every_preset_ends_lying_down(name):
    assert_ends_lying(personalised(name))
    assert_ends_lying(personalised(name, order="auto"))


@pytest.mark.parametrize("name", library.preset_names())
def test_random_limitations_still_end_lying_down(name):
    rng = random.Random(name)
    tried = 0
    for _ in range(60):
        avoid = tuple(rng.sample(library.TAGS, rng.randint(1, 4)))
        try:
            r = personalised(name, avoid=avoid, order="auto", in_bed_only=rng.random() < 0.2)
        except UserError:
            continue
        tried += 1
        assert not any(set(avoid) & set(st.tags) for st in stretches(r))
        assert_ends_lying(r)
    assert tried > 20


# -- bedtime mode ----------------------------------------------------------------------------------

def test_bedtime_mode_has_no_progress_talk_and_chimes_instead(tone_engine):
    r = personalised(ALL_TEN, seed=5)
    assert r.settings.bedtime
    tl = pipeline.plan(r).timeline
    speech_events = [e for e in tl.events if e.kind == "speech"]
    banned = [pool_pattern(k) for k in ("progress", "halfway", "ten_more")]
    for e in speech_events:
        assert not any(p.match(e.text) for p in banned), e.text
        assert not re.search(r"\bstretch \w+ of \w+", e.text, re.IGNORECASE), e.text
    long_holds = [h for h in tl.holds if h.stop_frame - h.start_frame >= 20 * SR]
    assert long_holds
    chimes = [e.start_frame for e in tl.events if e.kind == "chime"]
    for h in long_holds:  # a soft chime ten seconds before the end, where a countdown would be
        assert h.stop_frame - 10 * SR in chimes, h.label
    rates = [e.rate_wpm for e in speech_events]
    assert rates == sorted(rates, reverse=True)  # never speeding up
    assert rates[0] == 140 and rates[-1] < rates[len(rates) // 3] < 141 and rates[-1] <= 130


def test_without_bedtime_mode_progress_talk_is_there(tone_engine):
    r = personalised(ALL_TEN, seed=5, bedtime=False)
    texts = says(r)
    assert any(re.fullmatch(r".*stretch one of ten, seated forward fold\.", t, re.IGNORECASE) for t in texts)
    assert sum(bool(pool_pattern("progress").match(t)) for t in texts) == 10
    assert any(pool_pattern("halfway").match(t) for t in texts)  # inside the five-minute rest
    assert any(pool_pattern("ten_more").match(t) for t in texts)
    assert {s.rate_wpm for s in compose.compose(r).says()} == {140}


def test_bedtime_mode_brings_a_long_sleep_tail(tmp_path):
    body = "title: T\nsteps:\n  - stretch: knee-to-chest\n"
    assert personalised(str(write(tmp_path / "a.yaml", "bedtime: true\n" + body))).settings.tail_ms == 600_000
    assert personalised(str(write(tmp_path / "b.yaml", "bedtime: true\ntail: 2m\n" + body))).settings.tail_ms \
        == 120_000
    assert personalised(str(write(tmp_path / "c.yaml", body))).settings.tail_ms == 60_000
    assert personalised(str(write(tmp_path / "c.yaml", body)), bedtime=True).settings.tail_ms == 600_000
    assert personalised(str(write(tmp_path / "c.yaml", body)), bedtime=True, tail=30_000).settings.tail_ms \
        == 30_000


# -- seeded variety --------------------------------------------------------------------------------

def test_same_seed_same_words_different_seed_different_words(tone_engine):
    first = [e.text for e in pipeline.plan(personalised(ALL_TEN, seed=1)).timeline.events if e.kind == "speech"]
    again = [e.text for e in pipeline.plan(personalised(ALL_TEN, seed=1)).timeline.events if e.kind == "speech"]
    other = [e.text for e in pipeline.plan(personalised(ALL_TEN, seed=2)).timeline.events if e.kind == "speech"]
    assert first == again
    assert first != other
    assert sum(a != b for a, b in zip(first, other)) > 10  # not one word, but a different evening


def test_default_seed_is_todays_date():
    today = int(datetime.date.today().strftime("%Y%m%d"))
    assert personalised("quick-wind-down").settings.seed == today
    assert personalised("quick-wind-down", seed=8).settings.seed == 8


# -- the issue's "done when" -----------------------------------------------------------------------

KNEELING_OR_PRONE = {s.name[:1].upper() + s.name[1:] for s in variants() if {"kneeling", "prone"} & set(s.tags)}


@pytest.mark.slow
def test_issue_done_when(tmp_path):
    out = tmp_path / "x.mp3"
    result = run_cli("build", ALL_TEN, "--length", "12m", "--avoid", "kneeling,prone", "--pace", "slow",
                     "--engine", "espeak-ng", "-o", str(out), "--tail", "5s")
    assert result.returncode == 0, result.stderr
    sheet = json.loads(out.with_suffix(".json").read_text())
    # the guided part ends with the closing words (the timeline's end), then the 5s tail plays on
    assert abs(sheet["speech_end_s"] - 720) <= 0.03 * 720
    assert abs(sheet["duration_s"] - sheet["speech_end_s"] - 5) < 0.1
    titles = [c["title"] for c in sheet["chapters"]]
    assert titles[0] == "Welcome" and titles[-1] == "Sleep"
    assert not set(titles) & KNEELING_OR_PRONE
    assert not {c["chapter"] for c in sheet["cues"]} & KNEELING_OR_PRONE


def test_a_track_that_cannot_end_lying_down_invites_the_listener_to_lie_down(tone_engine, tmp_path):
    path = write(tmp_path / "r.yaml", "title: Sitting\nsteps:\n  - stretch: seated-forward-bend\n    hold: 20s\n")
    p = pipeline.plan(personalise.personalise(routine.load(str(path)), personalise.Profile(flags={"seed": 2}))[0])
    texts = [e.text for e in p.timeline.events if e.kind == "speech"]
    assert texts[-2] in library.phrases()["lie_down"] and texts[-1] in library.phrases()["closing"]
    lying = write(tmp_path / "l.yaml", "title: Lying\nsteps:\n  - stretch: knee-to-chest\n    hold: 20s\n")
    p = pipeline.plan(personalise.personalise(routine.load(str(lying)), personalise.Profile(flags={"seed": 2}))[0])
    assert not set(e.text for e in p.timeline.events) & set(library.phrases()["lie_down"])
