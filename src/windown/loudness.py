"""BS.1770 loudness in numpy: the speech stage levels clips with it, the renderer meters the mix with it.

Streaming: a meter takes blocks of any size and keeps only 100 ms energies, so memory stays flat.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal


def k_weighting(sample_rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The two BS.1770 biquads (high shelf, then high pass) for any sample rate."""
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / sample_rate)
    vh = 10 ** (gain_db / 20)
    vb = vh ** 0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = (np.array([(vh + vb * k / q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0]),
             np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]))
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / sample_rate)
    a0 = 1 + k / q + k * k
    highpass = (np.array([1.0, -2.0, 1.0]),
                np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]))
    return [shelf, highpass]


class Meter:
    """Integrated loudness (LUFS) and sample peak of a stream of (frames, channels) float blocks."""

    def __init__(self, sample_rate: int, channels: int):
        self.sample_rate = sample_rate
        self.channels = channels
        self.filters = k_weighting(sample_rate)
        self.states = [np.zeros((max(len(a), len(b)) - 1, channels)) for b, a in self.filters]
        self.hop = sample_rate // 10  # 100 ms sub-blocks; gating blocks are four of them
        self.partial = np.zeros(channels)
        self.partial_frames = 0
        self.energies: list[np.ndarray] = []
        self.peak = 0.0

    def add(self, block: np.ndarray) -> None:
        if block.ndim == 1:
            block = block[:, None]
        if not len(block):
            return
        self.peak = max(self.peak, float(np.max(np.abs(block))))
        x = block.astype(np.float64)
        for i, (b, a) in enumerate(self.filters):
            x, self.states[i] = signal.lfilter(b, a, x, axis=0, zi=self.states[i])
        squares = x * x
        pos = 0
        if self.partial_frames:
            take = min(self.hop - self.partial_frames, len(squares))
            self.partial += squares[:take].sum(axis=0)
            self.partial_frames += take
            pos = take
            if self.partial_frames == self.hop:
                self.energies.append(self.partial.copy())
                self.partial[:] = 0
                self.partial_frames = 0
        whole = (len(squares) - pos) // self.hop
        if whole:
            chunk = squares[pos: pos + whole * self.hop].reshape(whole, self.hop, self.channels).sum(axis=1)
            self.energies.extend(chunk)
            pos += whole * self.hop
        if pos < len(squares):
            self.partial += squares[pos:].sum(axis=0)
            self.partial_frames += len(squares) - pos

    def integrated_lufs(self) -> float:
        """Gated integrated loudness; -inf for silence or anything shorter than one 400 ms block."""
        if len(self.energies) < 4:
            return float("-inf")
        sub = np.array(self.energies)  # (n, channels) sums of squares per 100 ms
        window = np.lib.stride_tricks.sliding_window_view(sub, 4, axis=0).sum(axis=-1)
        power = window.sum(axis=1) / (4 * self.hop)  # channel weights are 1 for mono and stereo
        with np.errstate(divide="ignore"):
            loud = -0.691 + 10 * np.log10(power)
        gated = power[loud > -70]
        if not len(gated):
            return float("-inf")
        relative = -0.691 + 10 * np.log10(gated.mean()) - 10
        final = power[(loud > -70) & (loud > relative)]
        return float(-0.691 + 10 * np.log10(final.mean()))

    @property
    def peak_db(self) -> float:
        return 20 * math.log10(self.peak) if self.peak > 0 else float("-inf")


def integrated_lufs(samples: np.ndarray, sample_rate: int) -> float:
    """Loudness of a whole signal (mono 1-D or (frames, channels))."""
    meter = Meter(sample_rate, 1 if samples.ndim == 1 else samples.shape[1])
    meter.add(samples)
    return meter.integrated_lufs()
