"""`windown serve` as a command: what it prints with --lan (the owner's address with the journal's secret, a
QR code of it, and the shelf's address to share), that each secret is needed, and a clean one-line error
for a port in use. Requests go to 127.0.0.1 only."""

from __future__ import annotations

import queue
import re
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from conftest import run_cli
from web_support import free_port, server, stop  # noqa: F401  (a real `windown serve`)


def read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)


def start_lan(tmp_path, *args: str):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "windown", "serve", "--lan", "--port", str(port), "--shelf",
                                str(tmp_path / "shelf"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=read_lines, args=(process.stdout, lines), daemon=True).start()
    return port, process, lines


@pytest.fixture
def lan_server(tmp_path):
    port, process, lines = start_lan(tmp_path)
    yield port, process, lines
    stop(process)


def printed_until_ready(process, lines: queue.Queue) -> list[str]:
    """What `windown serve` prints before it starts answering (it ends with the shelf's line)."""
    printed: list[str] = []
    deadline = time.monotonic() + 60
    while not any(line.startswith("shelf:") for line in printed):
        assert time.monotonic() < deadline, printed
        try:
            printed.append(lines.get(timeout=1))
        except queue.Empty:
            assert process.poll() is None, process.stderr.read()
    return printed


def get_when_up(url: str) -> httpx.Response:
    deadline = time.monotonic() + 60
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            assert time.monotonic() < deadline
            time.sleep(0.2)


def terminal_qr(data: str) -> str:
    import io

    import segno

    out = io.StringIO()
    segno.make(data, error="m").terminal(out=out, compact=True)
    return out.getvalue()


def test_serve_lan_prints_the_owner_s_address_and_the_one_to_share_and_each_secret_is_needed(lan_server, tmp_path):
    port, process, lines = lan_server
    printed = printed_until_ready(process, lines)
    text = "".join(printed)
    own = re.search(rf"windown is on your home network at (http://[\d.]+:{port}/([\w-]+)/)\n"
                    rf"  that address opens your journal too: keep it to yourself\n", text)
    shared = re.search(rf"to share \(the shelf and the feed, never the journal\): (http://[\d.]+:{port}/([\w-]+)/)\n",
                       text)
    assert own and shared, text
    own_secret, feed_secret = own.group(2), shared.group(2)
    assert len(own_secret) >= 20 and len(feed_secret) >= 20 and own_secret != feed_secret  # 16 random bytes each
    assert (tmp_path / "shelf" / ".windown-secret").read_text().strip() == feed_secret
    assert (tmp_path / "data" / "windown" / ".journal.sqlite.windown-secret").read_text().strip() == own_secret
    assert own_secret not in (tmp_path / "shelf" / ".windown-secret").read_text()
    assert f"podcast feed: {shared.group(1)}feed.xml\n" in text
    assert terminal_qr(own.group(1)) in text  # the QR code drawn in the terminal is the owner's address

    base = f"http://127.0.0.1:{port}"
    assert get_when_up(f"{base}/{own_secret}/").status_code == 200
    for path in ("/", "/feed.xml", "/shelf", "/journal", "/static/style.css", f"/{feed_secret[:-1]}/",
                 f"/{feed_secret}/journal", f"/{feed_secret}/journal/chart.svg"):
        assert httpx.get(base + path).status_code == 404, path
    for path in ("/", "/phone", "/static/style.css"):
        assert httpx.get(f"{base}/{feed_secret}{path}").status_code == 200, path
    feed = httpx.get(f"{base}/{feed_secret}/feed.xml")
    assert feed.status_code == 200 and f"{base}/{feed_secret}/feed.xml" in feed.text
    assert httpx.get(f"{base}/{own_secret}/journal").status_code == 200
    assert httpx.get(f"{base}/{feed_secret}/files/.windown-secret").status_code == 404


def test_serve_lan_without_the_journal_prints_one_address_and_keeps_no_journal_secret(tmp_path):
    port, process, lines = start_lan(tmp_path, "--no-journal")
    try:
        text = "".join(printed_until_ready(process, lines))
        address = re.search(rf"windown is on your home network at (http://[\d.]+:{port}/([\w-]+)/)\n", text)
        assert address, text
        assert (tmp_path / "shelf" / ".windown-secret").read_text().strip() == address.group(2)
        assert "journal too" not in text and "to share" not in text and "journal: off (--no-journal)" in text
        assert get_when_up(f"http://127.0.0.1:{port}/{address.group(2)}/journal").status_code == 404
    finally:
        stop(process)
    assert not (tmp_path / "data").exists()  # neither a journal nor its secret


def test_the_lan_secrets_are_kept_for_their_owner_only_the_journal_s_beside_the_journal(tmp_path):
    from windown.web.app import journal_secret, lan_secret

    shelf = tmp_path / "shelf"
    first = lan_secret(shelf)
    assert len(first) >= 20
    assert lan_secret(shelf) == first  # a restart keeps the subscription's address
    kept = shelf / ".windown-secret"
    assert kept.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in shelf.iterdir()) == [".windown-secret"]
    kept.unlink()
    assert lan_secret(shelf) != first

    diary = tmp_path / "private" / "my journal.sqlite"  # its folder is made if need be (no journal yet)
    own = journal_secret(diary)
    assert len(own) >= 20 and own != lan_secret(shelf)
    assert journal_secret(diary) == own  # the owner's bookmark survives a restart
    beside = diary.parent / ".my journal.sqlite.windown-secret"
    assert beside.read_text().strip() == own and beside.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in diary.parent.iterdir()) == [beside.name]
    assert sorted(p.name for p in shelf.iterdir()) == [".windown-secret"]  # a shared shelf never holds it


def test_a_journal_secret_that_cannot_be_kept_is_one_line(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    result = run_cli("serve", "--lan", "--port", str(free_port()), "--shelf", str(tmp_path / "shelf"),
                     "--journal", str(tmp_path / "file" / "journal.sqlite"), timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{tmp_path / 'file' / '.journal.sqlite.windown-secret'}: cannot keep the "
                                    f"secret address here")
    assert result.stderr.count("\n") == 1


def test_serve_says_when_the_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--port", str(port), "--shelf", str(tmp_path / "shelf"), timeout=60)
    assert result.returncode == 2
    assert result.stderr == f"--port: port {port} is already in use. Choose another with --port, or stop the " \
                            f"program using it\n"


def test_serve_says_when_the_shelf_cannot_be_made(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    result = run_cli("serve", "--shelf", str(tmp_path / "file" / "shelf"), "--port", str(free_port()), timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{tmp_path / 'file' / 'shelf'}: cannot create the shelf folder")
    assert result.stderr.count("\n") == 1


def listening_addresses(port: int) -> set[str]:
    """The local addresses listening on a TCP port, from the kernel's own table (no traffic)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_serve_listens_on_this_computer_only_unless_asked(server):
    url, _ = server
    port = int(url.rsplit(":", 1)[1])
    assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, and nothing else


def test_serve_lan_listens_on_the_home_network(lan_server):
    port, process, lines = lan_server
    deadline = time.monotonic() + 60
    while not listening_addresses(port):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.2)
    assert listening_addresses(port) == {"00000000"}  # 0.0.0.0: every address of this machine
