"""Render stage: `Timeline` + clips + ambient bed -> a stream of fixed-size float32 stereo blocks.

Nothing track-length is ever allocated: each block is mixed from the bed loop (by modulo index),
the clips that overlap it and the chimes, so memory stays flat however long the track is.
The master gain is worked out before the first block from the clips themselves, so one pass is enough.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from windown import ambient, loudness, settings
from windown.loudness import limiter_gain
from windown.speech.clips import VOICE_LUFS
from windown.timeline import Event, Placer, Timeline

BLOCK_FRAMES = 1 << 18  # about 6 s at 44.1 kHz: small enough for flat memory, big enough for numpy
STEREO_GAIN_DB = 10 * math.log10(2)  # a mono voice on both channels measures 3 dB louder than mono


@dataclass(frozen=True)
class Mix:
    loudness_lufs: float = settings.default("loudness")
    ambient_level_db: float = settings.default("ambient.level")  # the bed relative to the voice, while nobody speaks
    duck_db: float = 4.0  # the bed dips this much further under each phrase
    attack_ms: int = 300
    release_ms: int = 1000
    fade_in_ms: int = 6000
    tail_ms: int = settings.default("tail")
    chime_level_db: float = -8.0  # the chime relative to the voice
    ceiling_db: float = -2.0  # the limiter's sample-peak ceiling (true peak stays under -1.5 dBTP)

    @property
    def tail_fade_ms(self) -> int:
        """The bed fades over the last half of the tail (3 s to 3 min); the final second is silence."""
        return int(min(180_000, max(3000, (self.tail_ms - 1000) * 0.5)))


MIN_TAIL_MS = 4000  # even with --tail 0 the bed fades out rather than stopping dead


def tail_frames(mix: Mix, sample_rate: int) -> int:
    """How long the bed plays on after the guided part, so `windown script` knows a track's length unrendered."""
    return sample_rate * max(mix.tail_ms, MIN_TAIL_MS) // 1000


class Renderer:
    """Mixes the track block by block. Given a `placer` (a cold build), the timeline is placed as the
    blocks need it, each clip waited for as its cue is reached, and the master gain comes from
    `before_gain_lufs` (predicted from an estimated timeline before any clip existed); otherwise the
    timeline is whole and the gain is predicted from the clips themselves."""

    def __init__(self, timeline: Timeline, clips: dict[tuple[str, int], np.ndarray], bed: ambient.Bed | None,
                 mix: Mix, chime: np.ndarray | None = None, *, placer: Placer | None = None,
                 before_gain_lufs: float | None = None, estimated_total_frames: int | None = None,
                 speech_energy: Callable[[tuple[str, int]], np.ndarray] | None = None,
                 release: Callable[[tuple[str, int]], None] | None = None,
                 uses: dict[tuple[str, int], int] | None = None):
        self.sample_rate = timeline.sample_rate
        self.timeline = placer.timeline if placer is not None else timeline
        self.placer = placer
        self.clips = clips
        # with `release` and `uses` (how many cues say each clip), a clip is handed back once its last
        # cue is mixed: a cold build then holds only the clips between the renderer and the synthesis
        self.release = release
        self.uses = uses or {}
        self.released: set[tuple[str, int]] = set()
        self.bed = bed
        self.mix = mix
        self.chime = chime if chime is not None else ambient.chime(self.sample_rate)
        self.tail_frames = tail_frames(mix, self.sample_rate)
        self.total_frames: int | None = None  # known once the whole timeline is placed
        self.estimated_total_frames = estimated_total_frames  # for progress while it is not
        self._index_events()
        voice_stereo_lufs = VOICE_LUFS + STEREO_GAIN_DB
        self.bed_gain = 10 ** ((voice_stereo_lufs + mix.ambient_level_db - ambient.BED_LUFS) / 20)
        self.chime_gain = 10 ** ((voice_stereo_lufs + mix.chime_level_db - ambient.CHIME_LUFS) / 20)
        if before_gain_lufs is None:
            before_gain_lufs = self.predicted_lufs(speech_energy)
        self.before_gain_lufs = before_gain_lufs
        self.master_gain = 10 ** ((mix.loudness_lufs - before_gain_lufs) / 20)
        self.ceiling = 10 ** (mix.ceiling_db / 20)
        self.halo = self.sample_rate // 25  # the limiter looks 40 ms either side of each block
        # a block at frames a..b is final once every cue that can reach it is placed: its attack and
        # the limiter's look-ahead past b
        self.reach_frames = self.halo + self.sample_rate * mix.attack_ms // 1000 + 1

    def _index_events(self) -> None:
        """The placed events as arrays, for finding those a block overlaps; the total once all are placed."""
        tl = self.timeline
        self.events = sorted(tl.events, key=lambda e: e.start_frame) if self.placer is not None else tl.events
        self.start_frames = np.array([e.start_frame for e in self.events], dtype=np.int64)
        self.stop_frames = np.array([e.stop_frame for e in self.events], dtype=np.int64)
        self.speech = [e for e in self.events if e.kind == "speech"]
        self.speech_start_frames = np.array([e.start_frame for e in self.speech], dtype=np.int64)
        self.speech_stop_frames = np.array([e.stop_frame for e in self.speech], dtype=np.int64)
        if self.placer is None or self.placer.done:
            self.total_frames = tl.end_frame + self.tail_frames

    def reach(self, frame: int) -> None:
        """Place the timeline (waiting for clips) until nothing unplaced can sound before `frame`."""
        if self.placer is None or self.placer.done:
            return
        placed = len(self.timeline.events)
        self.placer.place_until(frame)
        if self.placer.done or len(self.timeline.events) != placed:
            self._index_events()

    # -- gains -------------------------------------------------------------------------------------

    def bed_envelope(self, t: np.ndarray) -> np.ndarray:
        """The bed's gain at frames t (ascending): fade in, duck under speech, fade out over the tail.

        Each curve is evaluated only where it moves (found by searchsorted), since most of a block
        sits at plain gain; the renderer calls this for every frame of the track.
        """
        gain = np.full(len(t), self.bed_gain, dtype=np.float32)
        fade_in_frames = self.sample_rate * self.mix.fade_in_ms / 1000
        i = np.searchsorted(t, fade_in_frames)
        if i:
            gain[:i] *= np.sin(t[:i] / fade_in_frames * (np.pi / 2)) ** 2
        if self.total_frames is None:  # still placing: the fade starts after the guided part, beyond t
            i = len(t)
        else:
            fade_stop = self.total_frames - self.sample_rate  # the final second is silent
            fade_frames = self.sample_rate * min(self.mix.tail_fade_ms,
                                                 self.tail_frames * 1000 // self.sample_rate - 1000) / 1000
            i = np.searchsorted(t, fade_stop - fade_frames)
        if i < len(t):
            x = np.clip((t[i:] - (fade_stop - fade_frames)) / max(1.0, fade_frames), 0, 1)
            gain[i:] *= np.cos(x * np.pi / 2) ** 2
        duck = self.duck_amount(t)
        if duck is not None:
            amount, lo, hi = duck
            gain[lo:hi] *= 10 ** (-self.mix.duck_db / 20 * amount)
        return gain

    def duck_amount(self, t: np.ndarray) -> tuple[np.ndarray, int, int] | None:
        """How far the bed ducks at frames t (ascending), as (amount 0..1, lo, hi) for t[lo:hi]; None when
        no phrase is near. 1 while a phrase plays, with sin² ramps over the attack before it and the
        release after it."""
        attack_frames = self.sample_rate * self.mix.attack_ms // 1000
        release_frames = self.sample_rate * self.mix.release_ms // 1000
        a, b = t[0], t[-1] + 1
        near = np.nonzero((self.speech_start_frames - attack_frames < b) &
                          (self.speech_stop_frames + release_frames > a))[0]
        if not len(near):
            return None
        lo = int(np.searchsorted(t, self.speech_start_frames[near[0]] - attack_frames))
        hi = int(np.searchsorted(t, self.speech_stop_frames[near[-1]] + release_frames))
        amount = np.zeros(hi - lo, dtype=np.float32)
        for k in near:
            start, stop = self.speech_start_frames[k], self.speech_stop_frames[k]
            i0, i1, i2, i3 = (int(np.searchsorted(t, edge)) - lo
                              for edge in (start - attack_frames, start, stop, stop + release_frames))
            amount[i1:i2] = 1.0
            rise = np.sin((t[lo + i0:lo + i1] - (start - attack_frames)) / attack_frames * (np.pi / 2)) ** 2
            fall = np.sin(((stop + release_frames) - t[lo + i2:lo + i3]) / release_frames * (np.pi / 2)) ** 2
            np.maximum(amount[i0:i1], rise, out=amount[i0:i1])
            np.maximum(amount[i2:i3], fall, out=amount[i2:i3])
        return amount, lo, hi

    def predicted_lufs(self, speech_energy: Callable[[tuple[str, int]], np.ndarray] | None = None) -> float:
        """The mix's integrated loudness before master gain, from the clips' K-weighted energies
        (or `speech_energy(key)`, per-frame energies of both channels: a stand-in for a clip not made yet).

        Speech never overlaps, so each clip's and chime's energy is binned at its position (100 ms bins,
        as the BS.1770 meter does); the bed adds its known power times its gain in each bin.
        """
        hop = self.sample_rate // 10
        bins = np.zeros(self.total_frames // hop + 2)

        def k_weighted(x: np.ndarray) -> np.ndarray:
            return loudness.k_filter(x, self.sample_rate).astype(np.float64)

        def add(start: int, energy: np.ndarray) -> None:
            energy = energy[: max(0, self.total_frames - start)]
            index = (start + np.arange(len(energy))) // hop
            bins[:] += np.bincount(index, weights=energy, minlength=len(bins))[: len(bins)]

        starts_by_clip: dict[tuple[str, int], list[int]] = {}  # "And out." recurs: filter each clip once
        for e in self.speech:
            starts_by_clip.setdefault((e.text, e.rate_wpm), []).append(e.start_frame)
        for key, starts in starts_by_clip.items():
            # one clip's energy at a time keeps memory flat
            energy = speech_energy(key) if speech_energy else 2 * k_weighted(self.clips[key]) ** 2
            for start in starts:
                add(start, energy)
        chime_energy = (k_weighted(self.chime) ** 2).sum(axis=1)
        for e in self.events:
            if e.kind == "chime":  # chimes pass the gates too, and pull the average down
                add(e.start_frame, chime_energy * (self.chime_gain * 10 ** (e.gain_db / 20)) ** 2)
        if self.bed is not None:
            bed_power = 10 ** ((ambient.BED_LUFS + 0.691) / 10)  # mean square summed over both channels
            centres = np.arange(len(bins)) * hop + hop // 2
            centres = np.minimum(centres, self.total_frames - 1)
            bins += bed_power * self.bed_envelope(centres).astype(np.float64) ** 2 * hop
        lufs = loudness.gated_lufs(bins[: self.total_frames // hop, None], hop)
        return lufs if math.isfinite(lufs) else VOICE_LUFS + STEREO_GAIN_DB

    # -- mixing ------------------------------------------------------------------------------------

    def mix_range(self, a: int, b: int) -> np.ndarray:
        """Frames a..b of the mix before the limiter (a may be negative, b may pass the end)."""
        lo, hi = max(0, a), b if self.total_frames is None else min(self.total_frames, b)
        out = np.zeros((b - a, 2), dtype=np.float32)
        if hi <= lo:
            return out
        if self.bed is not None:
            out[lo - a:hi - a] = self.bed.block(lo, hi) * self.bed_envelope(np.arange(lo, hi))[:, None]
        for i in np.nonzero((self.start_frames < hi) & (self.stop_frames > lo))[0]:
            self.add_event(out, a, lo, hi, self.events[i])
        out *= np.float32(self.master_gain)
        return out

    def add_event(self, out: np.ndarray, a: int, lo: int, hi: int, e: Event) -> None:
        s, t = max(lo, e.start_frame), min(hi, e.stop_frame)
        if e.kind == "speech":
            piece = self.clips[(e.text, e.rate_wpm)][s - e.start_frame:t - e.start_frame]
            out[s - a:t - a] += piece[:, None]
        else:
            piece = self.chime[s - e.start_frame:min(t - e.start_frame, len(self.chime))]
            gain = self.chime_gain * 10 ** (e.gain_db / 20)
            out[s - a:s - a + len(piece)] += piece * np.float32(gain)

    def blocks(self, *, start_frame: int = 0, stop_frame: int | None = None,
               releases: bool = True) -> Iterator[np.ndarray]:
        """The finished track, block by block: mixed, master gain, limited, final second silent.

        With a placer, each block first places the timeline as far as it can reach (waiting for the
        clips it needs), so the first blocks go to the encoder while later clips are still being made.
        `start_frame` and `stop_frame` give a part of the track (for a second encoder: export.Split);
        only the pass that goes through in order `releases` the clips behind it."""
        a = start_frame

        def stop() -> int | None:
            return self.total_frames if stop_frame is None or self.total_frames is None \
                else min(stop_frame, self.total_frames)

        while stop() is None or a < stop():
            self.reach(a + BLOCK_FRAMES + self.reach_frames)
            if stop() is not None and a >= stop():
                break
            b = a + BLOCK_FRAMES if stop() is None else min(stop(), a + BLOCK_FRAMES)
            wide = self.mix_range(a - self.halo, b + self.halo)
            block = wide[self.halo:self.halo + (b - a)]
            if np.abs(wide).max(initial=0.0) > self.ceiling:  # rare: most blocks need no limiting at all
                magnitude = np.maximum(np.abs(wide[:, 0]), np.abs(wide[:, 1]))  # one gain for both channels
                gain = limiter_gain(magnitude, self.sample_rate, self.ceiling)
                block = block * gain[self.halo:self.halo + (b - a), None]
            if self.total_frames is not None:
                silent_from = self.total_frames - self.sample_rate
                if b > silent_from:
                    block[max(0, silent_from - a):] = 0.0
            yield block
            if releases:
                self.release_finished(b - self.halo)
            a = b

    def progress_total(self, done_frames: int) -> int:
        """The track's length for a progress bar: exact once known, else the estimate (or more)."""
        return self.total_frames or max(done_frames + 1, self.estimated_total_frames or 0)

    def release_finished(self, frame: int) -> None:
        """Hand back every clip whose cues are all placed and all end before `frame` (no later block reads it)."""
        if self.release is None:
            return
        placed: dict[tuple[str, int], int] = {}
        last_stop: dict[tuple[str, int], int] = {}
        for e in self.speech:
            key = (e.text, e.rate_wpm)
            placed[key] = placed.get(key, 0) + 1
            last_stop[key] = max(last_stop.get(key, 0), e.stop_frame)
        for key, count in placed.items():
            if key not in self.released and count >= self.uses.get(key, 0) and last_stop[key] <= frame:
                self.release(key)
                self.released.add(key)
