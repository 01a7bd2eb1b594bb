"""Shared by the page's tests: a tiny real routine, a real shelf built from it, and a client that posts forms."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import socket
import subprocess
import sys
import time

import httpx
import pytest
from starlette.testclient import TestClient

from windown import pipeline, routine, source

# Two short stretches with espeak-ng: a real track with several chapters in a few seconds.
TINY_ROUTINE = """\
title: Two small stretches
voice: {engine: espeak-ng}
ambient: {sound: none}
instruction: minimal
safety: false
tail: 2s
steps:
  - stretch: knee-to-chest
    hold: 5s
    reps: 1
    sides: none
  - stretch: supine-twist
    hold: 5s
    reps: 1
    sides: none
"""


def build_track(shelf: Path, stem: str, text: str = TINY_ROUTINE) -> pipeline.Result:
    """Build a real track into the shelf through the same pipeline the page uses."""
    r = routine.parse(source.load(f"{stem}.yaml", text), f"{stem}.yaml")
    return pipeline.build(r, shelf / f"{stem}.mp3")


def client(app) -> TestClient:
    """A client that talks to the app as a browser on this computer does (Host 127.0.0.1)."""
    return TestClient(app, base_url="http://127.0.0.1")


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def error_beside(html: str, field: str) -> str | None:
    """The error text shown beside a form field (its id is FIELD-error), unescaped; None when there is none."""
    import html as html_lib

    match = re.search(rf'<p class="error" id="{re.escape(field)}-error"><span class="sr">Error: </span>(.*?)</p>',
                      html, re.S)
    return html_lib.unescape(match.group(1)) if match else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def built(tmp_path_factory, shared_cache) -> Path:
    """One real track for every web test, built once (the speech cache is the test session's own)."""
    folder = tmp_path_factory.mktemp("built")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WINDOWN_CACHE_DIR", str(shared_cache))
        mp.setenv("XDG_CONFIG_HOME", str(folder / "config"))
        build_track(folder, "tiny")
    return folder


@pytest.fixture
def shelf(built, tmp_path) -> Path:
    """A fresh shelf per test holding a copy of the built track as 'tiny' (and its sidecars)."""
    folder = tmp_path / "shelf"
    folder.mkdir()
    for path in built.iterdir():
        if path.is_file():
            shutil.copy2(path, folder / path.name)
    return folder


def stop(process) -> None:
    """Stop a server the test started: SIGTERM, then a wait (a kill if it does not go)."""
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_server(*args: str) -> tuple[subprocess.Popen, str]:
    """`windown serve ARGS` as a person starts it, on a free loopback port, once it answers."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "windown", "serve", "--port", str(port), *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.2)


@pytest.fixture
def server(tmp_path):
    """A real `windown serve` over an empty shelf, stopped after the test."""
    shelf = tmp_path / "shelf"
    process, url = start_server("--shelf", str(shelf))
    yield url, shelf
    stop(process)
