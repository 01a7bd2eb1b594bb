"""End to end in a real browser: Debian's chromium, driven by Selenium through chromium-driver, against a
real `windown serve` process. It fills the form, builds a short track, waits for the player, clicks a
chapter and checks that the audio moved there, and saves a screenshot.

./scripts/test installs chromium and chromium-driver (`./scripts/setup --browser`).
Set WINDOWN_SCREENSHOT_DIR to a folder to keep the screenshots.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from web_support import TINY_ROUTINE, server  # noqa: F401  (a real `windown serve`)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                       reason="chromium and chromium-driver are not installed: run ./scripts/setup --browser"),
]


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--mute-audio",
                "--autoplay-policy=no-user-gesture-required", "--window-size=1200,1500",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def save_screenshot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    assert driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("WINDOWN_SCREENSHOT_DIR")
    if keep:
        shutil.copy(path, Path(keep) / name)
    return path


def test_fill_the_form_build_play_and_jump_to_a_chapter(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.ui import WebDriverWait

    url, shelf = server
    browser.get(url + "/")
    assert browser.title == "Tonight · windown"
    # the routine box shows only once "Paste a routine" is chosen (the page's script hides the others)
    text_box = browser.find_element(By.ID, "routine_text")
    assert not text_box.is_displayed()
    browser.find_element(By.CSS_SELECTOR, 'input[name="source"][value="paste"]').click()
    assert text_box.is_displayed()
    text_box.send_keys(TINY_ROUTINE)
    Select(browser.find_element(By.ID, "pace")).select_by_value("brisk")
    Select(browser.find_element(By.ID, "voice-engine")).select_by_value("espeak-ng")
    browser.find_element(By.ID, "tail").send_keys("3s")
    browser.find_element(By.CSS_SELECTOR, 'input[name="avoid"][value="prone"]').click()
    save_screenshot(browser, tmp_path, "form.png")
    browser.find_element(By.ID, "build").click()

    # the progress page, then (by its script) the player once the track is ready
    WebDriverWait(browser, 30).until(ready.url_contains("/jobs/"))
    WebDriverWait(browser, 300).until(ready.url_contains("/tracks/"))
    audio = WebDriverWait(browser, 30).until(ready.presence_of_element_located((By.ID, "audio")))
    WebDriverWait(browser, 60).until(lambda d: d.execute_script("return arguments[0].readyState >= 1", audio))
    duration = browser.execute_script("return arguments[0].duration", audio)
    assert duration > 20
    assert browser.execute_script("return arguments[0].currentTime", audio) == 0

    chapters = browser.find_elements(By.CSS_SELECTOR, "button.chapter")
    assert [c.find_element(By.CLASS_NAME, "name").text for c in chapters] == \
        ["Welcome", "Knee to chest", "Lying twist", "Sleep"]
    target = chapters[2]
    start_s = float(target.get_attribute("data-start"))
    assert start_s > 5
    target.click()
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("return arguments[0].currentTime", audio) >= start_s - 0.05)
    moved_to = browser.execute_script("return arguments[0].currentTime", audio)
    assert start_s - 0.05 <= moved_to < duration
    # the transcript follows: the cue being spoken at that moment is marked for sight and for screen readers
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".cue.now")
                                     or d.execute_script("return arguments[0].currentTime", audio) > start_s + 10)
    now = browser.find_elements(By.CSS_SELECTOR, '.cue.now[aria-current="true"]')
    assert len(now) == 1
    assert float(now[0].get_attribute("data-start")) <= browser.execute_script("return arguments[0].currentTime",
                                                                                audio)
    assert target.get_attribute("aria-current") == "true"
    browser.execute_script("arguments[0].pause()", audio)
    save_screenshot(browser, tmp_path, "player.png")

    # the track is on the shelf, with its sidecars, and nothing half-made
    mp3s = sorted(p.name for p in shelf.glob("*.mp3"))
    assert len(mp3s) == 1 and mp3s[0].startswith("two-small-stretches-")
    assert not any((shelf / ".building").iterdir())
    browser.get(url + "/shelf")
    assert "Two small stretches" in browser.find_element(By.TAG_NAME, "main").text
    save_screenshot(browser, tmp_path, "shelf.png")


def test_the_transcript_follows_word_by_word_and_chapters_work_from_the_keyboard(server, browser, shared_cache):
    """A cue sheet with word timings (as a speech engine that reports them writes) marks the word being said."""
    import json

    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from web_support import build_track

    url, shelf = server
    shelf.mkdir(exist_ok=True)
    build_track(shelf, "words")
    sheet_path = shelf / "words.json"
    sheet = json.loads(sheet_path.read_text())
    cue = sheet["cues"][1]
    words = cue["text"].split()
    step = (cue["end_s"] - cue["start_s"]) / len(words)
    cue["words"] = [{"start_s": round(cue["start_s"] + i * step, 3), "end_s": round(cue["start_s"] + (i + 1) * step, 3),
                     "text": w} for i, w in enumerate(words)]
    sheet_path.write_text(json.dumps(sheet))

    browser.get(url + "/tracks/words")
    audio = browser.find_element(By.ID, "audio")
    WebDriverWait(browser, 60).until(lambda d: d.execute_script("return arguments[0].readyState >= 1", audio))
    third = cue["words"][2]
    browser.execute_script("arguments[0].currentTime = arguments[1]", audio, (third["start_s"] + third["end_s"]) / 2)
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".word.now"))
    assert [w.text for w in browser.find_elements(By.CSS_SELECTOR, ".word.now")] == [third["text"]]
    assert browser.find_element(By.CSS_SELECTOR, ".cue.now").get_attribute("data-start") == str(cue["start_s"])

    # keyboard only: Tab reaches the chapter buttons, Enter jumps
    last = browser.find_elements(By.CSS_SELECTOR, "button.chapter")[-1]
    body = browser.find_element(By.TAG_NAME, "body")
    for _ in range(40):
        body.send_keys(Keys.TAB) if browser.switch_to.active_element == body else \
            browser.switch_to.active_element.send_keys(Keys.TAB)
        if browser.switch_to.active_element == last:
            break
    assert browser.switch_to.active_element == last
    last.send_keys(Keys.ENTER)
    start_s = float(last.get_attribute("data-start"))
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("return arguments[0].currentTime", audio) >= start_s - 0.05)


def _a_week_of_journal(path: Path) -> None:
    """Seven nights of sessions and entries, as a week of `windown build` and `windown log` leaves them."""
    import datetime

    from windown import journal

    now = datetime.datetime.now().astimezone().replace(microsecond=0)
    stretches = (journal.SessionStretch("knee-to-chest", 30_000), journal.SessionStretch("cobra-easier", 20_000),
                 journal.SessionStretch("supine-twist", 30_000))
    with journal.open_journal(path) as diary:
        for days_ago, (pain, sleep, waking) in zip(range(8, 1, -1), [(6, 2, 6), (5, 3, 5), (5, 3, 4), (4, 3, 4),
                                                                     (4, 4, 3), (3, 4, 3), (3, 4, 2)]):
            evening = (now - datetime.timedelta(days=days_ago)).replace(hour=22, minute=0, second=0)
            diary.add_session(journal.Session(evening.isoformat(), "in-bed", "In bed", stretches, 600_000,
                                              "espeak-ng", "en", "/nowhere/in-bed.mp3", "web"))
            diary.add_entry(journal.Entry((evening + datetime.timedelta(minutes=20)).isoformat(), pain=pain))
            diary.add_entry(journal.Entry((evening + datetime.timedelta(hours=9)).isoformat(), sleep=sleep,
                                          fell_asleep_min=20, woke=1, pain_waking=waking))


def test_log_an_evening_entry_with_the_keyboard_and_see_it_listed(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    from windown import journal

    url, shelf = server
    path = journal.default_path(None)  # the server's, as `windown log` finds it (this test's XDG_DATA_HOME)
    _a_week_of_journal(path)
    browser.get(url + "/")
    browser.find_element(By.LINK_TEXT, "Journal").click()
    WebDriverWait(browser, 30).until(ready.title_is("Journal · windown"))
    # keyboard only: arrows move within the pain scale, Tab to the next group, Space ticks, Enter sends
    browser.find_element(By.ID, "pain-0").send_keys(Keys.ARROW_RIGHT * 2)
    active = browser.switch_to.active_element
    assert active.get_attribute("id") == "pain-2" and active.is_selected()
    active.send_keys(Keys.TAB)
    active = browser.switch_to.active_element
    assert active.get_attribute("name") == "hurt" and active.get_attribute("value") == "knee-to-chest"
    active.send_keys(Keys.SPACE)
    browser.find_element(By.ID, "note").send_keys("calm evening")
    browser.switch_to.active_element.send_keys(Keys.TAB)
    for _ in range(10):  # on through the note's help to the button
        if browser.switch_to.active_element.get_attribute("id") == "log-evening":
            break
        browser.switch_to.active_element.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.get_attribute("id") == "log-evening"
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    WebDriverWait(browser, 30).until(ready.url_contains("logged=evening"))
    recent = browser.find_element(By.ID, "recent").text
    assert "pain 2; hurt knee-to-chest" in recent.splitlines()[0] and "calm evening" in recent
    with journal.open_journal(path, write=False) as diary:
        newest = diary.read().entries[-1]
    assert (newest.pain, newest.hurt, newest.note) == (2, ("knee-to-chest",), "calm evening")
    chart = browser.find_element(By.CSS_SELECTOR, ".chart img")
    WebDriverWait(browser, 60).until(lambda d: d.execute_script("return arguments[0].complete && "
                                                                "arguments[0].naturalWidth > 0", chart))
    assert "pain" in chart.get_attribute("alt")
    browser.set_window_size(1200, browser.execute_script("return document.body.scrollHeight") + 150)
    save_screenshot(browser, tmp_path, "journal.png")
