"""A bounded load test on loopback: twenty build requests at once, then hundreds of page requests a second
against a real `windown serve` while those builds run. It prints its figures (run with -s, or
./scripts/load-web) and checks what must hold whatever the machine's speed: every request answered,
builds queued with at most one per core running, and no partial MP3 ever listed or served.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import statistics
import threading
import time
import xml.etree.ElementTree as ET

import httpx
import pytest

from web_support import TINY_ROUTINE, server  # noqa: F401  (a real `windown serve`)

BUILDS = 20
PAGE_REQUESTS = 40_000  # bounded in count...
PAGE_SECONDS = 180  # ...and in time; it stops sooner, once every build is done
CLIENTS = 16
PAGES = ("/", "/shelf", "/feed.xml", "/phone", "/static/style.css")

pytestmark = pytest.mark.slow


def submit(url: str, n: int) -> tuple[str, float]:
    with httpx.Client(base_url=url, timeout=30) as web:
        token = re.search(r'name="csrf" value="([^"]+)"', web.get("/").text).group(1)
        started = time.perf_counter()
        response = web.post("/build", data={"csrf": token, "source": "paste", "routine_text": TINY_ROUTINE,
                                            "tail": f"{2 + n % 5}s", "pace": ("slow", "medium", "brisk")[n % 3]},
                            files={"none": ("", b"")}, follow_redirects=False)
        elapsed = time.perf_counter() - started
    assert response.status_code == 303, response.text
    return response.headers["location"], elapsed


def test_pages_stay_answered_while_twenty_builds_queue(server, capsys):  # noqa: F811
    url, shelf = server
    cores = os.cpu_count() or 1

    # twenty build requests at once
    with concurrent.futures.ThreadPoolExecutor(BUILDS) as pool:
        submitted = list(pool.map(lambda n: submit(url, n), range(BUILDS)))
    jobs = [location for location, _ in submitted]
    submit_ms = sorted(1000 * s for _, s in submitted)

    latencies: list[float] = []
    failures: list[str] = []
    listed: dict[str, int] = {}  # every MP3 the feed ever listed, with the length it gave
    running_seen = [0]
    served_checked = [0]
    lock = threading.Lock()
    all_done = threading.Event()
    stop_at = time.monotonic() + PAGE_SECONDS
    counter = iter(range(PAGE_REQUESTS))

    def client_loop(n: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as web:
            while time.monotonic() < stop_at and not all_done.is_set():
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                path = PAGES[i % len(PAGES)] if i % 10 else jobs[i % BUILDS] + "/status"
                started = time.perf_counter()
                response = web.get(path)
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    if response.status_code != 200:
                        failures.append(f"{path}: {response.status_code}")
                if path == "/feed.xml":
                    for enclosure in ET.fromstring(response.content).iter("enclosure"):
                        with lock:
                            listed[enclosure.get("url")] = int(enclosure.get("length"))
                if path.endswith("/status"):  # how many builds run right now, as the server counts them
                    status = response.json()
                    with lock:
                        running_seen[0] = max(running_seen[0], status["running"])
                    if status["running"] == 0 and status["waiting"] == 0:
                        all_done.set()
                if i % 25 == 0 and listed:  # a listed MP3 is served whole, at the length the feed gave
                    with lock:
                        mp3_url, length = list(listed.items())[i % len(listed)]
                    head = web.head(mp3_url)
                    with lock:
                        served_checked[0] += 1
                        if head.status_code != 200 or int(head.headers["content-length"]) != length:
                            failures.append(f"{mp3_url}: {head.status_code} {head.headers.get('content-length')}"
                                            f" != {length}")

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(client_loop, range(CLIENTS)))
    load_s = time.perf_counter() - started

    # then every build finishes (bounded), and everything the feed ever listed was whole
    deadline = time.monotonic() + 900
    with httpx.Client(base_url=url, timeout=30) as web:
        while True:
            states = [web.get(j + "/status").json() for j in jobs]
            if all(s["state"] in ("done", "failed") for s in states):
                break
            assert time.monotonic() < deadline, [s["state"] for s in states]
            time.sleep(1)
        for mp3_url, length in listed.items():
            served = web.get(mp3_url)
            assert served.status_code == 200 and len(served.content) == length, mp3_url
    built_s = time.perf_counter() - started

    lat_ms = sorted(1000 * x for x in latencies)
    with capsys.disabled():
        print(f"\nload test on 127.0.0.1 ({cores} cores): {BUILDS} build requests answered in "
              f"median {statistics.median(submit_ms):.0f} ms, max {submit_ms[-1]:.0f} ms")
        print(f"  {len(lat_ms)} page requests from {CLIENTS} clients in {load_s:.1f} s = "
              f"{len(lat_ms) / load_s:.0f} requests/s while building; latency median {statistics.median(lat_ms):.0f} "
              f"ms, p95 {lat_ms[int(0.95 * len(lat_ms))]:.0f} ms, p99 {lat_ms[int(0.99 * len(lat_ms))]:.0f} ms, "
              f"max {lat_ms[-1]:.0f} ms; {len(failures)} failed")
        print(f"  builds running at once: at most {running_seen[0]} (limit {cores}); all {BUILDS} done "
              f"{built_s:.0f} s after the load began; {len(listed)} MP3s listed during the load and "
              f"{served_checked[0]} served while building, every one whole")

    assert not failures, failures[:5]
    assert len(lat_ms) >= min(PAGE_REQUESTS, 100)
    assert [s["state"] for s in states] == ["done"] * BUILDS, [s["error"] for s in states if s["error"]]
    assert 1 <= running_seen[0] <= cores
    mp3s = [p for p in shelf.iterdir() if p.suffix == ".mp3"]
    assert len(mp3s) == BUILDS
    assert not any(p.name.startswith(".") for p in shelf.iterdir() if p.name != ".building")
    assert not any((shelf / ".building").iterdir())
