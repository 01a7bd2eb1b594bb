"""The Journal page over HTTP: the evening and morning forms write real rows to a real SQLite journal, bad
values come back beside their field in the very words `windown log` prints, and the look-back and the
chart come from the journal's own report and plot."""

from __future__ import annotations

import html
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from conftest import run_cli
from web_support import built, client, csrf_of, error_beside, shelf, start_server  # noqa: F401
from windown import journal
from windown.web.app import create_app


def seed_session(path: Path) -> int:
    """A session as a build records it: two stretches, one of them an easier variation."""
    return journal.record_session(path, journal.Session(
        journal.now(), "in-bed", "In bed", (journal.SessionStretch("knee-to-chest", 30_000),
                                            journal.SessionStretch("cobra-easier", 20_000)),
        600_000, "espeak-ng", "en", "/nowhere/in-bed.mp3", "cli"))


def entries(path: Path) -> list[journal.Entry]:
    diary = journal.open_journal(path, write=False)
    if diary is None:
        return []
    with diary:
        return diary.read().entries


@pytest.fixture
def diary(tmp_path) -> Path:
    path = tmp_path / "my journal.sqlite"
    seed_session(path)
    return path


@pytest.fixture
def web(tmp_path, diary):
    app = create_app(tmp_path / "shelf", workers=1, journal_file=diary)
    with client(app) as c:
        yield c


def post(web, which: str, **fields):
    data = {"csrf": csrf_of(web.get("/journal").text), **fields}
    return web.post(f"/journal/{which}", data=data, follow_redirects=False)


def test_the_page_has_both_forms_the_last_session_s_stretches_and_the_nav_link(web):
    response = web.get("/journal")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    page = response.text
    assert 'href="/journal" aria-current="page">Journal</a>' in page
    assert 'action="/journal/evening"' in page and 'action="/journal/morning"' in page
    assert page.count('name="csrf"') == 2
    for name, legend in (("pain", "Back pain now"), ("sleep", "How you slept"), ("pain_waking", "Back pain on waking"),
                         ("hurt", "Stretches that hurt"), ("helped", "Stretches that helped")):
        assert re.search(rf'<fieldset class="field[^"]*" id="{name}"[^>]*>\s*<legend>{legend}</legend>', page), name
    assert re.findall(r'name="pain" id="pain-(\d+)"', page) == [str(n) for n in range(11)]  # the CLI's 0-10
    assert "5 very good" in page and "1 very poor" in page
    assert sorted(set(re.findall(r'name="hurt" value="([^"]+)"', page))) == ["cobra-easier", "knee-to-chest"]
    assert 'for="fell_asleep"' in page and 'for="woke"' in page and 'for="note"' in page
    assert "Journal" in web.get("/").text  # every page links to it


def test_an_evening_entry_lands_in_the_journal_after_the_last_session(web, diary):
    response = post(web, "evening", pain="3", hurt=["knee-to-chest"], helped=["cobra-easier", "knee-to-chest"],
                    note="tight after sitting")
    assert response.status_code == 303 and response.headers["location"] == "/journal?logged=evening"
    [entry] = entries(diary)
    assert (entry.pain, entry.hurt, entry.helped, entry.skipped, entry.note) == \
        (3, ("knee-to-chest",), ("cobra-easier", "knee-to-chest"), (), "tight after sitting")
    assert entry.sleep is None and entry.session_id == 1
    page = web.get(response.headers["location"]).text
    assert 'role="status"' in page
    recent = re.search(r'<ul class="plain" id="recent">(.*?)</ul>', page, re.S).group(1)
    assert "pain 3; hurt knee-to-chest; helped cobra-easier, knee-to-chest" in html.unescape(recent)


def test_a_morning_entry_lands_in_the_journal_and_in_the_last_14_nights(web, diary):
    response = post(web, "morning", sleep="4", fell_asleep="20", woke="1", pain_waking="2")
    assert response.status_code == 303
    [entry] = entries(diary)
    assert (entry.sleep, entry.fell_asleep_min, entry.woke, entry.pain_waking, entry.pain) == (4, 20, 1, 2, None)
    page = web.get("/journal").text
    rows = re.findall(r"<tr[^>]*><th scope=\"row\">([^<]+)</th>(.*?)</tr>",
                      page.split('class="tracks nights"')[1].split("</table>")[0], re.S)
    assert len(rows) == 14  # the report's window, oldest first; the night this entry belongs to has its values
    with journal.open_journal(diary, write=False) as d:
        from windown.journal import report
        night = report.nights(d.read())
    [(day, got)] = night.items()
    matching = [cells for label, cells in rows if label == day.strftime("%a %-d %b")]
    assert matching and ">4 <span" in matching[0] and ">2 <span" in matching[0]


@pytest.mark.parametrize("which, field, value, cli_args", [
    ("evening", "pain", "11", ["--pain", "11"]),
    ("morning", "sleep", "0", ["--sleep", "0"]),
    ("morning", "woke", "two", ["--woke", "two"]),
    ("morning", "fell_asleep", "half an hour", ["--fell-asleep", "half an hour"]),
    ("morning", "pain_waking", "-1", ["--pain-waking", "-1"]),
    ("evening", "hurt", "cobbra", ["--hurt", "cobbra"]),
])
def test_a_bad_value_shows_the_cli_s_line_beside_its_field_and_writes_nothing(web, diary, which, field, value,
                                                                               cli_args):
    before = diary.read_bytes()
    response = post(web, which, **{field: value})
    assert response.status_code == 400
    cli = run_cli("log", "--journal", str(diary), *cli_args)
    assert cli.returncode == 2 and "Traceback" not in cli.stderr
    assert error_beside(response.text, field) == cli.stderr.strip()
    assert f'aria-describedby="{field}-help {field}-error" aria-invalid="true"' in response.text
    assert entries(diary) == [] and diary.read_bytes() == before


def test_every_bad_field_is_named_at_once_and_good_values_stay(web, diary):
    response = post(web, "evening", pain="eleven", skipped=["nope"], note="kept")
    assert response.status_code == 400
    assert error_beside(response.text, "pain").startswith("--pain: 'eleven' is not a number")
    assert error_beside(response.text, "skipped").startswith("--skipped: 'nope' is not a stretch in your last session")
    assert ">kept</textarea>" in response.text and "2 things to change; nothing was logged." in response.text
    assert entries(diary) == []


def test_an_empty_form_logs_nothing(web, diary):
    response = post(web, "morning")
    assert response.status_code == 400 and "nothing to log" in error_beside(response.text, "sleep")
    assert entries(diary) == []


def test_a_post_without_the_token_or_from_another_site_is_refused(web, diary):
    assert web.post("/journal/evening", data={"pain": "3"}).status_code == 403
    assert web.post("/journal/evening", data={"csrf": "forged", "pain": "3"}).status_code == 403
    token = csrf_of(web.get("/journal").text)
    response = web.post("/journal/evening", data={"csrf": token, "pain": "3"},
                        headers={"Origin": "http://evil.example"})
    assert response.status_code == 403
    assert web.post("/journal/lunchtime", data={"csrf": token, "pain": "3"}).status_code == 404
    assert entries(diary) == []


def test_the_chart_is_the_journal_s_plot_as_svg_never_cached(web, diary):
    assert post(web, "evening", pain="4").status_code == 303
    assert post(web, "morning", sleep="3", pain_waking="5").status_code == 303
    response = web.get("/journal/chart.svg")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.headers["cache-control"] == "no-store"
    root = ET.fromstring(response.content)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert (root.get("width"), root.get("height")) == ("648pt", "396pt")  # plot.SIZE_IN, 9 x 5.5 inches
    assert len(response.content) > 10_000
    page = web.get("/journal").text
    img = re.search(r'<img src="/journal/chart.svg"[^>]*alt="([^"]+)"', page)
    assert img and "evening pain, waking pain and sleep over 1 night" in img.group(1)


def test_the_chart_is_drawn_again_only_when_the_journal_changes(web, diary, monkeypatch):
    from windown.journal import plot

    drawn = []
    real_write = plot.write
    monkeypatch.setattr(plot, "write", lambda contents, path: drawn.append(len(contents.entries)) or
                        real_write(contents, path))
    assert post(web, "evening", pain="4").status_code == 303
    first = web.get("/journal/chart.svg").content
    again = web.get("/journal/chart.svg").content
    assert again == first and drawn == [1]
    assert post(web, "morning", sleep="3", pain_waking="5").status_code == 303
    after = web.get("/journal/chart.svg").content
    assert drawn == [1, 2] and after != first


def test_an_empty_journal_shows_the_forms_and_no_chart(tmp_path):
    path = tmp_path / "none-yet.sqlite"
    with client(create_app(tmp_path / "shelf", journal_file=path)) as web:
        page = web.get("/journal").text
        assert "No session yet: every stretch in the library." in page and "<img" not in page
        assert 'name="hurt" value="cobra"' in page  # before any session the CLI accepts the library's ids
        assert not path.exists()  # looking writes nothing
        assert post(web, "evening", pain="2", hurt=["cobra"]).status_code == 303
    [entry] = entries(path)
    assert (entry.pain, entry.hurt, entry.session_id) == (2, ("cobra",), None)


def test_a_foreign_journal_is_reported_in_one_line_and_never_written(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_bytes(b"my own notes, not a database\n" * 50)
    before = path.read_bytes()
    cli = run_cli("journal", "--journal", str(path))
    assert cli.returncode == 2
    with client(create_app(tmp_path / "shelf", journal_file=path)) as web:
        page = web.get("/journal")
        assert page.status_code == 200
        shown = re.search(r'<p class="cli">(.*?)</p>', page.text, re.S).group(1)
        assert html.unescape(shown) == cli.stderr.strip() and "\n" not in shown
        response = post(web, "evening", pain="3")
        assert response.status_code == 400 and "The journal cannot be used" in response.text
        chart = web.get("/journal/chart.svg")
        assert chart.status_code == 409 and "not a windown journal" in chart.text
    assert path.read_bytes() == before


def test_with_no_journal_there_is_no_link_and_the_routes_say_so(tmp_path):
    app = create_app(tmp_path / "shelf", use_journal=False)
    with client(app) as web:
        assert ">Journal</a>" not in web.get("/").text
        for response in (web.get("/journal"), web.get("/journal/chart.svg"),
                         web.post("/journal/evening", data={"csrf": app.state.csrf, "pain": "3"})):
            assert response.status_code == 404
            assert "The journal is off for this page (windown serve --no-journal)." in response.text
    assert not journal.default_path(None).exists()


def test_builds_from_the_page_use_its_journal_or_none(tmp_path, diary):
    for kwargs, expected in (({"journal_file": diary}, str(diary.absolute())), ({"use_journal": False}, None)):
        app = create_app(tmp_path / "shelf", workers=1, **kwargs)
        web = client(app)  # not started: the job waits, and its spec is what the build process gets
        response = web.post("/build", data={"csrf": app.state.csrf, "source": "preset", "preset": "in-bed"},
                            files={"none": ("", b"")}, follow_redirects=False)
        assert response.status_code == 303
        [job] = app.state.queue.jobs()
        assert job.spec["journal"] == expected


# --- with --lan: the journal behind its own secret, apart from the feed's ----------------------------------

FEED = "feed-s3cr3t-for-tests-0001"  # the shelf's secret: the page, the shelf, the feed (may be shared)
OWN = "own-s3cr3t-for-tests-00002"  # the journal's secret: all of that and the Journal (the owner's)


@pytest.fixture
def lan_app(shelf, diary):
    return create_app(shelf, secret=FEED, journal_secret=OWN, allowed_hosts=None, journal_file=diary)


def test_the_journal_answers_only_under_its_own_secret(lan_app, diary):
    with client(lan_app) as web:
        token = lan_app.state.csrf
        for prefix in ("", f"/{FEED}"):
            for response in (web.get(f"{prefix}/journal"), web.get(f"{prefix}/journal/chart.svg"),
                             web.post(f"{prefix}/journal/evening", data={"csrf": token, "pain": "3"})):
                assert response.status_code == 404, (prefix, response.request.url)
                assert OWN not in response.text
        assert entries(diary) == []
        page = web.get(f"/{OWN}/journal")
        assert page.status_code == 200 and f'action="/{OWN}/journal/evening"' in page.text
        assert f'src="/{OWN}/journal/chart.svg"' in page.text
        response = web.post(f"/{OWN}/journal/evening", data={"csrf": csrf_of(page.text), "pain": "3"},
                            follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == f"/{OWN}/journal?logged=evening"
        chart = web.get(f"/{OWN}/journal/chart.svg")
        assert chart.status_code == 200 and chart.headers["content-type"] == "image/svg+xml"
    assert [e.pain for e in entries(diary)] == [3]


def test_the_feed_secret_opens_everything_but_the_journal_and_never_shows_its_secret(lan_app, shelf):
    import feedparser

    with client(lan_app) as web:
        for path in ("/", "/shelf", "/phone", "/tracks/tiny", "/tracks/tiny/delete", "/static/style.css"):
            response = web.get(f"/{FEED}{path}")
            assert response.status_code == 200, path
            assert OWN not in response.text and ">Journal</a>" not in response.text, path
        assert OWN not in web.get(f"/{FEED}/no-such-page").text
        parsed = feedparser.parse(web.get(f"/{FEED}/feed.xml", headers={"Host": "192.0.2.7:8000"}).content)
        [entry] = parsed.entries
        [enclosure] = entry.enclosures
        assert enclosure.href == f"http://192.0.2.7:8000/{FEED}/files/tiny.mp3"
        track = web.get(f"/{FEED}/files/tiny.mp3")
        assert track.status_code == 200 and track.headers["content-type"] == "audio/mpeg"
        assert track.content == (shelf / "tiny.mp3").read_bytes()
        # the owner's address opens every page too, with the Journal in its navigation
        for path in ("/", "/shelf", "/phone", "/tracks/tiny", "/feed.xml", "/files/tiny.mp3"):
            assert web.get(f"/{OWN}{path}").status_code == 200, path
        page = web.get(f"/{OWN}/shelf").text
        assert f'href="/{OWN}/journal" >Journal</a>' in page and f'href="/{OWN}/tracks/tiny"' in page
        # the owner's feed still gives the shared address to a podcast app
        assert OWN not in web.get(f"/{OWN}/feed.xml").text


def test_csrf_and_origin_are_checked_under_both_secrets(lan_app, diary, shelf):
    with client(lan_app) as web:
        token = lan_app.state.csrf
        for path in (f"/{OWN}/journal/evening", f"/{FEED}/build", f"/{OWN}/build",
                     f"/{FEED}/tracks/tiny/delete", f"/{OWN}/tracks/tiny/delete"):
            fields = {"source": "preset", "preset": "in-bed", "pain": "3"}
            assert web.post(path, data=fields).status_code == 403, path
            assert web.post(path, data={**fields, "csrf": "not-the-token"}).status_code == 403, path
            refused = web.post(path, data={**fields, "csrf": token}, headers={"Origin": "http://evil.example"})
            assert refused.status_code == 403, path
    assert entries(diary) == [] and (shelf / "tiny.mp3").is_file()


def test_a_build_from_the_shared_address_neither_reads_nor_records_the_journal(lan_app, diary):
    web = client(lan_app)  # not started: the jobs wait, and their specs are what the build processes get
    for prefix in (FEED, OWN):
        response = web.post(f"/{prefix}/build", data={"csrf": lan_app.state.csrf, "source": "preset",
                                                      "preset": "in-bed"}, files={"none": ("", b"")},
                            follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith(f"/{prefix}/jobs/")
    shared, own = lan_app.state.queue.jobs()
    assert (shared.spec["journal"], own.spec["journal"]) == (None, str(diary.absolute()))


def qr_of(data: str) -> str:
    import segno

    return segno.make(data, error="m").svg_inline(scale=6, dark="#111318", light="#a9a396", border=3,
                                                 omitsize=True, svgclass="qr")


def cards(page: str) -> dict[str, str]:
    """Each card of the phone page by its heading's id."""
    return {m.group(1): m.group(0) for m in re.finditer(r'<section class="card" aria-labelledby="([\w-]+)">.*?'
                                                         r'</section>', page, re.S)}


def test_the_phone_page_shows_the_owner_s_code_and_the_feed_s_code_apart(lan_app):
    with client(lan_app) as web:
        own = cards(web.get(f"/{OWN}/phone").text)
        shared = cards(web.get(f"/{FEED}/phone").text)
    assert qr_of(f"http://127.0.0.1/{OWN}/") in own["own-title"]
    assert "keep it to yourself" in own["own-title"] and "journal" in own["own-title"]
    feed_url = f"http://127.0.0.1/{FEED}/feed.xml"
    for page in (own, shared):
        assert qr_of(feed_url) in page["feed-title"] and f'id="feed-url">{feed_url}<' in page["feed-title"]
        assert "may be given to a podcast app or a friend" in page["feed-title"]
        assert qr_of(f"http://127.0.0.1/{FEED}/files/tiny.mp3") in page["newest-title"]
    assert "own-title" not in shared and OWN not in "".join(shared.values())


def _stop(process: subprocess.Popen) -> str:
    process.terminate()
    out, _ = process.communicate(timeout=30)
    return out


@pytest.mark.parametrize("journal_args", [["--journal", "{path}"], ["--no-journal"]])
def test_windown_serve_journal_and_no_journal(tmp_path, journal_args):
    path = tmp_path / "serve journal.sqlite"
    process, url = start_server("--shelf", str(tmp_path / "shelf"), *[a.format(path=path) for a in journal_args])
    try:
        page = httpx.get(url + "/journal")
        if journal_args == ["--no-journal"]:
            assert page.status_code == 404 and ">Journal</a>" not in httpx.get(url + "/").text
        else:
            assert page.status_code == 200
            response = httpx.post(url + "/journal/morning", data={"csrf": csrf_of(page.text), "sleep": "5"})
            assert response.status_code == 303
    finally:
        out = _stop(process)
    if journal_args == ["--no-journal"]:
        assert "journal: off (--no-journal)" in out
        assert not journal.default_path(None).exists()
    else:
        assert f"journal: {path}" in out
        assert [e.sleep for e in entries(path)] == [5]
