"""BS.1770 loudness and peak control in numpy: the speech stage levels clips with it, the renderer
meters and limits the mix with it.

Streaming: a meter takes blocks of any size and keeps only 100 ms energies, so memory stays flat.
The K-weighting biquads are applied as their impulse response (an FIR, by FFT): their response has
died away to nothing within 50 ms, and numpy alone keeps every build free of scipy's import cost.
"""

from __future__ import annotations

import functools
import math

import numpy as np

FIR_MS = 50  # the K-weighting response has fallen below -130 dB after this long


def k_weighting(sample_rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The two BS.1770 biquads (high shelf, then high pass) for any sample rate: (b, a) pairs."""
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


@functools.cache
def k_impulse(sample_rate: int) -> np.ndarray:
    """The K-weighting filter's impulse response, FIR_MS long."""
    n = sample_rate * FIR_MS // 1000
    x = np.zeros(n)
    x[0] = 1.0
    for b, a in k_weighting(sample_rate):
        y = np.zeros(n)
        for i in range(n):  # a direct-form biquad, once per sample rate
            acc = b[0] * x[i]
            if i >= 1:
                acc += b[1] * x[i - 1] - a[1] * y[i - 1]
            if i >= 2:
                acc += b[2] * x[i - 2] - a[2] * y[i - 2]
            y[i] = acc
        x = y
    return x


FFT_SIZE = 1 << 14  # overlap-add in many small FFTs, batched: far cheaper than one huge FFT per block


def k_filter(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """K-weight a whole signal (1-D or (frames, channels)); the output has len(x) + FIR length - 1 frames."""
    if x.ndim == 1:
        return k_filter_rows(x[None, :], sample_rate)[0]
    return k_filter_rows(x.T, sample_rate).T


def k_filter_rows(rows: np.ndarray, sample_rate: int) -> np.ndarray:
    """K-weight (channels, frames) -> float32 (channels, frames + FIR length - 1), overlap-add by FFT.

    Channel-first so each channel's chunks lie contiguous for the FFTs (a third faster than along a
    strided axis); float32 halves the FFT work.
    """
    h = k_impulse(sample_rate)
    channels, frames = rows.shape
    step = FFT_SIZE - len(h) + 1
    chunks = max(1, -(-frames // step))
    padded = np.zeros((channels, chunks * step), dtype=np.float32)
    padded[:, :frames] = rows
    spectra = np.fft.rfft(padded.reshape(channels, chunks, step), FFT_SIZE, axis=-1)
    spectra *= _kernel(sample_rate)
    pieces = np.fft.irfft(spectra, FFT_SIZE, axis=-1)
    out = np.zeros((channels, chunks * step + len(h) - 1), dtype=np.float32)
    body = out[:, : chunks * step].reshape(channels, chunks, step)
    body += pieces[:, :, :step]
    body[:, 1:, : len(h) - 1] += pieces[:, :-1, step:]  # each chunk's ringing spills into the next
    out[:, chunks * step:] += pieces[:, -1, step:]
    return out[:, : frames + len(h) - 1]


@functools.cache
def _kernel(sample_rate: int) -> np.ndarray:
    return np.fft.rfft(k_impulse(sample_rate), FFT_SIZE).astype(np.complex64)


class Meter:
    """Integrated loudness (LUFS) and sample peak of a stream of (frames, channels) float blocks."""

    def __init__(self, sample_rate: int, channels: int):
        self.sample_rate = sample_rate
        self.channels = channels
        self.carry = np.zeros((channels, len(k_impulse(sample_rate)) - 1), dtype=np.float32)  # overlap-add tail
        self.hop = sample_rate // 10  # 100 ms sub-blocks; gating blocks are four of them
        self.pending = np.zeros((channels, 0), dtype=np.float32)  # squares of an unfinished sub-block
        self.energies: list[np.ndarray] = []  # (sub-blocks, channels) sums of squares
        self.peak = 0.0
        self.start_offset = 0  # frames of an unfinished sub-block before this meter's first (see after)

    def add(self, block: np.ndarray) -> None:
        if block.ndim == 1:
            block = block[:, None]
        if not len(block):
            return
        self.peak = max(self.peak, float(np.max(np.abs(block))))
        filtered = k_filter_rows(block.T, self.sample_rate)
        taps = self.carry.shape[1]
        filtered[:, :taps] += self.carry
        n = len(block)
        self.carry = filtered[:, n:n + taps].copy()  # a block shorter than the filter still carries it all
        squares = np.square(filtered[:, :n])
        if self.pending.shape[1]:
            squares = np.concatenate([self.pending, squares], axis=1)
        whole = squares.shape[1] // self.hop
        if whole:
            sums = squares[:, : whole * self.hop].reshape(self.channels, whole, self.hop).sum(axis=2, dtype=np.float64)
            self.energies.append(sums.T)
        self.pending = squares[:, whole * self.hop:].copy()

    def after(self, start_frame: int, lead: np.ndarray) -> "Meter":
        """A meter for the same stream from `start_frame` on, measured apart (by a second encoder's
        feed) and handed back to `absorb`. `lead` is the stream's frames just before `start_frame`
        (at least the filter's length), which the K-weighting filter still hears."""
        later = Meter(self.sample_rate, self.channels)
        if lead.ndim == 1:
            lead = lead[:, None]
        taps = later.carry.shape[1]
        if len(lead) < taps:
            raise ValueError(f"the lead-in must be at least {taps} frames")
        filtered = k_filter_rows(np.ascontiguousarray(lead[-taps:].T), self.sample_rate)
        later.carry = filtered[:, taps:2 * taps].copy()
        # its 100 ms sub-blocks keep the stream's grid: the first is this meter's unfinished one, completed
        # by the frames before start_frame (see absorb)
        later.start_offset = start_frame % self.hop
        later.pending = np.zeros((self.channels, later.start_offset), dtype=np.float32)
        return later

    def absorb(self, later: "Meter") -> None:
        """Take the measurements of `later` (made by `after` at the frame where this meter stopped)."""
        held = self.pending.shape[1]
        if held != later.start_offset:
            raise ValueError("the later meter does not start where this one stopped")
        if later.energies:  # this meter's unfinished sub-block is the later one's first
            first = later.energies[0].copy()
            first[0] += self.pending.sum(axis=1, dtype=np.float64)
            self.energies.extend([first, *later.energies[1:]])
            self.pending = later.pending
        else:
            self.pending = np.concatenate([self.pending, later.pending[:, held:]], axis=1)
        self.peak = max(self.peak, later.peak)

    def integrated_lufs(self) -> float:
        """Gated integrated loudness; -inf for silence or anything shorter than one 400 ms block."""
        if not self.energies:
            return float("-inf")
        return gated_lufs(np.concatenate(self.energies), self.hop)

    @property
    def peak_db(self) -> float:
        return 20 * math.log10(self.peak) if self.peak > 0 else float("-inf")


def gated_lufs(energies: np.ndarray, hop: int) -> float:
    """BS.1770 gating over 100 ms energies ((n, channels) sums of squares of K-weighted samples,
    `hop` frames each): 400 ms blocks, absolute gate at -70 LUFS, relative gate 10 LU down."""
    if len(energies) < 4:
        return float("-inf")
    window = np.lib.stride_tricks.sliding_window_view(energies, 4, axis=0).sum(axis=-1)
    power = window.sum(axis=1) / (4 * hop)  # channel weights are 1 for mono and stereo
    with np.errstate(divide="ignore"):
        loud = -0.691 + 10 * np.log10(power)
    gated = power[loud > -70]
    if not len(gated):
        return float("-inf")
    relative = -0.691 + 10 * np.log10(gated.mean()) - 10
    final = power[(loud > -70) & (loud > relative)]
    return float(-0.691 + 10 * np.log10(final.mean()))


def integrated_lufs(samples: np.ndarray, sample_rate: int, block_frames: int = 1 << 18) -> float:
    """Loudness of a whole signal (mono 1-D or (frames, channels)), metered in blocks to bound memory."""
    meter = Meter(sample_rate, 1 if samples.ndim == 1 else samples.shape[1])
    for start in range(0, len(samples), block_frames):
        meter.add(samples[start:start + block_frames])
    return meter.integrated_lufs()


def soft_limit(samples: np.ndarray, sample_rate: int, ceiling: float) -> np.ndarray:
    """Tame peaks above the ceiling without clipping (see `limiter_gain`)."""
    return samples * limiter_gain(np.abs(samples), sample_rate, ceiling)


def limiter_gain(magnitude: np.ndarray, sample_rate: int, ceiling: float) -> np.ndarray | float:
    """Lookahead gain reduction: a running minimum of the needed gain over 20 ms, then a 10 ms average.

    The averaged gain never exceeds the needed gain at any sample, so peaks stay under the ceiling
    without clipping, and the gain moves slowly enough not to click. 1.0 when nothing is too loud.
    """
    if magnitude.max(initial=0.0) <= ceiling:
        return 1.0
    needed = np.minimum(1.0, ceiling / np.maximum(magnitude, 1e-12))
    width = max(3, sample_rate // 100)
    gain = moving_mean(running_min(needed, 2 * width + 1), width)
    return np.minimum(gain, needed)


def running_min(x: np.ndarray, window: int) -> np.ndarray:
    """Centred minimum over `window` samples (odd), edges padded with the edge value: van Herk's
    method, prefix and suffix minima within blocks of the window's size, so cost is linear."""
    half = window // 2
    padded = np.concatenate([np.full(half, x[0]), x, np.full(half + window, x[-1])])
    blocks = len(padded) // window
    padded = padded[: blocks * window].reshape(blocks, window)
    prefix = np.minimum.accumulate(padded, axis=1).ravel()
    suffix = np.minimum.accumulate(padded[:, ::-1], axis=1)[:, ::-1].ravel()
    i = np.arange(len(x))
    return np.minimum(suffix[i], prefix[i + window - 1])


def moving_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over `window` samples, edges padded with the edge value."""
    half = window // 2
    padded = np.concatenate([np.full(half, x[0]), x, np.full(window - half, x[-1])])
    sums = np.cumsum(padded, dtype=np.float64)
    sums = np.concatenate([[0.0], sums])
    return ((sums[window:window + len(x)] - sums[:len(x)]) / window).astype(x.dtype)
