"""Hostile input: every bad routine in tests/bad_routines ends in one clean line on stderr and exit code 2.

Each case runs the real CLI as a user would, from the corpus folder, so the pinned paths stay short and stable.
The cases and their exact messages are listed in tests/bad_routines/expected.txt.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli
from windown import source

CORPUS = Path(__file__).resolve().parent / "bad_routines"


def _expected() -> dict[str, str]:
    cases = {}
    for line in (CORPUS / "expected.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, message = line.split(": ", 1)
            cases[name] = message.replace("{dir}", str(CORPUS))
    return cases


EXPECTED = _expected()


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts)


def assert_one_clean_line(result, message: str) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert result.stderr.splitlines() == [message]
    assert result.stderr == message + "\n"
    assert result.stdout == ""
    assert result.returncode == 2


def test_the_corpus_is_large_and_every_file_has_a_message():
    files = {p.name for p in CORPUS.iterdir() if p.suffix in (".yaml", ".bin")}
    assert files == set(EXPECTED)
    assert len(EXPECTED) >= 45


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_routine_gives_one_clean_line(name, tmp_path):
    before = _listing(CORPUS)
    out_dir = tmp_path / "out"
    if name.startswith("build-"):
        result = run_cli("build", name, "-o", str(out_dir / "track.mp3"), cwd=CORPUS)
    elif name.startswith("script-"):
        result = run_cli("script", name, cwd=CORPUS)
    else:
        result = run_cli("validate", name, cwd=CORPUS)
    assert_one_clean_line(result, EXPECTED[name])
    assert _listing(CORPUS) == before  # nothing written beside the routine (no output/, no sidecars)
    if out_dir.exists():
        assert _listing(out_dir) == []  # no MP3, no .part files, no sidecars


def test_a_huge_file_is_refused_before_it_is_read(tmp_path):
    steps = "".join(f"  - say: Breathe in slowly, number {i}.\n" for i in range(8000))
    huge = tmp_path / "huge.yaml"
    huge.write_text("title: Huge\nsteps:\n" + steps, encoding="utf-8")
    size = huge.stat().st_size
    assert size > source.MAX_FILE_BYTES
    result = run_cli("validate", "huge.yaml", cwd=tmp_path)
    assert_one_clean_line(result, f"huge.yaml: the file is too large ({size} bytes; the limit is 262144). "
                                  "A routine is a short text file; check that this is the right file")


def test_the_same_limit_holds_for_text_given_directly():
    with pytest.raises(source.RoutineError, match=r"^x\.yaml: the file is too large \(300000 bytes; the limit is "
                                                  r"262144\)"):
        source.load("x.yaml", "#" * 300_000)


def test_a_key_may_override_a_merged_one_but_not_repeat_its_own():
    doc = source.load("x.yaml", "base: &b {inhale: 4s, exhale: 6s}\nmine: {<<: *b, exhale: 8s}\n")
    assert doc["mine"] == {"inhale": "4s", "exhale": "8s"}
    with pytest.raises(source.RoutineError) as err:
        source.load("x.yaml", "mine: {exhale: 6s,\n  exhale: 8s}\n")
    assert str(err.value) == "x.yaml:2: the key 'exhale' is written twice (first on line 1). Keep only one of them"


def test_merged_mappings_follow_the_merge_key_spec_whatever_the_pyyaml_release():
    """The first mapping in a merge list wins a key, the mapping's own keys win over all merged ones;
    a mapping merged twice gives its keys once, and each value keeps the line it was written on."""
    doc = source.load("x.yaml", "a: &a {k: 1, j: 2}\nb: &b {k: 3, m: 4}\n"
                                "c: {<<: [*a, *b, *a], j: 5}\nd: {<<: [*b, *a]}\n")
    assert doc["c"] == {"k": 1, "m": 4, "j": 5}
    assert doc["d"] == {"k": 3, "m": 4, "j": 2}
    assert (doc["c"].value_lines["k"], doc["c"].value_lines["m"], doc["c"].value_lines["j"]) == (1, 2, 3)


def test_a_merge_bomb_is_reported_at_the_merge_that_crosses_the_limit():
    lines = ["a: &l0 {k: 1, j: 2}"] + [f"l{n}: &l{n} {{<<: [*l{n - 1}, *l{n - 1}]}}" for n in range(1, 31)]
    with pytest.raises(source.RoutineError) as err:
        source.load("x.yaml", "\n".join(lines) + "\n")
    # l13 merges 2**14 keys, l14 2**15: past the 20000-value limit, on line 15
    assert str(err.value).startswith("x.yaml:15: the document expands to more than 20000 values. "
                                     "Remove repeated YAML merges")


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400", "1" * 400 + "h", "1" * 400 + "s", float("inf"),
                                   float("nan"), 1e306])
def test_durations_that_are_not_finite_are_unreadable(value):
    assert source.parse_duration_ms(value) is None


def test_validate_refuses_words_no_engine_could_say_within_their_breath(tmp_path, monkeypatch):
    """An inline flow's inhale words (21) need about 9s at 140 words a minute; the breath in is 4s.
    Before any speech is cached, validate already refuses them, on the line of the words."""
    monkeypatch.setenv("WINDOWN_CACHE_DIR", str(tmp_path / "empty-cache"))  # nothing spoken yet
    folder = CORPUS.parent
    result = run_cli("validate", "inhale-words-too-long.yaml", cwd=folder)
    assert_one_clean_line(result, (
        'inhale-words-too-long.yaml:10: the words "Breathe in slowly and sweep both of your arms up over your head '
        'until they rest on the floor behind you." take at least 5.4s but fit only 3.9s inside the inhale of arm '
        "sweep. Slow the breathing (e.g. `breathing: {inhale: 10.5s}`), or use fewer words"))
