"""The BS.1770 meter and the limiter, against reference values and brute force."""

from __future__ import annotations

import numpy as np
import pytest

from windown import loudness

SR = 48000


def sine(freq_hz: float, level_dbfs: float, seconds: float, sample_rate: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (10 ** (level_dbfs / 20) * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def test_the_bs1770_reference_tone():
    # BS.1770: a 997 Hz sine at -20 dBFS in both channels measures -20.0 LUFS; alone, -23.0
    x = sine(997, -20, 5)
    assert loudness.integrated_lufs(np.stack([x, x], 1), SR) == pytest.approx(-20.0, abs=0.02)
    assert loudness.integrated_lufs(x, SR) == pytest.approx(-23.01, abs=0.02)
    assert loudness.integrated_lufs(sine(997, -20, 5, 44100), 44100) == pytest.approx(-23.01, abs=0.02)


def test_k_weighting_lifts_highs_and_cuts_lows():
    high = loudness.integrated_lufs(sine(8000, -20, 3), SR)
    low = loudness.integrated_lufs(sine(30, -20, 3), SR)
    mid = loudness.integrated_lufs(sine(997, -20, 3), SR)
    assert high > mid + 3 and low < mid - 2


def test_gating_ignores_silence_and_the_result_does_not_depend_on_block_size():
    x = np.concatenate([sine(997, -20, 3), np.zeros(SR * 10, dtype=np.float32), sine(997, -20, 3)])
    # ten seconds of silence are gated out; only the 400 ms blocks straddling a tone's edge pull the
    # result a little below -23.01 (ffmpeg's ebur128 reads the same signal as -23.2)
    assert loudness.integrated_lufs(x, SR) == pytest.approx(-23.23, abs=0.02)
    ungated = 10 * np.log10(np.mean(x.astype(np.float64) ** 2)) - 0.691
    assert ungated < -27
    meter = loudness.Meter(SR, 1)
    for start in range(0, len(x), 777):
        meter.add(x[start:start + 777])
    assert meter.integrated_lufs() == pytest.approx(loudness.integrated_lufs(x, SR), abs=1e-3)
    assert loudness.integrated_lufs(np.zeros(SR), SR) == float("-inf")


def test_running_min_and_moving_mean_match_brute_force():
    rng = np.random.default_rng(3)
    x = rng.random(5000)
    for window in (3, 9, 101):
        half = window // 2
        padded = np.concatenate([np.full(half, x[0]), x, np.full(half, x[-1])])
        brute = np.array([padded[i:i + window].min() for i in range(len(x))])
        assert np.array_equal(loudness.running_min(x, window), brute)
    for window in (4, 10):
        half = window // 2
        padded = np.concatenate([np.full(half, x[0]), x, np.full(window - half, x[-1])])
        brute = np.array([padded[i:i + window].mean() for i in range(len(x))])
        assert np.allclose(loudness.moving_mean(x, window), brute)


def test_the_limiter_holds_the_ceiling_and_leaves_quiet_audio_alone():
    loud = sine(300, 0, 1, 44100)
    limited = loudness.soft_limit(loud, 44100, 0.5)
    assert np.abs(limited).max() <= 0.5 + 1e-6
    quiet = sine(300, -12, 1, 44100)
    assert loudness.soft_limit(quiet, 44100, 0.5) is not None
    assert np.array_equal(loudness.soft_limit(quiet, 44100, 0.5), quiet)


def test_the_streaming_meter_matches_an_iir_reference_on_stereo_in_odd_blocks():
    """The FFT K-weighting, carried across blocks of any size, against scipy's IIR filter run in float64."""
    from scipy import signal

    rng = np.random.default_rng(3)
    x = np.stack([sine(440, -18, 4) + 0.05 * rng.standard_normal(4 * SR).astype(np.float32),
                  sine(3000, -30, 4)], axis=1)
    x[SR:2 * SR] = 0  # a silent second, so the gates have something to do
    y = x.astype(np.float64)
    for b, a in loudness.k_weighting(SR):
        y = signal.lfilter(b, a, y, axis=0)
    hop = SR // 10
    energies = (y[: len(y) // hop * hop] ** 2).reshape(-1, hop, 2).sum(axis=1)
    reference = loudness.gated_lufs(energies, hop)
    for size in (100, 2203, 2205, 44100, 1 << 18):
        meter = loudness.Meter(SR, 2)
        for start in range(0, len(x), size):
            meter.add(x[start:start + size])
        assert meter.integrated_lufs() == pytest.approx(reference, abs=1e-3), size
        assert meter.peak == pytest.approx(float(np.abs(x).max()))
