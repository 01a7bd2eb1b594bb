"""A pyttsx3 worker process: reads one JSON request on stdin, answers one JSON line per phrase.

Runs alone in its own interpreter. Anything pyttsx3 prints goes to stderr; only answers reach stdout.
Each file is waited for until it is a complete WAV whose size has stopped changing, because the
Linux driver writes it on a callback thread after runAndWait() has returned.
"""

from __future__ import annotations

import json
import os
import sys
import time
import wave

POLL_S = 0.005  # how often to look for the finished file; each phrase needs two equal looks


def main() -> None:
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # the driver's prints go to stderr
    request = json.loads(sys.stdin.read())
    try:
        import importlib.metadata

        import pyttsx3

        engine = pyttsx3.init()
    except Exception as exc:  # reported to the parent as one line
        answers.write(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}) + "\n")
        return
    if request.get("probe"):
        voices = [[v.id, v.name or v.id] for v in engine.getProperty("voices")]
        answers.write(json.dumps({"ok": True, "version": importlib.metadata.version("pyttsx3"),
                                  "voices": voices}) + "\n")
        return
    engine.setProperty("rate", int(request["rate"]))
    if request["voice"]:  # '' keeps the platform's default voice
        engine.setProperty("voice", request["voice"])
    for job in request["jobs"]:
        try:
            speak_one(engine, job["text"], job["path"])
            answers.write(json.dumps({"ok": True, "path": job["path"]}) + "\n")
        except Exception as exc:
            answers.write(json.dumps({"ok": False, "error": str(exc)}) + "\n")


def speak_one(engine, text: str, path: str) -> None:
    engine.save_to_file(text, path)
    engine.runAndWait()
    deadline = time.monotonic() + 10 + 0.5 * len(text.split())
    last_size = -1
    while time.monotonic() < deadline:
        size = complete_size(path)
        if size is not None and size == last_size:
            return
        last_size = size if size is not None else -1
        time.sleep(POLL_S)
    raise TimeoutError("no complete audio file appeared")


def complete_size(path: str) -> int | None:
    """The file's size if it is a readable WAV holding audio, else None."""
    try:
        size = os.path.getsize(path)
        with wave.open(path, "rb") as handle:
            frames = handle.getnframes()
        expected = frames * 2  # 16-bit mono
        return size if frames > 0 and size >= expected else None
    except (OSError, EOFError, wave.Error):
        return None


if __name__ == "__main__":
    main()
