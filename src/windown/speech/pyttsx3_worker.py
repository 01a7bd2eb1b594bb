"""A pyttsx3 worker process: reads one JSON request on stdin, answers one JSON line per phrase.

Runs alone in its own interpreter. Anything pyttsx3 prints goes to stderr; only answers reach stdout.
Each file is waited for until it is a complete WAV whose size has stopped changing and the driver
says it is idle, because the Linux driver writes the file on espeak-ng's thread after runAndWait()
has returned. Phrases at several rates share a worker, so workers start once per build.
"""

from __future__ import annotations

import json
import os
import sys
import time
import wave

POLL_S = 0.005  # how often to look for the finished file; each phrase needs two equal looks
ATTEMPTS = 3  # a phrase the driver drops is said again, up to this many times in all


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
                                  "voices": voices, "variants": espeak_variants()}) + "\n")
        return
    if request["voice"]:  # '' keeps the platform's default voice
        engine.setProperty("voice", request["voice"])
    rate = None
    for job in request["jobs"]:
        try:
            if job["rate"] != rate:  # phrases at several rates share one worker
                rate = int(job["rate"])
                set_rate(engine, rate)
            speak_one(engine, job["text"], job["path"])
            answers.write(json.dumps({"ok": True, "path": job["path"]}) + "\n")
        except Exception as exc:
            answers.write(json.dumps({"ok": False, "error": str(exc)}) + "\n")


def espeak_variants() -> list[list[str]]:
    """espeak-ng's variants as [id, name] (["f3", "female3"]): on Linux a pyttsx3 voice takes one after a
    '+' (gmw/en-us+f3), but pyttsx3 lists only the languages. Asked of the library pyttsx3 speaks with."""
    if not sys.platform.startswith("linux"):
        return []
    from pyttsx3.drivers import _espeak

    spec = _espeak.VOICE()
    spec.languages = b"variant"  # what `espeak-ng --voices=variant` asks for
    return [[v.identifier.decode().rsplit("/", 1)[-1], v.name.decode()] for v in _espeak.ListVoices(spec)]


def set_rate(engine, rate_wpm: int) -> None:
    """Change the rate between phrases. espeak-ng takes the change from its own queue, and a change
    made while the last phrase was still draining was sometimes lost (a phrase came out at the old
    rate), so on Linux the queue is emptied before and after."""
    synchronize = lambda: None  # noqa: E731
    if sys.platform.startswith("linux"):
        from pyttsx3.drivers import _espeak

        synchronize = getattr(_espeak, "Synchronize", synchronize)
    synchronize()
    engine.setProperty("rate", rate_wpm)
    synchronize()


def speak_one(engine, text: str, path: str) -> None:
    """Save one phrase, trying again when the driver ends it at once with an empty file.

    espeak-ng synthesises on its own thread; now and then (more often on a busy machine) a phrase
    that follows closely on the last one is ended before it starts, and the driver saves a WAV with
    no audio. Said again it comes out whole."""
    for _ in range(ATTEMPTS):
        engine.save_to_file(text, path)
        engine.runAndWait()
        if wait_for_wav(engine, path, 10 + 0.5 * len(text.split())):
            return
        time.sleep(0.02)
    raise TimeoutError("no complete audio file appeared")


def wait_for_wav(engine, path: str, seconds: float) -> bool:
    """True once the file is a complete WAV whose size held still while the driver was idle; False
    when the driver went idle leaving a WAV with no audio (a dropped phrase); TimeoutError else."""
    deadline = time.monotonic() + seconds
    last_size = -1
    while time.monotonic() < deadline:
        frames, size = wav_frames_and_size(path)
        idle = not engine.isBusy()
        if idle and frames == 0 and 0 < size <= 64:  # a header and nothing after it
            return False
        complete = frames > 0 and size >= frames * 2  # 16-bit mono
        if complete and size == last_size and idle:
            return True
        last_size = size if complete else -1
        time.sleep(POLL_S)
    raise TimeoutError("no complete audio file appeared")


def wav_frames_and_size(path: str) -> tuple[int, int]:
    """(frames the WAV header declares, bytes on disk); (-1, -1) while the file is missing or unreadable."""
    try:
        size = os.path.getsize(path)
        with wave.open(path, "rb") as handle:
            return handle.getnframes(), size
    except (OSError, EOFError, wave.Error):
        return -1, -1


if __name__ == "__main__":
    main()
