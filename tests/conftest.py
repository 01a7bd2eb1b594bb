"""Shared fixtures: an isolated cache and config, a tone engine for fast placement tests, a CLI runner."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from windown import speech

REPO = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 44100

# Property tests judge what a document does, never how fast: no per-example deadline, and no
# failure when a busy machine makes generating examples slow.
settings.register_profile("windown", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("windown")


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One clip cache for the whole run: real synthesis is paid once, then every test reuses it."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session", autouse=True)
def isolated_run(shared_cache, tmp_path_factory):
    """The same isolation for the whole run, so module-scoped fixtures (set up before isolated_env)
    never touch the user's real cache, profile or journal either."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WINDOWN_CACHE_DIR", str(shared_cache))
        env.setenv("XDG_CONFIG_HOME", str(home / "config"))
        env.setenv("XDG_DATA_HOME", str(home / "data"))
        env.delenv("WINDOWN_JOURNAL", raising=False)
        env.setenv("NO_COLOR", "1")
        yield


@pytest.fixture(autouse=True)
def isolated_env(shared_cache, tmp_path, monkeypatch):
    """No test reads or writes the user's real cache, profile or journal."""
    monkeypatch.setenv("WINDOWN_CACHE_DIR", str(shared_cache))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("WINDOWN_JOURNAL", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")


class ToneEngine:
    """A fake engine for fast placement tests: each phrase is a 300 Hz tone, 250 ms per word,
    padded with 200 ms of silence at both ends (which the speech stage must trim)."""

    name = "tone"
    WORD_MS = 250
    PAD_MS = 200

    def __init__(self):
        self.calls: list[str] = []

    def check(self) -> None:
        pass

    def version(self) -> str:
        return "tone-1"

    def default_voice(self) -> str:
        return "tone"

    def voices(self):
        return [("tone", "a 300 Hz tone")]

    @classmethod
    def speech_ms(cls, text: str) -> int:
        return cls.WORD_MS * len(text.split())

    def synthesize(self, phrases, voice, out_dir):
        out = []
        for i, (text, _rate_wpm) in enumerate(phrases):
            self.calls.append(text)
            sr = 22050
            n = sr * self.speech_ms(text) // 1000
            pad = np.zeros(sr * self.PAD_MS // 1000)
            tone = 0.5 * np.sin(2 * math.pi * 300 * np.arange(n) / sr)
            pcm = (np.concatenate([pad, tone, pad]) * 32767).astype("<i2")
            path = Path(out_dir) / f"tone-{i}.wav"
            with wave.open(str(path), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(sr)
                w.writeframes(pcm.tobytes())
            out.append(path)
        return out


@pytest.fixture
def tone_engine(monkeypatch) -> ToneEngine:
    """Every engine name resolves to one ToneEngine (its `.calls` lists what was synthesised)."""
    engine = ToneEngine()
    monkeypatch.setattr(speech, "get_engine", lambda name: engine)
    return engine


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600,
            **kwargs) -> subprocess.CompletedProcess:
    """Run `python -m windown ARGS` as a real process, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "windown", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def start_windown(*args: str, **kwargs) -> subprocess.Popen:
    """`python -m windown ARGS` started as a person at a terminal starts it, to be signalled: Ctrl-C
    (SIGINT) is at its default even when this test run was itself started with SIGINT ignored (as a
    script's background job is), which a child would otherwise inherit."""
    return subprocess.Popen([sys.executable, "-m", "windown", *args], preexec_fn=_default_sigint,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def decode(path: Path, channels: int = 2) -> np.ndarray:
    """Decode any audio file with ffmpeg to float32 (frames, channels) at 44.1 kHz: what a player hears."""
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", str(channels),
                          "-ar", str(SAMPLE_RATE), "-"], stdin=subprocess.DEVNULL, capture_output=True,
                         check=True).stdout
    return np.frombuffer(raw, dtype="<f4").reshape(-1, channels)


def _proc_stat(pid: int) -> tuple[str, int, str] | None:
    """(state, parent pid, start time) of a running process from /proc, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()  # the command name may hold spaces and brackets
    return fields[0], int(fields[1]), fields[19]


def descendants(root: int) -> dict[tuple[int, str], str]:
    """The processes below `root` (a process this test started) right now: {(pid, start time): command}.

    The start time tells a process from a later one that reuses its id."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))):
            children.setdefault(stat[1], []).append((int(entry.name), stat[2]))
    found: dict[tuple[int, str], str] = {}
    todo = [root]
    while todo:
        for pid, start in children.get(todo.pop(), []):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            found[(pid, start)] = command.strip()
            todo.append(pid)
    return found


def still_running(processes: dict[tuple[int, str], str]) -> list[str]:
    """The commands of those processes that are still alive (a zombie has finished)."""
    alive = []
    for (pid, start), command in processes.items():
        stat = _proc_stat(pid)
        if stat is not None and stat[2] == start and stat[0] != "Z":
            alive.append(command)
    return alive


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
