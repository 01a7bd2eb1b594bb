"""The block renderer on a hand-made timeline: exact samples, ramps, fades, limiter, flat memory."""

from __future__ import annotations

import numpy as np
import pytest

from windown import ambient, render
from windown.render import Mix, Renderer
from windown.timeline import Event, Timeline

SR = 44100


def constant_bed(value: float = 0.1) -> ambient.Bed:
    return ambient.Bed(np.full((SR, 2), value, dtype=np.float32), "test")


def make(events, clips, end, bed=None, **mix):
    tl = Timeline(SR, events=events, end_frame=end)
    silent_chime = np.zeros((SR, 2), dtype=np.float32)
    return Renderer(tl, clips, bed, Mix(**{"tail_ms": 4000, **mix}), chime=silent_chime)


def whole(r: Renderer) -> np.ndarray:
    return np.concatenate(list(r.blocks()))


def test_each_clip_lands_on_its_exact_sample():
    clip = np.full(1000, 0.25, dtype=np.float32)
    events = [Event(12_345, 1000, "speech", "a", 140), Event(3 * SR + 7, 1000, "speech", "b", 140)]
    r = make(events, {("a", 140): clip, ("b", 140): clip * 2}, end=5 * SR)
    r.master_gain = 1.0  # below the limiter's ceiling, so samples pass unchanged
    out = whole(r)
    gain = r.master_gain
    assert out[12_344, 0] == 0 and out[12_345, 0] == pytest.approx(0.25 * gain, rel=1e-5)
    assert out[12_345 + 999, 1] == pytest.approx(0.25 * gain, rel=1e-5) and out[12_345 + 1000, 1] == 0
    assert out[3 * SR + 6, 0] == 0 and out[3 * SR + 7, 0] == pytest.approx(0.5 * gain, rel=1e-5)


def test_a_clip_across_a_block_boundary_is_continuous():
    start = render.BLOCK_FRAMES - 300
    clip = np.linspace(0.1, 0.2, 600, dtype=np.float32)
    r = make([Event(start, 600, "speech", "x", 140)], {("x", 140): clip}, end=render.BLOCK_FRAMES + SR)
    r.master_gain = 1.0
    out = whole(r)
    assert np.allclose(out[start:start + 600, 0], clip * r.master_gain, rtol=1e-5)


def test_the_bed_ducks_under_speech_with_smooth_ramps():
    clip = np.full(2 * SR, 0.01, dtype=np.float32)
    start = 10 * SR
    r = make([Event(start, 2 * SR, "speech", "x", 140)], {("x", 140): clip}, end=20 * SR, bed=constant_bed(),
             fade_in_ms=1000, duck_db=6.0, attack_ms=300, release_ms=1000)
    env = r.bed_envelope(np.arange(0, 20 * SR))
    full = env[5 * SR]
    assert env[start + SR] == pytest.approx(full * 10 ** (-6 / 20), rel=1e-4)  # ducked while speaking
    assert env[start - int(0.3 * SR) - 1] == pytest.approx(full, rel=1e-6)  # attack starts 300 ms before
    assert env[start + 2 * SR + SR + 1] == pytest.approx(full, rel=1e-6)  # release ends 1 s after
    ramp = env[start - int(0.3 * SR):start]
    assert np.all(np.diff(ramp) <= 1e-9)  # falls smoothly, never jumps
    assert np.max(np.abs(np.diff(env))) < full * 0.001


def test_fade_in_tail_fade_and_a_silent_final_second():
    r = make([], {}, end=10 * SR, bed=constant_bed(), fade_in_ms=3000, tail_ms=20_000)
    out = whole(r)
    assert len(out) == 30 * SR
    assert out[0, 0] == 0 and out[SR, 0] < out[2 * SR, 0] < out[4 * SR, 0]
    level = np.abs(out[:, 0])
    steady = level[8 * SR]
    assert steady > 0
    assert level[10 * SR + SR] == pytest.approx(steady, rel=1e-3)  # the bed plays on after the last words
    tail = level[12 * SR:29 * SR:SR // 10]
    assert np.all(np.diff(tail) <= 1e-9)  # then only falls
    assert level[29 * SR - 1] < steady * 1e-3  # reaching silence just as the final second begins
    assert np.all(out[-SR:] == 0)


def test_a_zero_tail_still_fades_rather_than_cutting():
    r = make([], {}, end=5 * SR, bed=constant_bed(), fade_in_ms=1000, tail_ms=0)
    out = whole(r)
    assert len(out) == 5 * SR + render.MIN_TAIL_MS * SR // 1000
    level = np.abs(out[5 * SR:, 0])
    assert level[0] > 0 and np.all(out[-SR:] == 0)
    assert np.max(np.abs(np.diff(level))) < level[0] * 0.01  # no cliff


def test_the_limiter_keeps_peaks_under_the_ceiling_without_clipping():
    loud = (0.9 * np.sin(2 * np.pi * 200 * np.arange(SR) / SR)).astype(np.float32)
    r = make([Event(SR, SR, "speech", "x", 140)], {("x", 140): loud}, end=3 * SR, ceiling_db=-2.0)
    r.master_gain = 2.0  # force the mix far over the ceiling
    out = whole(r)
    ceiling = 10 ** (-2.0 / 20)
    assert np.abs(out).max() <= ceiling + 1e-6
    # gain reduction, not clipping: the waveform keeps its shape (no flat tops)
    segment = out[int(1.5 * SR):int(1.5 * SR) + 2000, 0]
    assert np.sum(np.isclose(np.abs(segment), np.abs(segment).max(), atol=1e-7)) < 10


def test_any_part_of_the_track_renders_as_the_same_frames_of_the_whole():
    rng = np.random.default_rng(4)
    clip = (rng.normal(0, 0.05, SR)).astype(np.float32)
    events = [Event(i * 9 * SR + 123, SR, "speech", "x", 140) for i in range(4)]
    r = make(events, {("x", 140): clip}, end=40 * SR, bed=constant_bed(0.02))
    out = whole(r)
    start, stop = render.BLOCK_FRAMES - 5_000, 3 * render.BLOCK_FRAMES + 77
    part = np.concatenate(list(r.blocks(start_frame=start, stop_frame=stop, releases=False)))
    assert np.array_equal(part, out[start:stop])
    tail = np.concatenate(list(r.blocks(start_frame=stop)))  # to the end, its last second silent
    assert np.array_equal(tail, out[stop:]) and not tail[-SR:].any()


def test_blocks_have_a_fixed_size_so_memory_does_not_grow_with_length():
    r = make([], {}, end=60 * 60 * SR, bed=constant_bed())
    sizes = set()
    for i, block in enumerate(r.blocks()):
        sizes.add(len(block))
        if i > 20:
            break
    assert sizes == {render.BLOCK_FRAMES}
    assert r.total_frames == 60 * 60 * SR + 4 * SR


def test_the_master_gain_meets_the_loudness_target():
    rng = np.random.default_rng(1)
    speech = (rng.normal(0, 0.05, 3 * SR)).astype(np.float32)
    events = [Event(i * 4 * SR, 3 * SR, "speech", "x", 140) for i in range(8)]
    r = make(events, {("x", 140): speech}, end=33 * SR, bed=constant_bed(0.001), loudness_lufs=-18.0)
    from windown import loudness

    assert loudness.integrated_lufs(whole(r), SR) == pytest.approx(-18.0, abs=0.1)
