"""The page over HTTP: every route and every error, through Starlette's TestClient (no browser).

The shelf holds real tracks built with espeak-ng and ffmpeg; error messages are compared with what
the real CLI prints for the same value, so the page and the CLI cannot drift apart.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from conftest import run_cli
from web_support import TINY_ROUTINE, build_track, built, client, csrf_of, error_beside, shelf  # noqa: F401
from windown import shelf as shelf_mod
from windown.web import form
from windown.web.app import create_app

CORPUS = Path(__file__).resolve().parent / "bad_routines"


@pytest.fixture
def app(shelf):
    return create_app(shelf, workers=1)


@pytest.fixture
def web(app):
    with client(app) as c:
        yield c


def copy_track(shelf: Path, stem: str, new: str, mtime: float | None = None) -> None:
    for path in list(shelf.glob(f"{stem}.*")):
        target = shelf / (new + path.name[len(stem):])
        shutil.copy2(path, target)
        if mtime is not None:
            os.utime(target, (mtime, mtime))


def post_build(web, files=None, **fields):
    """Post the Tonight form as a browser does (multipart), with the page's own token."""
    data = {"csrf": csrf_of(web.get("/").text), "source": "preset", "preset": "in-bed", **fields}
    return web.post("/build", data=data, files=files or {"none": ("", b"")}, follow_redirects=False)


def names(shelf: Path) -> list[str]:
    return sorted(p.name for p in shelf.iterdir() if not p.name.startswith("."))


TINY_FILES = ["tiny.json", "tiny.lrc", "tiny.mp3", "tiny.srt", "tiny.vtt"]


# --- Tonight: the form ----------------------------------------------------------------------------------

def test_the_form_shows_every_field_with_its_label_help_and_the_csrf_token(web, app):
    page = web.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for field in form.FIELDS:
        assert html.escape(field.label) in page.text
        assert f'id="{field.name}-help"' in page.text
        assert f'name="{field.name}"' in page.text
    assert f'name="csrf" value="{app.state.csrf}"' in page.text
    for preset in ("bedtime-lower-back", "in-bed", "quick-wind-down", "gentle"):
        assert f'value="{preset}"' in page.text
    for tag in ("kneeling", "prone", "twist"):
        assert f'name="avoid" value="{tag}"' in page.text


def test_the_form_is_made_from_the_settings_table(web):
    from windown import settings

    page = html.unescape(web.get("/").text)
    for key in ("length", "pace", "instruction", "avoid", "exclude", "voice.engine", "voice.rate", "ambient.sound",
                "ambient.level", "tail", "bedtime"):
        s = settings.get(key)
        assert s.label in page
        assert s.help.replace(", or a sound file", "")[1:] in page  # the table's help, as a sentence
        if s.kind in ("duration", "whole", "number"):
            assert f"From {s.range_text()}." in page
        for option in s.options if s.kind in ("choice", "tags") else ():
            assert f'value="{option}"' in page
    assert f'placeholder="{settings.get("tail").show(settings.default("tail"))}"' in page
    assert f'placeholder="{settings.default("voice.rate")}"' in page


def test_every_asset_comes_from_windown_itself(web):
    page = web.get("/").text + web.get("/tracks/tiny").text + web.get("/phone").text
    for url in re.findall(r'(?:src|href|action)="([^"]*)"', page):
        assert url.startswith(("/", "#")), url  # no CDN, no other site
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page):
        response = web.get(asset)
        assert response.status_code == 200, asset
    assert web.get("/static/style.css").headers["content-type"].startswith("text/css")
    assert web.get("/static/player.js").headers["content-type"].startswith(("text/javascript",
                                                                            "application/javascript"))


def test_the_bedtime_look_has_no_bright_white(web):
    css = web.get("/static/style.css").text.lower()
    assert "#fff" not in css and "255, 255, 255" not in css and not re.search(r"(?<![-\w])white(?![-\w])", css)
    colours = re.findall(r"#([0-9a-f]{6})\b", css)
    assert colours
    brightest = max(sum(int(c[i:i + 2], 16) for i in (0, 2, 4)) / 3 for c in colours)
    assert brightest < 225  # the lightest text is a dim parchment grey


@pytest.mark.parametrize("field, value, cli_args", [
    ("length", "30s", ["--length", "30s"]),
    ("length", "abc", ["--length", "abc"]),
    ("pace", "fast", ["--pace", "fast"]),
    ("instruction", "lots", ["--instruction", "lots"]),
    ("voice-rate", "20", ["--rate", "20"]),
    ("voice-rate", "quick", ["--rate", "quick"]),
    ("ambient-level", "5", ["--ambient-level", "5"]),
    ("ambient-level", "loud", ["--ambient-level", "loud"]),
    ("tail", "forever", ["--tail", "forever"]),
    ("avoid", "kneelin", ["--avoid", "kneelin"]),
    ("exclude", "cobraa", ["--exclude", "cobraa"]),
    ("voice-engine", "nope", ["--engine", "nope"]),
])
def test_a_bad_value_is_shown_beside_its_field_in_the_cli_s_words(web, tmp_path, field, value, cli_args):
    cli = run_cli("build", "in-bed", "-o", str(tmp_path / "x.mp3"), *cli_args)
    assert cli.returncode == 2
    cli_words = cli.stderr.strip().splitlines()[-1].removeprefix("Error: ")  # after click's usage lines
    response = post_build(web, **{field: value})
    assert response.status_code == 400
    assert error_beside(response.text, field) == cli_words
    assert 'aria-invalid="true"' in response.text
    assert not (tmp_path / "x.mp3").exists()


def test_good_values_are_kept_when_another_field_is_wrong(web):
    response = post_build(web, **{"pace": "slow", "tail": "20m", "length": "10s", "avoid": ["prone", "kneeling"]})
    assert response.status_code == 400
    assert '<option value="slow" selected>' in response.text
    assert 'value="20m"' in response.text
    assert 'name="avoid" value="prone" checked' in response.text
    assert error_beside(response.text, "length").startswith("'--length' of 10s is too short")
    assert error_beside(response.text, "pace") is None


# Those named build-* and script-* fail later, when the track is built; the rest fail as they are read.
CORPUS_CASES = sorted(p.name for p in CORPUS.iterdir() if p.suffix in (".yaml", ".bin")
                      and not p.name.startswith(("build-", "script-")))


def cli_words(name: str, monkeypatch) -> str:
    """What `windown validate NAME` says from the corpus folder: the line tests/test_bad_input.py pins."""
    from windown import routine
    from windown.errors import UserError

    monkeypatch.chdir(CORPUS)
    with pytest.raises(UserError) as caught:
        routine.load(name)
    monkeypatch.undo()
    return str(caught.value)


def test_the_corpus_is_all_there():
    assert len(CORPUS_CASES) >= 80


@pytest.mark.parametrize("name", CORPUS_CASES)
def test_an_uploaded_bad_routine_gives_the_cli_s_one_line_beside_the_upload(web, shelf, name, monkeypatch):
    data = (CORPUS / name).read_bytes()
    response = post_build(web, source="upload", files={"routine_file": (name, data, "application/x-yaml")})
    assert response.status_code == 400
    assert error_beside(response.text, "routine_file") == cli_words(name, monkeypatch)
    assert names(shelf) == TINY_FILES  # nothing new on the shelf


@pytest.mark.parametrize("name", ["01-bad-indentation.yaml", "20-unknown-stretch.yaml", "27-hold-zero.yaml"])
def test_a_pasted_bad_routine_gives_the_same_line_under_its_pasted_name(web, name, monkeypatch):
    text = (CORPUS / name).read_text(encoding="utf-8")
    response = post_build(web, source="paste", routine_text=text)
    assert response.status_code == 400
    assert error_beside(response.text, "routine_text") == cli_words(name, monkeypatch).replace(name, "routine.yaml")
    assert html.escape(text.splitlines()[0]) in response.text  # the text is kept for fixing


def test_an_upload_over_the_loader_s_limit_is_refused_in_its_words(web):
    big = b"title: big\n" + b"# padding\n" * 30_000
    response = post_build(web, source="upload", files={"routine_file": ("big.yaml", big, "application/x-yaml")})
    assert response.status_code == 400
    assert error_beside(response.text, "routine_file") == \
        f"big.yaml: the file is too large ({len(big)} bytes; the limit is 262144). A routine is a short text " \
        f"file; check that this is the right file"


def test_a_post_larger_than_a_mebibyte_is_refused_before_it_is_read(web):
    token = csrf_of(web.get("/").text)
    response = web.post("/build", data={"csrf": token, "source": "paste", "routine_text": "x" * (1024 * 1024 + 10)})
    assert response.status_code == 413
    assert "1024 KiB" in response.text


def test_a_routine_from_the_page_cannot_name_a_file_on_this_computer(web):
    text = TINY_ROUTINE.replace("ambient: {sound: none}", "ambient: {sound: /etc/passwd}")
    response = post_build(web, source="paste", routine_text=text)
    assert response.status_code == 400
    assert error_beside(response.text, "routine_text") == \
        "routine.yaml:3: ambient file 'passwd' cannot be used from the page. Choose one of: brown-noise, " \
        "pink-noise, rain, ocean, drone, none"


def test_a_preset_name_outside_the_list_never_reaches_a_file(web):
    response = post_build(web, preset="/etc/passwd")
    assert response.status_code == 400
    assert error_beside(response.text, "preset").startswith("no routine file or preset named '/etc/passwd'")
    response = post_build(web, source="paste", routine_text="  ")
    assert error_beside(response.text, "routine_text") == "there is no routine to build. Paste a routine, or choose " \
                                                          "a preset"
    response = post_build(web, source="upload")
    assert error_beside(response.text, "routine_file") == "no file was chosen. Choose a routine file, or choose a " \
                                                          "preset"


# --- cross-site posts -----------------------------------------------------------------------------------

def test_a_post_without_the_token_or_from_another_site_is_refused(web, shelf):
    response = web.post("/build", data={"source": "preset", "preset": "in-bed"}, files={"n": ("", b"")})
    assert response.status_code == 403
    token = csrf_of(web.get("/").text)
    response = web.post("/build", data={"csrf": token + "x", "source": "preset", "preset": "in-bed"},
                        files={"n": ("", b"")})
    assert response.status_code == 403
    response = web.post("/build", data={"csrf": token, "source": "preset", "preset": "in-bed"},
                        files={"n": ("", b"")}, headers={"Origin": "http://evil.example"})
    assert response.status_code == 403
    response = web.post("/tracks/tiny/delete", data={"csrf": "wrong"})
    assert response.status_code == 403
    assert (shelf / "tiny.mp3").is_file()
    assert web.get("/jobs").status_code == 404 and not web.app.state.queue.jobs()


def test_only_this_computer_s_host_names_are_answered(web):
    assert web.get("/", headers={"Host": "rebound.example"}).status_code == 400
    assert web.get("/", headers={"Host": "localhost:8000"}).status_code == 200


# --- builds ---------------------------------------------------------------------------------------------

def wait_for(web, job_url: str, states=("done", "failed"), timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        status = web.get(job_url + "/status").json()
        if status["state"] in states:
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.2)


@pytest.mark.slow
def test_a_build_from_the_form_lands_on_the_shelf_with_every_sidecar(web, shelf):
    response = post_build(web, source="paste", routine_text=TINY_ROUTINE, pace="brisk", tail="3s")
    assert response.status_code == 303
    job_url = response.headers["location"]
    assert re.fullmatch(r"/jobs/[\w-]+", job_url)
    page = web.get(job_url)
    assert page.status_code == 200 and "Two small stretches" in page.text
    # its 5s holds are legal but far below each stretch's safe range: said on the page as the CLI says them
    warnings = re.search(r'<ul class="warnings cli" id="job-warnings"[^>]*>(.*?)</ul>', page.text, re.S)
    assert warnings, page.text
    assert re.findall(r"<li>(.*?)</li>", html.unescape(warnings.group(1))) == [
        f"routine.yaml:{line}: warning: a 5s hold is too short to ease into (the safe range of {name}: 20s to 45s). "
        "Hold it for at least 20s" for line, name in ((9, "knee to chest"), (13, "lying twist"))]
    status = wait_for(web, job_url)
    assert status["state"] == "done", status["error"]
    stem = status["track_url"].rsplit("/", 1)[1]
    assert stem.startswith("two-small-stretches-")
    assert sorted(p.name[len(stem):] for p in shelf.glob(f"{stem}.*")) == [".json", ".lrc", ".mp3", ".srt", ".vtt"]
    sheet = json.loads((shelf / f"{stem}.json").read_text())
    assert sheet["settings"]["pace"] == "brisk" and sheet["settings"]["tail_s"] == 3.0
    assert sheet["settings"]["engine"] == "espeak-ng"
    assert web.get(status["track_url"]).status_code == 200
    assert [t.stem for t in shelf_mod.tracks(shelf)][0] == stem  # newest first
    assert not any((shelf / ".building").iterdir())  # the staging folder is left empty
    # recorded in the journal like any other build, as coming from the page
    import sqlite3

    from windown import journal

    with sqlite3.connect(journal.default_path(None)) as db:
        rows = db.execute("SELECT title, output, source FROM sessions").fetchall()
    assert rows == [("Two small stretches", str((shelf / f"{stem}.mp3").resolve()), "web")]


@pytest.mark.slow
def test_a_build_that_fails_says_why_in_the_cli_s_words_and_refills_the_form(web, shelf):
    response = post_build(web, source="paste", routine_text=TINY_ROUTINE, length="2h")
    status = wait_for(web, response.headers["location"])
    assert status["state"] == "failed"
    assert status["error"].startswith("cannot fit this routine into 2h")
    again = web.get(status["form_url"])
    assert status["error"] in html.unescape(again.text)
    assert 'value="2h"' in again.text and "Two small stretches" in again.text
    assert names(shelf) == TINY_FILES


@pytest.mark.slow
def test_a_relative_shelf_works_and_a_preset_name_is_never_a_local_file(built, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shelf").mkdir()
    (tmp_path / "in-bed").write_text("title: [not, the, preset\n")  # a broken file named like a preset
    app = create_app("shelf", workers=1)  # relative, as `windown serve` is started by default (output/)
    with client(app) as web:
        pasted = post_build(web, source="paste", routine_text=TINY_ROUTINE)
        assert wait_for(web, pasted.headers["location"])["state"] == "done"
        # the preset is read (it cannot fit one minute), not the broken local file
        preset = post_build(web, preset="in-bed", length="1m", **{"voice-engine": "espeak-ng"})
        status = wait_for(web, preset.headers["location"])
        assert status["state"] == "failed"
        assert status["error"].startswith("cannot fit this routine into 1m: its guided part can last from ")
    assert [t.title for t in shelf_mod.tracks(tmp_path / "shelf")] == ["Two small stretches"]


@pytest.mark.slow
def test_builds_queue_one_per_worker_and_closing_the_page_does_not_cancel(shelf):
    app = create_app(shelf, workers=1)
    with client(app) as web:
        urls = [post_build(web, source="paste", routine_text=TINY_ROUTINE, tail=f"{n + 1}s").headers["location"]
                for n in range(3)]
        statuses = [web.get(u + "/status").json() for u in urls]
        assert [s["state"] for s in statuses[1:]] == ["queued", "queued"]
        assert statuses[2]["position"] >= 1
        # nobody watches the page from here on: each build still finishes
        finals = [wait_for(web, u) for u in urls]
        assert [s["state"] for s in finals] == ["done"] * 3
        assert app.state.queue.max_running_seen == 1
    assert len(shelf_mod.tracks(shelf)) == 4


@pytest.mark.slow
def test_stopping_the_server_mid_build_leaves_nothing_behind(shelf):
    app = create_app(shelf, workers=1)
    long_tail = TINY_ROUTINE.replace("tail: 2s", "tail: 20m")
    with client(app) as web:
        url = post_build(web, source="paste", routine_text=long_tail).headers["location"]
        deadline = time.monotonic() + 300
        while web.get(url + "/status").json()["stage"] != "render":
            assert time.monotonic() < deadline
            time.sleep(0.1)
    # leaving the client ran the app's shutdown: the running build was stopped
    assert app.state.queue.get(url.rsplit("/", 1)[1]).state == "failed"
    assert names(shelf) == TINY_FILES
    assert not any((shelf / ".building").iterdir())


def test_an_unknown_build_is_404_and_its_status_is_json(shelf):
    web = client(create_app(shelf, workers=1))  # not started: the build waits, and costs nothing
    assert web.get("/jobs/nope").status_code == 404
    assert web.get("/jobs/nope/status").status_code == 404
    response = post_build(web, preset="in-bed")
    job_url = response.headers["location"]
    status = web.get(job_url + "/status")
    assert status.headers["content-type"] == "application/json"
    assert set(status.json()) >= {"state", "percent", "position", "error", "track_url", "form_url"}


def test_a_full_queue_says_so_on_the_form(shelf):
    app = create_app(shelf, workers=1, max_waiting=1)
    web = client(app)  # not started: nothing takes jobs off the queue
    assert post_build(web, preset="in-bed").status_code == 303
    response = post_build(web, preset="in-bed")
    assert response.status_code == 503
    assert "1 builds are already waiting. Wait for some to finish, then try again" in response.text


# --- the shelf, the player, deleting --------------------------------------------------------------------

def test_the_shelf_lists_tracks_newest_first_with_length_date_and_settings(web, shelf):
    now = time.time()
    copy_track(shelf, "tiny", "older", now - 86_400)
    copy_track(shelf, "tiny", "newest", now + 60)
    (shelf / ".newest-2.mp3.part").write_bytes(b"partial")  # a build in progress
    (shelf / "notes.txt").write_text("not a track")
    page = web.get("/shelf").text
    order = [m for m in re.findall(r'href="/tracks/([^"/]+)"', page)]
    assert order == ["newest", "tiny", "older"]
    assert "Two small stretches" in page
    assert "pace medium; instruction minimal; bed none; voice espeak-ng; tail 2s" in page
    length = shelf_mod.track(shelf, "tiny").duration_s
    assert f"{int(round(length)) // 60}:{int(round(length)) % 60:02d}" in page
    assert ".newest-2" not in page and "notes" not in page


def test_the_player_has_audio_chapters_and_a_timed_transcript(web, shelf):
    page = web.get("/tracks/tiny").text
    sheet = json.loads((shelf / "tiny.json").read_text())
    assert '<audio id="audio" controls preload="metadata" src="/files/tiny.mp3">' in page
    assert '<track kind="captions" srclang="en" label="Transcript" src="/files/tiny.vtt">' in page
    starts = [float(s) for s in re.findall(r'class="chapter" data-start="([\d.]+)"', page)]
    assert starts == [c["start_s"] for c in sheet["chapters"]] and len(starts) >= 3
    cue_starts = [float(s) for s in re.findall(r'class="cue" data-start="([\d.]+)"', page)]
    assert cue_starts == [c["start_s"] for c in sheet["cues"]]
    assert html.escape(sheet["cues"][0]["text"]) in page
    # how it was made, labelled and written as the settings table does
    assert "<dt>Speech engine</dt><dd>espeak-ng</dd>" in page
    assert "<dt>Sleep tail</dt><dd>2s</dd>" in page
    assert "<dt>Instruction</dt><dd>minimal</dd>" in page
    assert "<dt>Ambient sound</dt><dd>none</dd>" in page


def test_the_transcript_marks_words_where_the_cue_sheet_has_word_timings(web, shelf):
    sheet = json.loads((shelf / "tiny.json").read_text())
    first = sheet["cues"][0]
    words = first["text"].split()
    step = (first["end_s"] - first["start_s"]) / len(words)
    first["words"] = [{"start_s": round(first["start_s"] + i * step, 3), "end_s": round(first["start_s"] + (i + 1) *
                                                                                      step, 3), "text": w}
                      for i, w in enumerate(words)]
    (shelf / "tiny.json").write_text(json.dumps(sheet))
    page = web.get("/tracks/tiny").text
    spans = re.findall(r'<span class="word" data-start="([\d.]+)" data-end="([\d.]+)">([^<]*)</span>', page)
    assert [html.unescape(s[2]) for s in spans] == words
    assert float(spans[1][0]) == first["words"][1]["start_s"]


def test_deleting_asks_first_then_removes_that_track_s_files_only(web, shelf):
    copy_track(shelf, "tiny", "tiny-2")
    (shelf / "tiny.fingerprint").write_text("x")
    (shelf / "tiny.chapters.json").write_text("{}")
    (shelf / "playlist.m3u").write_text("tiny.mp3\n")
    ask = web.get("/tracks/tiny/delete")
    assert ask.status_code == 200
    for suffix in (".mp3", ".vtt", ".srt", ".lrc", ".json", ".fingerprint", ".chapters.json"):
        assert f"<code>tiny{suffix}</code>" in ask.text
    assert "tiny-2" not in ask.text
    assert (shelf / "tiny.mp3").is_file()  # asking deletes nothing
    done = web.post("/tracks/tiny/delete", data={"csrf": csrf_of(ask.text)}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].startswith("/shelf?deleted=")
    assert sorted(p.name for p in shelf.iterdir()) == ["playlist.m3u", "tiny-2.json", "tiny-2.lrc", "tiny-2.mp3",
                                                        "tiny-2.srt", "tiny-2.vtt"]
    assert web.get("/tracks/tiny").status_code == 404
    assert web.get("/tracks/tiny/delete").status_code == 404
    assert "Deleted “Two small stretches”" in web.get(done.headers["location"]).text


# --- files: types, ranges, and nothing outside the shelf ------------------------------------------------

def test_tracks_are_served_with_their_types_and_range_requests(web, shelf):
    mp3 = (shelf / "tiny.mp3").read_bytes()
    whole = web.get("/files/tiny.mp3")
    assert whole.status_code == 200 and whole.content == mp3
    assert whole.headers["content-type"] == "audio/mpeg" and whole.headers["accept-ranges"] == "bytes"
    part = web.get("/files/tiny.mp3", headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206
    assert part.content == mp3[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(mp3)}"
    tail = web.get("/files/tiny.mp3", headers={"Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.content == mp3[-100:]
    assert web.get("/files/tiny.mp3", headers={"Range": f"bytes={len(mp3) + 10}-"}).status_code == 416
    assert web.head("/files/tiny.mp3").headers["content-length"] == str(len(mp3))
    vtt = web.get("/files/tiny.vtt")
    assert vtt.headers["content-type"] == "text/vtt; charset=utf-8" and vtt.text.startswith("WEBVTT")
    assert web.get("/files/tiny.json").headers["content-type"] == "application/json"
    chapters = web.get("/files/tiny.chapters.json")
    assert chapters.headers["content-type"] == "application/json+chapters"
    assert chapters.json()["version"] == "1.2.0"


@pytest.mark.parametrize("path", [
    "/files/..%2Fsecret.mp3", "/files/../secret.mp3", "/files/%2e%2e%2fsecret.mp3", "/files/.hidden.mp3",
    "/files/.tiny.mp3.part", "/files/tiny.mp3.part", "/files/notes.txt", "/files/link.mp3", "/files/tiny",
    "/files/", "/files/.building", "/files/nothing.mp3", "/files/nothing.chapters.json", "/files/sub%2Ftiny.mp3",
    "/files/tiny.fingerprint", "/tracks/..%2Fsecret", "/tracks/.hidden", "/tracks/link",
])
def test_no_request_reaches_a_file_outside_the_shelf_or_an_unfinished_one(web, shelf, tmp_path, path):
    (tmp_path / "secret.mp3").write_bytes(b"secret outside the shelf")
    (shelf / ".hidden.mp3").write_bytes(b"hidden")
    (shelf / ".tiny.mp3.part").write_bytes(b"partial")
    (shelf / "tiny.mp3.part").write_bytes(b"partial")
    (shelf / "notes.txt").write_text("notes")
    (shelf / "sub").mkdir()
    shutil.copy(shelf / "tiny.mp3", shelf / "sub" / "tiny.mp3")
    (shelf / "link.mp3").symlink_to(tmp_path / "secret.mp3")
    (shelf / "tiny.fingerprint").write_text("fingerprint")
    response = web.get(path)
    assert response.status_code == 404
    assert b"secret outside" not in response.content and b"partial" not in response.content


def test_a_symlinked_track_is_neither_listed_nor_served(web, shelf, tmp_path):
    (shelf / "link.mp3").symlink_to(shelf / "tiny.mp3")
    assert [t.stem for t in shelf_mod.tracks(shelf)] == ["tiny"]
    assert web.get("/files/link.mp3").status_code == 404


# --- the phone panel, and the secret address on the home network ----------------------------------------

def test_the_phone_panel_shows_qr_codes_of_the_feed_and_the_newest_track(web, shelf):
    copy_track(shelf, "tiny", "newest", time.time() + 60)
    page = web.get("/phone").text
    assert page.count('class="qr"') == 3
    assert "http://127.0.0.1/feed.xml" in page
    assert "podcast://127.0.0.1/feed.xml" in page
    assert "http://127.0.0.1/files/newest.mp3" in page
    assert "windown serve --lan" in page  # on 127.0.0.1 the page says how to reach it from a phone


def test_the_qr_codes_hold_the_addresses(web):
    import segno

    page = web.get("/phone").text
    svg = re.search(r'<svg [^>]*class="qr".*?</svg>', page, re.S).group(0)
    expected = segno.make("http://127.0.0.1/feed.xml", error="m").svg_inline(
        scale=6, dark="#111318", light="#a9a396", border=3, omitsize=True, svgclass="qr")
    assert svg == expected  # the same modules as a QR code made from the feed address


def test_with_a_secret_every_address_needs_it(shelf):
    app = create_app(shelf, secret="s3cr3t-token", allowed_hosts=None)
    with client(app) as web:
        for path in ("/", "/shelf", "/phone", "/feed.xml", "/files/tiny.mp3", "/static/style.css", "/tracks/tiny"):
            response = web.get(path)
            assert response.status_code == 404, path
            assert "s3cr3t" not in response.text
            assert web.get("/s3cr3t-token" + path).status_code == 200, path
        assert web.get("/wrong-token/feed.xml").status_code == 404
        feed_xml = web.get("/s3cr3t-token/feed.xml", headers={"Host": "192.0.2.7:8000"}).text
        assert 'url="http://192.0.2.7:8000/s3cr3t-token/files/tiny.mp3"' in feed_xml
        page = web.get("/s3cr3t-token/").text
        assert 'action="/s3cr3t-token/build"' in page and 'href="/s3cr3t-token/static/style.css"' in page
        assert "http://127.0.0.1/s3cr3t-token/feed.xml" in web.get("/s3cr3t-token/phone").text


def test_wrong_methods_and_bodies_get_calm_error_pages(web):
    response = web.get("/build")
    assert response.status_code == 405 and "That cannot be done here." in response.text
    response = web.put("/tracks/tiny/delete")
    assert response.status_code == 405
    token = csrf_of(web.get("/").text)

    def chunked():  # a body without a Content-Length cannot be measured before it is read
        yield f"csrf={token}&source=preset&preset=in-bed".encode()

    response = web.post("/build", content=chunked(), headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 411
    missing = web.get("/tracks/nothing-here")
    assert missing.status_code == 404 and "There is no such track on the shelf." in missing.text
    assert 'href="/"' in missing.text  # a way back


class _Controls:
    """Collects a page's form controls, labels, headings and landmarks (html.parser, no browser)."""

    def __init__(self, page: str):
        from html.parser import HTMLParser

        self.controls: list[dict] = []
        self.label_for: set[str] = set()
        self.h1 = 0
        self.tags: list[tuple[str, dict]] = []
        self.wrapped: list[dict] = []
        outer = self
        depth = {"label": 0}

        class Parser(HTMLParser):
            def handle_starttag(self, tag, attrs):
                a = dict(attrs)
                outer.tags.append((tag, a))
                if tag == "label":
                    depth["label"] += 1
                    if "for" in a:
                        outer.label_for.add(a["for"])
                if tag == "h1":
                    outer.h1 += 1
                if tag in ("input", "select", "textarea") and a.get("type") != "hidden":
                    a["_in_label"] = depth["label"] > 0
                    outer.controls.append(a)

            def handle_endtag(self, tag):
                if tag == "label":
                    depth["label"] -= 1

        Parser().feed(page)


@pytest.mark.parametrize("path", ["/", "/shelf", "/tracks/tiny", "/tracks/tiny/delete", "/phone"])
def test_every_page_is_usable_with_a_screen_reader_and_the_keyboard(web, path):
    page = web.get(path).text
    found = _Controls(page)
    assert '<html lang="en">' in page
    assert found.h1 == 1
    assert 'class="skip" href="#main"' in page and '<main id="main"' in page
    assert '<nav aria-label="Sections">' in page
    for control in found.controls:  # every field has a name a screen reader can say
        assert control["_in_label"] or control.get("id") in found.label_for or control.get("aria-label"), control
    for tag, attrs in found.tags:
        assert "tabindex" not in attrs or attrs["tabindex"] in ("0", "-1")  # no focus-order tricks
    assert page.count("<figcaption") == page.count('class="qr"')  # each QR code is named
    assert page.count('aria-current="page"') == 1  # where you are


def test_the_form_describes_each_field_with_its_help(web):
    found = _Controls(web.get("/").text)
    for control in found.controls:
        if control.get("name") in {f.name for f in form.FIELDS}:
            if control.get("type") == "checkbox":
                continue  # a group of boxes is described on its fieldset
            assert f'{control["name"]}-help' in control.get("aria-describedby", ""), control


def test_a_bug_shows_one_line_and_saves_its_traceback(app, monkeypatch, shared_cache):
    from starlette.testclient import TestClient

    def broken(folder):
        raise RuntimeError("the shelf fell over")

    monkeypatch.setattr(shelf_mod, "tracks", broken)
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as web:
        response = web.get("/shelf")
    assert response.status_code == 500
    line = html.unescape(re.search(r'<p class="cli" id="bug">(.*?)</p>', response.text).group(1))
    saved = re.fullmatch(r"windown hit a bug: RuntimeError: the shelf fell over\. The full traceback is in (.+); "
                         r"please report it\.", line).group(1)
    report = Path(saved).read_text()
    assert "GET /shelf" in report and "RuntimeError: the shelf fell over" in report
