"""The festival engine: Debian's HTS voice cmu_us_slt_arctic_hts, far more natural than formant speech."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

from windown.errors import MissingToolError
from windown.speech import run_parallel

VOICES = {"cmu_us_slt_arctic_hts": "US English, female, HTS (festvox-us-slt-hts)"}
DEFAULT_VOICE = "cmu_us_slt_arctic_hts"
NATURAL_WPM = 175  # the HTS voice's own pace; the rate is set relative to it


class FestivalEngine:
    name = "festival"

    def check(self) -> None:
        program()
        if not voice_dir(DEFAULT_VOICE):
            raise MissingToolError("the festival voice cmu_us_slt_arctic_hts is not installed",
                                   "Run ./scripts/setup, or install the Debian package festvox-us-slt-hts")

    def version(self) -> str:
        return _version()

    def default_voice(self) -> str:
        return DEFAULT_VOICE

    def voices(self) -> list[tuple[str, str]]:
        return [(v, d) for v, d in VOICES.items() if voice_dir(v)]

    def synthesize(self, phrases: list[tuple[str, int]], voice: str, out_dir: Path):
        self.check()
        exe = program()

        def one(i: int) -> Path:
            text, rate_wpm = phrases[i]
            speed = rate_wpm / NATURAL_WPM
            path = out_dir / f"festival-{i}.wav"
            args = [exe, "-eval", f"(voice_{voice})",
                    "-eval", f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {speed:.3f}))))']
            subprocess.run(args + ["-o", str(path)], input=text, text=True, check=True,
                           capture_output=True, timeout=120)
            return path

        return run_parallel(one, len(phrases))


def program() -> str:
    exe = shutil.which("text2wave")
    if not exe:
        raise MissingToolError("festival is not installed",
                               "Run ./scripts/setup, or install the Debian packages festival and festvox-us-slt-hts")
    return exe


def voice_dir(voice: str) -> Path | None:
    for root in (Path("/usr/share/festival/voices"), Path("/usr/local/share/festival/voices")):
        for candidate in root.glob(f"*/{voice}"):
            return candidate
    return None


@functools.cache
def _version() -> str:
    exe = shutil.which("festival")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout if exe else ""
    return out.strip() or "festival"
