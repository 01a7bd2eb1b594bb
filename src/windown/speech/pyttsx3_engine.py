"""The pyttsx3 engine (the default): the platform's voices (espeak-ng on Linux, SAPI5, NSSpeech).

pyttsx3's Linux driver returns from runAndWait() before the file exists, overwrites files in loops,
and prints to stdout (notes/technical.md, section 1). So it runs in worker processes of its own
(spawned, never forked), each phrase is waited for and verified as a complete WAV before the next
starts, and the workers' stdout never reaches ours.
"""

from __future__ import annotations

import ctypes.util
import functools
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from windown.errors import BuildError, MissingToolError
from windown.speech import default_workers

DEFAULT_VOICE = "gmw/en-us+f3"


class Pyttsx3Engine:
    name = "pyttsx3"

    def check(self) -> None:
        """Cheap: the package and (on Linux) libespeak-ng are there; no driver is started."""
        if importlib.util.find_spec("pyttsx3") is None:
            raise MissingToolError("pyttsx3 is not installed", "Run ./scripts/setup, or pip install pyttsx3")
        if sys.platform.startswith("linux") and ctypes.util.find_library("espeak-ng") is None:
            raise MissingToolError("pyttsx3 needs libespeak-ng, which is not installed",
                                   "Run ./scripts/setup, or install the Debian packages espeak-ng and libespeak-ng1")

    def version(self) -> str:
        """pyttsx3's version plus, on Linux, espeak-ng's: both shape the sound."""
        version = importlib.metadata.version("pyttsx3")
        if sys.platform.startswith("linux"):
            from windown.speech import espeak

            version += " / " + espeak.version_or_none()
        return version

    def default_voice(self) -> str:
        """A calm female espeak-ng voice on Linux; elsewhere the platform's own default ('')."""
        return DEFAULT_VOICE if sys.platform.startswith("linux") else ""

    def voices(self) -> list[tuple[str, str]]:
        """The platform's voices, then (on Linux) every espeak-ng variant on the default's language
        (`gmw/en-us+f3`), so the default voice and its siblings are listed as they are accepted."""
        probe = _probe()
        out = [(str(v), str(d)) for v, d in probe["voices"]]
        base = DEFAULT_VOICE.partition("+")[0]
        language = dict(out).get(base, base)
        if sys.platform.startswith("linux"):
            out += [(f"{base}+{variant}", f"{language}, variant {name}") for variant, name in probe.get("variants", [])]
        return out

    def synthesize(self, phrases: list[tuple[str, int]], voice: str, out_dir: Path):
        """Split the phrases over one worker process per core; each returns a path or an error per phrase."""
        workers = min(default_workers(), len(phrases)) or 1
        # in rate order, so each worker changes rate only a few times (each change waits for espeak-ng)
        in_rate_order = sorted(range(len(phrases)), key=lambda i: phrases[i][1])
        shares = [in_rate_order[w::workers] for w in range(workers)]
        procs = []
        try:
            for share in shares:
                jobs = [{"text": phrases[i][0], "rate": phrases[i][1], "path": str(out_dir / f"pyttsx3-{i}.wav")}
                        for i in share]
                proc = _spawn()
                proc.stdin.write(json.dumps({"voice": voice, "jobs": jobs}))
                proc.stdin.close()
                proc.stdin = None  # written and closed: communicate() below only reads
                procs.append((proc, share))
            results: list = [RuntimeError("no answer from the pyttsx3 worker")] * len(phrases)
            for proc, share in procs:
                out, err = proc.communicate(timeout=60 + 30 * len(share))
                answers = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
                for i, answer in zip(share, answers):
                    results[i] = Path(answer["path"]) if answer.get("ok") else RuntimeError(answer.get("error"))
                if proc.returncode and len(answers) < len(share):
                    reason = (err.strip().splitlines() or ["no message"])[-1]
                    for i in share[len(answers):]:
                        results[i] = RuntimeError(f"the pyttsx3 worker stopped: {reason}")
            return results
        finally:
            for proc, _ in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


def _spawn() -> subprocess.Popen:
    """A fresh interpreter per worker: pyttsx3's engine is global state and deadlocks after fork."""
    return subprocess.Popen([sys.executable, "-m", "windown.speech.pyttsx3_worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


@functools.cache
def _probe() -> dict:
    """Version and voices, asked of a worker so this process never initialises the driver."""
    proc = _spawn()
    try:
        out, err = proc.communicate(json.dumps({"probe": True}), timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise BuildError("pyttsx3 did not answer within a minute", "Try --engine espeak-ng") from None
    for line in out.splitlines():
        if line.startswith("{"):
            answer = json.loads(line)
            if answer.get("ok"):
                return answer
            raise MissingToolError(f"pyttsx3 cannot start: {answer.get('error')}",
                                   "Run ./scripts/setup, or install the Debian packages espeak-ng and libespeak-ng1")
    reason = (err.strip().splitlines() or ["no message"])[-1]
    raise MissingToolError(f"pyttsx3 cannot start: {reason}",
                           "Run ./scripts/setup, or install the Debian packages espeak-ng and libespeak-ng1")
