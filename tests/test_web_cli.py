"""`windown serve` as a command: what it prints with --lan (address with its secret, a QR code), that the
secret is needed, and a clean one-line error for a port in use. Requests go to 127.0.0.1 only."""

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


@pytest.fixture
def lan_server(tmp_path):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "windown", "serve", "--lan", "--port", str(port), "--shelf",
                                str(tmp_path / "shelf")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=read_lines, args=(process.stdout, lines), daemon=True).start()
    yield port, process, lines
    stop(process)


def test_serve_lan_prints_the_secret_address_and_a_qr_code_and_needs_the_secret(lan_server, tmp_path):
    port, process, lines = lan_server
    printed = []
    deadline = time.monotonic() + 60
    while not any(line.startswith("shelf:") for line in printed):
        assert time.monotonic() < deadline, printed
        try:
            printed.append(lines.get(timeout=1))
        except queue.Empty:
            assert process.poll() is None, process.stderr.read()
    text = "".join(printed)
    address = re.search(rf"windown is on your home network at (http://[\d.]+:{port}/([\w-]+)/)\n", text)
    assert address, text
    secret = address.group(2)
    assert len(secret) >= 20  # 16 random bytes
    assert (tmp_path / "shelf" / ".windown-secret").read_text().strip() == secret
    assert f"podcast feed: {address.group(1)}feed.xml" in text
    qr_rows = [line for line in printed if set(line.strip()) & set("█▀▄")]
    assert len(qr_rows) >= 10  # a QR code drawn in the terminal

    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            response = httpx.get(f"{base}/{secret}/", timeout=2)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert response.status_code == 200
    for path in ("/", "/feed.xml", "/shelf", "/static/style.css", f"/{secret[:-1]}/"):
        assert httpx.get(base + path).status_code == 404, path
    feed = httpx.get(f"{base}/{secret}/feed.xml")
    assert feed.status_code == 200 and f"{base}/{secret}/feed.xml" in feed.text
    assert httpx.get(f"{base}/{secret}/files/.windown-secret").status_code == 404


def test_the_lan_secret_is_kept_per_shelf_for_its_owner_only(tmp_path):
    from windown.web.app import lan_secret

    shelf = tmp_path / "shelf"
    first = lan_secret(shelf)
    assert len(first) >= 20
    assert lan_secret(shelf) == first  # a restart keeps the subscription's address
    kept = shelf / ".windown-secret"
    assert kept.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in shelf.iterdir()) == [".windown-secret"]
    kept.unlink()
    assert lan_secret(shelf) != first


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
